//! Bulk loads (`lookout import`): the settings for loading into the live store, and a
//! faster way to fill a store that is still empty: build the database aside, then move
//! it into place.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode};

use super::{Ctx, Journal, SqliteStore, StoreError, BUSY_TIMEOUT};

impl SqliteStore {
    /// Tunes this connection for a bulk load (`on`), or back to the daemon's settings.
    ///
    /// A bulk load touches every index page again and again: a 32 MiB page cache keeps
    /// them in memory instead of re-reading them, and no automatic checkpoint runs
    /// during the load, so each page is copied into the database once, at the end,
    /// instead of once per few commits (the WAL grows to about the size of what is
    /// loaded meanwhile). Turning it off folds the WAL into the database and truncates
    /// it, so the daemon's footprint is as before; a load that is interrupted leaves
    /// the WAL to the daemon's next checkpoint.
    pub fn tune_for_bulk_load(&self, on: bool) -> Result<(), StoreError> {
        let (cache_kib, checkpoint_pages) = if on { (32_768, 0) } else { (2_000, 1_000) };
        self.conn
            .pragma_update(None, "cache_size", -cache_kib)
            .ctx("setting the page cache size")?;
        self.conn
            .pragma_update(None, "wal_autocheckpoint", checkpoint_pages)
            .ctx("setting the WAL checkpoint interval")?;
        if !on {
            self.conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                .ctx("checkpointing the WAL")?;
        }
        Ok(())
    }

    /// Whether the store holds nothing yet: no item, capture, fetch state or delivery.
    /// Only then may a first fill replace the file (see [`Store::create_aside`]).
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        self.conn
            .query_row(
                "SELECT NOT EXISTS (SELECT 1 FROM items) AND NOT EXISTS (SELECT 1 FROM captures)
                    AND NOT EXISTS (SELECT 1 FROM fetch_state) AND NOT EXISTS (SELECT 1 FROM outbox)",
                [],
                |row| row.get(0),
            )
            .ctx("checking whether the store is empty")
    }

    /// Makes this the only connection to the store's file until it is closed, so the
    /// file can be replaced under it: leaves WAL mode, which SQLite allows only when no
    /// other connection (a running daemon) has the file open, and keeps an exclusive
    /// lock, so none opens it meanwhile. False, with the connection as it was, when
    /// another has it open.
    pub fn claim_alone(&mut self) -> Result<bool, StoreError> {
        // Try once: a daemon that has the file open will not close it for us.
        self.conn
            .busy_timeout(Duration::ZERO)
            .ctx("setting the busy timeout")?;
        let claimed = self.try_claim();
        self.conn
            .busy_timeout(BUSY_TIMEOUT)
            .ctx("setting the busy timeout")?;
        match claimed {
            Ok(true) => Ok(true),
            Ok(false) | Err(_) => {
                // Back to how the daemon uses the file.
                self.conn
                    .pragma_update(None, "locking_mode", "NORMAL")
                    .ctx("restoring the locking mode")?;
                let _mode: String = self
                    .conn
                    .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
                    .ctx("switching back to WAL")?;
                match claimed {
                    Err(e) if !is_busy(&e) => Err(e).ctx("claiming the store file"),
                    _ => Ok(false),
                }
            }
        }
    }

    fn try_claim(&self) -> Result<bool, rusqlite::Error> {
        let mode: String =
            self.conn
                .pragma_update_and_check(None, "journal_mode", "DELETE", |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("delete") {
            return Ok(false);
        }
        self.conn.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
        // In exclusive locking mode the lock a write takes is kept until the close.
        self.conn.execute_batch("BEGIN EXCLUSIVE; COMMIT")?;
        Ok(true)
    }

    /// Where a first fill of the store at `db` is loaded aside: beside it, so the
    /// move into place is a rename within one file system.
    pub fn aside_path(db: &Path) -> PathBuf {
        with_suffix(db, ".import")
    }

    /// Creates an empty store at `path` to load aside, replacing what an interrupted
    /// load left there. It keeps its journal in memory and never syncs: until
    /// [`Store::move_into_place`] it is not the store, and a crash only loses the load.
    /// Each page is then written to the disk once, instead of to the WAL and again at
    /// the checkpoint.
    pub fn create_aside(path: &Path) -> Result<SqliteStore, StoreError> {
        for leftover in [path.to_owned(), with_suffix(path, "-journal")] {
            remove_if_present(&leftover, "removing an unfinished load")?;
        }
        let conn = Connection::open(path).ctx("creating a database to load aside")?;
        SqliteStore::setup(conn, Journal::Aside)
    }

    /// Closes a store made by [`Store::create_aside`] at `aside` and moves it to `dest`,
    /// durably: the file is synced, renamed over `dest` and the directory synced. The
    /// connection to the old `dest` (made the only one by [`Store::claim_alone`]) must
    /// be closed afterwards; the next open switches the new file to WAL.
    pub fn move_into_place(self, aside: &Path, dest: &Path) -> Result<(), StoreError> {
        self.conn
            .close()
            .map_err(|(_, e)| e)
            .ctx("closing the database loaded aside")?;
        let file = |doing, path: &Path, source| StoreError::File {
            doing,
            path: path.to_owned(),
            source,
        };
        std::fs::File::open(aside)
            .and_then(|f| f.sync_all())
            .map_err(|e| file("syncing the database loaded aside", aside, e))?;
        // The old file left WAL mode, which removed its WAL; a WAL left next to the new
        // file would be replayed into it, so make sure.
        for stale in ["-wal", "-shm"].map(|s| with_suffix(dest, s)) {
            remove_if_present(&stale, "removing the old store's WAL")?;
        }
        std::fs::rename(aside, dest).map_err(|e| file("moving the loaded database in", dest, e))?;
        if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| file("syncing the state directory", dir, e))?;
        }
        Ok(())
    }
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

/// Removes `path`; one that is not there is fine.
fn remove_if_present(path: &Path, doing: &'static str) -> Result<(), StoreError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StoreError::File {
            doing,
            path: path.to_owned(),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// `path` with `suffix` appended to its file name, as SQLite names its side files.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}
