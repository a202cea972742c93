//! Exporting posts: one record per post with every stored field, streamed from a read
//! connection (constant memory however many posts there are), for `/export` and
//! `tgparser export`.

use futures::TryStreamExt;
use serde::Serialize;
use serde_json::value::RawValue;
use sqlx::Row;

use super::{Store, StoreError, post_link};

/// Which posts.
#[derive(Debug, Clone, Default)]
pub struct ExportFilter {
    pub channel_id: Option<i64>,
    /// Unix seconds, inclusive.
    pub since: Option<i64>,
    /// Unix seconds, exclusive.
    pub until: Option<i64>,
    /// An FTS5 query; `None`: every post.
    pub query: Option<String>,
    /// Add every earlier version of each post.
    pub with_history: bool,
    /// At most this many posts.
    pub limit: Option<u64>,
}

/// An earlier version of a post.
#[derive(Debug, Serialize)]
pub struct Version {
    pub version: i64,
    pub text: String,
    pub entities: Option<Box<RawValue>>,
    pub edit_date: Option<String>,
}

/// One post as exported: the stored columns, dates as RFC 3339 UTC, JSON columns as JSON.
#[derive(Debug, Serialize)]
pub struct PostRecord {
    pub channel_id: i64,
    pub channel_username: Option<String>,
    pub channel_title: String,
    pub id: i64,
    pub link: String,
    pub kind: String,
    pub date: String,
    pub edit_date: Option<String>,
    pub text: String,
    pub entities: Option<Box<RawValue>>,
    pub views: Option<i64>,
    pub forwards: Option<i64>,
    pub replies: Option<i64>,
    pub reactions: Option<Box<RawValue>>,
    pub grouped_id: Option<i64>,
    pub reply_to_msg_id: Option<i64>,
    pub reply_to_top_id: Option<i64>,
    pub fwd_from: Option<Box<RawValue>>,
    pub post_author: Option<String>,
    pub pinned: bool,
    pub silent: bool,
    pub noforwards: bool,
    pub media_kind: Option<String>,
    pub media: Option<Box<RawValue>>,
    pub action: Option<Box<RawValue>>,
    pub convert_error: Option<String>,
    pub version: i64,
    pub deleted: bool,
    pub deleted_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<Version>>,
}

pub fn iso(ts: i64) -> String {
    crate::time::rfc3339(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(ts.max(0) as u64),
        false,
    )
}

/// A JSON column as raw JSON. The columns are CHECKed with `json_valid`; a value that still
/// does not parse (a row written by hand with CHECKs off) is exported as a JSON string.
fn raw(s: Option<String>) -> Option<Box<RawValue>> {
    let s = s?;
    RawValue::from_string(s.clone())
        .ok()
        .or_else(|| RawValue::from_string(serde_json::Value::String(s).to_string()).ok())
}

const COLUMNS: &str = "m.channel_id, c.username, c.title, m.id, m.kind, m.date, m.edit_date, m.text, \
     m.entities, m.views, m.forwards, m.replies, m.reactions, m.grouped_id, m.reply_to_msg_id, \
     m.reply_to_top_id, m.fwd_from, m.post_author, m.pinned, m.silent, m.noforwards, m.media_kind, \
     m.media, m.action, m.convert_error, m.version, m.deleted_at";

fn record(r: &sqlx::sqlite::SqliteRow) -> Result<PostRecord, sqlx::Error> {
    let channel_id: i64 = r.try_get(0)?;
    let username: Option<String> = r.try_get(1)?;
    let id: i64 = r.try_get(3)?;
    let deleted_at: Option<i64> = r.try_get(26)?;
    Ok(PostRecord {
        link: post_link(channel_id, username.as_deref(), id),
        channel_id,
        channel_username: username,
        channel_title: r.try_get(2)?,
        id,
        kind: r.try_get(4)?,
        date: iso(r.try_get(5)?),
        edit_date: r.try_get::<Option<i64>, _>(6)?.map(iso),
        text: r.try_get(7)?,
        entities: raw(r.try_get(8)?),
        views: r.try_get(9)?,
        forwards: r.try_get(10)?,
        replies: r.try_get(11)?,
        reactions: raw(r.try_get(12)?),
        grouped_id: r.try_get(13)?,
        reply_to_msg_id: r.try_get(14)?,
        reply_to_top_id: r.try_get(15)?,
        fwd_from: raw(r.try_get(16)?),
        post_author: r.try_get(17)?,
        pinned: r.try_get(18)?,
        silent: r.try_get(19)?,
        noforwards: r.try_get(20)?,
        media_kind: r.try_get(21)?,
        media: raw(r.try_get(22)?),
        action: raw(r.try_get(23)?),
        convert_error: r.try_get(24)?,
        version: r.try_get(25)?,
        deleted: deleted_at.is_some(),
        deleted_at: deleted_at.map(iso),
        history: None,
    })
}

impl Store {
    /// Streams the posts `f` selects (newest first for a query, else by channel and id) into
    /// `sink`, one at a time; `sink` returning false stops early. Returns how many were handed
    /// over. A malformed FTS5 query is a [`super::SearchError::Query`].
    pub async fn export<F>(&self, f: &ExportFilter, mut sink: F) -> Result<u64, super::SearchError>
    where
        F: FnMut(PostRecord) -> bool,
    {
        let sql = match &f.query {
            Some(_) => format!(
                "SELECT {COLUMNS} FROM messages_fts JOIN messages m ON m.pk = messages_fts.rowid \
                 JOIN channels c ON c.id = m.channel_id WHERE messages_fts MATCH ?1 \
                 AND (?2 IS NULL OR m.channel_id = ?2) AND (?3 IS NULL OR m.date >= ?3) \
                 AND (?4 IS NULL OR m.date < ?4) ORDER BY m.date DESC, m.id DESC LIMIT ?5"
            ),
            None => format!(
                "SELECT {COLUMNS} FROM messages m JOIN channels c ON c.id = m.channel_id \
                 WHERE ?1 IS NULL AND (?2 IS NULL OR m.channel_id = ?2) \
                 AND (?3 IS NULL OR m.date >= ?3) AND (?4 IS NULL OR m.date < ?4) \
                 ORDER BY m.channel_id, m.id LIMIT ?5"
            ),
        };
        let limit = f.limit.map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX));
        let mut conn = self.reader().acquire().await.map_err(StoreError::from)?;
        let mut history_conn = if f.with_history {
            Some(self.reader().acquire().await.map_err(StoreError::from)?)
        } else {
            None
        };
        // Only constant SQL is formatted in; every value is bound.
        let mut rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(f.query.as_deref().map(super::search::fold))
            .bind(f.channel_id)
            .bind(f.since)
            .bind(f.until)
            .bind(limit)
            .fetch(&mut *conn);
        let mut n = 0;
        loop {
            let row = match rows.try_next().await {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(e) => {
                    return Err(match (&f.query, super::search::fts_error(&e)) {
                        (Some(q), Some(reason)) => super::SearchError::Query {
                            query: q.clone(),
                            reason,
                        },
                        _ => super::SearchError::Store(e.into()),
                    });
                }
            };
            let mut rec = record(&row).map_err(StoreError::from)?;
            if let Some(hc) = history_conn.as_mut() {
                let versions = sqlx::query(
                    "SELECT version, text, entities, edit_date FROM message_versions \
                     WHERE channel_id = ? AND message_id = ? ORDER BY version",
                )
                .bind(rec.channel_id)
                .bind(rec.id)
                .fetch_all(&mut **hc)
                .await
                .map_err(StoreError::from)?;
                rec.history = Some(
                    versions
                        .iter()
                        .map(|v| {
                            Ok(Version {
                                version: v.try_get(0)?,
                                text: v.try_get(1)?,
                                entities: raw(v.try_get(2)?),
                                edit_date: v.try_get::<Option<i64>, _>(3)?.map(iso),
                            })
                        })
                        .collect::<Result<_, sqlx::Error>>()
                        .map_err(StoreError::from)?,
                );
            }
            n += 1;
            if !sink(rec) {
                break;
            }
        }
        Ok(n)
    }
}
