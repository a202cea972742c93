//! Writing posts: one `BEGIN IMMEDIATE` transaction per batch — upsert the messages in multi-row
//! statements (keyed on `(channel_id, id)`, so replays are harmless; a trigger keeps the previous
//! text of an edited post in `message_versions`), and advance the channel's backfill cursor in the same transaction, so the
//! cursor never points past what is stored and never moves backwards.

use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

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

/// Rows per INSERT statement: 23 bound values each, under SQLite's 32,766-variable limit, and
/// large enough that per-statement overhead disappears.
const ROWS_PER_STATEMENT: usize = 500;

/// Upserts rows in multi-row statements. An edit bumps `version`; the text it replaces is kept by
/// the `messages_version_on_edit` trigger.
async fn upsert(
    conn: &mut SqliteConnection,
    channel_id: i64,
    rows: &[MessageRow],
    now: i64,
) -> Result<(), StoreError> {
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO messages (channel_id, id, kind, date, edit_date, text, entities, views, forwards, replies, \
             reactions, grouped_id, reply_to_msg_id, reply_to_top_id, fwd_from, post_author, pinned, silent, \
             noforwards, media_kind, media, action, convert_error, fetched_at, updated_at) ",
        );
        q.push_values(chunk, |mut b, m| {
            b.push_bind(channel_id)
                .push_bind(m.id)
                .push_bind(m.kind)
                .push_bind(m.date)
                .push_bind(m.edit_date)
                .push_bind(m.text.clone())
                .push_bind(m.entities.clone())
                .push_bind(m.views)
                .push_bind(m.forwards)
                .push_bind(m.replies)
                .push_bind(m.reactions.clone())
                .push_bind(m.grouped_id)
                .push_bind(m.reply_to_msg_id)
                .push_bind(m.reply_to_top_id)
                .push_bind(m.fwd_from.clone())
                .push_bind(m.post_author.clone())
                .push_bind(m.pinned)
                .push_bind(m.silent)
                .push_bind(m.noforwards)
                .push_bind(m.media_kind)
                .push_bind(m.media.clone())
                .push_bind(m.action.clone())
                .push_bind(m.convert_error.clone())
                .push_bind(now)
                .push_bind(now);
        });
        q.push(
            " ON CONFLICT (channel_id, id) DO UPDATE SET \
               version = version + (excluded.text IS NOT text), \
               text = excluded.text, entities = excluded.entities, \
               edit_date = coalesce(excluded.edit_date, edit_date), \
               views = coalesce(excluded.views, views), forwards = coalesce(excluded.forwards, forwards), \
               replies = coalesce(excluded.replies, replies), reactions = excluded.reactions, \
               pinned = excluded.pinned, media_kind = excluded.media_kind, media = excluded.media, \
               action = excluded.action, convert_error = excluded.convert_error, updated_at = excluded.updated_at",
        );
        q.build().execute(&mut *conn).await?;
    }
    Ok(())
}

async fn ingest_in(
    tx: &mut SqliteConnection,
    channel_id: i64,
    rows: &[MessageRow],
    cursor: Option<CursorAdvance>,
    now: i64,
) -> Result<(), StoreError> {
    upsert(&mut *tx, channel_id, rows, now).await?;
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
    pub async fn ingest_group(
        &self,
        batches: &[(i64, &[MessageRow], Option<CursorAdvance>)],
    ) -> Result<(), StoreError> {
        let now = crate::time::unix_now();
        let mut tx = self.begin_write().await?;
        for (channel_id, rows, cursor) in batches {
            ingest_in(&mut tx, *channel_id, rows, *cursor, now).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Stores posts that are new to the follower (live, or refilled after a gap) and, in the same
    /// transaction, writes an outbox alert for each subscription a post seen for the first time
    /// matches. Returns the number of alerts queued.
    pub async fn ingest_live(
        &self,
        channel_id: i64,
        rows: &[MessageRow],
    ) -> Result<usize, StoreError> {
        let matcher = self.matcher().await?;
        let now = crate::time::unix_now();
        let mut tx = self.begin_write().await?;
        let fresh: Vec<&MessageRow> = if matcher.is_empty() {
            Vec::new()
        } else {
            let stored = super::alerts::existing_ids(&mut tx, channel_id, rows).await?;
            rows.iter().filter(|r| !stored.contains(&r.id)).collect()
        };
        ingest_in(&mut tx, channel_id, rows, None, now).await?;
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
