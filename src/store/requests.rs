//! Channel requests: how `channels add` reaches a running daemon (see migration 0002).

use sqlx::Row;

use super::{Store, StoreError};

#[derive(Debug, Clone)]
pub struct ChannelRequest {
    pub id: i64,
    pub reference: String,
    pub since: Option<i64>,
    pub last: Option<i64>,
    pub requested_by: String,
    /// Follow without joining.
    pub no_join: bool,
    /// Follow its comments too.
    pub with_comments: bool,
    pub state: String,
    pub channel_id: Option<i64>,
    pub outcome: Option<String>,
}

fn request(r: &sqlx::sqlite::SqliteRow) -> Result<ChannelRequest, sqlx::Error> {
    Ok(ChannelRequest {
        id: r.try_get("id")?,
        reference: r.try_get("reference")?,
        since: r.try_get("since")?,
        last: r.try_get("last")?,
        requested_by: r.try_get("requested_by")?,
        no_join: r.try_get::<i64, _>("no_join")? != 0,
        with_comments: r.try_get::<i64, _>("with_comments")? != 0,
        state: r.try_get("state")?,
        channel_id: r.try_get("channel_id")?,
        outcome: r.try_get("outcome")?,
    })
}

const SELECT: &str = "SELECT id, reference, since, last, requested_by, no_join, with_comments, state, channel_id, outcome FROM channel_requests";

impl Store {
    pub async fn request_channel(
        &self,
        reference: &str,
        since: Option<i64>,
        last: Option<i64>,
        requested_by: &str,
        no_join: bool,
        with_comments: bool,
    ) -> Result<i64, StoreError> {
        let mut tx = self.begin_write().await?;
        let id = sqlx::query(
            "INSERT INTO channel_requests (reference, since, last, requested_by, no_join, with_comments, requested_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(reference)
        .bind(since)
        .bind(last)
        .bind(requested_by)
        .bind(no_join)
        .bind(with_comments)
        .bind(crate::time::unix_now())
        .execute(&mut *tx)
        .await?
        .last_insert_rowid();
        tx.commit().await?;
        Ok(id)
    }

    pub async fn pending_channel_requests(&self) -> Result<Vec<ChannelRequest>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SELECT} WHERE state = 'pending' ORDER BY id LIMIT 100"
        )))
        .fetch_all(self.reader())
        .await?;
        Ok(rows.iter().map(request).collect::<Result<_, _>>()?)
    }

    pub async fn channel_request(&self, id: i64) -> Result<Option<ChannelRequest>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} WHERE id = ?")))
            .bind(id)
            .fetch_optional(self.reader())
            .await?;
        Ok(row.as_ref().map(request).transpose()?)
    }

    /// An answer for the requester while the request stays pending (a join request waiting
    /// for an admin's approval): the requester is told and stops waiting; the daemon goes on.
    pub async fn note_channel_request(&self, id: i64, outcome: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE channel_requests SET outcome = ? WHERE id = ? AND state = 'pending'")
            .bind(outcome)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn finish_channel_request(
        &self,
        id: i64,
        channel_id: Option<i64>,
        outcome: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE channel_requests SET state = ?, channel_id = ?, outcome = ?, finished_at = ? WHERE id = ? AND state = 'pending'",
        )
        .bind(if channel_id.is_some() { "done" } else { "failed" })
        .bind(channel_id)
        .bind(outcome)
        .bind(crate::time::unix_now())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
