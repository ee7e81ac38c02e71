//! Wires the tasks together: sources, ingest, feeds, server, alerts; shutdown and reload.
