//! The guard's pacing windows between processes (`guard_windows`): what each method called
//! lately, and its FLOOD_WAIT pause, so that a restart does not start with a fresh budget.

use super::{Store, StoreError};
use crate::guard::pacing::Window;

impl Store {
    /// Replaces the saved windows with `windows` (a method not among them has nothing left).
    pub async fn save_guard_windows(&self, windows: &[Window]) -> Result<(), StoreError> {
        let now = crate::time::unix_now();
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM guard_windows")
            .execute(&mut *tx)
            .await?;
        for w in windows {
            let calls = serde_json::to_string(&w.calls).unwrap_or_else(|_| "[]".into());
            sqlx::query(
                "INSERT INTO guard_windows (method, calls, paused_until, updated_at) VALUES (?, ?, ?, ?)",
            )
            .bind(&w.method)
            .bind(calls)
            .bind(w.paused_until)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The saved windows. A row that cannot be read is left out with a warning: it only makes
    /// the first calls after a start less careful.
    pub async fn guard_windows(&self) -> Result<Vec<Window>, StoreError> {
        let rows: Vec<(String, String, Option<i64>)> =
            sqlx::query_as("SELECT method, calls, paused_until FROM guard_windows")
                .fetch_all(self.reader())
                .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(method, calls, paused_until)| {
                match serde_json::from_str::<Vec<i64>>(&calls) {
                    Ok(calls) => Some(Window {
                        method,
                        calls,
                        paused_until,
                    }),
                    Err(e) => {
                        tracing::warn!(%method, error = %e, "a saved pacing window cannot be read; it is dropped");
                        None
                    }
                }
            })
            .collect())
    }
}
