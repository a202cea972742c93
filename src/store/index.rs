//! The search index (`messages_fts`, migration 0016): built from `messages` when the store
//! opens, if a migration emptied it or this build cuts words differently (`WORDS_VERSION`),
//! and written with each stored post by ingest.
//!
//! A build goes through the posts in search-key order, a batch per transaction, the batch's
//! end saved with it (`search_index.pending_from`): killed half-way, the next open resumes
//! there. Keys ascend within and across batches, so FTS5 writes each batch as one segment.

use std::time::{Duration, Instant};

use sqlx::{SqliteConnection, SqlitePool};

use super::{StoreError, begin_immediate};
use crate::text::{WORDS_VERSION, index_words};

/// Posts per build transaction.
const BATCH: i64 = 2_000;
/// How often a build logs its progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Builds what the index lacks; returns the posts indexed.
pub(super) async fn catch_up(writer: &SqlitePool) -> Result<u64, StoreError> {
    let (version, mut pending): (i64, Option<i64>) =
        sqlx::query_as("SELECT version, pending_from FROM search_index WHERE id = 1")
            .fetch_one(writer)
            .await?;
    if version != WORDS_VERSION {
        let mut tx = begin_immediate(writer).await?;
        sqlx::query("INSERT INTO messages_fts (messages_fts) VALUES ('delete-all')")
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE search_index SET version = ?1, pending_from = ?2 WHERE id = 1")
            .bind(WORDS_VERSION)
            .bind(i64::MIN)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        pending = Some(i64::MIN);
    }
    let Some(mut from) = pending else {
        return Ok(0);
    };
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM messages WHERE search_key >= ?1")
        .bind(from)
        .fetch_one(writer)
        .await?;
    tracing::info!(
        posts = total,
        "building the search index (every script's words); it resumes where it stopped if interrupted"
    );
    let started = Instant::now();
    let mut said = Instant::now();
    let mut done: u64 = 0;
    loop {
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT search_key, text FROM messages WHERE search_key >= ?1 ORDER BY search_key LIMIT ?2",
        )
        .bind(from)
        .bind(BATCH)
        .fetch_all(writer)
        .await?;
        let words: Vec<(i64, String)> = tokio::task::spawn_blocking(move || {
            rows.into_iter()
                .map(|(k, text)| (k, index_words(&text)))
                .collect()
        })
        .await
        .map_err(|e| StoreError::Invalid(format!("building the search index: {e}")))?;
        let mut tx = begin_immediate(writer).await?;
        for (key, w) in &words {
            insert(&mut tx, *key, w).await?;
        }
        let finished = (words.len() as i64) < BATCH;
        let next = words.last().map(|(k, _)| k.saturating_add(1));
        sqlx::query("UPDATE search_index SET pending_from = ?1 WHERE id = 1")
            .bind(if finished { None } else { next })
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        done += words.len() as u64;
        match next {
            Some(n) if !finished => from = n,
            _ => break,
        }
        if said.elapsed() >= PROGRESS_EVERY {
            said = Instant::now();
            tracing::info!("search index: {done} of {total} posts");
        }
    }
    if done > 0 {
        tracing::info!(
            posts = done,
            seconds = started.elapsed().as_secs_f64(),
            "search index built"
        );
    }
    Ok(done)
}

/// Indexes one post's words under its key.
pub(super) async fn insert(
    conn: &mut SqliteConnection,
    key: i64,
    words: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO messages_fts (rowid, words) VALUES (?1, ?2)")
        .bind(key)
        .bind(words)
        .execute(conn)
        .await?;
    Ok(())
}

/// Whether the index is complete (no build under way), for read-only commands, which cannot
/// build it.
pub(super) async fn complete(reader: &SqlitePool) -> Result<bool, StoreError> {
    let (version, pending): (i64, Option<i64>) =
        sqlx::query_as("SELECT version, pending_from FROM search_index WHERE id = 1")
            .fetch_one(reader)
            .await?;
    Ok(version == WORDS_VERSION && pending.is_none())
}
