//! The search index (`messages_fts`, contentless, migration 0017): built from `messages` when
//! the store opens, if a migration emptied it or this build cuts words differently
//! (`WORDS_VERSION`), and written with each stored post by ingest.
//!
//! The index keeps no copy of the words it holds, and removes a post's words only when given
//! them again, so every change to the index goes through here, where words are cut:
//! - ingest writes a new post's words just before the post (`index_new`; `ingest_words` keeps
//!   the insert trigger from queueing it), and after the upsert settles what it queued
//!   (`index_queued`: edited texts);
//! - everything else (another program's rows, an edit, a deleted post) is queued by the
//!   triggers in `search_pending` with the text whose words the index holds, and settled here
//!   (`settle`): those words removed, the present ones added.
//!
//! A build goes through the posts in search-key order, a batch per transaction, the batch's
//! end saved with it (`search_index.pending_from`): killed half-way, the next open resumes
//! there. Keys ascend within and across batches, so FTS5 writes each batch as one segment.
//! Under a build, the index holds nothing at or above `pending_from`, so what the queue says
//! of those keys is dropped: the build writes their present words when it gets there.

use std::time::{Duration, Instant};

use sqlx::{SqliteConnection, SqlitePool};

use super::{StoreError, begin_immediate};
use crate::text::{WORDS_VERSION, index_words};

/// Posts per build transaction.
const BATCH: i64 = 2_000;
/// How often a build logs its progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Builds what the index lacks and settles the queue; returns the posts indexed.
pub(super) async fn catch_up(writer: &SqlitePool) -> Result<u64, StoreError> {
    let (version, mut pending, flag): (i64, Option<i64>, i64) =
        sqlx::query_as("SELECT version, pending_from, ingest_words FROM search_index WHERE id = 1")
            .fetch_one(writer)
            .await?;
    if version != WORDS_VERSION || flag != 0 {
        let mut tx = begin_immediate(writer).await?;
        if version != WORDS_VERSION {
            sqlx::query("INSERT INTO messages_fts (messages_fts) VALUES ('delete-all')")
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM search_pending")
                .execute(&mut *tx)
                .await?;
            pending = Some(i64::MIN);
        }
        // `ingest_words` set outside tgparser's transaction (by hand): cleared, or other
        // programs' posts would never be queued.
        sqlx::query(
            "UPDATE search_index SET version = ?1, pending_from = ?2, ingest_words = 0 WHERE id = 1",
        )
        .bind(WORDS_VERSION)
        .bind(pending)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
    }
    let Some(mut from) = pending else {
        return drain(writer).await;
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
        // Read inside the transaction: a text another program changes after the read would
        // otherwise be indexed as it was, its queue entry dropped below.
        let mut tx = begin_immediate(writer).await?;
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT search_key, text FROM messages WHERE search_key >= ?1 ORDER BY search_key LIMIT ?2",
        )
        .bind(from)
        .bind(BATCH)
        .fetch_all(&mut *tx)
        .await?;
        let words: Vec<(i64, String)> = tokio::task::spawn_blocking(move || {
            rows.into_iter()
                .map(|(k, text)| (k, index_words(&text)))
                .collect()
        })
        .await
        .map_err(|e| StoreError::Invalid(format!("building the search index: {e}")))?;
        let finished = (words.len() as i64) < BATCH;
        let next = words.last().map(|(k, _)| k.saturating_add(1));
        // What the queue says of this stretch of keys: the build writes the words as they are.
        sqlx::query(
            "DELETE FROM search_pending WHERE search_key >= ?1 AND (?2 IS NULL OR search_key < ?2)",
        )
        .bind(from)
        .bind(if finished { None } else { next })
        .execute(&mut *tx)
        .await?;
        for (key, w) in &words {
            insert(&mut tx, *key, w).await?;
        }
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
    drain(writer).await?;
    Ok(done)
}

/// The whole queue settled, a transaction per [`SETTLE_PER_WRITE`] posts; returns the posts
/// settled.
async fn drain(writer: &SqlitePool) -> Result<u64, StoreError> {
    let mut done = 0;
    loop {
        let mut tx = begin_immediate(writer).await?;
        let n = settle(&mut tx, SETTLE_PER_WRITE).await?;
        tx.commit().await?;
        done += n;
        if n < SETTLE_PER_WRITE as u64 {
            return Ok(done);
        }
    }
}

/// The whole queue settled in the caller's transaction (after a channel's posts are deleted).
pub(super) async fn settle_all(conn: &mut SqliteConnection) -> Result<(), StoreError> {
    while settle(&mut *conn, SETTLE_PER_WRITE).await? == SETTLE_PER_WRITE as u64 {}
    Ok(())
}

/// Writes the words of the staged posts not stored yet, under their staged keys, in key order,
/// before the upsert stores them; and sets `ingest_words`, so the insert trigger queues
/// nothing for them. [`index_queued`] clears it.
pub(super) async fn index_new(conn: &mut SqliteConnection) -> Result<(), StoreError> {
    sqlx::query("UPDATE search_index SET ingest_words = 1 WHERE id = 1")
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO messages_fts (rowid, words) \
         SELECT s.search_key, s.words FROM temp.ingest_stage s \
         WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.channel_id = s.channel_id AND m.id = s.id) \
         ORDER BY 1",
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// After the upsert: `ingest_words` cleared, the staged posts the upsert queued settled
/// (edited texts: the words the index held removed, the staged ones added; an unchanged
/// replay, a poll reading a post once more, queues nothing and costs the index nothing), then
/// a few of other programs' rows.
pub(super) async fn index_queued(conn: &mut SqliteConnection) -> Result<(), StoreError> {
    sqlx::query("UPDATE search_index SET ingest_words = 0 WHERE id = 1")
        .execute(&mut *conn)
        .await?;
    let queued: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM search_pending)")
        .fetch_one(&mut *conn)
        .await?;
    if !queued {
        return Ok(());
    }
    // CROSS JOIN keeps the staged rows the outer loop, each finding its post by the
    // (channel_id, id) index: driven from the queue instead, SQLite scanned the unindexed
    // stage once per post (a batch cost a million row visits).
    let edited: Vec<(i64, Option<String>, String)> = sqlx::query_as(
        "SELECT p.search_key, p.indexed, s.words FROM temp.ingest_stage s \
         CROSS JOIN messages m CROSS JOIN search_pending p \
         WHERE m.channel_id = s.channel_id AND m.id = s.id AND p.search_key = m.search_key \
         ORDER BY 1",
    )
    .fetch_all(&mut *conn)
    .await?;
    let building = building(&mut *conn).await?;
    for (key, held, words) in &edited {
        if building.is_none_or(|from| *key < from) {
            if let Some(held) = held {
                remove(&mut *conn, *key, &index_words(held)).await?;
            }
            insert(&mut *conn, *key, words).await?;
        }
        sqlx::query("DELETE FROM search_pending WHERE search_key = ?1")
            .bind(key)
            .execute(&mut *conn)
            .await?;
    }
    settle(conn, SETTLE_PER_WRITE).await?;
    Ok(())
}

/// Posts of the queue settled per call of [`settle`] in an ingest transaction.
const SETTLE_PER_WRITE: i64 = 200;

/// Settles up to `limit` posts of the queue (other programs' rows, edits, deleted posts; not
/// tgparser's own new posts, which index themselves): the words the index holds for each
/// removed, its present words added. Called in each ingest transaction, so a script's rows
/// reach the index while the daemon runs. Nothing to do costs one probe of an empty table.
async fn settle(conn: &mut SqliteConnection, limit: i64) -> Result<u64, StoreError> {
    let rows: Vec<(i64, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT p.search_key, p.indexed, m.text FROM search_pending p \
         LEFT JOIN messages m ON m.search_key = p.search_key ORDER BY 1 LIMIT ?1",
    )
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let building = building(&mut *conn).await?;
    for (key, held, text) in &rows {
        if building.is_none_or(|from| *key < from) {
            if let Some(held) = held {
                remove(&mut *conn, *key, &index_words(held)).await?;
            }
            if let Some(text) = text {
                insert(&mut *conn, *key, &index_words(text)).await?;
            }
        }
        sqlx::query("DELETE FROM search_pending WHERE search_key = ?1")
            .bind(key)
            .execute(&mut *conn)
            .await?;
    }
    Ok(rows.len() as u64)
}

/// Where a build under way has got to: the index holds nothing at or above it yet (the build
/// indexes those keys as they are when it gets there), so the queue's entries there are
/// dropped, not settled.
async fn building(conn: &mut SqliteConnection) -> Result<Option<i64>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT pending_from FROM search_index WHERE id = 1")
            .fetch_one(conn)
            .await?,
    )
}

/// Adds one post's words under its key.
async fn insert(conn: &mut SqliteConnection, key: i64, words: &str) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO messages_fts (rowid, words) VALUES (?1, ?2)")
        .bind(key)
        .bind(words)
        .execute(conn)
        .await?;
    Ok(())
}

/// Removes the words the index holds under a key: exactly those it was given (a contentless
/// index trusts them; others would corrupt it).
async fn remove(conn: &mut SqliteConnection, key: i64, words: &str) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO messages_fts (messages_fts, rowid, words) VALUES ('delete', ?1, ?2)")
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

/// What [`Store::check_search_index`] found.
#[derive(Debug, Default, PartialEq)]
pub struct IndexCheck {
    /// Posts whose words were compared.
    pub posts: u64,
    /// Posts whose words in the index differ from their text's.
    pub mismatched: u64,
    /// The first [`MISMATCHES_KEPT`] of them, with what differs.
    pub examples: Vec<String>,
    /// Keys the index holds words under that no post has (and no queue entry explains).
    pub stray: u64,
}

impl IndexCheck {
    /// Whether the index holds exactly every post's words.
    pub fn sound(&self) -> bool {
        self.mismatched == 0 && self.stray == 0
    }
}

/// Mismatches an [`IndexCheck`] lists.
const MISMATCHES_KEPT: usize = 20;

impl super::Store {
    /// Whether the index is built (no build under way or asked for).
    pub async fn search_index_complete(&self) -> Result<bool, StoreError> {
        complete(self.reader()).await
    }

    /// Compares the whole index with the posts, word for word: the words FTS5 holds under
    /// each key (its `fts5vocab` view, `messages_terms`) against the words tgparser cuts from
    /// the post's text. FTS5's own 'integrity-check' cannot do this for a contentless index;
    /// this can. Posts queued for the index (`search_pending`) are skipped. Reads the whole
    /// index: seconds per million posts.
    pub async fn check_search_index(&self) -> Result<IndexCheck, StoreError> {
        // One read transaction: the index, the posts and the queue as of one moment, so a
        // daemon writing meanwhile cannot make a sound index look wrong.
        let mut conn = self.reader().acquire().await?;
        sqlx::query("BEGIN").execute(&mut *conn).await?;
        let check = check_in(&mut conn).await;
        let _ = sqlx::query("COMMIT").execute(&mut *conn).await;
        check
    }
}

async fn check_in(conn: &mut SqliteConnection) -> Result<IndexCheck, StoreError> {
    use futures::TryStreamExt;
    let mut check = IndexCheck::default();
    // A hash of each post's words as the index holds them, in order: 16 bytes a post, so a
    // check of millions of posts fits in memory. The words of a mismatch are read again.
    let mut held: std::collections::HashMap<i64, u64> = Default::default();
    {
        let mut terms = sqlx::query_as::<_, (i64, String)>(
            "SELECT doc, term FROM messages_terms ORDER BY doc, offset",
        )
        .fetch(&mut *conn);
        let mut current: Option<(i64, WordsHash)> = None;
        while let Some((doc, term)) = terms.try_next().await? {
            match &mut current {
                Some((d, h)) if *d == doc => h.add(&term),
                _ => {
                    if let Some((d, h)) = current.take() {
                        held.insert(d, h.done());
                    }
                    let mut h = WordsHash::default();
                    h.add(&term);
                    current = Some((doc, h));
                }
            }
        }
        if let Some((d, h)) = current {
            held.insert(d, h.done());
        }
    }
    let mut wrong = Vec::new();
    {
        let mut posts = sqlx::query_as::<_, (i64, String)>(
            "SELECT search_key, text FROM messages WHERE search_key IS NOT NULL \
             AND search_key NOT IN (SELECT search_key FROM search_pending)",
        )
        .fetch(&mut *conn);
        while let Some((key, text)) = posts.try_next().await? {
            check.posts += 1;
            let want = index_words(&text);
            let mut h = WordsHash::default();
            want.split(' ')
                .filter(|w| !w.is_empty())
                .for_each(|w| h.add(w));
            if held.remove(&key).unwrap_or(WordsHash::default().done()) != h.done() {
                check.mismatched += 1;
                if wrong.len() < MISMATCHES_KEPT {
                    wrong.push((key, want));
                }
            }
        }
    }
    for (key, want) in wrong {
        let have: Vec<String> =
            sqlx::query_scalar("SELECT term FROM messages_terms WHERE doc = ?1 ORDER BY offset")
                .bind(key)
                .fetch_all(&mut *conn)
                .await?;
        check.examples.push(format!(
            "post key {key}: the index holds {:?}, its text cuts to {want:?}",
            have.join(" ")
        ));
    }
    let queued: Vec<i64> = sqlx::query_scalar("SELECT search_key FROM search_pending")
        .fetch_all(&mut *conn)
        .await?;
    for key in queued {
        held.remove(&key);
    }
    check.stray = held.len() as u64;
    Ok(check)
}

/// A post's words, in order, as one hash (for `check_search_index`).
#[derive(Default)]
struct WordsHash(std::hash::DefaultHasher);

impl WordsHash {
    fn add(&mut self, word: &str) {
        use std::hash::Hasher;
        self.0.write(word.as_bytes());
        // Words hold no 0xFF byte (UTF-8): the separator keeps "ab c" apart from "a bc".
        self.0.write_u8(0xff);
    }

    fn done(&self) -> u64 {
        use std::hash::Hasher;
        self.0.finish()
    }
}

#[cfg(test)]
#[path = "index_tests.rs"]
mod tests;
