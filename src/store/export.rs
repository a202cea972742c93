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

    /// JSON lines of the posts `f` selects, ordered by channel and id, handed to `sink` in
    /// batches (text of up to [`JSONL_BATCH`] lines, each ending in a newline, and how many).
    /// SQLite writes the JSON itself (`json_object`), a batch per query with keyset paging, so
    /// the per-row cost of crossing into Rust is paid once per batch: this is what makes a
    /// million-post export take seconds. The objects have the same keys, in the same order,
    /// as [`PostRecord`]'s. `sink` returning false stops early.
    pub async fn export_jsonl<F>(
        &self,
        f: &ExportFilter,
        mut sink: F,
    ) -> Result<u64, super::SearchError>
    where
        F: FnMut(&str, u64) -> bool,
    {
        const DATE: &str = "'%Y-%m-%dT%H:%M:%SZ'";
        let history = if f.with_history {
            format!(
                ", 'history', (SELECT json_group_array(json_object('version', v.version, 'text', v.text, \
                 'entities', json(v.entities), 'edit_date', strftime({DATE}, v.edit_date, 'unixepoch'))) \
                 FROM (SELECT * FROM message_versions v WHERE v.channel_id = m.channel_id \
                 AND v.message_id = m.id ORDER BY v.version) v)"
            )
        } else {
            String::new()
        };
        let bool_json = |col: &str| format!("json(CASE WHEN {col} THEN 'true' ELSE 'false' END)");
        let sql = format!(
            "WITH page AS MATERIALIZED (\
               SELECT m.channel_id AS cid, m.id AS mid, json_object(\
                 'channel_id', m.channel_id, 'channel_username', c.username, 'channel_title', c.title, \
                 'id', m.id, 'link', CASE WHEN c.username IS NOT NULL \
                   THEN 'https://t.me/' || c.username || '/' || m.id \
                   ELSE 'https://t.me/c/' || m.channel_id || '/' || m.id END, \
                 'kind', m.kind, 'date', strftime({DATE}, m.date, 'unixepoch'), \
                 'edit_date', strftime({DATE}, m.edit_date, 'unixepoch'), 'text', m.text, \
                 'entities', json(m.entities), 'views', m.views, 'forwards', m.forwards, \
                 'replies', m.replies, 'reactions', json(m.reactions), 'grouped_id', m.grouped_id, \
                 'reply_to_msg_id', m.reply_to_msg_id, 'reply_to_top_id', m.reply_to_top_id, \
                 'fwd_from', json(m.fwd_from), 'post_author', m.post_author, \
                 'pinned', {pinned}, 'silent', {silent}, 'noforwards', {noforwards}, \
                 'media_kind', m.media_kind, 'media', json(m.media), 'action', json(m.action), \
                 'convert_error', m.convert_error, 'version', m.version, \
                 'deleted', {deleted}, 'deleted_at', strftime({DATE}, m.deleted_at, 'unixepoch'){history}) AS j \
               FROM messages m JOIN channels c ON c.id = m.channel_id \
               WHERE (m.channel_id, m.id) > (?1, ?2) \
                 AND (?3 IS NULL OR m.channel_id = ?3) AND (?4 IS NULL OR m.date >= ?4) \
                 AND (?5 IS NULL OR m.date < ?5) \
                 AND (?6 IS NULL OR m.pk IN (SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?6)) \
               ORDER BY m.channel_id, m.id LIMIT ?7) \
             SELECT (SELECT group_concat(j, char(10)) FROM (SELECT j FROM page ORDER BY cid, mid)), \
                    (SELECT cid FROM page ORDER BY cid DESC, mid DESC LIMIT 1), \
                    (SELECT mid FROM page ORDER BY cid DESC, mid DESC LIMIT 1), \
                    (SELECT count(*) FROM page)",
            pinned = bool_json("m.pinned"),
            silent = bool_json("m.silent"),
            noforwards = bool_json("m.noforwards"),
            deleted = bool_json("m.deleted_at IS NOT NULL"),
        );
        let query = f.query.as_deref().map(super::search::fold);
        let mut after: (i64, i64) = (i64::MIN, i64::MIN);
        let mut total = 0u64;
        let mut conn = self.reader().acquire().await.map_err(StoreError::from)?;
        let mut batch = String::new();
        loop {
            let limit = match f.limit {
                Some(l) => JSONL_BATCH.min(l.saturating_sub(total)),
                None => JSONL_BATCH,
            };
            if limit == 0 {
                break;
            }
            // Only constant SQL is formatted in; every value is bound.
            let row: (Option<String>, Option<i64>, Option<i64>, i64) =
                match sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
                    .bind(after.0)
                    .bind(after.1)
                    .bind(f.channel_id)
                    .bind(f.since)
                    .bind(f.until)
                    .bind(query.as_deref())
                    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                    .fetch_one(&mut *conn)
                    .await
                {
                    Ok(r) => r,
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
            let (Some(text), Some(cid), Some(mid), n) = row else {
                break;
            };
            batch.clear();
            batch.push_str(&text);
            batch.push('\n');
            let n = u64::try_from(n).unwrap_or(0);
            total += n;
            if !sink(&batch, n) || n < limit {
                break;
            }
            after = (cid, mid);
        }
        Ok(total)
    }
}

/// Posts per query of [`Store::export_jsonl`].
pub const JSONL_BATCH: u64 = 2_000;
