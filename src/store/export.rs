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
    /// Add each post's stored file (`media_path`: this directory, the state directory, joined
    /// with the `media` row's path) and how its download stands (`media_state`).
    pub media_root: Option<String>,
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
    /// The sender, in a supergroup (`messages.from_id`).
    pub from_id: Option<i64>,
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
    /// With [`ExportFilter::media_root`]: the stored file's absolute path (`Some(None)`: none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_path: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_state: Option<Option<String>>,
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
     m.media, m.action, m.convert_error, m.version, m.deleted_at, m.from_id";

/// The post's `media` row, for [`ExportFilter::media_root`]: the join and its columns (none
/// when not asked for, so exports without them cost nothing more).
fn media_join(f: &ExportFilter) -> (&'static str, &'static str) {
    if f.media_root.is_some() {
        (
            "LEFT JOIN media md ON md.channel_id = m.channel_id AND md.message_id = m.id",
            ", md.path, md.state",
        )
    } else {
        ("", "")
    }
}

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
        from_id: r.try_get(27)?,
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
        media_path: None,
        media_state: None,
        history: None,
    })
}

/// Adds the media columns to `rec` when `root` asks for them.
fn with_media(
    rec: &mut PostRecord,
    r: &sqlx::sqlite::SqliteRow,
    root: Option<&str>,
) -> Result<(), sqlx::Error> {
    let Some(root) = root else { return Ok(()) };
    let path: Option<String> = r.try_get(28)?;
    let state: Option<String> = r.try_get(29)?;
    rec.media_path = Some(
        path.filter(|_| state.as_deref() == Some("done"))
            .map(|p| format!("{root}/{p}")),
    );
    rec.media_state = Some(state);
    Ok(())
}

impl Store {
    /// Streams the posts `f` selects (newest first for a query, else by channel and id) into
    /// `sink`, one at a time; `sink` returning false stops early. Returns how many were handed
    /// over. A malformed FTS5 query is a [`super::SearchError::Query`].
    pub async fn export<F>(&self, f: &ExportFilter, mut sink: F) -> Result<u64, super::SearchError>
    where
        F: FnMut(PostRecord) -> bool,
    {
        let (join, media_cols) = media_join(f);
        let fts = self.export_fts(f).await?;
        let sql = match &f.query {
            Some(_) => format!(
                "SELECT {COLUMNS}{media_cols} FROM messages_fts JOIN messages m ON m.search_key = messages_fts.rowid \
                 JOIN channels c ON c.id = m.channel_id {join} WHERE messages_fts MATCH ?1 \
                 AND (?2 IS NULL OR m.channel_id = ?2) AND (?3 IS NULL OR m.date >= ?3) \
                 AND (?4 IS NULL OR m.date < ?4) ORDER BY messages_fts.rowid DESC LIMIT ?5"
            ),
            None => format!(
                "SELECT {COLUMNS}{media_cols} FROM messages m JOIN channels c ON c.id = m.channel_id {join} \
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
            .bind(fts.as_deref())
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
                    return Err(query_error(f, e));
                }
            };
            let mut rec = record(&row).map_err(StoreError::from)?;
            with_media(&mut rec, &row, f.media_root.as_deref()).map_err(StoreError::from)?;
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

    /// JSON lines of the posts `f` selects — by channel and id, or newest first for a query,
    /// as [`Store::export`] orders them — handed to `sink` in batches (text of up to
    /// [`JSONL_BATCH`] lines, each ending in a newline, and how many). SQLite writes the JSON
    /// itself (`json_object`), a batch per query with keyset paging, so the per-row cost of
    /// crossing into Rust is paid once per batch; without a query, [`BATCHES_IN_FLIGHT`]
    /// batches are written at once on as many connections while another finds where the next
    /// batch ends.
    /// The objects have the same keys, in the same order, with the same values as
    /// [`PostRecord`]'s. `sink` returning false stops early.
    pub async fn export_jsonl<F>(
        &self,
        f: &ExportFilter,
        mut sink: F,
    ) -> Result<u64, super::SearchError>
    where
        F: FnMut(&[u8], u64) -> bool,
    {
        let (join, _) = media_join(f);
        if f.query.is_some() {
            let object = json_object_sql(f.with_history, f.media_root.as_ref().map(|_| "?7"));
            return self.export_jsonl_matches(f, &object, sink).await;
        }
        let object = json_object_sql(f.with_history, f.media_root.as_ref().map(|_| "?9"));
        let filters = "(?5 IS NULL OR m.channel_id = ?5) AND (?6 IS NULL OR m.date >= ?6) \
                       AND (?7 IS NULL OR m.date < ?7)";
        // Where the batch after `lo` ends: its last key, or none when fewer posts remain.
        let cut = format!(
            "SELECT m.channel_id, m.id FROM messages m \
             WHERE (m.channel_id, m.id) > (?1, ?2) AND {filters} \
             ORDER BY m.channel_id, m.id LIMIT 1 OFFSET ?8"
        );
        // The subquery hands its rows over in its ORDER BY order and group_concat keeps it (an
        // ORDER BY inside group_concat would copy every row into a sorter first).
        let batch = format!(
            "SELECT group_concat(j, char(10)), count(*) FROM (\
               SELECT {object} AS j \
               FROM messages m JOIN channels c ON c.id = m.channel_id {join} \
               WHERE (m.channel_id, m.id) > (?1, ?2) AND (m.channel_id, m.id) <= (?3, ?4) AND {filters} \
               ORDER BY m.channel_id, m.id LIMIT ?8)"
        );
        let range = |sql: &str, lo: (i64, i64), hi: Option<(i64, i64)>, n: u64| {
            // Only constant SQL is formatted in; every value is bound.
            sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
                .bind(lo.0)
                .bind(lo.1)
                .bind(hi.map(|h| h.0))
                .bind(hi.map(|h| h.1))
                .bind(f.channel_id)
                .bind(f.since)
                .bind(f.until)
                .bind(i64::try_from(n).unwrap_or(i64::MAX))
        };
        let mut cutter = self.reader().acquire().await.map_err(StoreError::from)?;
        let mut pending = futures::stream::FuturesOrdered::new();
        let mut lo = (i64::MIN, i64::MIN);
        let mut planned = 0u64;
        let mut cut_done = false;
        let mut total = 0u64;
        loop {
            // Batches in flight, each on its own connection's thread: one more than the cores,
            // so both stay busy while this task writes a finished batch out.
            while !cut_done && pending.len() < BATCHES_IN_FLIGHT {
                let want = match f.limit {
                    Some(l) => JSONL_BATCH.min(l.saturating_sub(planned)),
                    None => JSONL_BATCH,
                };
                if want == 0 {
                    break;
                }
                let end: Option<(i64, i64)> = range(&cut, lo, None, want - 1)
                    .fetch_optional(&mut *cutter)
                    .await
                    .and_then(|r| r.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose())
                    .map_err(StoreError::from)?;
                let hi = end.unwrap_or((i64::MAX, i64::MAX));
                cut_done = end.is_none();
                let q = range(&batch, lo, Some(hi), want);
                let q = match &f.media_root {
                    Some(root) => q.bind(root.clone()),
                    None => q,
                };
                let pool = self.reader().clone();
                pending.push_back(async move {
                    let mut conn = pool.acquire().await?;
                    let r = q.fetch_one(&mut *conn).await?;
                    Ok::<_, sqlx::Error>((
                        r.try_get::<Option<Vec<u8>>, _>(0)?,
                        r.try_get::<i64, _>(1)?,
                    ))
                });
                planned += want;
                lo = hi;
            }
            let Some(done) = futures::StreamExt::next(&mut pending).await else {
                break;
            };
            let (text, n) = done.map_err(StoreError::from)?;
            let n = u64::try_from(n).unwrap_or(0);
            let Some(mut text) = text else { continue };
            text.push(b'\n');
            total += n;
            if !sink(&text, n) {
                break;
            }
        }
        Ok(total)
    }

    /// [`Store::export_jsonl`] for a query: the matches newest first, keyset-paged on the
    /// index key, so each batch reads only its own matches.
    async fn export_jsonl_matches<F>(
        &self,
        f: &ExportFilter,
        object: &str,
        mut sink: F,
    ) -> Result<u64, super::SearchError>
    where
        F: FnMut(&[u8], u64) -> bool,
    {
        let (join, _) = media_join(f);
        let sql = format!(
            "SELECT group_concat(j, char(10) ORDER BY k DESC), count(*), min(k) FROM (\
               SELECT m.search_key AS k, {object} AS j \
               FROM messages_fts JOIN messages m ON m.search_key = messages_fts.rowid \
               JOIN channels c ON c.id = m.channel_id {join} \
               WHERE messages_fts MATCH ?1 AND messages_fts.rowid < ?2 \
                 AND (?3 IS NULL OR m.channel_id = ?3) AND (?4 IS NULL OR m.date >= ?4) \
                 AND (?5 IS NULL OR m.date < ?5) \
               ORDER BY messages_fts.rowid DESC LIMIT ?6)"
        );
        let query = self.export_fts(f).await?;
        let mut before = i64::MAX;
        let mut total = 0u64;
        let mut conn = self.reader().acquire().await.map_err(StoreError::from)?;
        loop {
            let limit = match f.limit {
                Some(l) => JSONL_BATCH.min(l.saturating_sub(total)),
                None => JSONL_BATCH,
            };
            if limit == 0 {
                break;
            }
            // Only constant SQL is formatted in; every value is bound.
            let q = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
                .bind(query.as_deref())
                .bind(before)
                .bind(f.channel_id)
                .bind(f.since)
                .bind(f.until)
                .bind(i64::try_from(limit).unwrap_or(i64::MAX));
            let q = match &f.media_root {
                Some(root) => q.bind(root.as_str()),
                None => q,
            };
            let row: (Option<Vec<u8>>, i64, Option<i64>) = match q.fetch_one(&mut *conn).await {
                Ok(r) => r,
                Err(e) => {
                    return Err(query_error(f, e));
                }
            };
            let (Some(mut text), n, Some(last)) = row else {
                break;
            };
            text.push(b'\n');
            let n = u64::try_from(n).unwrap_or(0);
            total += n;
            if !sink(&text, n) || n < limit {
                break;
            }
            before = last;
        }
        Ok(total)
    }
}

impl Store {
    /// The FTS5 query for an export's query filter (strict: a query that does not parse is an
    /// error, as for `tgparser search`).
    async fn export_fts(&self, f: &ExportFilter) -> Result<Option<String>, super::SearchError> {
        let Some(q) = &f.query else { return Ok(None) };
        let parsed = super::search::parse_query(q, false)?;
        self.index_ready(q).await?;
        let q = parsed;
        Ok(Some(
            self.fts_query(&q.expr).await.map_err(StoreError::from)?,
        ))
    }
}

/// An export query's failure: the FTS5 query's syntax when that is what SQLite refused.
fn query_error(f: &ExportFilter, e: sqlx::Error) -> super::SearchError {
    match (&f.query, super::search::fts_error(&e)) {
        (Some(q), Some(reason)) => super::SearchError::Query {
            query: q.clone(),
            reason,
        },
        _ => super::SearchError::Store(e.into()),
    }
}

/// The SQL expression of one post as a JSON object, keys and values as [`PostRecord`]'s.
/// Costs per row were measured: `json('true')` is a constant SQLite computes once per
/// statement (`json(CASE … THEN 'true' …)` parsed per row, a third of the time), and
/// `datetime` is cheaper than `strftime` with a format.
/// `root`: the parameter the state directory is bound to, for [`ExportFilter::media_root`].
fn json_object_sql(with_history: bool, root: Option<&str>) -> String {
    let date =
        |col: &str| format!("replace(datetime(max({col}, 0), 'unixepoch'), ' ', 'T') || 'Z'");
    let boolean = |cond: &str| format!("CASE WHEN {cond} THEN json('true') ELSE json('false') END");
    // A JSON column that does not parse (written by hand with CHECKs off) as a string, as
    // `raw` does, instead of failing the whole export.
    let json = |col: &str| format!("CASE WHEN json_valid({col}) THEN json({col}) ELSE {col} END");
    let history = if with_history {
        format!(
            ", 'history', (SELECT json_group_array(json_object('version', v.version, 'text', v.text, \
             'entities', {entities}, 'edit_date', {edit_date})) \
             FROM (SELECT * FROM message_versions v WHERE v.channel_id = m.channel_id \
             AND v.message_id = m.id ORDER BY v.version) v)",
            entities = json("v.entities"),
            edit_date = date("v.edit_date"),
        )
    } else {
        String::new()
    };
    let media_file = match root {
        Some(root) => format!(
            ", 'media_path', CASE WHEN md.state = 'done' THEN {root} || '/' || md.path END, \
             'media_state', md.state"
        ),
        None => String::new(),
    };
    format!(
        "json_object(\
         'channel_id', m.channel_id, 'channel_username', c.username, 'channel_title', c.title, \
         'id', m.id, 'link', CASE WHEN c.username IS NOT NULL \
           THEN 'https://t.me/' || c.username || '/' || m.id \
           ELSE 'https://t.me/c/' || m.channel_id || '/' || m.id END, \
         'kind', m.kind, 'date', {date}, 'edit_date', {edit_date}, 'text', m.text, \
         'entities', {entities}, 'views', m.views, 'forwards', m.forwards, \
         'replies', m.replies, 'reactions', {reactions}, 'grouped_id', m.grouped_id, \
         'reply_to_msg_id', m.reply_to_msg_id, 'reply_to_top_id', m.reply_to_top_id, \
         'fwd_from', {fwd_from}, 'post_author', m.post_author, 'from_id', m.from_id, \
         'pinned', {pinned}, 'silent', {silent}, 'noforwards', {noforwards}, \
         'media_kind', m.media_kind, 'media', {media}, 'action', {action}, \
         'convert_error', m.convert_error, 'version', m.version, \
         'deleted', {deleted}, 'deleted_at', {deleted_at}{media_file}{history})",
        date = date("m.date"),
        edit_date = date("m.edit_date"),
        deleted_at = date("m.deleted_at"),
        entities = json("m.entities"),
        reactions = json("m.reactions"),
        fwd_from = json("m.fwd_from"),
        media = json("m.media"),
        action = json("m.action"),
        pinned = boolean("m.pinned"),
        silent = boolean("m.silent"),
        noforwards = boolean("m.noforwards"),
        deleted = boolean("m.deleted_at IS NOT NULL"),
    )
}

/// Batches [`Store::export_jsonl`] formats at once (plus one connection finding batch ends).
const BATCHES_IN_FLIGHT: usize = 3;

/// Posts per query of [`Store::export_jsonl`].
pub const JSONL_BATCH: u64 = 2_000;

#[cfg(test)]
#[path = "export_tests.rs"]
mod tests;
