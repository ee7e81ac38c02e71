//! Versioned schema migrations. Each entry is applied once, in order, inside a
//! transaction; `PRAGMA user_version` records how far a database has come.

use super::{Ctx, StoreError};

/// The migrations, oldest first. Never edit a released one: add a new one.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    r#"
    CREATE TABLE items (
        id            INTEGER PRIMARY KEY,
        key           TEXT NOT NULL UNIQUE,
        title         TEXT NOT NULL,
        link          TEXT,
        summary       TEXT NOT NULL DEFAULT '',
        authors       TEXT NOT NULL DEFAULT '[]',   -- JSON array of names
        author_count  INTEGER,
        publisher     TEXT,
        source        TEXT NOT NULL,                -- lookout source that first saw it
        published     TEXT,                         -- YYYY-MM-DD
        arxiv_id      TEXT,
        format        TEXT NOT NULL,
        first_seen    INTEGER NOT NULL,             -- unix ms
        updated_at    INTEGER NOT NULL              -- unix ms
    );
    CREATE INDEX items_newest ON items (first_seen DESC, id DESC);

    -- Every key an item is known by: arxiv:..., url:..., title:...
    CREATE TABLE item_keys (
        alias   TEXT PRIMARY KEY,
        item_id INTEGER NOT NULL REFERENCES items(id)
    ) WITHOUT ROWID;

    -- Which sources have seen an item (per-source feeds).
    CREATE TABLE item_sources (
        source     TEXT NOT NULL,
        item_id    INTEGER NOT NULL REFERENCES items(id),
        first_seen INTEGER NOT NULL,
        PRIMARY KEY (source, item_id)
    ) WITHOUT ROWID;
    -- Per-source feeds list by when that source first saw the item, newest first.
    CREATE INDEX item_sources_newest ON item_sources (source, first_seen DESC, item_id DESC);

    -- Captures already ingested, by content hash.
    CREATE TABLE captures (
        hash       TEXT PRIMARY KEY,
        source     TEXT NOT NULL,
        origin     TEXT NOT NULL,
        format     TEXT NOT NULL,
        entries    INTEGER NOT NULL,
        new_items  INTEGER NOT NULL,
        seen_at    INTEGER NOT NULL
    ) WITHOUT ROWID;

    -- Per-source HTTP state.
    CREATE TABLE fetch_state (
        source               TEXT PRIMARY KEY,
        etag                 TEXT,
        last_modified        TEXT,
        last_success         INTEGER,
        last_error_at        INTEGER,
        last_error           TEXT,
        consecutive_failures INTEGER NOT NULL DEFAULT 0,
        ever_succeeded       INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;

    -- Rule matches (per-rule feeds), recorded even for baseline captures.
    CREATE TABLE matches (
        rule     TEXT NOT NULL,
        item_id  INTEGER NOT NULL REFERENCES items(id),
        matched  TEXT NOT NULL,                     -- JSON array
        at       INTEGER NOT NULL,
        PRIMARY KEY (rule, item_id)
    ) WITHOUT ROWID;
    CREATE INDEX matches_newest ON matches (rule, at DESC, item_id DESC);

    -- Alert deliveries: one row per (item, rule, notifier).
    CREATE TABLE outbox (
        id              INTEGER PRIMARY KEY,
        item_id         INTEGER NOT NULL REFERENCES items(id),
        rule            TEXT NOT NULL,
        notifier        TEXT NOT NULL,
        idempotency_key TEXT NOT NULL UNIQUE,
        matched         TEXT NOT NULL,              -- JSON array
        state           TEXT NOT NULL DEFAULT 'pending',  -- pending | delivered | failed
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt    INTEGER NOT NULL,           -- unix ms
        last_error      TEXT,
        created_at      INTEGER NOT NULL,
        done_at         INTEGER
    );
    -- The worker's poll ("pending and due, oldest first") and the status page's
    -- "failed, newest first" are both range scans of one state.
    CREATE INDEX outbox_due ON outbox (state, next_attempt, id);
    CREATE INDEX outbox_done ON outbox (state, done_at DESC, id DESC);

    -- Bumped on every change feeds can see; the server re-renders when it moves.
    -- changed_at (unix ms, 0 = never) is the feeds' Last-Modified.
    CREATE TABLE generation (
        id         INTEGER PRIMARY KEY CHECK (id = 1),
        value      INTEGER NOT NULL,
        changed_at INTEGER NOT NULL DEFAULT 0
    );
    INSERT INTO generation (id, value, changed_at) VALUES (1, 0, 0);
    "#,
    // 2: per-feed change tracking, so a change re-renders only the feeds it touched;
    // the item count kept up to date instead of counted.
    r#"
    -- From an item to the feeds it is in: an updated item changes each of them.
    CREATE INDEX item_sources_item ON item_sources (item_id);
    CREATE INDEX matches_item ON matches (item_id);

    -- The generation at which each feed scope ('all', 'source:NAME', 'rule:NAME') last
    -- changed. A scope with no row has not changed since this table was made.
    CREATE TABLE scope_changes (
        scope      TEXT PRIMARY KEY,
        generation INTEGER NOT NULL
    ) WITHOUT ROWID;

    -- How many items are stored, kept by triggers: the status line and page read it
    -- often, and COUNT(*) walks a whole index (a million entries at a million items).
    ALTER TABLE generation ADD COLUMN items INTEGER NOT NULL DEFAULT 0;
    UPDATE generation SET items = (SELECT COUNT(*) FROM items) WHERE id = 1;
    CREATE TRIGGER items_counted_in AFTER INSERT ON items
        BEGIN UPDATE generation SET items = items + 1 WHERE id = 1; END;
    CREATE TRIGGER items_counted_out AFTER DELETE ON items
        BEGIN UPDATE generation SET items = items - 1 WHERE id = 1; END;
    "#,
    // 3: the ingest counts the items it inserts, once per page, in the statement that
    // bumps the generation: the per-row trigger was a tenth of a bulk import's time.
    // Deletes (there are none in lookout; by hand) are still counted by their trigger.
    r#"
    DROP TRIGGER items_counted_in;
    "#,
    // 4: identity and time as ARCHITECTURE.md states them.
    // - `ident` is what an item *is* (arxiv:/guid:/url:), NULL for one known by its title
    //   alone: two items with different idents are never merged. Items made before kept
    //   their key as it; a key's '#n' suffix only told two keys apart.
    // - `listed` is when the listing says the item appeared (RFC 3339); `published` now
    //   holds RFC 3339 too (older rows keep YYYY-MM-DD, read as that day's start in UTC).
    // - Captures are recorded per source: the same bytes on two sources are two pages.
    r#"
    ALTER TABLE items ADD COLUMN ident TEXT;
    ALTER TABLE items ADD COLUMN listed TEXT;
    UPDATE items SET ident = CASE
        WHEN arxiv_id IS NOT NULL AND arxiv_id <> '' THEN 'arxiv:' || arxiv_id
        WHEN key LIKE 'url:%' AND instr(key, '#') > 0 THEN substr(key, 1, instr(key, '#') - 1)
        WHEN key LIKE 'url:%' THEN key
    END;

    CREATE TABLE captures_per_source (
        source     TEXT NOT NULL,
        hash       TEXT NOT NULL,
        origin     TEXT NOT NULL,
        format     TEXT NOT NULL,
        entries    INTEGER NOT NULL,
        new_items  INTEGER NOT NULL,
        seen_at    INTEGER NOT NULL,
        PRIMARY KEY (source, hash)
    ) WITHOUT ROWID;
    INSERT INTO captures_per_source (source, hash, origin, format, entries, new_items, seen_at)
         SELECT source, hash, origin, format, entries, new_items, seen_at FROM captures;
    DROP TABLE captures;
    ALTER TABLE captures_per_source RENAME TO captures;
    "#,
    // 5: interests. The user's verdicts on items (the status page's "like" and "not
    // interested"), and each interest's items at or above its threshold, with their
    // score and the terms that weighed most: what its feed lists. The scores are
    // rewritten whole after each retraining; `seen` copies the item's first-seen time
    // so the feed's newest-first listing walks an index.
    r#"
    CREATE TABLE interest_verdicts (
        interest TEXT NOT NULL,
        item_id  INTEGER NOT NULL REFERENCES items(id),
        verdict  TEXT NOT NULL CHECK (verdict IN ('like', 'not_interested')),
        at       INTEGER NOT NULL,
        PRIMARY KEY (interest, item_id)
    ) WITHOUT ROWID;

    CREATE TABLE interest_scores (
        interest TEXT NOT NULL,
        item_id  INTEGER NOT NULL REFERENCES items(id),
        score    REAL NOT NULL,
        terms    TEXT NOT NULL,                    -- JSON array of [term, weight]
        seen     INTEGER NOT NULL,                 -- the item's first_seen, unix ms
        PRIMARY KEY (interest, item_id)
    ) WITHOUT ROWID;
    CREATE INDEX interest_scores_newest ON interest_scores (interest, seen DESC, item_id DESC);
    "#,
    // 6: what changed since a generation, so a feed applies a change to the item list
    // it holds instead of listing its items again (issue 15).
    // - `items.changed` is the generation at which the item last changed in a way a
    //   feed shows: inserted, updated, or newly in a source's or a rule's feed. Rows
    //   from before are at 0, older than any listing a running daemon holds.
    // - `generation.deleted` is the generation of the last item delete (there are none
    //   in lookout; by hand): a feed listed before it lists again from scratch.
    r#"
    ALTER TABLE items ADD COLUMN changed INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX items_changed ON items (changed);
    ALTER TABLE generation ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
    DROP TRIGGER items_counted_out;
    CREATE TRIGGER items_counted_out AFTER DELETE ON items
        BEGIN UPDATE generation SET items = items - 1, value = value + 1,
                                    deleted = value + 1 WHERE id = 1; END;
    "#,
];

/// The schema version this build writes: one per migration.
pub(super) fn latest() -> i64 {
    // The list is a handful of entries; the cast cannot truncate.
    MIGRATIONS.len() as i64
}

/// Reads `PRAGMA user_version`.
pub(super) fn version(conn: &rusqlite::Connection) -> Result<i64, StoreError> {
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
        .ctx("reading the schema version")
}

/// Refuses a database written by a newer lookout before anything touches it.
pub(super) fn check_not_too_new(conn: &rusqlite::Connection) -> Result<(), StoreError> {
    let found = version(conn)?;
    if found > latest() {
        return Err(StoreError::TooNew {
            found,
            known: latest(),
        });
    }
    Ok(())
}

/// Applies every migration the database has not seen, each in its own transaction
/// together with the `user_version` bump, so a crash leaves the file at a whole version.
pub(super) fn migrate(conn: &mut rusqlite::Connection) -> Result<(), StoreError> {
    for (index, sql) in MIGRATIONS.iter().enumerate() {
        let target = index as i64 + 1;
        // IMMEDIATE takes the write lock before reading the version, so two processes
        // opening the same new file cannot both apply a migration.
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .ctx("starting a schema migration")?;
        let found = version(&tx)?;
        if found > latest() {
            return Err(StoreError::TooNew {
                found,
                known: latest(),
            });
        }
        if found >= target {
            continue;
        }
        tx.execute_batch(sql).ctx("applying a schema migration")?;
        tx.pragma_update(None, "user_version", target)
            .ctx("recording the schema version")?;
        tx.commit().ctx("committing a schema migration")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::Entry;
    use crate::store::{Ingest, NoRules, Store};

    /// A store written by schema 3 keeps its items' identities: an item keyed by its
    /// link is the same post once its feed adds guids, a paper stays the paper, and a
    /// page a source ingested before is still known to that source.
    #[test]
    fn schema_3_items_keep_their_identity_after_the_upgrade() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("lookout.db");
        {
            let conn = rusqlite::Connection::open(&path).expect("open");
            for (i, sql) in MIGRATIONS[..3].iter().enumerate() {
                conn.execute_batch(sql).expect("old schema");
                conn.pragma_update(None, "user_version", i as i64 + 1)
                    .expect("version");
            }
            conn.execute_batch(
                "INSERT INTO items (id, key, title, link, source, arxiv_id, format, published,
                                    first_seen, updated_at)
                 VALUES (1, 'url:https://blog.example.org/p/1', 'A post',
                         'https://blog.example.org/p/1', 'blog', NULL, 'feed', '2026-05-19', 0, 0),
                        (2, 'title:a paper', 'A Paper', NULL, 'hf', '2401.00001', 'hf-papers',
                         NULL, 0, 0);
                 INSERT INTO item_keys VALUES ('url:https://blog.example.org/p/1', 1),
                                              ('title:a post', 1),
                                              ('arxiv:2401.00001', 2), ('title:a paper', 2);
                 INSERT INTO captures VALUES ('h1', 'blog', 'test', 'feed', 1, 1, 0);
                 UPDATE generation SET items = 2;",
            )
            .expect("old rows");
        }
        let mut store = Store::open(&path).expect("upgrade");
        assert!(store.has_capture("blog", "h1").expect("capture"));
        assert!(!store.has_capture("other", "h1").expect("capture"));
        let post = store
            .item_by_key("url:https://blog.example.org/p/1")
            .expect("read");
        let published = post.and_then(|p| p.published).map(|t| t.to_rfc3339());
        assert_eq!(published.as_deref(), Some("2026-05-19T00:00:00+00:00"));
        let entries = [
            Entry {
                title: "A post".into(),
                link: Some("https://blog.example.org/p/1".into()),
                guid: Some("tag:blog.example.org,2026:1".into()),
                format: "feed",
                ..Entry::default()
            },
            Entry {
                title: "A Paper".into(),
                arxiv_id: Some("2401.00001".into()),
                format: "hf-papers",
                ..Entry::default()
            },
        ];
        let report = store
            .ingest(
                &Ingest {
                    source: "blog",
                    origin: "test",
                    content_hash: Some("h2"),
                    format: "feed",
                    entries: &entries,
                    seen_at: chrono::Utc::now(),
                    alerts: true,
                },
                &NoRules,
            )
            .expect("ingest");
        assert_eq!(report.new, 0, "nothing is announced again: {report:?}");
        assert_eq!(store.item_count().expect("count"), 2);
    }
}
