//! The stored files as the `media` rows name them, for `media verify`, `media gc` and the
//! photos `/search` sends.

use super::{Store, StoreError};

impl Store {
    /// The stored photo of a post (or the thumbnail of its video), a JPEG: its path (relative
    /// to the state directory) and size.
    pub async fn media_photo(
        &self,
        channel_id: i64,
        message_id: i64,
    ) -> Result<Option<(String, i64)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT path, coalesce(size, 0) FROM media WHERE channel_id = ? AND message_id = ? \
             AND state = 'done' AND path IS NOT NULL AND (kind = 'photo' OR thumb = 1)",
        )
        .bind(channel_id)
        .bind(message_id)
        .fetch_optional(self.reader())
        .await?)
    }

    /// Every stored file a done row points to: `(path, sha256)`, each path once.
    pub async fn media_stored(&self) -> Result<Vec<(String, String)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT path, min(sha256) FROM media WHERE state = 'done' AND path IS NOT NULL GROUP BY path ORDER BY path",
        )
        .fetch_all(self.reader())
        .await?)
    }

    /// The rows whose file at `path` is missing or damaged go back to the queue (`why` kept
    /// as the reason until fetched again): how many.
    pub async fn media_requeue(&self, path: &str, why: &str) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(
            "UPDATE media SET state = 'pending', reason = ?, sha256 = NULL, path = NULL, fetched_at = NULL, \
             retry_at = NULL, updated_at = ? WHERE path = ? AND state = 'done'",
        )
        .bind(why)
        .bind(crate::time::unix_now())
        .bind(path)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n)
    }

    /// Whether a done row points to `path`.
    pub async fn media_path_used(&self, path: &str) -> Result<bool, StoreError> {
        Ok(sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM media WHERE path = ? AND state = 'done'",
        )
        .bind(path)
        .fetch_one(self.reader())
        .await?
            > 0)
    }

    /// Whether the partial download named `name` (`<channel>_<post>_<file>[_thumb].part`)
    /// belongs to a file still to fetch.
    pub async fn media_partial_wanted(&self, name: &str) -> Result<bool, StoreError> {
        let stem = name.strip_suffix(".part").unwrap_or(name);
        let (stem, thumb) = match stem.strip_suffix("_thumb") {
            Some(s) => (s, true),
            None => (stem, false),
        };
        let mut parts = stem.split('_');
        let (Some(ch), Some(post)) = (parts.next(), parts.next()) else {
            return Ok(false);
        };
        let (Ok(ch), Ok(post)) = (ch.parse::<i64>(), post.parse::<i64>()) else {
            return Ok(false);
        };
        Ok(sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM media WHERE channel_id = ? AND message_id = ? AND thumb = ? AND state = 'pending'",
        )
        .bind(ch)
        .bind(post)
        .bind(thumb)
        .fetch_one(self.reader())
        .await?
            > 0)
    }
}
