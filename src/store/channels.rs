//! The channels the parser follows, and their backfill progress.

use sqlx::Row;

use super::{Store, StoreError};

/// A channel to add, as resolved from Telegram.
#[derive(Debug, Clone)]
pub struct NewChannel {
    pub id: i64,
    pub access_hash: Option<i64>,
    pub username: Option<String>,
    pub title: String,
    pub about: Option<String>,
    pub participants: Option<i64>,
    pub kind: &'static str,
    /// Backfill stops at posts older than this (Unix seconds).
    pub since: Option<i64>,
    /// Backfill stops after this many posts.
    pub last: Option<i64>,
    pub added_by: Option<i64>,
    /// `joined` (the account is a member), `join` (to be joined) or `no_join`.
    pub membership: &'static str,
    /// Follow its comments too.
    pub with_comments: bool,
    /// For a discussion group: the channel it discusses.
    pub discussion_of: Option<i64>,
}

impl NewChannel {
    /// Followed without joining (unless the account is a member already).
    pub fn without_joining(mut self) -> NewChannel {
        if self.membership != "joined" {
            self.membership = "no_join";
        }
        self
    }

    /// From the channel object Telegram returned when resolving it (`left` is Telegram's flag
    /// for "not a member").
    pub fn from_tl(
        c: &grammers_client::tl::types::Channel,
        since: Option<i64>,
        last: Option<i64>,
    ) -> NewChannel {
        NewChannel {
            id: c.id,
            access_hash: c.access_hash,
            username: c.username.clone(),
            title: c.title.clone(),
            about: None,
            participants: c.participants_count.map(i64::from),
            kind: if c.megagroup {
                "megagroup"
            } else if c.gigagroup {
                "gigagroup"
            } else {
                "broadcast"
            },
            since,
            last,
            added_by: None,
            membership: if c.left { "join" } else { "joined" },
            with_comments: false,
            discussion_of: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ChannelRecord {
    pub id: i64,
    pub access_hash: Option<i64>,
    pub username: Option<String>,
    pub title: String,
    pub state: String,
    pub backfill_state: String,
    pub backfill_since: Option<i64>,
    pub backfill_limit: Option<i64>,
    pub backfill_cursor: Option<i64>,
    pub backfill_top_id: Option<i64>,
    pub backfill_done_count: i64,
    pub last_post_at: Option<i64>,
    pub stored: i64,
    pub last_error: Option<String>,
    /// `join`, `joined`, `requested`, `too_many`, `no_join` (docs/SCHEMA.md).
    pub membership: String,
    pub with_comments: bool,
    /// For a discussion group followed for its comments: the channel it discusses.
    pub discussion_of: Option<i64>,
}

impl ChannelRecord {
    /// Backfill progress in percent, estimated from ids (deleted posts leave holes, so the
    /// estimate errs low until the end, where `done` makes it exact).
    pub fn backfill_percent(&self) -> f64 {
        if self.backfill_state == "done" {
            return 100.0;
        }
        match (self.backfill_top_id, self.backfill_cursor) {
            (Some(top), Some(cur)) if top > 0 => {
                let floor = 1.0;
                (((top - cur + 1) as f64) / (top as f64 - floor + 1.0) * 100.0).clamp(0.0, 99.9)
            }
            _ => 0.0,
        }
    }

    /// How the channel is followed, in words (`channels list`, `/channels`).
    pub fn followed_by(&self) -> &'static str {
        match self.membership.as_str() {
            "joined" => "pushed+polled",
            "join" => "polled, joining",
            "requested" => "polled, join requested",
            "too_many" => "polled, channel limit",
            _ => "polled",
        }
    }

    pub fn display_name(&self) -> String {
        match &self.username {
            Some(u) => format!("@{u}"),
            None => self.id.to_string(),
        }
    }
}

const SELECT: &str = "SELECT c.id, c.access_hash, c.username, c.title, c.state, c.backfill_state, c.backfill_since, \
    c.backfill_limit, c.backfill_cursor, c.backfill_top_id, c.backfill_done_count, c.last_post_at, \
    c.post_count, c.last_error, c.membership, c.with_comments, c.discussion_of FROM channels c";

fn record(r: &sqlx::sqlite::SqliteRow) -> Result<ChannelRecord, sqlx::Error> {
    Ok(ChannelRecord {
        id: r.try_get(0)?,
        access_hash: r.try_get(1)?,
        username: r.try_get(2)?,
        title: r.try_get(3)?,
        state: r.try_get(4)?,
        backfill_state: r.try_get(5)?,
        backfill_since: r.try_get(6)?,
        backfill_limit: r.try_get(7)?,
        backfill_cursor: r.try_get(8)?,
        backfill_top_id: r.try_get(9)?,
        backfill_done_count: r.try_get(10)?,
        last_post_at: r.try_get(11)?,
        stored: r.try_get(12)?,
        last_error: r.try_get(13)?,
        membership: r.try_get(14)?,
        with_comments: r.try_get(15)?,
        discussion_of: r.try_get(16)?,
    })
}

impl Store {
    /// Adds a channel, or refreshes its title and access hash if it is known; a removed channel
    /// comes back as active. Returns whether it was new.
    pub async fn add_channel(&self, c: &NewChannel) -> Result<bool, StoreError> {
        let now = crate::time::unix_now();
        let mut tx = self.begin_write().await?;
        let existed: Option<i64> = sqlx::query_scalar("SELECT id FROM channels WHERE id = ?")
            .bind(c.id)
            .fetch_optional(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO channels (id, access_hash, username, title, about, participants_count, kind, \
             backfill_since, backfill_limit, added_at, added_by, updated_at, membership, \
             with_comments, discussion_of) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (id) DO UPDATE SET access_hash = coalesce(excluded.access_hash, access_hash), \
             username = excluded.username, title = excluded.title, about = coalesce(excluded.about, about), \
             participants_count = coalesce(excluded.participants_count, participants_count), \
             state = CASE WHEN state IN ('removed', 'private') THEN 'active' ELSE state END, \
             membership = CASE WHEN excluded.membership IN ('joined', 'no_join') THEN excluded.membership \
                 WHEN membership = 'no_join' THEN 'join' ELSE membership END, \
             with_comments = max(with_comments, excluded.with_comments), \
             discussion_of = coalesce(excluded.discussion_of, discussion_of), \
             updated_at = excluded.updated_at",
        )
        .bind(c.id)
        .bind(c.access_hash)
        .bind(&c.username)
        .bind(&c.title)
        .bind(&c.about)
        .bind(c.participants)
        .bind(c.kind)
        .bind(c.since)
        .bind(c.last)
        .bind(now)
        .bind(c.added_by)
        .bind(now)
        .bind(c.membership)
        .bind(c.with_comments)
        .bind(c.discussion_of)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(existed.is_none())
    }

    pub async fn channels(&self) -> Result<Vec<ChannelRecord>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SELECT} ORDER BY c.added_at, c.id"
        )))
        .fetch_all(self.reader())
        .await?;
        Ok(rows.iter().map(record).collect::<Result<_, _>>()?)
    }

    /// Finds a channel by `@username`, `username`, a t.me link or a numeric id.
    pub async fn find_channel(&self, key: &str) -> Result<Option<ChannelRecord>, StoreError> {
        let key = normalize_ref(key);
        let row = match key.parse::<i64>() {
            Ok(id) => {
                sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} WHERE c.id = ?")))
                    .bind(id)
                    .fetch_optional(self.reader())
                    .await?
            }
            Err(_) => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "{SELECT} WHERE c.username = ? COLLATE NOCASE"
                )))
                .bind(&key)
                .fetch_optional(self.reader())
                .await?
            }
        };
        Ok(row.as_ref().map(record).transpose()?)
    }

    /// The highest message id stored for a channel (live follow notices a jump past it).
    pub async fn newest_id(&self, channel: i64) -> Result<Option<i64>, StoreError> {
        let id: Option<i64> =
            sqlx::query_scalar("SELECT max(id) FROM messages WHERE channel_id = ?")
                .bind(channel)
                .fetch_one(self.reader())
                .await?;
        Ok(id)
    }

    pub async fn set_channel_state(
        &self,
        id: i64,
        state: &str,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE channels SET state = ?, last_error = ?, updated_at = ? WHERE id = ?")
            .bind(state)
            .bind(error)
            .bind(crate::time::unix_now())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// How busy each channel was: its posts published since `since` (Unix seconds), and over
    /// how many seconds (from `since`, or from its first stored post if that is later: a
    /// channel an hour old with 20 posts posts 20 an hour, not 20 a day). A channel with no
    /// post stored at all is left out (nothing is known of it).
    pub async fn posting_since(
        &self,
        since: i64,
    ) -> Result<std::collections::HashMap<i64, (i64, i64)>, StoreError> {
        let now = crate::time::unix_now();
        // Each part is read from the (channel_id, date) index.
        let rows: Vec<(i64, i64, Option<i64>, bool)> = sqlx::query_as(
            "SELECT c.id,
                    (SELECT count(*) FROM messages m WHERE m.channel_id = c.id AND m.date >= ?1),
                    (SELECT min(date) FROM messages m WHERE m.channel_id = c.id AND m.date >= ?1),
                    EXISTS (SELECT 1 FROM messages o WHERE o.channel_id = c.id AND o.date < ?1)
             FROM channels c",
        )
        .bind(since)
        .fetch_all(self.reader())
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, n, first, older)| {
                let from = match (older, first) {
                    (true, _) => since,
                    (false, Some(first)) => first.max(since),
                    (false, None) => return None,
                };
                Some((id, (n, (now - from).max(1))))
            })
            .collect())
    }

    /// Records a channel's username and title as Telegram now gives them. A change keeps the
    /// old ones in `channel_names`. Returns whether anything changed.
    pub async fn note_channel_names(
        &self,
        id: i64,
        username: Option<&str>,
        title: &str,
    ) -> Result<bool, StoreError> {
        let now = crate::time::unix_now();
        let mut tx = self.begin_write().await?;
        let old: Option<(Option<String>, String)> =
            sqlx::query_as("SELECT username, title FROM channels WHERE id = ?")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((old_username, old_title)) = old else {
            return Ok(false);
        };
        if old_username.as_deref() == username && old_title == title {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO channel_names (channel_id, username, title, until) VALUES (?, ?, ?, ?)",
        )
        .bind(id)
        .bind(&old_username)
        .bind(&old_title)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        // Another followed channel may hold the name still (it changed too, unseen yet): the
        // newer claim wins, the other is corrected when it is next seen.
        if let Some(u) = username {
            sqlx::query(
                "UPDATE channels SET username = NULL WHERE username = ? COLLATE NOCASE AND id != ?",
            )
            .bind(u)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("UPDATE channels SET username = ?, title = ?, updated_at = ? WHERE id = ?")
            .bind(username)
            .bind(title)
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// A new access hash for a channel (the old one was refused).
    pub async fn set_access_hash(&self, id: i64, hash: i64) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE channels SET access_hash = ?, updated_at = ? WHERE id = ?")
            .bind(hash)
            .bind(crate::time::unix_now())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Follows a channel's comments from now on.
    pub async fn set_with_comments(&self, id: i64) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE channels SET with_comments = 1, updated_at = ? WHERE id = ?")
            .bind(crate::time::unix_now())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The newest stored post of a channel (its comment thread names the discussion group).
    pub async fn newest_post(&self, channel: i64) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT max(id) FROM messages WHERE channel_id = ? AND kind = 'post' AND deleted_at IS NULL",
        )
        .bind(channel)
        .fetch_one(self.reader())
        .await?)
    }

    /// Records whether the account is a member of a channel (`membership`, docs/SCHEMA.md).
    pub async fn set_membership(&self, id: i64, membership: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE channels SET membership = ?, updated_at = ? WHERE id = ?")
            .bind(membership)
            .bind(crate::time::unix_now())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Stops following a channel; with `purge`, also deletes its stored posts.
    pub async fn remove_channel(&self, id: i64, purge: bool) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let n = if purge {
            let n = sqlx::query("DELETE FROM messages WHERE channel_id = ?")
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            // The deleted posts' words leave the index in the same transaction.
            super::index::settle_all(&mut tx).await?;
            sqlx::query("DELETE FROM channels WHERE id = ?")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            n
        } else {
            sqlx::query("UPDATE channels SET state = 'removed', updated_at = ? WHERE id = ?")
                .bind(crate::time::unix_now())
                .bind(id)
                .execute(&mut *tx)
                .await?;
            0
        };
        tx.commit().await?;
        Ok(n)
    }
}

/// The hash of an invite link: `https://t.me/+HASH`, `t.me/joinchat/HASH`,
/// `tg://join?invite=HASH` (core.telegram.org/api/links#chat-invite-links). `None` for anything
/// else.
pub fn invite_hash(input: &str) -> Option<String> {
    let s = input.trim();
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    let s = s.strip_prefix("www.").unwrap_or(s);
    let rest = ["t.me/", "telegram.me/", "telegram.dog/"]
        .iter()
        .find_map(|d| s.strip_prefix(d));
    let hash = match rest {
        Some(r) => r
            .strip_prefix('+')
            .or_else(|| r.strip_prefix("joinchat/"))?,
        None => s.strip_prefix("tg://join?invite=")?,
    };
    let hash = hash.split(['/', '?', '&', '#']).next().unwrap_or("");
    let valid = (4..=64).contains(&hash.len())
        && hash
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    valid.then(|| hash.to_string())
}

/// `@name`, `name`, `https://t.me/name`, `t.me/name/123`, `tg://resolve?domain=name` → `name`;
/// numbers stay numbers (a Bot API style `-100…` id becomes the bare channel id).
pub fn normalize_ref(input: &str) -> String {
    let s = input.trim();
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    let s = s.strip_prefix("www.").unwrap_or(s);
    let s = s
        .strip_prefix("t.me/")
        .or_else(|| s.strip_prefix("telegram.me/"))
        .or_else(|| s.strip_prefix("telegram.dog/"))
        .map(|rest| rest.trim_start_matches("s/"))
        .unwrap_or(s);
    let s = s.strip_prefix("tg://resolve?domain=").unwrap_or(s);
    let s = s
        .split(['/', '?', '&'])
        .next()
        .unwrap_or("")
        .trim_start_matches('@');
    if let Ok(n) = s.parse::<i64>() {
        if n < -1_000_000_000_000 {
            return (-n - 1_000_000_000_000).to_string();
        }
        return n.to_string();
    }
    s.to_string()
}

#[cfg(test)]
mod tests {
    use super::normalize_ref;

    #[test]
    fn invite_links_in_every_form_and_nothing_else() {
        for r in [
            "https://t.me/+AbCd_ef-12345678",
            "t.me/+AbCd_ef-12345678",
            "https://t.me/joinchat/AbCd_ef-12345678",
            "tg://join?invite=AbCd_ef-12345678",
            " https://telegram.me/+AbCd_ef-12345678/ ",
        ] {
            assert_eq!(
                super::invite_hash(r).as_deref(),
                Some("AbCd_ef-12345678"),
                "{r}"
            );
        }
        for r in [
            "@durov",
            "t.me/durov",
            "t.me/+",
            "t.me/+a b",
            "t.me/joinchat/",
            "+12345",
        ] {
            assert_eq!(super::invite_hash(r), None, "{r}");
        }
    }

    #[test]
    fn channel_references_in_every_common_form() {
        for r in [
            "@durov",
            "durov",
            "https://t.me/durov",
            "t.me/durov/123",
            "https://t.me/s/durov",
            "tg://resolve?domain=durov",
            " @durov ",
        ] {
            assert_eq!(normalize_ref(r), "durov", "{r}");
        }
        assert_eq!(normalize_ref("-1001234567890"), "1234567890");
        assert_eq!(normalize_ref("1234567890"), "1234567890");
    }
}
