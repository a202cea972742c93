//! Full-text search over the stored posts (FTS5, `unicode61 remove_diacritics 2`), for the bot's
//! `/search` and the operator's `tgparser search`.

use sqlx::Row;

use super::{Store, StoreError};

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

/// Folds a query the way the index folds text (migration 0006): "ё" is "е".
pub fn fold(text: &str) -> String {
    text.replace('ё', "е").replace('Ё', "Е")
}

/// A post's t.me link: public by username, else the members-only `t.me/c/` form.
pub fn post_link(channel_id: i64, username: Option<&str>, id: i64) -> String {
    match username {
        Some(u) => format!("https://t.me/{u}/{id}"),
        None => format!("https://t.me/c/{channel_id}/{id}"),
    }
}

pub const MATCH_START: char = '\u{1}';
pub const MATCH_END: char = '\u{2}';

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
    #[error(
        "the search {query:?} is not valid FTS5 syntax ({reason}); use words, \"a phrase\", prefix*, AND, OR, NOT"
    )]
    Query { query: String, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Each word quoted: what a plain query like `covid-19 news` means to a person, in FTS5 syntax.
fn as_plain_words(query: &str) -> String {
    query
        .split_whitespace()
        .map(|w| format!("\"{}\"", w.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(" ")
}

pub(super) fn fts_error(e: &sqlx::Error) -> Option<String> {
    let msg = e.as_database_error()?.message().to_string();
    (msg.contains("fts5") || msg.contains("syntax error") || msg.contains("unterminated"))
        .then_some(msg)
}

impl Store {
    /// Posts matching `query` in FTS5 syntax, newest first. A query that is not valid syntax is
    /// an error, or with `as_words_if_invalid` (people typing into a chat) searched as its plain
    /// words.
    pub async fn search(
        &self,
        query: &str,
        f: &SearchFilter,
        as_words_if_invalid: bool,
    ) -> Result<Found, SearchError> {
        let e = match self.search_raw(query, f).await {
            Ok(hits) => {
                return Ok(Found {
                    hits,
                    as_words: false,
                });
            }
            Err(e) => e,
        };
        let Some(reason) = fts_error(&e) else {
            return Err(SearchError::Store(e.into()));
        };
        let plain = as_plain_words(query);
        if !as_words_if_invalid || plain.is_empty() || plain == query {
            return Err(SearchError::Query {
                query: query.to_string(),
                reason,
            });
        }
        match self.search_raw(&plain, f).await {
            Ok(hits) => Ok(Found {
                hits,
                as_words: true,
            }),
            Err(e2) if fts_error(&e2).is_some() => Err(SearchError::Query {
                query: query.to_string(),
                reason,
            }),
            Err(e2) => Err(SearchError::Store(e2.into())),
        }
    }

    /// Newest first, in two steps. First the page's posts: for a term in few posts, every
    /// match is joined and sorted; for a term in many (a common word in a million posts), the
    /// date index is read from the newest end and each entry checked against the term's
    /// matches, so only about a page's worth of rows is touched instead of sorting them all.
    /// Then snippets, computed for the page only (snippet re-reads each text: on every match
    /// it was most of the time of a common-word search).
    async fn search_raw(&self, query: &str, f: &SearchFilter) -> Result<Vec<Hit>, sqlx::Error> {
        let q = fold(query);
        // How many match, up to one past the threshold: FTS5 stops there, so a common word
        // costs no full count.
        let matches: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM (SELECT 1 FROM messages_fts WHERE messages_fts MATCH ?1 LIMIT ?2)",
        )
        .bind(&q)
        .bind(SORT_ALL_UP_TO + 1)
        .fetch_one(self.reader())
        .await?;
        if matches == 0 {
            return Ok(Vec::new());
        }
        let page = if matches <= SORT_ALL_UP_TO {
            "SELECT m.pk FROM messages_fts JOIN messages m ON m.pk = messages_fts.rowid \
             WHERE messages_fts MATCH ?1 AND (?2 IS NULL OR m.channel_id = ?2) \
               AND (?3 IS NULL OR m.date >= ?3) AND (?4 IS NULL OR m.date < ?4) \
             ORDER BY m.date DESC, m.id DESC LIMIT ?5 OFFSET ?6"
        } else if f.channel_id.is_some() {
            "SELECT m.pk FROM messages m INDEXED BY messages_channel_date \
             WHERE m.channel_id = ?2 AND (?3 IS NULL OR m.date >= ?3) AND (?4 IS NULL OR m.date < ?4) \
               AND m.pk IN (SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?1) \
             ORDER BY m.date DESC, m.id DESC LIMIT ?5 OFFSET ?6"
        } else {
            "SELECT m.pk FROM messages m INDEXED BY messages_date \
             WHERE ?2 IS NULL AND (?3 IS NULL OR m.date >= ?3) AND (?4 IS NULL OR m.date < ?4) \
               AND m.pk IN (SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?1) \
             ORDER BY m.date DESC, m.id DESC LIMIT ?5 OFFSET ?6"
        };
        let pks: Vec<i64> = sqlx::query_scalar(page)
            .bind(&q)
            .bind(f.channel_id)
            .bind(f.since)
            .bind(f.until)
            .bind(i64::from(f.limit.max(1)))
            .bind(i64::from(f.offset))
            .fetch_all(self.reader())
            .await?;
        let mut hits = Vec::with_capacity(pks.len());
        let mut conn = self.reader().acquire().await?;
        for pk in pks {
            let row = sqlx::query(
                "SELECT m.channel_id, c.username, c.title, m.id, m.date, m.deleted_at IS NOT NULL, \
                        snippet(messages_fts, 0, char(1), char(2), '…', 24) \
                 FROM messages_fts \
                 JOIN messages m ON m.pk = messages_fts.rowid \
                 JOIN channels c ON c.id = m.channel_id \
                 WHERE messages_fts MATCH ?1 AND messages_fts.rowid = ?2",
            )
            .bind(&q)
            .bind(pk)
            .fetch_optional(&mut *conn)
            .await?;
            // Gone between the two steps (purged meanwhile): skipped.
            let Some(r) = row else { continue };
            hits.push(Hit {
                channel_id: r.try_get(0)?,
                username: r.try_get(1)?,
                title: r.try_get(2)?,
                id: r.try_get(3)?,
                date: r.try_get(4)?,
                deleted: r.try_get(5)?,
                snippet: r.try_get(6)?,
            });
        }
        Ok(hits)
    }
}

/// Up to this many matches, a search joins and sorts them all; above it, it walks the date
/// index from the newest end (expected rows read: page size x posts / matches).
const SORT_ALL_UP_TO: i64 = 2_000;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::StoreConfig;
    use crate::store::{MessageRow, NewChannel};

    #[tokio::test]
    async fn strict_search_refuses_bad_syntax_and_the_chat_reads_it_as_words() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&StoreConfig {
            dir: dir.path().join("s"),
            busy_timeout: Duration::from_secs(5),
            read_connections: 1,
        })
        .await
        .unwrap();
        store
            .add_channel(&NewChannel {
                id: 7,
                access_hash: None,
                username: None,
                title: "private one".into(),
                about: None,
                participants: None,
                kind: "broadcast",
                since: None,
                last: None,
                added_by: None,
            })
            .await
            .unwrap();
        let rows = [
            MessageRow {
                id: 1,
                kind: "post",
                date: 100,
                text: "he said \"hello world\" twice".into(),
                ..Default::default()
            },
            MessageRow {
                id: 2,
                kind: "post",
                date: 200,
                text: "hello again".into(),
                ..Default::default()
            },
        ];
        store.ingest(7, &rows, None).await.unwrap();
        let f = SearchFilter {
            limit: 10,
            ..Default::default()
        };
        let e = store.search("\"hello", &f, false).await.unwrap_err();
        assert!(
            matches!(&e, SearchError::Query { .. }) && e.to_string().contains("not valid FTS5"),
            "{e}"
        );
        let found = store.search("\"hello", &f, true).await.unwrap();
        assert!(found.as_words);
        assert_eq!(
            found.hits.iter().map(|h| h.id).collect::<Vec<_>>(),
            vec![2, 1],
            "newest first"
        );
        assert_eq!(found.hits[1].link(), "https://t.me/c/7/1");
        let only_old = store
            .search(
                "hello",
                &SearchFilter {
                    until: Some(150),
                    limit: 10,
                    ..Default::default()
                },
                false,
            )
            .await
            .unwrap();
        assert_eq!(only_old.hits.len(), 1);
        assert!(only_old.hits[0].snippet.contains("\u{1}hello\u{2}"));
        store.close().await;
    }
}
