//! Full-text search over the stored posts, for the bot's `/search` and the operator's
//! `tgparser search`: the query read by `text::Query` (the same words as the index and the
//! alert matcher), run as FTS5 over `messages_fts`, the snippets marked in Rust.

use std::collections::HashMap;

use sqlx::Row;

use super::ingest::KEYS_PER_SECOND;
use super::{Store, StoreError};
use crate::text::{Expr, Query, snippet};

/// What a search found.
#[derive(Debug, Clone, Default)]
pub struct Found {
    pub hits: Vec<Hit>,
    /// The query was not valid FTS5 syntax and was searched as plain words instead.
    pub as_words: bool,
}

/// One matching post.
#[derive(Debug, Clone)]
pub struct Hit {
    pub channel_id: i64,
    pub username: Option<String>,
    pub title: String,
    pub id: i64,
    pub date: i64,
    pub deleted: bool,
    /// The text around the match; matched terms are wrapped in [`MATCH_START`] / [`MATCH_END`].
    pub snippet: String,
}

impl Hit {
    /// The post on t.me: by username for public channels, by id (members only) otherwise.
    pub fn link(&self) -> String {
        post_link(self.channel_id, self.username.as_deref(), self.id)
    }
}

/// A post's t.me link: public by username, else the members-only `t.me/c/` form.
pub fn post_link(channel_id: i64, username: Option<&str>, id: i64) -> String {
    match username {
        Some(u) => format!("https://t.me/{u}/{id}"),
        None => format!("https://t.me/c/{channel_id}/{id}"),
    }
}

pub use crate::text::{MATCH_END, MATCH_START};

/// UTF-16 units of a snippet at most (Telegram counts UTF-16; five results and their titles fit
/// a 4,096-unit message).
pub const SNIPPET_UNITS: usize = 300;

#[derive(Debug, Clone, Default)]
pub struct SearchFilter {
    pub channel_id: Option<i64>,
    /// Unix seconds, inclusive.
    pub since: Option<i64>,
    /// Unix seconds, exclusive.
    pub until: Option<i64>,
    pub limit: u32,
    pub offset: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("cannot search for {query:?}: {reason}")]
    Query { query: String, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub(super) fn fts_error(e: &sqlx::Error) -> Option<String> {
    let msg = e.as_database_error()?.message().to_string();
    (msg.contains("fts5") || msg.contains("syntax error") || msg.contains("unterminated"))
        .then_some(msg)
}

/// A query read for the index: an error when it holds no words, or (unless `as_words_if_invalid`)
/// when it does not parse.
pub(super) fn parse_query(query: &str, as_words_if_invalid: bool) -> Result<Query, SearchError> {
    let q = Query::parse(query).map_err(|e| SearchError::Query {
        query: query.to_string(),
        reason: e.to_string(),
    })?;
    if q.as_words && !as_words_if_invalid {
        return Err(SearchError::Query {
            query: query.to_string(),
            reason: "it is not valid search syntax (an unbalanced parenthesis, or AND, OR, NOT \
                     without words on both sides); use words, \"a phrase\", prefix*, AND, OR, NOT"
                .into(),
        });
    }
    Ok(q)
}

/// A prefix standing for more words than this is left to FTS5's own prefix search.
const PREFIX_WORDS_UP_TO: usize = 64;

impl Store {
    /// Posts matching `query` (`text::Query` syntax), newest first. A query that does not parse
    /// is an error, or with `as_words_if_invalid` (people typing into a chat) searched as its
    /// plain words.
    pub async fn search(
        &self,
        query: &str,
        f: &SearchFilter,
        as_words_if_invalid: bool,
    ) -> Result<Found, SearchError> {
        let q = parse_query(query, as_words_if_invalid)?;
        self.index_ready(query).await?;
        let fts = self.fts_query(&q.expr).await.map_err(StoreError::from)?;
        match self.search_raw(&fts, &q.expr, f).await {
            Ok(hits) => Ok(Found {
                hits,
                as_words: q.as_words,
            }),
            Err(e) => match fts_error(&e) {
                Some(reason) => Err(SearchError::Query {
                    query: query.to_string(),
                    reason,
                }),
                None => Err(SearchError::Store(e.into())),
            },
        }
    }

    /// An error while the index is being built (only a read-only store can see that: a
    /// writing one builds it before it opens).
    pub(super) async fn index_ready(&self, query: &str) -> Result<(), SearchError> {
        if super::index::complete(self.reader()).await? {
            return Ok(());
        }
        Err(SearchError::Query {
            query: query.to_string(),
            reason: "the search index is being built; start the daemon (or run `tgparser migrate`) to finish it".into(),
        })
    }

    /// The FTS5 query for `expr`, its short prefixes spelled out as words.
    pub(super) async fn fts_query(&self, expr: &Expr) -> Result<String, sqlx::Error> {
        let mut prefixes = Vec::new();
        expr.prefixes(&mut prefixes);
        if prefixes.is_empty() {
            return Ok(expr.to_fts5());
        }
        let mut spelled = HashMap::new();
        for p in prefixes {
            if let Some(e) = self.spell_out(&p).await? {
                spelled.insert(p, e);
            }
        }
        let mut expr = expr.clone();
        expr.spell_out(&spelled);
        Ok(expr.to_fts5())
    }

    /// Newest first. The index is keyed by date (`search_key`, migration 0007), so FTS5 hands
    /// out the matches newest first and the search stops after the page: a common word in a
    /// million posts costs about a page of rows, and snippets are computed for the page only.
    /// One case walks differently: a channel holding a small share of the archive, searched
    /// for a common term, would walk many other channels' matches; there the channel's date
    /// index is read from the newest end instead and each post checked against the matches.
    async fn search_raw(
        &self,
        q: &str,
        expr: &Expr,
        f: &SearchFilter,
    ) -> Result<Vec<Hit>, sqlx::Error> {
        let lo = f
            .since
            .map_or(i64::MIN, |s| s.saturating_mul(KEYS_PER_SECOND));
        let hi = f
            .until
            .map_or(i64::MAX, |u| u.saturating_mul(KEYS_PER_SECOND));
        let columns =
            "m.channel_id, c.username, c.title, m.id, m.date, m.deleted_at IS NOT NULL, m.text";
        let by_channel = f.channel_id.is_some() && self.small_channel_common_term(q, f).await?;
        let sql = if by_channel {
            format!(
                "SELECT {columns} FROM ( \
                     SELECT m.pk FROM messages m INDEXED BY messages_channel_date \
                     WHERE m.channel_id = ?2 AND (?3 IS NULL OR m.date >= ?3) AND (?4 IS NULL OR m.date < ?4) \
                       AND m.search_key IN (SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?1) \
                     ORDER BY m.date DESC, m.search_key DESC LIMIT ?5 OFFSET ?6) AS page \
                 JOIN messages m ON m.pk = page.pk \
                 JOIN messages_fts ON messages_fts.rowid = m.search_key \
                 JOIN channels c ON c.id = m.channel_id \
                 WHERE messages_fts MATCH ?1 \
                 ORDER BY m.date DESC, m.search_key DESC"
            )
        } else {
            format!(
                "SELECT {columns} FROM messages_fts \
                 JOIN messages m ON m.search_key = messages_fts.rowid \
                 JOIN channels c ON c.id = m.channel_id \
                 WHERE messages_fts MATCH ?1 AND messages_fts.rowid >= ?7 AND messages_fts.rowid < ?8 \
                   AND (?2 IS NULL OR m.channel_id = ?2) AND (?3 IS NULL OR m.date >= ?3) AND (?4 IS NULL OR m.date < ?4) \
                 ORDER BY messages_fts.rowid DESC LIMIT ?5 OFFSET ?6"
            )
        };
        // Only constant SQL is formatted in; every value is bound.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(q)
            .bind(f.channel_id)
            .bind(f.since)
            .bind(f.until)
            .bind(i64::from(f.limit.max(1)))
            .bind(i64::from(f.offset));
        if !by_channel {
            query = query.bind(lo).bind(hi);
        }
        let rows = query.fetch_all(self.reader()).await?;
        rows.iter()
            .map(|r| {
                Ok(Hit {
                    channel_id: r.try_get(0)?,
                    username: r.try_get(1)?,
                    title: r.try_get(2)?,
                    id: r.try_get(3)?,
                    date: r.try_get(4)?,
                    deleted: r.try_get(5)?,
                    snippet: snippet(&r.try_get::<String, _>(6)?, expr, SNIPPET_UNITS),
                })
            })
            .collect()
    }

    /// Whether a channel filter is better served by the channel's own date index: the channel
    /// holds under 1% of the archive (so the newest-first walk over every match would meet ~100
    /// other posts per hit) and the term matches more than [`WALK_ALL_UP_TO`] posts (for fewer,
    /// walking them all is cheap anyway).
    async fn small_channel_common_term(
        &self,
        q: &str,
        f: &SearchFilter,
    ) -> Result<bool, sqlx::Error> {
        let (channel, total): (Option<i64>, Option<i64>) = sqlx::query_as(
            "SELECT (SELECT post_count FROM channels WHERE id = ?1), (SELECT sum(post_count) FROM channels)",
        )
        .bind(f.channel_id)
        .fetch_one(self.reader())
        .await?;
        let (channel, total) = (channel.unwrap_or(0), total.unwrap_or(0));
        if channel.saturating_mul(100) >= total {
            return Ok(false);
        }
        // Counted up to one past the threshold: FTS5 stops there, so a common word costs no
        // full count.
        let matches: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM (SELECT 1 FROM messages_fts WHERE messages_fts MATCH ?1 LIMIT ?2)",
        )
        .bind(q)
        .bind(WALK_ALL_UP_TO + 1)
        .fetch_one(self.reader())
        .await?;
        Ok(matches > WALK_ALL_UP_TO)
    }

    /// A prefix as the indexed words it stands for, when there are at most
    /// [`PREFIX_WORDS_UP_TO`]: FTS5 merges the whole doclist of every word a prefix matches
    /// before returning its first row (hundreds of milliseconds for a prefix in most posts), but
    /// streams an OR of words newest first. The words are read from the vocabulary one seek
    /// each (`term >=` is the constraint fts5vocab seeks on). `None`: more words than that,
    /// left to FTS5's own prefix search.
    async fn spell_out(&self, prefix: &str) -> Result<Option<Expr>, sqlx::Error> {
        let mut conn = self.reader().acquire().await?;
        let mut words: Vec<String> = Vec::new();
        let mut from = prefix.to_string();
        loop {
            let next: Option<String> =
                sqlx::query_scalar("SELECT term FROM messages_terms WHERE term >= ?1 LIMIT 1")
                    .bind(&from)
                    .fetch_optional(&mut *conn)
                    .await?;
            match next {
                Some(t) if t.starts_with(prefix) => {
                    if words.len() == PREFIX_WORDS_UP_TO {
                        return Ok(None);
                    }
                    // The smallest string after `t`: no indexed word holds U+0001.
                    from = format!("{t}\u{1}");
                    words.push(t);
                }
                _ => break,
            }
        }
        let phrase = |w: String| Expr::Phrase {
            terms: vec![w],
            prefix: false,
        };
        Ok(Some(match words.len() {
            // No word has this prefix: a word no post holds keeps the query's meaning.
            0 => phrase(prefix.to_string()),
            1 => phrase(words.remove(0)),
            _ => Expr::Or(words.into_iter().map(phrase).collect()),
        }))
    }
}

/// Matches up to which walking all of them newest first is cheap whatever the filter.
const WALK_ALL_UP_TO: i64 = 2_000;

#[cfg(test)]
#[path = "search_tests.rs"]
mod tests;
