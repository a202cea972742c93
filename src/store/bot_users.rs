//! People who talk to the bot: their role (admins come from the configuration, not from here),
//! and the private chat alerts go to.

use super::{Store, StoreError};

impl Store {
    /// The stored role of a user: `user`, `denied`, or `None` if never allowed or denied.
    pub async fn bot_user_role(&self, user_id: i64) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT role FROM bot_users WHERE user_id = ?")
                .bind(user_id)
                .fetch_optional(self.reader())
                .await?,
        )
    }

    /// Records how to reach a user who may use the bot (name and private chat, for alerts).
    pub async fn touch_bot_user(
        &self,
        user_id: i64,
        username: Option<&str>,
        first_name: &str,
        chat_id: Option<i64>,
    ) -> Result<(), StoreError> {
        let now = crate::time::unix_now();
        let mut tx = self.begin_write().await?;
        // A user who had blocked the bot and writes again gets their alerts back.
        let was_blocked: Option<i64> =
            sqlx::query_scalar("SELECT blocked_bot FROM bot_users WHERE user_id = ?")
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?;
        sqlx::query(
            "INSERT INTO bot_users (user_id, username, first_name, chat_id, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?) \
             ON CONFLICT (user_id) DO UPDATE SET username = excluded.username, \
               first_name = excluded.first_name, chat_id = coalesce(excluded.chat_id, chat_id), \
               blocked_bot = 0, updated_at = excluded.updated_at",
        )
        .bind(user_id)
        .bind(username)
        .bind(first_name)
        .bind(chat_id)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        if was_blocked == Some(1) {
            self.subscriptions_changed();
        }
        Ok(())
    }

    /// Allows (`user`) or denies (`denied`) a user; denying also turns their alerts off.
    pub async fn set_bot_user_role(
        &self,
        user_id: i64,
        role: &str,
        by: i64,
    ) -> Result<(), StoreError> {
        let now = crate::time::unix_now();
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO bot_users (user_id, role, added_by, created_at, updated_at) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (user_id) DO UPDATE SET role = excluded.role, added_by = excluded.added_by, \
               updated_at = excluded.updated_at",
        )
        .bind(user_id)
        .bind(role)
        .bind(by)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if role == "denied" {
            sqlx::query("UPDATE subscriptions SET active = 0, updated_at = ? WHERE user_id = ?")
                .bind(now)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.subscriptions_changed();
        Ok(())
    }
}
