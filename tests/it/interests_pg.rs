//! The interest tests of `interests.rs` on a PostgreSQL store (issue 17): the same
//! end-to-end tests, each on a fresh database of the test server, so likes matched to
//! stored items, scores kept across a restart, verdicts, alerts delivered once and
//! `lookout once` are proved on both stores. Skipped, with one line for the run, where
//! PostgreSQL is not installed.
//!
//! The tests are `interests.rs`'s own functions: its `setup` adds [`store_table`],
//! empty unless a test here set it for its thread (libtest runs each test on a thread
//! of its own).

use std::cell::RefCell;

use crate::common::pg;
use crate::interests;

thread_local! {
    /// The `[store]` table of this thread's interest test: empty for SQLite.
    static STORE: RefCell<String> = const { RefCell::new(String::new()) };
}

/// The `[store]` table the interest tests' configs carry: empty (SQLite, the default)
/// unless the running test is one of this module's.
pub(crate) fn store_table() -> String {
    STORE.with_borrow(Clone::clone)
}

/// Runs `test` with its configs on a fresh PostgreSQL database.
fn on_postgresql(test: fn()) {
    let Some(url) = pg::database() else { return };
    STORE.set(format!("[store]\nurl = \"{url}\"\n"));
    test();
}

/// A test here, on PostgreSQL, for each named test of `interests.rs`.
macro_rules! on_postgresql {
    ($($name:ident),* $(,)?) => {$(
        #[test]
        fn $name() {
            on_postgresql(interests::$name);
        }
    )*};
}

on_postgresql!(
    likes_are_matched_to_stored_items_and_the_liked_topic_fills_the_feed,
    scores_are_the_same_after_a_restart,
    cross_site_posts_are_refused_and_the_buttons_change_the_ranking,
    interest_matches_reach_a_webhook_once,
    lookout_once_trains_scores_and_writes_the_interest_feed,
    a_paper_waiting_in_the_drop_folder_at_start_is_scored_for_its_alert,
    metrics_and_healthz_report_each_interest,
);
