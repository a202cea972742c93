//! The search index (`search_words` and its FTS5 index `messages_fts`, migration 0016): built
//! from `messages` when the store
//! opens, if a migration emptied it or this build cuts words differently (`WORDS_VERSION`),
//! and written with each stored post by ingest.
//!
//! Ingest writes a new post's words just before the post (`index_new`: the insert trigger then
//! queues nothing for it), and after the upsert the words of what it queued (`index_queued`:
//! edited texts, and a few of other programs' rows).
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
        // Each row's words leave the index by its trigger.
        sqlx::query("DELETE FROM search_words")
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
        return drain_others(writer).await;
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
    // What the build indexed needs no queue entry.
    sqlx::query("DELETE FROM search_pending")
        .execute(writer)
        .await?;
    Ok(done)
}

/// The whole queue of other programs' posts, indexed.
async fn drain_others(writer: &SqlitePool) -> Result<u64, StoreError> {
    let mut done = 0;
    loop {
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM search_pending")
            .fetch_one(writer)
            .await?;
        if left == 0 {
            return Ok(done);
        }
        let mut tx = begin_immediate(writer).await?;
        others(&mut tx).await?;
        tx.commit().await?;
        done += left.min(OTHERS_PER_WRITE) as u64;
    }
}

/// Writes the words of the staged posts not stored yet, under their staged keys, in key order,
/// before the upsert stores them (so the insert trigger queues nothing for them).
pub(super) async fn index_new(conn: &mut SqliteConnection) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO search_words (search_key, words) \
         SELECT s.search_key, s.words FROM temp.ingest_stage s \
         WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.channel_id = s.channel_id AND m.id = s.id) \
         ORDER BY 1 \
         ON CONFLICT (search_key) DO UPDATE SET words = excluded.words",
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// After the upsert: the words of staged posts it queued (`search_pending`, migration 0016:
/// an edited text; an unchanged replay, a poll reading a post once more, queues nothing and
/// costs the index nothing), then a few of other programs' rows. An edit's old words were
/// removed by the trigger that queued it.
pub(super) async fn index_queued(conn: &mut SqliteConnection) -> Result<(), StoreError> {
    let queued: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM search_pending)")
        .fetch_one(&mut *conn)
        .await?;
    if !queued {
        return Ok(());
    }
    // CROSS JOIN keeps the staged rows the outer loop, each finding its post by the
    // (channel_id, id) index: driven from the queue instead, SQLite scanned the unindexed
    // stage once per post (a batch cost a million row visits).
    sqlx::query(
        "INSERT INTO search_words (search_key, words) \
         SELECT m.search_key, s.words FROM temp.ingest_stage s \
         CROSS JOIN messages m CROSS JOIN search_pending p \
         WHERE m.channel_id = s.channel_id AND m.id = s.id AND p.search_key = m.search_key \
         ORDER BY 1 \
         ON CONFLICT (search_key) DO UPDATE SET words = excluded.words",
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "DELETE FROM search_pending WHERE search_key IN ( \
           SELECT m.search_key FROM temp.ingest_stage s CROSS JOIN messages m \
           WHERE m.channel_id = s.channel_id AND m.id = s.id)",
    )
    .execute(&mut *conn)
    .await?;
    others(conn).await
}

/// Posts of the queue indexed per call of [`others`].
const OTHERS_PER_WRITE: i64 = 200;

/// Indexes posts other programs stored or edited (queued by the triggers, not by tgparser's
/// own writes, which index their rows themselves), a few per call: called in each ingest
/// transaction, so a script's rows reach the index while the daemon runs. Nothing to do costs
/// one probe of an empty table.
pub(super) async fn others(conn: &mut SqliteConnection) -> Result<(), StoreError> {
    let rows: Vec<(i64, Option<String>)> = sqlx::query_as(
        "SELECT p.search_key, m.text FROM search_pending p \
         LEFT JOIN messages m ON m.search_key = p.search_key ORDER BY 1 LIMIT ?1",
    )
    .bind(OTHERS_PER_WRITE)
    .fetch_all(&mut *conn)
    .await?;
    for (key, text) in &rows {
        if let Some(text) = text {
            insert(&mut *conn, *key, &index_words(text)).await?;
        }
        sqlx::query("DELETE FROM search_pending WHERE search_key = ?1")
            .bind(key)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Indexes one post's words under its key.
pub(super) async fn insert(
    conn: &mut SqliteConnection,
    key: i64,
    words: &str,
) -> Result<(), sqlx::Error> {
    // An upsert, so a row already there leaves the index through its update trigger (a
    // REPLACE's delete would fire no trigger).
    sqlx::query(
        "INSERT INTO search_words (search_key, words) VALUES (?1, ?2) \
         ON CONFLICT (search_key) DO UPDATE SET words = excluded.words",
    )
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

#[cfg(test)]
#[path = "index_tests.rs"]
mod tests;
