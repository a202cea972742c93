//! Whether the database takes writes, and if not, why: a full disk, another program holding
//! the write lock, a read-only or failing file. Every database error tgparser meets passes
//! through `StoreError`'s conversion, which notes these causes here; the health refresher
//! then tries a small write each second (`Store::probe_write`) until one commits, which clears
//! the note. Meanwhile readiness fails with the cause and what to do, and the watchdog
//! withholds its ping.
//!
//! One note per process: a daemon has one database.

use std::sync::Mutex;
use std::time::Instant;

/// Why writes fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteCause {
    /// SQLITE_FULL: the disk (or the database's size limit) is full.
    Full,
    /// SQLITE_BUSY / SQLITE_LOCKED: another program holds the database's write lock longer
    /// than the busy timeout.
    Locked,
    /// SQLITE_READONLY: the file or its directory cannot be written.
    ReadOnly,
    /// SQLITE_IOERR: the disk or file system reports an I/O error.
    Io,
}

impl WriteCause {
    /// The cause of a database error, if it is one that stops writes.
    pub fn of(e: &sqlx::Error) -> Option<WriteCause> {
        let code: i64 = e.as_database_error()?.code()?.parse().ok()?;
        // Extended result codes keep the primary code in their low byte.
        match code & 0xff {
            13 => Some(WriteCause::Full),
            5 | 6 => Some(WriteCause::Locked),
            8 => Some(WriteCause::ReadOnly),
            10 => Some(WriteCause::Io),
            _ => None,
        }
    }

    /// What it means and what to do, for logs, readiness and error messages.
    pub fn explain(self) -> &'static str {
        match self {
            WriteCause::Full => {
                "the disk holding the database is full: free some space; writes resume by themselves"
            }
            WriteCause::Locked => {
                "another program holds the database's write lock (an open sqlite3 transaction, a \
                 backup or sync tool): end it; tgparser waits and goes on by itself"
            }
            WriteCause::ReadOnly => {
                "the database file or its directory cannot be written: check their owner and \
                 permissions, and that the file system is not mounted read-only"
            }
            WriteCause::Io => {
                "the disk reports I/O errors while writing the database: check the disk \
                 (dmesg); restore from a backup if it is failing"
            }
        }
    }
}

struct Failing {
    cause: WriteCause,
    since: Instant,
}

static FAILING: Mutex<Option<Failing>> = Mutex::new(None);

/// Notes a database error that stops writes (called for every error `StoreError` wraps).
pub(super) fn note(e: &sqlx::Error) {
    if let Some(cause) = WriteCause::of(e) {
        let mut f = FAILING.lock().unwrap_or_else(|p| p.into_inner());
        match &mut *f {
            Some(now) if now.cause == cause => {}
            other => {
                tracing::warn!("database writes fail: {}", cause.explain());
                *other = Some(Failing {
                    cause,
                    since: Instant::now(),
                });
            }
        }
    }
}

/// A write committed: writes work again.
pub(super) fn cleared() {
    let mut f = FAILING.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(was) = f.take() {
        tracing::info!(
            after_s = was.since.elapsed().as_secs(),
            "database writes work again"
        );
    }
}

/// Why writes fail now, and since when; `None` when they work (as far as anything has
/// seen).
pub fn failing() -> Option<(WriteCause, Instant)> {
    FAILING
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .map(|f| (f.cause, f.since))
}

impl super::Store {
    /// A small write committed, to see whether writes work again (`write_probe`, migration
    /// 0018: one row rewritten, which takes a write lock and a page of the write-ahead log,
    /// as every write does). Clears the note on success; notes the cause on failure.
    pub async fn probe_write(&self) -> Result<(), super::StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE write_probe SET at = ?1 WHERE id = 1")
            .bind(crate::time::unix_now())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        cleared();
        Ok(())
    }

    /// Waits until a write commits (trying one a second), or `cancel`: for a part whose write
    /// failed for a cause that passes by itself (a full disk, another program's lock), which
    /// should wait, not restart (and reconnect to Telegram) in a loop.
    pub async fn wait_writable(&self, cancel: &tokio_util::sync::CancellationToken) {
        loop {
            let tried =
                tokio::time::timeout(std::time::Duration::from_secs(10), self.probe_write()).await;
            if matches!(tried, Ok(Ok(()))) {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                _ = cancel.cancelled() => return,
            }
        }
    }
}
