//! lookout turns listing pages that offer no usable feed (Hugging Face Daily Papers,
//! AITopics, arXiv listings, ...) into RSS feeds and keyword alerts.
//!
//! The pipeline runs one way. **Sources** ([`sources`]) produce a [`sources::Page`]: a file
//! dropped into a watched folder, or a listing page fetched over HTTP. **Parsers**
//! ([`parse`]) turn page bytes into [`entry::Entry`] values, one parser per site format,
//! sniffed by content. The **store** ([`store`]) diffs entries against everything seen
//! before in SQLite, so each item is new exactly once, and in the same transaction
//! enqueues alert deliveries for the rules ([`alert`]) a new item matches. **Feeds**
//! ([`feed`]) are rendered from the store once per change and served by the
//! [`server`]; the **outbox worker** delivers alerts to notifiers at least once. The
//! [`daemon`] owns the tasks, the shutdown signal and reload.

pub mod alert;
pub mod captures;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod entry;
pub mod feed;
pub mod live;
pub mod logging;
pub mod metrics;
pub mod parse;
pub mod publish;
mod retry;
pub mod server;
pub mod sources;
pub mod status;
pub mod store;
pub mod systemd;
