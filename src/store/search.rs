//! Full-text search over the stored posts (FTS5, `unicode61 remove_diacritics 2`), for the bot's
//! `/search` and the operator's `tgparser search`.

use sqlx::Row;

use super::ingest::KEYS_PER_SECOND;
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

/// The folds a stored text needs (`messages.fts_fold`, migration 0009): bit 1 when it holds
/// "ё", bit 2 when it holds "Ё". The search index's triggers run only those; each is a pass of
/// SQL's replace() over the text on the writer's thread, while this is two SIMD byte searches
/// (for the letters' last UTF-8 bytes) on the caller's.
pub fn fts_fold(text: &str) -> i64 {
    i64::from(text.contains('ё')) | i64::from(text.contains('Ё')) << 1
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

/// A bare `word*` in an FTS5 query that can be spelled out as the words it stands for: where
/// it is in the query and its prefix as the index stores it.
#[derive(Debug, PartialEq)]
struct Prefix {
    at: std::ops::Range<usize>,
    folded: String,
}

/// The prefix as unicode61 (`remove_diacritics 2`) indexes it, for the letters where that is
/// plain lower-casing: ASCII letters and digits, and Cyrillic other than й (which the index
/// folds to и). Anything else is left to FTS5's own prefix search.
fn fold_prefix(word: &str) -> Option<String> {
    let plain = |c: char| {
        c.is_ascii_alphanumeric() || (('\u{410}'..='\u{44F}').contains(&c) && c != 'й' && c != 'Й')
    };
    (!word.is_empty() && word.chars().all(plain)).then(|| word.to_lowercase())
}

/// The bare `word*` prefixes of an FTS5 query that stand alone as a phrase (not in quotes, not
/// joined by `+`, not after `^`, not inside `NEAR(...)`): those can be replaced by
/// `("w1" OR "w2" ...)` with the same meaning.
fn standalone_prefixes(q: &str) -> Vec<Prefix> {
    let b = q.as_bytes();
    let bare = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == 0x1a || c >= 0x80;
    let mut out = Vec::new();
    let mut i = 0;
    let mut near_depth = 0usize;
    // The last character that was not a space, before the current token.
    let mut prev: u8 = b' ';
    while i < b.len() {
        let c = b[i];
        if c == b'"' {
            i += 1;
            while i < b.len() {
                if b[i] == b'"' {
                    if b.get(i + 1) == Some(&b'"') {
                        i += 2;
                        continue;
                    }
                    break;
                }
                i += 1;
            }
            i += 1;
            prev = b'"';
        } else if bare(c) {
            let start = i;
            while i < b.len() && bare(b[i]) {
                i += 1;
            }
            let word = &q[start..i];
            let mut j = i;
            while j < b.len() && b[j] == b' ' {
                j += 1;
            }
            if word == "NEAR" && b.get(j) == Some(&b'(') {
                near_depth += 1;
                i = j + 1;
                prev = b'(';
                continue;
            }
            if b.get(j) == Some(&b'*') {
                let mut k = j + 1;
                while k < b.len() && b[k] == b' ' {
                    k += 1;
                }
                let joined = prev == b'+' || prev == b'^' || b.get(k) == Some(&b'+');
                if near_depth == 0
                    && !joined
                    && !matches!(word, "AND" | "OR" | "NOT")
                    && let Some(folded) = fold_prefix(word)
                {
                    out.push(Prefix {
                        at: start..j + 1,
                        folded,
                    });
                }
                i = j + 1;
                prev = b'*';
            } else {
                prev = b'a';
            }
        } else {
            if c == b'(' && near_depth > 0 {
                near_depth += 1;
            } else if c == b')' && near_depth > 0 {
                near_depth -= 1;
            }
            if c != b' ' {
                prev = c;
            }
            i += 1;
        }
    }
    out
}

/// A prefix standing for more words than this is left to FTS5's own prefix search.
const PREFIX_WORDS_UP_TO: usize = 64;

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

    /// Newest first. The index is keyed by date (`search_key`, migration 0007), so FTS5 hands
    /// out the matches newest first and the search stops after the page: a common word in a
    /// million posts costs about a page of rows, and snippets are computed for the page only.
    /// One case walks differently: a channel holding a small share of the archive, searched
    /// for a common term, would walk many other channels' matches; there the channel's date
    /// index is read from the newest end instead and each post checked against the matches.
    async fn search_raw(&self, query: &str, f: &SearchFilter) -> Result<Vec<Hit>, sqlx::Error> {
        let q = self.spell_out_prefixes(&fold(query)).await?;
        let lo = f
            .since
            .map_or(i64::MIN, |s| s.saturating_mul(KEYS_PER_SECOND));
        let hi = f
            .until
            .map_or(i64::MAX, |u| u.saturating_mul(KEYS_PER_SECOND));
        let columns = "m.channel_id, c.username, c.title, m.id, m.date, m.deleted_at IS NOT NULL, \
                       snippet(messages_fts, 0, char(1), char(2), '…', 24)";
        let by_channel = f.channel_id.is_some() && self.small_channel_common_term(&q, f).await?;
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
            .bind(&q)
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
                    snippet: r.try_get(6)?,
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

    /// The query with each standalone `word*` replaced by the indexed words it stands for,
    /// when there are at most [`PREFIX_WORDS_UP_TO`]: FTS5 merges the whole doclist of every
    /// word a prefix matches before returning its first row (hundreds of milliseconds for a
    /// prefix in most posts), but streams an OR of words newest first. The words are read from
    /// the vocabulary one seek each (`term >=` is the constraint fts5vocab seeks on).
    async fn spell_out_prefixes(&self, q: &str) -> Result<String, sqlx::Error> {
        let prefixes = standalone_prefixes(q);
        if prefixes.is_empty() {
            return Ok(q.to_string());
        }
        let mut conn = self.reader().acquire().await?;
        let mut out = q.to_string();
        // From the end, so earlier ranges stay valid.
        for p in prefixes.iter().rev() {
            let mut words: Vec<String> = Vec::new();
            let mut from = p.folded.clone();
            let complete = loop {
                let next: Option<String> =
                    sqlx::query_scalar("SELECT term FROM messages_terms WHERE term >= ?1 LIMIT 1")
                        .bind(&from)
                        .fetch_optional(&mut *conn)
                        .await?;
                match next {
                    Some(t) if t.starts_with(&p.folded) => {
                        if words.len() == PREFIX_WORDS_UP_TO {
                            break false;
                        }
                        // The smallest string after `t`: no indexed word holds U+0001.
                        from = format!("{t}\u{1}");
                        words.push(t);
                    }
                    _ => break true,
                }
            };
            if !complete {
                continue;
            }
            let spelled = if words.is_empty() {
                // No word has this prefix: a word no post holds keeps the query's meaning.
                format!("\"{}\"", p.folded)
            } else {
                let alternatives: Vec<String> = words.iter().map(|w| format!("\"{w}\"")).collect();
                format!("({})", alternatives.join(" OR "))
            };
            out.replace_range(p.at.clone(), &spelled);
        }
        Ok(out)
    }
}

/// Matches up to which walking all of them newest first is cheap whatever the filter.
const WALK_ALL_UP_TO: i64 = 2_000;

#[cfg(test)]
#[path = "search_tests.rs"]
mod tests;
