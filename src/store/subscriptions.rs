//! Keyword subscriptions: what a user of the bot wants to be alerted about.

use sqlx::Row;

use super::{Store, StoreError};

#[derive(Debug, Clone)]
pub struct Subscription {
    pub id: i64,
    pub user_id: i64,
    pub chat_id: i64,
    /// `words` (every word, any order, case-insensitive) or `regex`.
    pub kind: String,
    pub pattern: String,
    pub channel_id: Option<i64>,
    /// `@username` or title of the channel it is limited to.
    pub channel_name: Option<String>,
}

/// Subscriptions one user may hold.
pub const MAX_PER_USER: i64 = 50;

impl Store {
    /// Adds a subscription (or turns an identical one back on). Returns its id and whether it
    /// is new; `None` when the user already holds [`MAX_PER_USER`].
    pub async fn subscribe(
        &self,
        user_id: i64,
        chat_id: i64,
        kind: &str,
        pattern: &str,
        channel_id: Option<i64>,
    ) -> Result<Option<(i64, bool)>, StoreError> {
        let now = crate::time::unix_now();
        let mut tx = self.begin_write().await?;
        let existing: Option<(i64, i64)> = sqlx::query_as(
            "SELECT id, active FROM subscriptions WHERE user_id = ? AND kind = ? AND pattern = ? \
             AND coalesce(channel_id, 0) = coalesce(?, 0)",
        )
        .bind(user_id)
        .bind(kind)
        .bind(pattern)
        .bind(channel_id)
        .fetch_optional(&mut *tx)
        .await?;
        let active: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM subscriptions WHERE user_id = ? AND active = 1",
        )
        .bind(user_id)
        .fetch_one(&mut *tx)
        .await?;
        let result = match existing {
            Some((id, 1)) => Some((id, false)),
            _ if active >= MAX_PER_USER => None,
            Some((id, _)) => {
                sqlx::query(
                    "UPDATE subscriptions SET active = 1, chat_id = ?, updated_at = ? WHERE id = ?",
                )
                .bind(chat_id)
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                Some((id, true))
            }
            None => {
                let id = sqlx::query(
                    "INSERT INTO subscriptions (user_id, chat_id, kind, pattern, channel_id, created_at, updated_at) \
                     VALUES (?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(user_id)
                .bind(chat_id)
                .bind(kind)
                .bind(pattern)
                .bind(channel_id)
                .bind(now)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .last_insert_rowid();
                Some((id, true))
            }
        };
        tx.commit().await?;
        self.subscriptions_changed();
        Ok(result)
    }

    /// A user's active subscriptions, oldest first.
    pub async fn subscriptions_of(&self, user_id: i64) -> Result<Vec<Subscription>, StoreError> {
        let rows = sqlx::query(
            "SELECT s.id, s.user_id, s.chat_id, s.kind, s.pattern, s.channel_id, \
                    coalesce('@' || c.username, c.title) \
             FROM subscriptions s LEFT JOIN channels c ON c.id = s.channel_id \
             WHERE s.user_id = ? AND s.active = 1 ORDER BY s.id",
        )
        .bind(user_id)
        .fetch_all(self.reader())
        .await?;
        Ok(rows
            .iter()
            .map(|r| {
                Ok(Subscription {
                    id: r.try_get(0)?,
                    user_id: r.try_get(1)?,
                    chat_id: r.try_get(2)?,
                    kind: r.try_get(3)?,
                    pattern: r.try_get(4)?,
                    channel_id: r.try_get(5)?,
                    channel_name: r.try_get(6)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()?)
    }

    /// Removes one of the user's own subscriptions; false if it is not theirs or is gone.
    pub async fn unsubscribe(&self, user_id: i64, id: i64) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query("DELETE FROM subscriptions WHERE id = ? AND user_id = ?")
            .bind(id)
            .bind(user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        self.subscriptions_changed();
        Ok(n > 0)
    }
}
