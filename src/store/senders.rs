//! The senders of supergroup messages (`users`), as Telegram last described them: `v_posts`
//! joins their names to `messages.from_id`.

use super::{Store, StoreError};

/// A user as an answer's `users` list gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub id: i64,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub username: Option<String>,
}

impl Store {
    /// Records users; a name Telegram left out (a `min` user) keeps the one stored.
    pub async fn upsert_users(&self, users: &[UserRow]) -> Result<(), StoreError> {
        if users.is_empty() {
            return Ok(());
        }
        let now = crate::time::unix_now();
        let mut tx = self.begin_write().await?;
        for u in users {
            sqlx::query(
                "INSERT INTO users (id, first_name, last_name, username, updated_at) VALUES (?, ?, ?, ?, ?) \
                 ON CONFLICT (id) DO UPDATE SET first_name = coalesce(excluded.first_name, first_name), \
                 last_name = coalesce(excluded.last_name, last_name), \
                 username = coalesce(excluded.username, username), updated_at = excluded.updated_at",
            )
            .bind(u.id)
            .bind(&u.first_name)
            .bind(&u.last_name)
            .bind(&u.username)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
