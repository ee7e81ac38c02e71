//! Versioned schema migrations. Each entry is applied once, in order, inside a
//! transaction; `PRAGMA user_version` records how far a database has come.

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
    CREATE INDEX item_sources_newest ON item_sources (source, first_seen DESC);

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
    CREATE INDEX matches_newest ON matches (rule, at DESC);

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
    CREATE INDEX outbox_due ON outbox (state, next_attempt);

    -- Bumped on every change feeds can see; the server re-renders when it moves.
    CREATE TABLE generation (
        id    INTEGER PRIMARY KEY CHECK (id = 1),
        value INTEGER NOT NULL
    );
    INSERT INTO generation (id, value) VALUES (1, 0);
    "#,
];
