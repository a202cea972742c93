//! The refill queue (`refills`, migration 0018): ranges of a channel's posts the update stream
//! skipped, to fetch from history. Durable: a range is written in the transaction that stores
//! the post revealing it (`Store::ingest_live`), so a crash before the refill ran leaves the
//! range queued for the next start instead of a hole no one knows of.

use super::{Store, StoreError};

/// Posts of `channel` with ids strictly between `after` and `before` (0: up to the newest) to
/// fetch from history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Refill {
    pub channel: i64,
    pub after: i32,
    pub before: i32,
}

/// Queues `r` on `conn` (a range already queued stays as it is).
pub(super) async fn queue_in(
    conn: &mut sqlx::SqliteConnection,
    r: Refill,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO refills (channel_id, after_id, before_id, queued_at) \
         SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM channels WHERE id = ?1) \
         ON CONFLICT DO NOTHING",
    )
    .bind(r.channel)
    .bind(r.after)
    .bind(r.before)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Takes `r` off the queue on `conn`.
async fn delete_in(conn: &mut sqlx::SqliteConnection, r: Refill) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM refills WHERE channel_id = ?1 AND after_id = ?2 AND before_id = ?3")
        .bind(r.channel)
        .bind(r.after)
        .bind(r.before)
        .execute(conn)
        .await?;
    Ok(())
}

impl Store {
    /// Queues a range to refill (a range already queued stays as it is; a channel no longer
    /// in the database queues nothing).
    pub async fn queue_refill(&self, r: Refill) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        queue_in(&mut tx, r, crate::time::unix_now()).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The queued ranges, oldest first.
    pub async fn refills(&self) -> Result<Vec<Refill>, StoreError> {
        let rows: Vec<(i64, i64, i64)> = sqlx::query_as(
            "SELECT channel_id, after_id, before_id FROM refills ORDER BY queued_at, channel_id, after_id",
        )
        .fetch_all(self.reader())
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(channel, after, before)| {
                Some(Refill {
                    channel,
                    after: i32::try_from(after).ok()?,
                    before: i32::try_from(before).ok()?,
                })
            })
            .collect())
    }

    /// A range stored, or given up on: off the queue.
    pub async fn refill_done(&self, r: Refill) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        delete_in(&mut tx, r).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Telegram refused the range once more; after `limit` refusals it is dropped. Returns
    /// whether it was.
    pub async fn refill_refused(&self, r: Refill, limit: u32) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let refusals: Option<i64> = sqlx::query_scalar(
            "UPDATE refills SET refusals = refusals + 1 \
             WHERE channel_id = ?1 AND after_id = ?2 AND before_id = ?3 RETURNING refusals",
        )
        .bind(r.channel)
        .bind(r.after)
        .bind(r.before)
        .fetch_optional(&mut *tx)
        .await?;
        let dropped = refusals.is_none_or(|n| n >= i64::from(limit));
        if dropped {
            delete_in(&mut tx, r).await?;
        }
        tx.commit().await?;
        Ok(dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::Refill;
    use crate::store::{MessageRow, testing};

    #[tokio::test]
    async fn a_range_queued_with_its_post_survives_a_reopen_and_leaves_when_done() {
        let dir = tempfile::tempdir().unwrap();
        let store = testing::store(dir.path(), 1).await;
        store
            .add_channel(&testing::channel(1, None, "c"))
            .await
            .unwrap();
        let post = MessageRow {
            id: 90,
            kind: "post",
            date: 5,
            text: "after a jump".into(),
            ..Default::default()
        };
        let gap = Refill {
            channel: 1,
            after: 10,
            before: 90,
        };
        store.ingest_live(1, &[post], Some(gap)).await.unwrap();
        store.ingest_live(1, &[], Some(gap)).await.unwrap();
        store.close().await;
        let store = testing::store(dir.path(), 1).await;
        assert_eq!(store.refills().await.unwrap(), [gap]);
        assert!(!store.refill_refused(gap, 2).await.unwrap());
        assert!(store.refill_refused(gap, 2).await.unwrap(), "dropped at 2");
        assert!(store.refills().await.unwrap().is_empty());
        store.queue_refill(gap).await.unwrap();
        store.refill_done(gap).await.unwrap();
        assert!(store.refills().await.unwrap().is_empty());
        // Purging the channel takes its ranges with it.
        store.queue_refill(gap).await.unwrap();
        store.remove_channel(1, true).await.unwrap();
        assert!(store.refills().await.unwrap().is_empty());
        store.queue_refill(gap).await.unwrap();
        assert!(
            store.refills().await.unwrap().is_empty(),
            "no channel, no range"
        );
        store.close().await;
    }
}
