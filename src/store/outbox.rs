//! The outbox: messages the bot owes someone, delivered at least once. A row goes
//! `pending` → `sending` (committed before the Bot API call) → `sent` (committed right after the
//! answer), so after a crash the only rows whose delivery is unknown are those left `sending`;
//! they are sent again (at-least-once) and counted. Failures go back to `pending` with a later
//! `next_attempt_at`, or to `failed` when retrying cannot help. Alerts folded into a digest
//! become `folded` and point at it.

use std::collections::{BTreeMap, HashSet};

use sqlx::Row;

use super::{Store, StoreError};

/// A row due for delivery.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub id: i64,
    pub chat_id: i64,
    pub kind: String,
    pub payload: serde_json::Value,
    pub attempts: i64,
    pub created_ms: Option<i64>,
}

/// What an alert is about, for its message.
#[derive(Debug, Clone)]
pub struct AlertPost {
    pub channel_title: String,
    pub channel_username: Option<String>,
    pub text: String,
    pub deleted: bool,
}

/// Rows per state, for `/status` and `/metrics`.
pub type OutboxCounts = BTreeMap<String, i64>;

/// The outbox worker's read (`Store::outbox_due`: due time, chats to skip, limit). Through the
/// partial index of rows waiting, which the `state IN (...)` term lets SQLite use: without it
/// the read walked the table in id order, past every alert ever sent (55 ms a read with 300,000
/// sent, and the worker reads at least once a second).
const OUTBOX_DUE: &str = "SELECT id, chat_id, kind, payload, attempts, created_ms \
     FROM outbox INDEXED BY outbox_due \
     WHERE state IN ('pending', 'sending') AND state = 'pending' AND next_attempt_at <= ? \
       AND chat_id NOT IN (SELECT value FROM json_each(?)) \
     ORDER BY id LIMIT ?";

impl Store {
    /// Queues a plain message to `chat` (a `notice`), once per `dedupe_key`.
    pub async fn queue_notice(
        &self,
        chat: i64,
        dedupe_key: &str,
        text: &str,
    ) -> Result<(), StoreError> {
        let now = crate::time::unix_now();
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT OR IGNORE INTO outbox (dedupe_key, chat_id, kind, payload, next_attempt_at, created_at) \
             VALUES (?, ?, 'notice', ?, ?, ?)",
        )
        .bind(dedupe_key)
        .bind(chat)
        .bind(serde_json::json!({ "text": text }).to_string())
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.alerts.wake.notify_one();
        Ok(())
    }

    /// Wakes when alerts were queued by this process.
    pub async fn outbox_woken(&self) {
        self.alerts.wake.notified().await;
    }

    /// After a restart: rows left `sending` may or may not have been delivered. They go back to
    /// `pending` (at-least-once) and are counted. Returns how many.
    pub async fn outbox_recover(&self) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(
            "UPDATE outbox INDEXED BY outbox_due SET state = 'pending', \
             last_error = 'delivery unknown after a restart; sent again' \
             WHERE state IN ('pending', 'sending') AND state = 'sending'",
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n)
    }

    /// Pending rows due now, oldest first, except those of the chats in `skip` (the ones a sender
    /// is already delivering to: were their rows read too, a chat with thousands waiting would
    /// fill every read and hide the other chats' rows until it drained).
    pub async fn outbox_due(
        &self,
        now: i64,
        limit: i64,
        skip: &HashSet<i64>,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let skip = serde_json::to_string(skip).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let rows = sqlx::query(OUTBOX_DUE)
            .bind(now)
            .bind(skip)
            .bind(limit)
            .fetch_all(self.reader())
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let id: i64 = r.try_get("id")?;
            let payload: String = r.try_get("payload")?;
            out.push(OutboxRow {
                id,
                chat_id: r.try_get("chat_id")?,
                kind: r.try_get("kind")?,
                // The column is CHECKed as JSON; a row edited by hand may still hold nonsense,
                // which the sender reports as a failed row.
                payload: serde_json::from_str(&payload).unwrap_or(serde_json::Value::Null),
                attempts: r.try_get("attempts")?,
                created_ms: r.try_get("created_ms")?,
            });
        }
        Ok(out)
    }

    /// Pending alerts of one chat (due or not).
    pub async fn outbox_pending_alerts(&self, chat_id: i64) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT count(*) FROM outbox WHERE chat_id = ? AND state = 'pending' AND kind = 'alert'",
        )
        .bind(chat_id)
        .fetch_one(self.reader())
        .await?)
    }

    /// Folds every pending alert of `chat_id` into one digest row, in one transaction. Returns
    /// the digest row, or `None` if there was nothing to fold.
    pub async fn outbox_fold(
        &self,
        chat_id: i64,
        now: i64,
    ) -> Result<Option<OutboxRow>, StoreError> {
        let mut tx = self.begin_write().await?;
        let rows: Vec<(i64, String, Option<i64>)> = sqlx::query_as(
            "SELECT id, payload, created_ms FROM outbox \
             WHERE chat_id = ? AND state = 'pending' AND kind = 'alert' ORDER BY id",
        )
        .bind(chat_id)
        .fetch_all(&mut *tx)
        .await?;
        let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
            return Ok(None);
        };
        let (first_id, last_id) = (first.0, last.0);
        let created_ms = rows.iter().filter_map(|r| r.2).min();
        let posts: Vec<serde_json::Value> = rows
            .iter()
            .filter_map(|(_, p, _)| serde_json::from_str::<serde_json::Value>(p).ok())
            .map(|p| {
                serde_json::json!({
                    "channel_id": p["channel_id"],
                    "message_id": p["message_id"],
                    "pattern": p["pattern"],
                })
            })
            .collect();
        let payload = serde_json::json!({ "alerts": rows.len(), "posts": posts });
        let digest_id: i64 = sqlx::query_scalar(
            "INSERT INTO outbox (dedupe_key, chat_id, kind, payload, next_attempt_at, created_at, created_ms) \
             VALUES (?, ?, 'digest', ?, ?, ?, ?) RETURNING id",
        )
        .bind(format!("digest:{chat_id}:{first_id}-{last_id}"))
        .bind(chat_id)
        .bind(payload.to_string())
        .bind(now)
        .bind(now)
        .bind(created_ms)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE outbox SET state = 'folded', folded_into = ? \
             WHERE chat_id = ? AND state = 'pending' AND kind = 'alert' AND id BETWEEN ? AND ?",
        )
        .bind(digest_id)
        .bind(chat_id)
        .bind(first_id)
        .bind(last_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(OutboxRow {
            id: digest_id,
            chat_id,
            kind: "digest".into(),
            payload,
            attempts: 0,
            created_ms,
        }))
    }

    /// Claims a pending row for sending. `false`: someone else took it (folded, or gone).
    pub async fn outbox_claim(&self, id: i64) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(
            "UPDATE outbox SET state = 'sending', attempts = attempts + 1 \
             WHERE id = ? AND state = 'pending'",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n == 1)
    }

    pub async fn outbox_sent(&self, id: i64, message_id: i64, now: i64) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE outbox SET state = 'sent', sent_at = ?, sent_message_id = ?, last_error = NULL \
             WHERE id = ?",
        )
        .bind(now)
        .bind(message_id)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Back to `pending`, to be tried again at `next_at`.
    pub async fn outbox_retry(&self, id: i64, next_at: i64, error: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE outbox SET state = 'pending', next_attempt_at = ?, last_error = ? WHERE id = ?",
        )
        .bind(next_at)
        .bind(error)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The group `from` was upgraded to the supergroup `to` (Telegram's `migrate_to_chat_id`):
    /// its subscriptions and its undelivered messages (the one whose send was refused
    /// included) move there, in one transaction. Returns the messages moved.
    pub async fn outbox_chat_moved(&self, from: i64, to: i64) -> Result<u64, StoreError> {
        let now = crate::time::unix_now();
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE subscriptions SET chat_id = ?, updated_at = ? WHERE chat_id = ?")
            .bind(to)
            .bind(now)
            .bind(from)
            .execute(&mut *tx)
            .await?;
        let n = sqlx::query(
            "UPDATE outbox SET chat_id = ?, state = 'pending', next_attempt_at = ? \
             WHERE chat_id = ? AND state IN ('pending', 'sending')",
        )
        .bind(to)
        .bind(now)
        .bind(from)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query(
            "INSERT INTO audit_log (at, actor, action, detail) VALUES (?, 'bot', 'chat_moved', ?)",
        )
        .bind(now)
        .bind(serde_json::json!({"from": from, "to": to, "messages": n}).to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.subscriptions_changed();
        Ok(n)
    }

    /// Retrying cannot help this row.
    pub async fn outbox_failed(&self, id: i64, error: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE outbox SET state = 'failed', last_error = ? WHERE id = ?")
            .bind(error)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The chat cannot be written to (the user blocked the bot, the bot left the group): a
    /// user's alerts stop (they resume when the user writes to the bot again), a group's
    /// subscriptions end, and what was pending for the chat fails with `error`. Returns the rows
    /// failed.
    pub async fn outbox_chat_unreachable(
        &self,
        chat_id: i64,
        error: &str,
    ) -> Result<u64, StoreError> {
        let now = crate::time::unix_now();
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE bot_users SET blocked_bot = 1, updated_at = ? WHERE chat_id = ? OR user_id = ?",
        )
        .bind(now)
        .bind(chat_id)
        .bind(chat_id)
        .execute(&mut *tx)
        .await?;
        // A group the bot was removed from has no user to come back and write: its
        // subscriptions end.
        if chat_id < 0 {
            sqlx::query("UPDATE subscriptions SET active = 0, updated_at = ? WHERE chat_id = ?")
                .bind(now)
                .bind(chat_id)
                .execute(&mut *tx)
                .await?;
        }
        let n = sqlx::query(
            "UPDATE outbox SET state = 'failed', last_error = ? \
             WHERE chat_id = ? AND state IN ('pending', 'sending')",
        )
        .bind(error)
        .bind(chat_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        self.users.clear();
        self.subscriptions_changed();
        Ok(n)
    }

    /// The post an alert is about, with its channel.
    pub async fn alert_post(
        &self,
        channel_id: i64,
        message_id: i64,
    ) -> Result<Option<AlertPost>, StoreError> {
        let row: Option<(String, Option<String>, String, Option<i64>)> = sqlx::query_as(
            "SELECT c.title, c.username, m.text, m.deleted_at FROM messages m \
             JOIN channels c ON c.id = m.channel_id WHERE m.channel_id = ? AND m.id = ?",
        )
        .bind(channel_id)
        .bind(message_id)
        .fetch_optional(self.reader())
        .await?;
        Ok(row.map(|(title, username, text, deleted)| AlertPost {
            channel_title: title,
            channel_username: username,
            text,
            deleted: deleted.is_some(),
        }))
    }

    /// Channel titles and usernames by id (for digests).
    pub async fn channel_names(
        &self,
        ids: &[i64],
    ) -> Result<BTreeMap<i64, (String, Option<String>)>, StoreError> {
        let mut out = BTreeMap::new();
        for id in ids {
            if let Some((t, u)) = sqlx::query_as::<_, (String, Option<String>)>(
                "SELECT title, username FROM channels WHERE id = ?",
            )
            .bind(id)
            .fetch_optional(self.reader())
            .await?
            {
                out.insert(*id, (t, u));
            }
        }
        Ok(out)
    }

    /// Rows waiting to be delivered (through the partial index: cheap however many were sent).
    pub async fn outbox_waiting(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT count(*) FROM outbox INDEXED BY outbox_due WHERE state IN ('pending', 'sending')",
        )
        .fetch_one(self.reader())
        .await?)
    }

    /// Rows per state (a full count: for tools, not for every `/status`).
    /// Undelivered rows whose deliveries failed `failures` times or more (`attempts` counts
    /// claims; a row back to `pending` with an error failed each): how many, when the oldest was
    /// queued, and its last error. `None` when there are none.
    pub async fn outbox_failing(
        &self,
        failures: i64,
    ) -> Result<Option<(i64, i64, String)>, StoreError> {
        let row: (i64, Option<i64>, Option<String>) = sqlx::query_as(
            // `state IN (…)` as the partial index `outbox_due` says it, so it is used; only
            // `pending` rows have failed (a `sending` one is in flight).
            "SELECT count(*), min(created_at), \
               (SELECT last_error FROM outbox WHERE state IN ('pending', 'sending') \
                  AND state = 'pending' AND attempts >= ?1 AND last_error IS NOT NULL \
                  ORDER BY created_at, id LIMIT 1) \
             FROM outbox WHERE state IN ('pending', 'sending') AND state = 'pending' \
               AND attempts >= ?1 AND last_error IS NOT NULL",
        )
        .bind(failures)
        .fetch_one(self.reader())
        .await?;
        Ok(match row {
            (n, Some(oldest), error) if n > 0 => Some((n, oldest, error.unwrap_or_default())),
            _ => None,
        })
    }

    pub async fn outbox_counts(&self) -> Result<OutboxCounts, StoreError> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT state, count(*) FROM outbox GROUP BY state")
                .fetch_all(self.reader())
                .await?;
        Ok(rows.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing;

    /// SQLite's plan for `sql`, one line per step.
    async fn plan(store: &Store, sql: &str) -> String {
        let rows: Vec<(i64, i64, i64, String)> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
                .bind(0_i64)
                .bind("[]")
                .bind(10_i64)
                .fetch_all(store.reader())
                .await
                .unwrap();
        rows.into_iter().map(|r| r.3).collect::<Vec<_>>().join("\n")
    }

    #[tokio::test]
    async fn the_due_read_no_longer_walks_every_alert_ever_sent() {
        let dir = tempfile::tempdir().unwrap();
        let store = testing::store(dir.path(), 1).await;
        let plan = plan(&store, OUTBOX_DUE).await;
        assert!(plan.contains("USING INDEX outbox_due"), "{plan}");
        assert!(!plan.contains("SCAN outbox"), "{plan}");

        // And it still reads the right rows: due, pending, not of a skipped chat, oldest first.
        let mut w = store.begin_write().await.unwrap();
        sqlx::query(
            "INSERT INTO outbox (id, dedupe_key, chat_id, kind, payload, state, next_attempt_at, created_at) VALUES \
             (1, 'a', 7, 'notice', '{}', 'sent', 0, 0), \
             (2, 'b', 7, 'notice', '{}', 'pending', 50, 0), \
             (3, 'c', 8, 'notice', '{}', 'pending', 200, 0), \
             (4, 'd', 9, 'notice', '{}', 'sending', 0, 0), \
             (5, 'e', 9, 'notice', '{}', 'pending', 0, 0), \
             (6, 'f', 7, 'notice', '{}', 'pending', 100, 0), \
             (7, 'g', 10, 'notice', '{}', 'failed', 0, 0)",
        )
        .execute(&mut *w)
        .await
        .unwrap();
        w.commit().await.unwrap();
        let ids = |rows: Vec<OutboxRow>| rows.into_iter().map(|r| r.id).collect::<Vec<_>>();
        let none = HashSet::new();
        assert_eq!(
            ids(store.outbox_due(100, 10, &none).await.unwrap()),
            vec![2, 5, 6]
        );
        assert_eq!(
            ids(store.outbox_due(100, 2, &none).await.unwrap()),
            vec![2, 5]
        );
        let skip: HashSet<i64> = [7].into();
        assert_eq!(
            ids(store.outbox_due(300, 10, &skip).await.unwrap()),
            vec![3, 5]
        );
        assert_eq!(store.outbox_recover().await.unwrap(), 1);
        assert_eq!(
            ids(store.outbox_due(0, 10, &none).await.unwrap()),
            vec![4, 5]
        );
        store.close().await;
    }
}
