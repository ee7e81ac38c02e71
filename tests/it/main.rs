//! lookout's integration tests, as one crate (as ripgrep's are): one link step and one
//! helper module instead of a binary per file. Each module is one capability, tried
//! the way an outsider would: real files, real servers on 127.0.0.1, the real binary.
//!
//! Run one module with `cargo test --test it <module>::`.

mod alert_notifiers;
mod alert_outbox;
mod cli;
mod common;
mod crash_ingest;
mod crash_partial_write;
mod drop_folder_hostile;
mod e2e_alerts_reload;
mod e2e_captures;
mod e2e_drop_to_feed;
mod e2e_failover;
mod e2e_http_sources;
mod e2e_logs;
mod e2e_once;
mod e2e_replicas;
mod e2e_service;
mod e2e_systemd;
mod edge_idle_sockets;
mod edge_redirect_secrets;
mod fault_corrupt_store;
mod fault_full_disk;
mod feed_corpus;
mod feed_render;
mod feed_stylesheet_libxslt;
mod field_caps;
mod http_source;
mod interests;
mod interests_pg;
mod item_integrity;
mod log_escaping;
mod ops_packaging;
mod ops_sd_notify;
mod ops_status_page;
mod parse_formats;
mod parse_fuzz;
mod parse_junk;
mod prop_feeds;
mod prop_fragments;
mod publish_files;
mod serve_compressed;
mod source_degraded;
mod sources_10k;
mod store_delta;
mod store_ingest;
mod store_migrate;
mod store_outbox;
mod store_replicas;
mod store_scale;
