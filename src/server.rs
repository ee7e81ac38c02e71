//! The HTTP server (axum): feeds with ETag / Last-Modified / 304, health, metrics and
//! the status page.
