//! The SQLite store: the channel database operators read, the bot's state and the sealed
//! MTProto session, in one file.
//!
//! One writer connection (every write transaction is `BEGIN IMMEDIATE`) and, for backfill
//! commits, a second one that skips CHECK constraints and writes only while holding the first
//! (`Store::ingest_group`); a pool of read-only connections for everything else. WAL, `synchronous=NORMAL` (FULL around session writes),
//! foreign keys on. Migrations are embedded and applied before the daemon reports READY; a
//! database written by a newer version is refused. Files are created mode 0600.

mod alerts;
mod bot_users;
mod channels;
mod clock;
mod export;
mod index;
mod ingest;
mod lock;
mod media;
mod media_files;
mod outbox;
mod rechecks;
mod refills;
mod requests;
mod sealed;
mod search;
mod senders;
mod subscriptions;
mod windows;
pub mod writes;

use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Row, Sqlite, SqliteConnection, Transaction};

use crate::config::StoreConfig;

pub use alerts::{Matcher, compile_regex};
pub use channels::{ChannelRecord, NewChannel, invite_hash, normalize_ref};
pub use export::{ExportFilter, PostRecord, iso};
pub use index::IndexCheck;
pub use ingest::{CursorAdvance, MessageRow};
pub use lock::{Locked, StateLock};
pub use media::{FILE_KINDS, MediaCount, MediaJob, MediaPolicy, MediaSelection, MediaTally};
pub use outbox::{AlertPost, OutboxCounts, OutboxRow};
pub use rechecks::{Recheck, RecheckPage, RecheckStatus, Rechecked};
pub use refills::Refill;
pub use requests::ChannelRequest;
pub use sealed::{SEALED_COLUMNS, SealedColumn};
pub use search::{
    Found, Hit, MATCH_END, MATCH_START, SNIPPET_UNITS, SearchError, SearchFilter, post_link,
};
pub use senders::UserRow;
pub use subscriptions::{MAX_PER_USER, Subscription};

pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

pub const DB_FILE: &str = "tgparser.db";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the state directory {path}: {reason}; check store.dir")]
    StateDir { path: PathBuf, reason: String },
    #[error("cannot open the database {path}: {reason}")]
    Open { path: PathBuf, reason: String },
    #[error(
        "the database {path} was written by a newer tgparser (schema version {found}; this build knows up to {known}). \
         Upgrade tgparser, or restore a backup taken before the upgrade. Nothing was changed"
    )]
    FutureSchema {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("applying migrations to {path} failed: {reason}")]
    Migrate { path: PathBuf, reason: String },
    #[error(
        "there is no database at {0}; start the daemon (or `tgparser migrate`) to create it, or check store.dir"
    )]
    Missing(PathBuf),
    #[error(
        "the database {path} is at schema version {found} and this tgparser reads version {known}; run `tgparser migrate` (or start the daemon) to upgrade it"
    )]
    OldSchema {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error(
        "the database {0} has no tables yet (a first start was stopped before it made them); run `tgparser migrate` (or start the daemon) to create them"
    )]
    Empty(PathBuf),
    #[error(transparent)]
    Vault(#[from] crate::vault::VaultError),
    #[error("{}", sql_message(.0))]
    Sql(sqlx::Error),
    /// Data the store cannot take as it is; nothing of the batch was written.
    #[error("cannot store this: {0}")]
    Invalid(String),
    /// A task doing a write stopped before answering (it panicked or was cancelled).
    #[error("a database write stopped before it finished: {0}")]
    Task(String),
}

impl StoreError {
    /// Errors an operator must resolve before the daemon can start (exit 78).
    pub fn is_config(&self) -> bool {
        match self {
            StoreError::FutureSchema { .. }
            | StoreError::StateDir { .. }
            | StoreError::Missing(_)
            | StoreError::OldSchema { .. }
            | StoreError::Empty(_) => true,
            StoreError::Vault(v) => v.is_config(),
            _ => false,
        }
    }
}

/// A migration as `tgparser migrate` reports it.
#[derive(Debug, Clone)]
pub struct MigrationStatus {
    pub version: i64,
    pub description: String,
    pub applied_at: Option<String>,
}

#[derive(Clone)]
pub struct Store {
    writer: SqlitePool,
    /// The backfill's write connection: CHECK constraints off, used only by
    /// `Store::ingest_group` while it holds the writer's connection (see there).
    rows_writer: SqlitePool,
    reader: SqlitePool,
    path: PathBuf,
    /// Compiled subscriptions for matching new posts, shared by every clone.
    alerts: std::sync::Arc<alerts::AlertCache>,
    /// Known bot users, shared by every clone.
    users: std::sync::Arc<bot_users::UserCache>,
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        writes::note(&e);
        StoreError::Sql(e)
    }
}

/// A database error as an operator reads it: for one that stops writes, the cause and what
/// to do first.
fn sql_message(e: &sqlx::Error) -> String {
    match writes::WriteCause::of(e) {
        Some(cause) => format!("database writes fail: {} ({e})", cause.explain()),
        None => format!("database error: {e}"),
    }
}

/// `BEGIN IMMEDIATE` on one of `pool`'s connections. When a write fails because the disk is
/// full, SQLite may roll the transaction back by itself; sqlx's own ROLLBACK then fails, it
/// keeps counting the transaction open, and refuses every later `BEGIN` on that connection
/// ("non-zero transaction depth") until a restart. Such a connection is closed and a new one
/// opened, so writes resume by themselves once there is room.
pub(crate) async fn begin_immediate(
    pool: &SqlitePool,
) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
    let mut replaced = 0;
    loop {
        match pool.begin_with("BEGIN IMMEDIATE").await {
            Err(sqlx::Error::InvalidSavePointStatement) if replaced < 4 => {
                replaced += 1;
                tracing::warn!(
                    "a database connection was left inside a failed write; opening a new one"
                );
                let conn = pool.acquire().await?;
                let _ = conn.close().await;
            }
            r => return r,
        }
    }
}

impl Store {
    /// Opens (creating if needed) the database in `cfg.dir` and applies pending migrations.
    pub async fn open(cfg: &StoreConfig) -> Result<Store, StoreError> {
        let path = prepare_files(&cfg.dir)?;
        let base = SqliteConnectOptions::new()
            .filename(&path)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(cfg.busy_timeout)
            .foreign_keys(true);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(
                base.clone()
                    .create_if_missing(true)
                    .synchronous(SqliteSynchronous::Normal)
                    .pragma("temp_store", "memory"),
            )
            .await
            .map_err(|e| StoreError::Open {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        let applied = check_not_from_the_future(&writer, &path).await?;
        let pending = MIGRATOR
            .iter()
            .filter(|m| !m.migration_type.is_down_migration() && !applied.contains(&m.version))
            .count();
        if !applied.is_empty() && pending > 0 {
            // Some upgrades rebuild the search index: minutes on a large archive, so say why
            // the start is slow.
            tracing::info!(
                path = %path.display(),
                "applying {pending} pending database migration(s); this can take minutes on a large archive"
            );
        }
        MIGRATOR
            .run(&writer)
            .await
            .map_err(|e| StoreError::Migrate {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        restrict_modes(&path);
        index::catch_up(&writer).await?;
        let rows_writer = SqlitePoolOptions::new()
            .max_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_lazy_with(
                base.clone()
                    .synchronous(SqliteSynchronous::Normal)
                    .pragma("temp_store", "memory")
                    .pragma("ignore_check_constraints", "ON"),
            );
        let reader = SqlitePoolOptions::new()
            .max_connections(cfg.read_connections)
            .min_connections(1)
            .connect_with(base.read_only(true))
            .await
            .map_err(|e| StoreError::Open {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        Ok(Store {
            writer,
            rows_writer,
            reader,
            path,
            alerts: Default::default(),
            users: Default::default(),
        })
    }

    /// Opens an existing database for reading only, as operator commands do (`search`,
    /// `export`, `backup`, `stats`): no migration, no write, no lock taken that could stall the
    /// daemon's writer (WAL readers never block the writer). Refuses a database whose schema
    /// is older or newer than this build's.
    pub async fn open_read_only(cfg: &StoreConfig) -> Result<Store, StoreError> {
        let path = cfg.dir.join(DB_FILE);
        if !path.exists() {
            return Err(StoreError::Missing(path));
        }
        let reader = SqlitePoolOptions::new()
            // At least four: an export formats three batches at once and finds batch ends on a fourth.
            .max_connections(cfg.read_connections.max(4))
            .min_connections(1)
            .connect_with(
                SqliteConnectOptions::new()
                    .filename(&path)
                    .read_only(true)
                    .busy_timeout(cfg.busy_timeout),
            )
            .await
            .map_err(|e| StoreError::Open {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        check_not_from_the_future(&reader, &path).await?;
        let found: Option<i64> =
            match sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success = 1")
                .fetch_one(&reader)
                .await
            {
                Ok(found) => found,
                Err(e) => {
                    // A daemon killed between creating the file and its first migration leaves a
                    // database with no tables at all: the next start makes them, so say that rather
                    // than "not a tgparser database".
                    let tables: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master")
                        .fetch_one(&reader)
                        .await
                        .unwrap_or(-1);
                    if tables == 0 {
                        return Err(StoreError::Empty(path));
                    }
                    return Err(StoreError::Open {
                        path: path.clone(),
                        reason: format!("not a tgparser database ({e})"),
                    });
                }
            };
        let known = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
        let found = found.unwrap_or(0);
        if found < known {
            return Err(StoreError::OldSchema { path, found, known });
        }
        Ok(Store {
            // Every "write" through this store fails with SQLITE_READONLY.
            writer: reader.clone(),
            rows_writer: reader.clone(),
            reader,
            path,
            alerts: Default::default(),
            users: Default::default(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The read-only pool: health probes, search, export, status.
    pub fn reader(&self) -> &SqlitePool {
        &self.reader
    }

    /// Starts a write transaction. `BEGIN IMMEDIATE` takes the write lock up front, so a
    /// transaction never fails half-way with SQLITE_BUSY on its first write.
    pub async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        Ok(begin_immediate(&self.writer).await?)
    }

    /// Runs `f` in a write transaction committed with `synchronous=FULL`: for the session and
    /// the vault, whose loss after a power cut would log the account out or lose a key.
    pub async fn write_durable<F, T>(&self, f: F) -> Result<T, StoreError>
    where
        F: AsyncFnOnce(&mut SqliteConnection) -> Result<T, StoreError>,
    {
        let mut conn = self.writer.acquire().await?;
        sqlx::query("PRAGMA synchronous = FULL")
            .execute(&mut *conn)
            .await?;
        let mut stuck = false;
        let result = async {
            let mut tx = sqlx::Connection::begin_with(&mut *conn, "BEGIN IMMEDIATE")
                .await
                .inspect_err(|e| stuck = matches!(e, sqlx::Error::InvalidSavePointStatement))?;
            let out = f(&mut tx).await?;
            tx.commit().await?;
            Ok::<T, StoreError>(out)
        }
        .await;
        if stuck {
            // See `begin_immediate`: this connection is closed, the next write gets a new one.
            conn.close_on_drop();
            return result;
        }
        sqlx::query("PRAGMA synchronous = NORMAL")
            .execute(&mut *conn)
            .await?;
        result
    }

    /// Round trip to the database through the read pool.
    pub async fn ping(&self) -> Result<Duration, StoreError> {
        let t = Instant::now();
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(t.elapsed())
    }

    /// Every known migration and whether (and when) it was applied.
    pub async fn migration_status(&self) -> Result<Vec<MigrationStatus>, StoreError> {
        let rows = sqlx::query(
            "SELECT version, CAST(installed_on AS TEXT) FROM _sqlx_migrations WHERE success = 1",
        )
        .fetch_all(&self.reader)
        .await?;
        let applied: Vec<(i64, String)> = rows
            .into_iter()
            .map(|r| (r.get::<i64, _>(0), r.get::<String, _>(1)))
            .collect();
        Ok(MIGRATOR
            .iter()
            .filter(|m| !m.migration_type.is_down_migration())
            .map(|m| MigrationStatus {
                version: m.version,
                description: m.description.to_string(),
                applied_at: applied
                    .iter()
                    .find(|(v, _)| *v == m.version)
                    .map(|(_, at)| at.clone()),
            })
            .collect())
    }

    /// Records an action in the audit log. `detail` must not hold secrets.
    pub async fn audit(
        &self,
        actor: &str,
        action: &str,
        detail: serde_json::Value,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("INSERT INTO audit_log (at, actor, action, detail) VALUES (?, ?, ?, ?)")
            .bind(crate::time::unix_now())
            .bind(actor)
            .bind(action)
            .bind(detail.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Closes every pool, checkpointing the WAL so the database is one clean file again.
    pub async fn close(&self) {
        self.reader.close().await;
        self.rows_writer.close().await;
        let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.writer)
            .await;
        self.writer.close().await;
    }
}

/// Creates the state directory (0700) and the database file (0600) before SQLite does, so the
/// WAL and SHM files SQLite derives from it get the same private mode.
fn prepare_files(dir: &Path) -> Result<PathBuf, StoreError> {
    let derr = |e: std::io::Error| StoreError::StateDir {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    };
    if !dir.exists() {
        std::fs::create_dir_all(dir).map_err(derr)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(derr)?;
    }
    let path = dir.join(DB_FILE);
    if !path.exists() {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| StoreError::Open {
                path: path.clone(),
                reason: e.to_string(),
            })?;
    }
    Ok(path)
}

/// Tightens the database, WAL and SHM files to 0600 if they were created looser elsewhere.
fn restrict_modes(db: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        let p = PathBuf::from(p);
        if let Ok(meta) = std::fs::metadata(&p)
            && meta.permissions().mode() & 0o077 != 0
        {
            let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600));
        }
    }
}

/// The migrations an existing database has applied (none for a new one); an error if it has
/// one this build does not know, newer than its own.
async fn check_not_from_the_future(pool: &SqlitePool, path: &Path) -> Result<Vec<i64>, StoreError> {
    let has_table: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
    )
    .fetch_optional(pool)
    .await?;
    if has_table.is_none() {
        return Ok(Vec::new());
    }
    let rows: Vec<(i64, bool)> = sqlx::query_as("SELECT version, success FROM _sqlx_migrations")
        .fetch_all(pool)
        .await?;
    let known = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
    let newest = rows.iter().map(|(v, _)| *v).max();
    let applied = rows
        .into_iter()
        .filter(|(_, ok)| *ok)
        .map(|(v, _)| v)
        .collect();
    match newest {
        Some(found) if found > known => Err(StoreError::FutureSchema {
            path: path.to_path_buf(),
            found,
            known,
        }),
        _ => Ok(applied),
    }
}

#[cfg(test)]
pub(crate) mod testing;

#[cfg(test)]
mod full_tests {
    use super::testing;

    /// A database that cannot grow (`max_page_count`: SQLite's own "database or disk is full",
    /// as on a full disk) fails a write; once it can grow again, writes go on without a restart.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_resume_by_themselves_after_the_database_was_full() {
        let dir = tempfile::tempdir().unwrap();
        let store = testing::store(dir.path(), 1).await;
        let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
            .fetch_one(&store.writer)
            .await
            .unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "PRAGMA max_page_count = {}",
            pages + 2
        )))
        .execute(&store.writer)
        .await
        .unwrap();
        let big = "x".repeat(200_000);
        let mut failed = false;
        for _ in 0..3 {
            let mut tx = store.begin_write().await.unwrap();
            let r = sqlx::query("INSERT INTO audit_log (at, actor, action, detail) VALUES (0, 'test', 'fill', json_object('x', ?))")
                .bind(&big)
                .execute(&mut *tx)
                .await;
            match r {
                Ok(_) => {
                    if let Err(e) = tx.commit().await {
                        assert!(e.to_string().contains("full"), "{e}");
                        failed = true;
                        break;
                    }
                }
                Err(e) => {
                    assert!(e.to_string().contains("full"), "{e}");
                    failed = true;
                    drop(tx);
                    break;
                }
            }
        }
        assert!(failed, "the database filled up");
        // Room again: the next write works, without a restart.
        let mut tx = store
            .begin_write()
            .await
            .expect("a write after the disk was full");
        sqlx::query("PRAGMA max_page_count = 1000000")
            .execute(&mut *tx)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO audit_log (at, actor, action, detail) VALUES (0, 'test', 'after', '{}')",
        )
        .execute(&mut *tx)
        .await
        .unwrap();
        tx.commit().await.unwrap();
        store.close().await;
    }
}
