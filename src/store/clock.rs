//! Retries scheduled in wall-clock time, moved when the clock jumps back (see
//! [`crate::time::ClockWatch`]): a row scheduled for "in 10 s" just before the clock went
//! back an hour would otherwise wait an hour and 10 s.

use super::{Store, StoreError};

impl Store {
    /// The wall clock went back `secs` seconds: every retry scheduled after now moves back as
    /// much (never before now). Returns the rows moved.
    pub async fn clock_went_back(&self, secs: i64) -> Result<u64, StoreError> {
        let now = crate::time::unix_now();
        let mut tx = self.begin_write().await?;
        let mut moved = 0;
        for sql in [
            "UPDATE outbox SET next_attempt_at = max(?1, next_attempt_at - ?2) \
             WHERE state = 'pending' AND next_attempt_at > ?1",
            "UPDATE media SET retry_at = max(?1, retry_at - ?2) \
             WHERE state = 'pending' AND retry_at > ?1",
        ] {
            moved += sqlx::query(sql)
                .bind(now)
                .bind(secs)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok(moved)
    }
}
