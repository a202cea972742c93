//! The recheck queue (`rechecks`, migration 0019): channels whose stored posts are read again
//! from history, newest first, to find edits and deletions that no update will bring.
//!
//! Telegram answers a catch-up with `channelDifferenceTooLong` when more happened than it keeps
//! as events; the edits and deletions of that stretch are then known only to history, and its
//! documentation says every stored message "should still be checked using messages.getHistory"
//! (core.telegram.org/constructor/updates.channelDifferenceTooLong). A page of history covers
//! the ids from its lowest up to where it was asked from: a stored post in that range whose id
//! the page lacks was deleted (history never returns a deleted message); a stored post whose
//! text differs was edited (a new version, as a pushed edit makes). Each page is stored, its
//! deletions marked and the queue row moved down in one transaction, so a crash resumes the
//! recheck where it stopped and a replayed page changes nothing. A finished recheck's row stays
//! (`finished_at`), as the channel's last, until another is queued.

use super::{MessageRow, Store, StoreError};

/// A channel's recheck: its stored posts with ids below `before` (0: all) are still to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recheck {
    pub channel: i64,
    pub before: i32,
}

/// What a recheck found: in one page, or in all its pages so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rechecked {
    /// Stored posts read again.
    pub checked: i64,
    /// Of those, stored with another text (each a new version).
    pub edited: i64,
    /// Stored posts in the range read that history no longer has: marked deleted.
    pub deleted: i64,
    /// Posts history had that were never stored (a hole): stored, and alerted as refills are.
    pub found: i64,
}

/// A channel's recheck as `channels list` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecheckStatus {
    pub recheck: Recheck,
    pub so_far: Rechecked,
    /// When it finished (unix seconds); `None` while it runs.
    pub finished_at: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct StatusRow {
    channel_id: i64,
    before_id: i64,
    checked: i64,
    edited: i64,
    deleted: i64,
    found: i64,
    finished_at: Option<i64>,
}

/// What one page of a recheck did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecheckPage {
    pub page: Rechecked,
    /// The recheck's pages so far, this one included.
    pub total: Rechecked,
    /// Where the next page starts, or `None`: the recheck is done (nothing stored below).
    pub next: Option<i32>,
}

/// Stored posts' ids of `channel` in `[low, before)` (`before` 0: no upper end) that are not
/// deleted yet and not among `present` (a JSON array).
const MARK_DELETED: &str = "UPDATE messages SET deleted_at = ?1, updated_at = ?1 \
     WHERE channel_id = ?2 AND id >= ?3 AND (?4 = 0 OR id < ?4) AND deleted_at IS NULL \
       AND id NOT IN (SELECT value FROM json_each(?5))";

impl Store {
    /// Queues a recheck of `channel`'s stored posts below `before` (0: all). One already queued
    /// starts again from `before`: what is lost may touch posts it had already read.
    pub async fn queue_recheck(
        &self,
        channel: i64,
        before: i32,
        reason: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO rechecks (channel_id, before_id, queued_at, reason) \
             SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM channels WHERE id = ?1) \
             ON CONFLICT (channel_id) DO UPDATE SET before_id = excluded.before_id, \
               queued_at = excluded.queued_at, reason = excluded.reason, \
               checked = 0, edited = 0, deleted = 0, found = 0, finished_at = NULL",
        )
        .bind(channel)
        .bind(before)
        .bind(crate::time::unix_now())
        .bind(reason)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The queued rechecks of active channels, oldest first (a paused channel's waits).
    pub async fn rechecks(&self) -> Result<Vec<Recheck>, StoreError> {
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT r.channel_id, r.before_id FROM rechecks r JOIN channels c ON c.id = r.channel_id \
             WHERE r.finished_at IS NULL AND c.state = 'active' ORDER BY r.queued_at, r.channel_id",
        )
        .fetch_all(self.reader())
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(channel, before)| {
                Some(Recheck {
                    channel,
                    before: i32::try_from(before).ok()?,
                })
            })
            .collect())
    }

    /// Every channel's recheck, running (paused channels' too) or the last one finished, with
    /// what it found: for listings.
    pub async fn recheck_progress(&self) -> Result<Vec<RecheckStatus>, StoreError> {
        let rows: Vec<StatusRow> = sqlx::query_as(
            "SELECT channel_id, before_id, checked, edited, deleted, found, finished_at \
             FROM rechecks ORDER BY queued_at, channel_id",
        )
        .fetch_all(self.reader())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| RecheckStatus {
                recheck: Recheck {
                    channel: r.channel_id,
                    before: i32::try_from(r.before_id).unwrap_or(0),
                },
                so_far: Rechecked {
                    checked: r.checked,
                    edited: r.edited,
                    deleted: r.deleted,
                    found: r.found,
                },
                finished_at: r.finished_at,
            })
            .collect())
    }

    /// Ends `channel`'s recheck without finishing it (Telegram refused its history).
    pub async fn recheck_dropped(&self, channel: i64) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM rechecks WHERE channel_id = ?")
            .bind(channel)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Stores one page of `r`'s recheck, all or nothing: `rows` (the page's posts), `present`
    /// (the ids of every message the page had, convertible or not) and `low`, the lowest id the
    /// page covers (the page's lowest id; 0 for the empty page that ends history). Posts below
    /// the lowest stored one are left to the backfill; a recheck queued again meanwhile (its
    /// `before` moved) takes the page's posts but keeps its own place.
    pub async fn recheck_page(
        &self,
        r: Recheck,
        rows: &[MessageRow],
        present: &[i32],
        low: i32,
    ) -> Result<RecheckPage, StoreError> {
        let matcher = self.matcher().await?;
        let now = crate::time::unix_now();
        let mut tx = self.begin_write().await?;
        let queued: Option<i64> = sqlx::query_scalar(
            "SELECT before_id FROM rechecks WHERE channel_id = ? AND finished_at IS NULL",
        )
        .bind(r.channel)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(queued) = queued else {
            // Dropped or purged meanwhile.
            return Ok(RecheckPage::default());
        };
        let lowest: Option<i64> =
            sqlx::query_scalar("SELECT min(id) FROM messages WHERE channel_id = ?")
                .bind(r.channel)
                .fetch_one(&mut *tx)
                .await?;
        let Some(lowest) = lowest else {
            finish_in(&mut tx, r.channel, now).await?;
            tx.commit().await?;
            return Ok(RecheckPage::default());
        };
        let kept: Vec<MessageRow> = rows
            .iter()
            .filter(|m| i64::from(m.id) >= lowest)
            .cloned()
            .collect();
        let before = versions(&mut tx, r.channel, &kept).await?;
        let fresh: Vec<&MessageRow> = kept
            .iter()
            .filter(|m| !before.contains_key(&m.id))
            .collect();
        super::ingest::ingest_in(&mut tx, r.channel, &kept, None, now).await?;
        // An edit is what the store counts as one (a new version), not a text compared here.
        let after = versions(&mut tx, r.channel, &kept).await?;
        let edited = before
            .iter()
            .filter(|(id, v)| after.get(id).is_some_and(|a| a > v))
            .count();
        // Never a fallback to "[]" here: an empty list would mark every post of the range deleted.
        let present = json_ids(present.iter().copied());
        let deleted = sqlx::query(MARK_DELETED)
            .bind(now)
            .bind(r.channel)
            .bind(low)
            .bind(r.before)
            .bind(&present)
            .execute(&mut *tx)
            .await?
            .rows_affected() as usize;
        let alerts = if fresh.is_empty() || matcher.is_empty() {
            0
        } else {
            super::alerts::enqueue_matches(&mut tx, &matcher, r.channel, &fresh, now).await?
        };
        let page = Rechecked {
            checked: (kept.len() - fresh.len()) as i64,
            edited: edited as i64,
            deleted: deleted as i64,
            found: fresh.len() as i64,
        };
        let total: (i64, i64, i64, i64) = sqlx::query_as(
            "UPDATE rechecks SET checked = checked + ?1, edited = edited + ?2, \
               deleted = deleted + ?3, found = found + ?4 WHERE channel_id = ?5 \
             RETURNING checked, edited, deleted, found",
        )
        .bind(page.checked)
        .bind(page.edited)
        .bind(page.deleted)
        .bind(page.found)
        .bind(r.channel)
        .fetch_one(&mut *tx)
        .await?;
        let total = Rechecked {
            checked: total.0,
            edited: total.1,
            deleted: total.2,
            found: total.3,
        };
        let done = low <= 0 || i64::from(low) <= lowest;
        let next = if queued != i64::from(r.before) {
            // Queued again meanwhile: it keeps its new place.
            i32::try_from(queued).ok()
        } else if done {
            finish_in(&mut tx, r.channel, now).await?;
            None
        } else {
            sqlx::query("UPDATE rechecks SET before_id = ?1 WHERE channel_id = ?2")
                .bind(low)
                .bind(r.channel)
                .execute(&mut *tx)
                .await?;
            Some(low)
        };
        tx.commit().await?;
        if alerts > 0 {
            self.alerts.wake.notify_one();
        }
        Ok(RecheckPage { page, total, next })
    }
}

/// Marks `channel`'s recheck finished, kept as its last.
async fn finish_in(
    tx: &mut sqlx::SqliteConnection,
    channel: i64,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE rechecks SET finished_at = ?1, before_id = 0 WHERE channel_id = ?2")
        .bind(now)
        .bind(channel)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// `ids` as a JSON array for `json_each` (written out: it cannot fail).
fn json_ids(ids: impl Iterator<Item = i32>) -> String {
    let list: Vec<String> = ids.map(|id| id.to_string()).collect();
    format!("[{}]", list.join(","))
}

/// The stored versions of `rows`' posts, by id.
async fn versions(
    tx: &mut sqlx::SqliteConnection,
    channel: i64,
    rows: &[MessageRow],
) -> Result<std::collections::HashMap<i32, i64>, StoreError> {
    let ids = json_ids(rows.iter().map(|m| m.id));
    let found: Vec<(i32, i64)> = sqlx::query_as(
        "SELECT id, version FROM messages WHERE channel_id = ? AND id IN (SELECT value FROM json_each(?))",
    )
    .bind(channel)
    .bind(ids)
    .fetch_all(&mut *tx)
    .await?;
    Ok(found.into_iter().collect())
}

#[cfg(test)]
#[path = "rechecks_tests.rs"]
mod tests;
