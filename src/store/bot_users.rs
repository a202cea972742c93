//! People who talk to the bot: their role (admins come from the configuration, not from here),
//! and the private chat alerts go to.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{Store, StoreError};

/// What was last read or written for each user, so that a message from a known user costs no
/// database write and no role query (every update is a message; at thousands per second the
/// single writer would be the bottleneck). Updated by every write here; cleared when the outbox
/// finds a chat unreachable.
#[derive(Default)]
pub(super) struct UserCache {
    map: Mutex<HashMap<i64, Cached>>,
}

#[derive(Default, Clone)]
struct Cached {
    /// The stored role; `Some(None)`: known to have no row.
    role: Option<Option<String>>,
    /// The name and chat last written by `touch_bot_user` (with blocked_bot = 0).
    touched: Option<(Option<String>, String, Option<i64>)>,
}

/// More users than this and the cache starts over (it only saves work).
const CACHE_MAX: usize = 100_000;

impl UserCache {
    fn with<R>(&self, user_id: i64, f: impl FnOnce(&mut Cached) -> R) -> R {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= CACHE_MAX && !map.contains_key(&user_id) {
            map.clear();
        }
        f(map.entry(user_id).or_default())
    }

    pub(super) fn clear(&self) {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

impl Store {
    /// The stored role of a user: `user`, `denied`, or `None` if never allowed or denied.
    pub async fn bot_user_role(&self, user_id: i64) -> Result<Option<String>, StoreError> {
        if let Some(role) = self.users.with(user_id, |c| c.role.clone()) {
            return Ok(role);
        }
        let role: Option<String> =
            sqlx::query_scalar("SELECT role FROM bot_users WHERE user_id = ?")
                .bind(user_id)
                .fetch_optional(self.reader())
                .await?;
        self.users.with(user_id, |c| c.role = Some(role.clone()));
        Ok(role)
    }

    /// Records how to reach a user who may use the bot (name and private chat, for alerts).
    pub async fn touch_bot_user(
        &self,
        user_id: i64,
        username: Option<&str>,
        first_name: &str,
        chat_id: Option<i64>,
    ) -> Result<(), StoreError> {
        let seen = (
            username.map(str::to_string),
            first_name.to_string(),
            chat_id,
        );
        if self
            .users
            .with(user_id, |c| c.touched.as_ref() == Some(&seen))
        {
            return Ok(());
        }
        let now = crate::time::unix_now();
        let mut tx = self.begin_write().await?;
        // A user who had blocked the bot and writes to it again (in private: `chat_id`) gets
        // their alerts back; a message in a group says nothing of the private chat.
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
               blocked_bot = CASE WHEN excluded.chat_id IS NULL THEN blocked_bot ELSE 0 END, \
               updated_at = excluded.updated_at",
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
        self.users.with(user_id, |c| {
            // A new row has the default role.
            if matches!(c.role, None | Some(None)) {
                c.role = None;
            }
            c.touched = Some(seen);
        });
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
        self.users
            .with(user_id, |c| c.role = Some(Some(role.to_string())));
        self.subscriptions_changed();
        Ok(())
    }
}
