//! `tgparser check`: whether the archive is sound, for an operator after a crash, a full disk
//! or a restore, and for the reliability campaign after every kill. Read-only except one
//! check: FTS5's structure check (`integrity-check`) is a statement only a writer may run, so
//! it runs when no daemon holds the state directory, and is reported as not run otherwise.
//!
//! Exit 0: every check that ran passed. Exit 1: something is wrong; each line says what.

use std::io::Write;
use std::process::ExitCode;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

use crate::config::Config;
use crate::store::{DB_FILE, StateLock, Store};

pub async fn check(cfg: &Config) -> anyhow::Result<ExitCode> {
    // Held for the whole check when free: no daemon writes meanwhile, and the structure check
    // may take the write lock.
    let lock = StateLock::acquire(&cfg.store.dir).ok();
    let store = Store::open_read_only(&cfg.store).await?;
    let mut out = std::io::stdout().lock();
    let mut sound = true;

    let integrity: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(store.reader())
        .await?;
    if integrity == ["ok"] {
        writeln!(out, "database         ok (PRAGMA integrity_check)")?;
    } else {
        sound = false;
        writeln!(
            out,
            "database         DAMAGED: {}\n                 restore the latest backup (`tgparser backup` makes them)",
            integrity.join("; ")
        )?;
    }

    if !store.search_index_complete().await? {
        writeln!(
            out,
            "search index     being built (the daemon, or any command that writes, finishes it); not compared"
        )?;
    } else {
        let c = store.check_search_index().await?;
        let waiting: i64 = sqlx::query_scalar("SELECT count(*) FROM search_pending")
            .fetch_one(store.reader())
            .await?;
        if c.sound() {
            writeln!(
                out,
                "search index     ok: {} posts hold exactly their words ({waiting} changes waiting to be indexed)",
                c.posts
            )?;
        } else {
            sound = false;
            writeln!(
                out,
                "search index     WRONG: {} of {} posts hold other words, {} entries belong to no post\n                 rebuild it: UPDATE search_index SET version = 0 (the next start rebuilds)",
                c.mismatched, c.posts, c.stray
            )?;
            for e in &c.examples {
                writeln!(out, "                 {e}")?;
            }
        }
    }

    match lock {
        Some(_) => match structure(cfg).await {
            Ok(()) => writeln!(out, "index structure  ok (FTS5 integrity-check)")?,
            Err(why) => {
                sound = false;
                writeln!(
                    out,
                    "index structure  DAMAGED: {why}\n                 rebuild it: UPDATE search_index SET version = 0 (the next start rebuilds)"
                )?;
            }
        },
        None => writeln!(
            out,
            "index structure  not checked: the daemon is running (stop it, or check a copy made by `tgparser backup`)"
        )?,
    }

    let (ranges, channels): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT channel_id) FROM refills")
            .fetch_one(store.reader())
            .await?;
    writeln!(
        out,
        "refills          {ranges} gap(s) in {channels} channel(s) waiting to be fetched again"
    )?;
    store.close().await;
    Ok(if sound {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// FTS5's own check of the index's structure, in a transaction rolled back.
async fn structure(cfg: &Config) -> anyhow::Result<(), String> {
    let mut conn = SqliteConnectOptions::new()
        .filename(cfg.store.dir.join(DB_FILE))
        .busy_timeout(cfg.store.busy_timeout)
        .connect()
        .await
        .map_err(|e| format!("cannot open the database for the check: {e}"))?;
    let mut tx = conn.begin().await.map_err(|e| e.to_string())?;
    let r =
        sqlx::query("INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 0)")
            .execute(&mut *tx)
            .await;
    let _ = tx.rollback().await;
    r.map(|_| ()).map_err(|e| e.to_string())
}
