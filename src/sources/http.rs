//! Listing-page poller: schedule with jitter, conditional GET, backoff, limits.
