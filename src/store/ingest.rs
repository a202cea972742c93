//! Writing posts: one `BEGIN IMMEDIATE` transaction per batch — the rows staged, then upserted
//! by one statement (keyed on `(channel_id, id)`, so replays are harmless; a trigger keeps the
//! previous text of an edited post in `message_versions`) — and the channel's backfill cursor
//! advanced in the same transaction, so the cursor never points past what is stored and never
//! moves backwards.

use sqlx::SqliteConnection;

use super::{Store, StoreError};

/// One post as the store keeps it. JSON columns hold Telegram's data as read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MessageRow {
    pub id: i32,
    /// `post` or `service`.
    pub kind: &'static str,
    pub date: i64,
    pub edit_date: Option<i64>,
    pub text: String,
    pub entities: Option<String>,
    pub views: Option<i64>,
    pub forwards: Option<i64>,
    pub replies: Option<i64>,
    pub reactions: Option<String>,
    pub grouped_id: Option<i64>,
    pub reply_to_msg_id: Option<i64>,
    pub reply_to_top_id: Option<i64>,
    pub fwd_from: Option<String>,
    pub post_author: Option<String>,
    pub pinned: bool,
    pub silent: bool,
    pub noforwards: bool,
    pub media_kind: Option<&'static str>,
    pub media: Option<String>,
    pub action: Option<String>,
    /// What could not be read, when conversion was partial. The row is stored anyway.
    pub convert_error: Option<String>,
    /// Who wrote it, in a supergroup: a user id, or a chat/channel as `-100<id>`.
    pub from_id: Option<i64>,
}

/// The values the schema's CHECK constraints allow in `messages.kind` and `messages.media_kind`
/// (migration 0001), for `fit_schema`. A test holds them to the schema.
pub(crate) const KINDS: [&str; 2] = ["post", "service"];
pub(crate) const MEDIA_KINDS: [&str; 20] = [
    "photo",
    "video",
    "audio",
    "voice",
    "video_note",
    "document",
    "sticker",
    "animation",
    "webpage",
    "poll",
    "geo",
    "venue",
    "contact",
    "dice",
    "game",
    "invoice",
    "story",
    "giveaway",
    "paid",
    "unsupported",
];

/// SQLite's `JSON_MAX_DEPTH`: `json_valid` refuses arrays and objects nested deeper.
const JSON_MAX_DEPTH: usize = 1000;

/// Whether `text` is JSON SQLite's `json_valid` accepts: well-formed RFC 8259 text (serde_json's
/// parser, which keeps no value) nested at most [`JSON_MAX_DEPTH`] deep, a limit serde_json
/// does not apply when it only checks. A test holds the two to the same answers on edge cases.
fn json_ok(text: &str) -> Result<(), String> {
    serde_json::from_str::<serde::de::IgnoredAny>(text).map_err(|e| e.to_string())?;
    // Well-formed, so brackets inside strings are the only ones to skip.
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for b in text.bytes() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if in_string => escaped = true,
            b'"' => in_string = !in_string,
            b'[' | b'{' if !in_string => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' if !in_string => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    if deepest > JSON_MAX_DEPTH {
        return Err(format!(
            "nested {deepest} deep; SQLite takes at most {JSON_MAX_DEPTH}"
        ));
    }
    Ok(())
}

/// The row as the schema's CHECK constraints accept it, or `None` when it already fits. A
/// backfill commit moves its rows into `messages` on a connection that skips the CHECKs (see
/// `Store::ingest_group`), so this is where they hold for its rows: a JSON column that does not
/// parse is left out and an unknown kind is stored as the nearest allowed one, each said in
/// `convert_error`. The post is stored either way; with the CHECKs in SQLite, one such value
/// failed its whole commit.
fn fit_schema(m: &MessageRow) -> Option<MessageRow> {
    let bad_kind = !KINDS.contains(&m.kind);
    let bad_media_kind = m.media_kind.filter(|k| !MEDIA_KINDS.contains(k));
    let bad_json = [&m.entities, &m.reactions, &m.fwd_from, &m.media, &m.action]
        .map(|column| column.as_deref().map(json_ok).and_then(Result::err));
    if !bad_kind && bad_media_kind.is_none() && bad_json.iter().all(Option::is_none) {
        return None;
    }
    let mut fixed = m.clone();
    let mut problems = Vec::new();
    if bad_kind {
        problems.push(format!(
            "kind {:?} is not one the database keeps; stored as post",
            m.kind
        ));
        fixed.kind = "post";
    }
    if let Some(kind) = bad_media_kind {
        problems.push(format!(
            "media kind {kind:?} is not one the database keeps; stored as unsupported"
        ));
        fixed.media_kind = Some("unsupported");
    }
    let columns = [
        ("entities", &mut fixed.entities),
        ("reactions", &mut fixed.reactions),
        ("fwd_from", &mut fixed.fwd_from),
        ("media", &mut fixed.media),
        ("action", &mut fixed.action),
    ];
    for ((name, column), error) in columns.into_iter().zip(bad_json) {
        if let Some(e) = error {
            problems.push(format!("{name} is not valid JSON ({e}); left out"));
            *column = None;
        }
    }
    let said = problems.join("; ");
    fixed.convert_error = Some(match &m.convert_error {
        Some(earlier) => format!("{earlier}; {said}"),
        None => said,
    });
    Some(fixed)
}

/// How a backfill page moves its channel's cursor.
#[derive(Debug, Clone, Copy)]
pub struct CursorAdvance {
    pub channel_id: i64,
    /// The smallest id of the page: the next page starts below it.
    pub cursor: i32,
    /// Whether the channel's history is now complete (an empty page, or the limit reached).
    pub done: bool,
}

/// Sizes of the statements that stage a batch, largest first: a batch goes in as statements of
/// these sizes, so the writer's connection prepares and caches at most ten of them however
/// batches are sized. (With one size and a remainder, each distinct remainder was another
/// prepared statement of up to hundreds of rows in sqlx's cache of 100.) 512 rows of 27 values
/// stay under SQLite's 32,766 bound values per statement.
const STAGE_SIZES: [usize; 10] = [512, 256, 128, 64, 32, 16, 8, 4, 2, 1];

/// The columns a batch carries, in staging order (a macro, so the statements stay `'static`
/// text); `ord` is the row's place in the batch.
macro_rules! stage_columns {
    () => {
        "channel_id, id, kind, date, edit_date, text, entities, views, forwards, replies, \
         reactions, grouped_id, reply_to_msg_id, reply_to_top_id, fwd_from, post_author, pinned, \
         silent, noforwards, media_kind, media, action, convert_error, search_key, from_id"
    };
}

/// Values a staged row binds: `ord`, the `stage_columns!()` and `words` (a wrong count fails
/// every ingest: SQLite checks the number of values bound).
const STAGE_VALUES: usize = 27;

/// The statement that stages `rows` rows (one of [`STAGE_SIZES`]), written once per process:
/// built per statement (`QueryBuilder`, which formats each placeholder and separator), the
/// 12,800 placeholders of 512 rows of 25 values cost about 5,000 instructions a post on the
/// thread that stages a batch.
fn stage_sql(rows: usize) -> &'static str {
    static SQL: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let all = SQL.get_or_init(|| {
        STAGE_SIZES
            .iter()
            .map(|&n| {
                let row = format!("({})", vec!["?"; STAGE_VALUES].join(", "));
                format!(
                    concat!(
                        "INSERT INTO temp.ingest_stage (ord, ",
                        stage_columns!(),
                        ", words) VALUES {}"
                    ),
                    vec![row; n].join(", ")
                )
            })
            .collect()
    });
    let i = STAGE_SIZES
        .iter()
        .position(|&n| n == rows)
        .unwrap_or(STAGE_SIZES.len() - 1);
    &all[i]
}

/// Upserts a batch (rows of one or more channels) and returns nothing until every row is in.
/// An edit bumps `version`; the text it replaces is kept by the `messages_version_on_edit`
/// trigger.
///
/// The rows are staged in a temporary table and go into `messages` in one statement, oldest
/// first. FTS5 writes its pending terms out as a new index segment at the start of every
/// statement of a write transaction after its first (a statement savepoint), and whenever a
/// rowid (here the date-major search key) is not above the previous one: inserted straight, in
/// statements of a few hundred rows, a commit became several segments for searches to read and
/// merges to rewrite; a backfill page in Telegram's order (newest first) became one segment per
/// post. Staged, a commit is one segment in key order.
///
/// The rows are fitted to the schema's CHECK constraints first (`fit_schema`, on the caller's
/// thread), so a bad value costs its column, not the commit; a backfill's upsert then runs on
/// the connection that skips the CHECKs (`Store::ingest_group`).
async fn upsert(
    conn: &mut SqliteConnection,
    ordered: Vec<(i64, &MessageRow)>,
    now: i64,
) -> Result<(), StoreError> {
    if ordered.is_empty() {
        return Ok(());
    }
    let fitted: Vec<Option<MessageRow>> = ordered.iter().map(|(_, m)| fit_schema(m)).collect();
    let mut ordered: Vec<(i64, &MessageRow)> = ordered
        .iter()
        .zip(&fitted)
        .map(|((channel, m), fit)| (*channel, fit.as_ref().unwrap_or(m)))
        .collect();
    // Stable, so a post given twice still ends as its later copy (it is inserted, then updated
    // by the copy after it).
    ordered.sort_by_key(|(channel, m)| (second(m), *channel, m.id));
    // A post given twice is stored once, as its later copy (the copies are adjacent: same
    // date, channel and id).
    ordered.dedup_by(|later, earlier| {
        let same = later.0 == earlier.0 && later.1.id == earlier.1.id;
        if same {
            std::mem::swap(later, earlier);
        }
        same
    });
    // The index's words, cut on the caller's thread (the writer's is the bottleneck). Cut on a
    // blocking thread while the writer staged the rows, and handed over as one JSON array,
    // they were no faster (measured with the ingest bench).
    let words: Vec<String> = ordered
        .iter()
        .map(|(_, m)| crate::text::index_words(&m.text))
        .collect();
    let keys = search_keys(&mut *conn, &ordered).await?;
    sqlx::query(concat!(
        "CREATE TEMP TABLE IF NOT EXISTS ingest_stage (ord INTEGER PRIMARY KEY, ",
        stage_columns!(),
        ", words TEXT)"
    ))
    .execute(&mut *conn)
    .await?;
    let mut staged = 0;
    while staged < ordered.len() {
        let left = ordered.len() - staged;
        let size = STAGE_SIZES.into_iter().find(|s| *s <= left).unwrap_or(1);
        let rows = &ordered[staged..staged + size];
        let mut q = sqlx::query(stage_sql(size));
        for (i, (channel_id, m)) in rows.iter().enumerate() {
            q = q
                .bind((staged + i) as i64)
                .bind(*channel_id)
                .bind(m.id)
                .bind(m.kind)
                .bind(m.date)
                .bind(m.edit_date)
                .bind(m.text.clone())
                .bind(m.entities.clone())
                .bind(m.views)
                .bind(m.forwards)
                .bind(m.replies)
                .bind(m.reactions.clone())
                .bind(m.grouped_id)
                .bind(m.reply_to_msg_id)
                .bind(m.reply_to_top_id)
                .bind(m.fwd_from.clone())
                .bind(m.post_author.clone())
                .bind(m.pinned)
                .bind(m.silent)
                .bind(m.noforwards)
                .bind(m.media_kind)
                .bind(m.media.clone())
                .bind(m.action.clone())
                .bind(m.convert_error.clone())
                .bind(keys[staged + i])
                .bind(m.from_id)
                .bind(words[staged + i].clone());
        }
        q.execute(&mut *conn).await?;
        staged += size;
    }
    super::index::index_new(&mut *conn).await?;
    // `WHERE true`: SQLite's grammar needs it between a SELECT's FROM and an upsert clause.
    sqlx::query(concat!(
        "INSERT INTO messages (",
        stage_columns!(),
        ", fetched_at, updated_at) SELECT ",
        stage_columns!(),
        ", ?1, ?1 FROM temp.ingest_stage WHERE true ORDER BY ord \
         ON CONFLICT (channel_id, id) DO UPDATE SET \
           version = version + (excluded.text IS NOT text), \
           text = excluded.text, entities = excluded.entities, \
           edit_date = coalesce(excluded.edit_date, edit_date), \
           views = coalesce(excluded.views, views), forwards = coalesce(excluded.forwards, forwards), \
           replies = coalesce(excluded.replies, replies), reactions = excluded.reactions, \
           pinned = excluded.pinned, media_kind = excluded.media_kind, media = excluded.media, \
           action = excluded.action, convert_error = excluded.convert_error, \
           from_id = coalesce(excluded.from_id, from_id), \
           updated_at = excluded.updated_at"
    ))
    .bind(now)
    .execute(&mut *conn)
    .await?;
    super::index::index_queued(&mut *conn).await?;
    sqlx::query("DELETE FROM temp.ingest_stage")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Seconds kept in a search key: dates outside ±2^42 s (±139,000 years) are clamped, so the key
/// cannot overflow.
const KEY_DATE_LIMIT: i64 = 1 << 42;
/// Keys per second of post date.
pub(super) const KEYS_PER_SECOND: i64 = 1 << 20;

/// A row's date as its search key counts it: clamped to ±2^42 s, so the key cannot overflow.
fn second(m: &MessageRow) -> i64 {
    m.date.clamp(-KEY_DATE_LIMIT, KEY_DATE_LIMIT)
}

/// The date-major search keys (migration 0007) for rows sorted by second, in their order: for
/// each second, the keys after the largest one stored, given to that second's rows in turn. A
/// row that turns out to exist already keeps its stored key and its candidate goes unused (a
/// gap, harmless). Called inside the write transaction, so no other writer can take the same
/// keys.
async fn search_keys(
    conn: &mut SqliteConnection,
    sorted: &[(i64, &MessageRow)],
) -> Result<Vec<i64>, StoreError> {
    let mut seconds: Vec<i64> = sorted.iter().map(|(_, m)| second(m)).collect();
    seconds.dedup();
    let list = serde_json::to_string(&seconds).map_err(|e| StoreError::Invalid(e.to_string()))?;
    // Keys still queued for the index count as taken (a deleted post's, until its words are
    // removed): a new post's words written under one would be removed with the old ones.
    let stored: Vec<(i64, Option<i64>)> = sqlx::query_as(
        "SELECT d.value, (SELECT max(k) FROM ( \
             SELECT max(search_key) AS k FROM messages \
             WHERE search_key BETWEEN d.value * ?2 AND d.value * ?2 + ?2 - 1 \
             UNION ALL SELECT max(search_key) FROM search_pending \
             WHERE search_key BETWEEN d.value * ?2 AND d.value * ?2 + ?2 - 1)) \
         FROM json_each(?1) AS d",
    )
    .bind(list)
    .bind(KEYS_PER_SECOND)
    .fetch_all(&mut *conn)
    .await?;
    let mut next: std::collections::HashMap<i64, i64> = stored
        .into_iter()
        .map(|(s, max)| (s, max.map_or(s * KEYS_PER_SECOND, |k| k + 1)))
        .collect();
    let mut keys = Vec::with_capacity(sorted.len());
    for (_, m) in sorted {
        let s = second(m);
        let k = next.entry(s).or_insert(s * KEYS_PER_SECOND);
        if *k >= (s + 1) * KEYS_PER_SECOND {
            return Err(StoreError::Invalid(format!(
                "more than {KEYS_PER_SECOND} posts dated the same second ({s}); the search index cannot order them"
            )));
        }
        keys.push(*k);
        *k += 1;
    }
    Ok(keys)
}

pub(super) async fn ingest_in(
    tx: &mut SqliteConnection,
    channel_id: i64,
    rows: &[MessageRow],
    cursor: Option<CursorAdvance>,
    now: i64,
) -> Result<(), StoreError> {
    upsert(
        &mut *tx,
        rows.iter().map(|r| (channel_id, r)).collect(),
        now,
    )
    .await?;
    advance(tx, channel_id, rows, cursor, now).await
}

/// What a stored batch changes on its channel: the newest post date and, for a backfill page,
/// the cursor.
async fn advance(
    tx: &mut SqliteConnection,
    channel_id: i64,
    rows: &[MessageRow],
    cursor: Option<CursorAdvance>,
    now: i64,
) -> Result<(), StoreError> {
    if let Some(newest) = rows.iter().map(|m| m.date).max() {
        sqlx::query(
            "UPDATE channels SET last_post_at = max(coalesce(last_post_at, 0), ?) WHERE id = ?",
        )
        .bind(newest)
        .bind(channel_id)
        .execute(&mut *tx)
        .await?;
    }
    if let Some(c) = cursor {
        // Only ever downwards: a replayed or reordered page cannot move it back.
        sqlx::query(
            "UPDATE channels SET \
               backfill_cursor = CASE WHEN backfill_cursor IS NULL OR ? < backfill_cursor THEN ? ELSE backfill_cursor END, \
               backfill_top_id = coalesce(backfill_top_id, ?), \
               backfill_done_count = backfill_done_count + ?, \
               backfill_state = CASE WHEN ? THEN 'done' ELSE 'running' END, \
               updated_at = ? \
             WHERE id = ?",
        )
        .bind(c.cursor)
        .bind(c.cursor)
        .bind(rows.iter().map(|m| m.id).max())
        .bind(rows.len() as i64)
        .bind(c.done)
        .bind(now)
        .bind(c.channel_id)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// Which of `ids` still have a channel row. A channel purged (`channels remove --purge`) while
/// its fetched pages waited for a commit has none, and its posts would fail the commit's foreign
/// key: the whole commit, with every other channel's pages in it, and the part with it.
async fn present_channels(
    tx: &mut SqliteConnection,
    ids: impl Iterator<Item = i64>,
) -> Result<std::collections::HashSet<i64>, StoreError> {
    let list = ids.map(|id| id.to_string()).collect::<Vec<_>>().join(",");
    let found: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM channels WHERE id IN (SELECT value FROM json_each(?))")
            .bind(format!("[{list}]"))
            .fetch_all(&mut *tx)
            .await?;
    Ok(found.into_iter().collect())
}

impl Store {
    /// Stores a batch of posts of one channel and, for a backfill page, advances its cursor —
    /// all or nothing.
    pub async fn ingest(
        &self,
        channel_id: i64,
        rows: &[MessageRow],
        cursor: Option<CursorAdvance>,
    ) -> Result<(), StoreError> {
        self.ingest_group(&[(channel_id, rows, cursor)]).await
    }

    /// Several batches (pages of one or more channels, each with its cursor advance) in one
    /// transaction: when pages arrive faster than they commit, one commit carries them all.
    ///
    /// Written on the store's second write connection, which skips the schema's CHECK
    /// constraints: the rows were fitted to them (`fit_schema`), the cursor updates write
    /// constants, and SQLite's own checks (`json_valid` over five JSON columns and the lists of
    /// kinds) were about 13,000 instructions a post on the one thread every backfill waits on, a
    /// tenth of its work (callgrind, a backfill from the fake). Turning them off and on around the statement instead made SQLite
    /// recompile every prepared statement of the connection at each commit, which cost more.
    pub async fn ingest_group(
        &self,
        batches: &[(i64, &[MessageRow], Option<CursorAdvance>)],
    ) -> Result<(), StoreError> {
        let now = crate::time::unix_now();
        // Held to the commit: every other write waits for the writer's connection as always,
        // so the rows' connection writes alone (and never meets SQLite's busy lock).
        let _writer = self.writer.acquire().await?;
        let mut tx = super::begin_immediate(&self.rows_writer).await?;
        let present = present_channels(&mut tx, batches.iter().map(|b| b.0)).await?;
        let batches: Vec<_> = batches
            .iter()
            .filter(|(channel_id, rows, _)| {
                let here = present.contains(channel_id);
                if !here {
                    tracing::info!(
                        channel_id,
                        posts = rows.len(),
                        "fetched posts dropped: their channel was purged before they were stored"
                    );
                }
                here
            })
            .collect();
        // Every page in one upsert, so the commit's posts go in oldest first across pages and
        // channels (see `upsert`), in the order given where a post repeats.
        let rows = batches
            .iter()
            .flat_map(|(channel_id, rows, _)| rows.iter().map(|r| (*channel_id, r)))
            .collect();
        upsert(&mut tx, rows, now).await?;
        for (channel_id, rows, cursor) in batches {
            advance(&mut tx, *channel_id, rows, *cursor, now).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Stores posts that are new to the follower (live, or refilled after a gap) and, in the same
    /// transaction, writes an outbox alert for each subscription a post seen for the first time
    /// matches. Returns the number of alerts queued.
    ///
    /// `gap`: a range of the channel's posts the update stream skipped, revealed by these
    /// posts: queued for a refill in the same transaction, so no crash can store the posts
    /// and lose the range.
    pub async fn ingest_live(
        &self,
        channel_id: i64,
        rows: &[MessageRow],
        gap: Option<super::Refill>,
    ) -> Result<usize, StoreError> {
        let matcher = self.matcher().await?;
        let now = crate::time::unix_now();
        let mut tx = self.begin_write().await?;
        if !present_channels(&mut tx, std::iter::once(channel_id))
            .await?
            .contains(&channel_id)
        {
            tracing::info!(
                channel_id,
                posts = rows.len(),
                "new posts dropped: their channel was purged"
            );
            return Ok(0);
        }
        let fresh: Vec<&MessageRow> = if matcher.is_empty() {
            Vec::new()
        } else {
            let stored = super::alerts::existing_ids(&mut tx, channel_id, rows).await?;
            rows.iter().filter(|r| !stored.contains(&r.id)).collect()
        };
        ingest_in(&mut tx, channel_id, rows, None, now).await?;
        if let Some(gap) = gap {
            super::refills::queue_in(&mut tx, gap, now).await?;
        }
        let queued = if fresh.is_empty() {
            0
        } else {
            super::alerts::enqueue_matches(&mut tx, &matcher, channel_id, &fresh, now).await?
        };
        tx.commit().await?;
        if queued > 0 {
            self.alerts.wake.notify_one();
        }
        Ok(queued)
    }

    /// Marks posts deleted (soft: the text is kept).
    pub async fn mark_deleted(&self, channel_id: i64, ids: &[i32]) -> Result<u64, StoreError> {
        let now = crate::time::unix_now();
        let mut tx = self.begin_write().await?;
        let mut n = 0;
        for id in ids {
            n += sqlx::query(
                "UPDATE messages SET deleted_at = ?, updated_at = ? WHERE channel_id = ? AND id = ? AND deleted_at IS NULL",
            )
            .bind(now)
            .bind(now)
            .bind(channel_id)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(n)
    }
}

#[cfg(test)]
#[path = "ingest_tests.rs"]
mod tests;
