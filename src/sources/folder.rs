//! Drop-folder watcher: notify events, complete-file detection, start-up scan,
//! `processed/` and `failed/` handling.
