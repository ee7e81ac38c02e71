//! `lookout migrate --to postgres://…`: a SQLite store copied into an empty PostgreSQL
//! database, row for row, with its ids, in one transaction. Items keep their keys and
//! aliases, so nothing is new again; captures and fetch state keep their records, so
//! no page is taken for a new one; outbox rows keep their state, attempts and
//! idempotency keys, so no alert is sent twice and pending ones go on.

use postgres::types::ToSql;

use super::{Ctx as _, PostgresStore};
use crate::store::{Ctx as _, SqliteStore, StoreBackend, StoreError};

/// How a column is read from SQLite and written to PostgreSQL.
#[derive(Clone, Copy)]
enum Kind {
    Int,
    Real,
    Text,
    Bool,
}

use Kind::{Bool, Int, Real, Text};

/// The tables copied, parents first, with their columns. Every column of the latest
/// SQLite schema that PostgreSQL keeps is listed: a SQLite migration that adds one
/// adds it here.
const TABLES: &[(&str, &[(&str, Kind)])] = &[
    (
        "items",
        &[
            ("id", Int),
            ("key", Text),
            ("title", Text),
            ("link", Text),
            ("summary", Text),
            ("authors", Text),
            ("author_count", Int),
            ("publisher", Text),
            ("source", Text),
            ("published", Text),
            ("arxiv_id", Text),
            ("format", Text),
            ("first_seen", Int),
            ("updated_at", Int),
            ("ident", Text),
            ("listed", Text),
            ("changed", Int),
        ],
    ),
    ("item_keys", &[("alias", Text), ("item_id", Int)]),
    (
        "item_sources",
        &[("source", Text), ("item_id", Int), ("first_seen", Int)],
    ),
    (
        "captures",
        &[
            ("source", Text),
            ("hash", Text),
            ("origin", Text),
            ("format", Text),
            ("entries", Int),
            ("new_items", Int),
            ("seen_at", Int),
        ],
    ),
    (
        "fetch_state",
        &[
            ("source", Text),
            ("etag", Text),
            ("last_modified", Text),
            ("last_success", Int),
            ("last_error_at", Int),
            ("last_error", Text),
            ("consecutive_failures", Int),
            ("ever_succeeded", Bool),
        ],
    ),
    (
        "matches",
        &[
            ("rule", Text),
            ("item_id", Int),
            ("matched", Text),
            ("at", Int),
        ],
    ),
    (
        "outbox",
        &[
            ("id", Int),
            ("item_id", Int),
            ("rule", Text),
            ("notifier", Text),
            ("idempotency_key", Text),
            ("matched", Text),
            ("state", Text),
            ("attempts", Int),
            ("next_attempt", Int),
            ("last_error", Text),
            ("created_at", Int),
            ("done_at", Int),
        ],
    ),
    ("scope_changes", &[("scope", Text), ("generation", Int)]),
    (
        "interest_verdicts",
        &[
            ("interest", Text),
            ("item_id", Int),
            ("verdict", Text),
            ("at", Int),
        ],
    ),
    (
        "interest_scores",
        &[
            ("interest", Text),
            ("item_id", Int),
            ("score", Real),
            ("terms", Text),
            ("seen", Int),
        ],
    ),
];

/// One value read from SQLite, typed for PostgreSQL.
fn value(
    row: &rusqlite::Row<'_>,
    idx: usize,
    kind: Kind,
) -> rusqlite::Result<Box<dyn ToSql + Sync>> {
    Ok(match kind {
        Int => Box::new(row.get::<_, Option<i64>>(idx)?),
        Real => Box::new(row.get::<_, Option<f64>>(idx)?),
        Text => Box::new(row.get::<_, Option<String>>(idx)?),
        Bool => Box::new(row.get::<_, Option<bool>>(idx)?),
    })
}

/// What a copy moved: rows per table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Copied {
    /// `(table, rows)`, in copy order.
    pub tables: Vec<(&'static str, u64)>,
}

impl std::fmt::Display for Copied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .tables
            .iter()
            .map(|(table, rows)| format!("{rows} {table}"))
            .collect();
        write!(f, "copied {}", parts.join(", "))
    }
}

impl PostgresStore {
    /// Copies everything `from` holds into this store, which must be empty, in one
    /// transaction: all of it or nothing.
    pub fn copy_from(&self, from: &SqliteStore) -> Result<Copied, StoreError> {
        if !self.is_empty()? {
            return Err(StoreError::NotEmpty);
        }
        let mut copied = Copied::default();
        self.in_transaction(|session| {
            for (table, columns) in TABLES {
                let names: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
                let slots: Vec<String> = (1..=columns.len()).map(|i| format!("${i}")).collect();
                let insert = format!(
                    "INSERT INTO {table} ({}) VALUES ({})",
                    names.join(", "),
                    slots.join(", ")
                );
                let insert = session.client.prepare(&insert).ctx("preparing a copy")?;
                let mut select = from
                    .conn
                    .prepare(&format!("SELECT {} FROM {table}", names.join(", ")))
                    .ctx("reading the SQLite store")?;
                let mut rows = select.query([]).ctx("reading the SQLite store")?;
                let mut n = 0;
                while let Some(row) = rows.next().ctx("reading the SQLite store")? {
                    let values = columns
                        .iter()
                        .enumerate()
                        .map(|(i, (_, kind))| value(row, i, *kind))
                        .collect::<rusqlite::Result<Vec<_>>>()
                        .ctx("reading the SQLite store")?;
                    let params: Vec<&(dyn ToSql + Sync)> =
                        values.iter().map(AsRef::as_ref).collect();
                    session
                        .client
                        .execute(&insert, &params)
                        .ctx("copying a row")?;
                    n += 1;
                }
                copied.tables.push((*table, n));
            }
            let (value, changed_at, items, deleted): (i64, i64, i64, i64) = from
                .conn
                .query_row(
                    "SELECT value, changed_at, items, deleted FROM generation WHERE id = 1",
                    [],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
                )
                .ctx("reading the SQLite store")?;
            session
                .client
                .execute(
                    "UPDATE generation SET value = $1, changed_at = $2, items = $3, deleted = $4
                      WHERE id = 1",
                    &[&value, &changed_at, &items, &deleted],
                )
                .ctx("copying the generation")?;
            // New rows continue after the copied ids.
            session
                .client
                .batch_execute(
                    "SELECT setval(pg_get_serial_sequence('items', 'id'),
                                   COALESCE((SELECT MAX(id) FROM items), 0) + 1, false);
                     SELECT setval(pg_get_serial_sequence('outbox', 'id'),
                                   COALESCE((SELECT MAX(id) FROM outbox), 0) + 1, false);",
                )
                .ctx("moving the id sequences past the copied rows")?;
            Ok(())
        })?;
        Ok(copied)
    }
}
