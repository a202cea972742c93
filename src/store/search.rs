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
mod tests {
    use super::*;
    use crate::store::{MessageRow, testing};

    #[tokio::test]
    async fn strict_search_refuses_bad_syntax_and_the_chat_reads_it_as_words() {
        let dir = tempfile::tempdir().unwrap();
        let store = testing::store(dir.path(), 1).await;
        store
            .add_channel(&testing::channel(7, None, "private one"))
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

    async fn store_with(dir: &std::path::Path, channels: &[i64]) -> Store {
        let store = testing::store(dir, 1).await;
        for &id in channels {
            store
                .add_channel(&testing::channel(
                    id,
                    Some(&format!("c{id}")),
                    &format!("C{id}"),
                ))
                .await
                .unwrap();
        }
        store
    }

    fn post(id: i32, date: i64, text: &str) -> MessageRow {
        MessageRow {
            id,
            kind: "post",
            date,
            text: text.into(),
            ..Default::default()
        }
    }

    fn ids(found: &Found) -> Vec<i64> {
        found.hits.iter().map(|h| h.id).collect()
    }

    #[tokio::test]
    async fn posts_of_one_second_are_keyed_in_id_order_and_a_stored_post_keeps_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with(dir.path(), &[7]).await;
        // An album: one second, the batch in backfill order (newest id first).
        let rows = [
            post(3, 500, "album c"),
            post(2, 500, "album b"),
            post(1, 500, "album a"),
        ];
        store.ingest(7, &rows, None).await.unwrap();
        let keys = |s: &Store| {
            let s = s.clone();
            async move {
                sqlx::query_as::<_, (i64, i64)>("SELECT id, search_key FROM messages ORDER BY id")
                    .fetch_all(s.reader())
                    .await
                    .unwrap()
            }
        };
        let before = keys(&store).await;
        assert_eq!(
            before,
            vec![(1, 500 << 20), (2, (500 << 20) + 1), (3, (500 << 20) + 2)]
        );
        // Another batch: a new post of the same second, and post 2 again, edited.
        store
            .ingest(
                7,
                &[post(4, 500, "album d"), post(2, 500, "album b edited")],
                None,
            )
            .await
            .unwrap();
        let after = keys(&store).await;
        assert_eq!(&after[..3], &before[..], "stored posts keep their keys");
        assert!(after[3].1 > before[2].1, "{after:?}");
        let f = SearchFilter {
            limit: 10,
            ..Default::default()
        };
        assert_eq!(
            ids(&store.search("album", &f, false).await.unwrap()),
            vec![4, 3, 2, 1]
        );
        assert_eq!(
            ids(&store.search("edited", &f, false).await.unwrap()),
            vec![2]
        );
        fts_integrity_check(&store).await;
        store.close().await;
    }

    /// FTS5's own check of the index against the posts; fails the test on any difference.
    async fn fts_integrity_check(store: &Store) {
        let mut tx = store.begin_write().await.unwrap();
        sqlx::query("INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check')")
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }

    /// (nLevel, nSegment, nWriteCounter) of the FTS5 index's structure record: a 4-byte
    /// cookie, the version-2 marker if present, then those three varints. nWriteCounter counts
    /// the leaves ever written to level 0.
    async fn fts_structure(store: &Store) -> (u64, u64, u64) {
        let structure: Vec<u8> =
            sqlx::query_scalar("SELECT block FROM messages_fts_data WHERE id = 10")
                .fetch_one(store.reader())
                .await
                .unwrap();
        let mut rest = &structure[4..];
        if rest.starts_with(&[0xff, 0x00, 0x00, 0x01]) {
            rest = &rest[4..];
        }
        let mut varint = || {
            let mut v = 0u64;
            for (i, b) in rest.iter().enumerate() {
                if i == 8 {
                    v = (v << 8) | u64::from(*b);
                    rest = &rest[9..];
                    return v;
                }
                v = (v << 7) | u64::from(b & 0x7f);
                if b & 0x80 == 0 {
                    rest = &rest[i + 1..];
                    return v;
                }
            }
            panic!("truncated FTS5 structure record");
        };
        (varint(), varint(), varint())
    }

    #[tokio::test]
    async fn backfill_pages_newest_first_no_longer_write_one_fts_segment_per_post() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with(dir.path(), &[7, 8]).await;
        // Three pages as a backfill gets them: newest first, each page below the previous one;
        // with another channel's page in the same commit.
        let page = |top: i32| -> Vec<MessageRow> {
            (0..100)
                .map(|i| post(top - i, 1_000 + i64::from(top - i), "segment probe"))
                .collect()
        };
        let (p1, p2, p3) = (page(300), page(200), page(100));
        // Dated among page 3's posts.
        let other: Vec<MessageRow> = (1..=100)
            .map(|i| post(1_000 + i, 950 + i64::from(i), "segment probe"))
            .collect();
        store
            .ingest_group(&[
                (7, p1.as_slice(), None),
                (8, other.as_slice(), None),
                (7, p2.as_slice(), None),
                (7, p3.as_slice(), None),
            ])
            .await
            .unwrap();
        // FTS5 flushes its pending terms (a new level-0 segment) whenever a rowid is not above
        // the last one. Its structure record counts the leaves ever written to level 0: a few
        // for one commit in key order, one per post when each post flushed.
        let (_, _, leaves) = fts_structure(&store).await;
        assert!(
            leaves <= 10,
            "{leaves} level-0 leaves for one commit of 400 posts"
        );
        let f = SearchFilter {
            limit: 400,
            ..Default::default()
        };
        let found = ids(&store.search("probe", &f, false).await.unwrap());
        let mut distinct = found.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!((found.len(), distinct.len()), (400, 400));
        fts_integrity_check(&store).await;
        store.close().await;
    }

    #[tokio::test]
    async fn a_commit_no_longer_writes_one_fts_segment_per_insert_statement() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with(dir.path(), &[7, 8]).await;
        // More rows than one statement carries, over two channels, dates interleaved.
        let a: Vec<MessageRow> = (1..=1_500)
            .map(|i| post(i, 10_000 + 2 * i64::from(i), "segment probe"))
            .collect();
        let b: Vec<MessageRow> = (1..=700)
            .map(|i| post(i, 10_001 + 2 * i64::from(i), "segment probe"))
            .collect();
        store
            .ingest_group(&[(7, a.as_slice(), None), (8, b.as_slice(), None)])
            .await
            .unwrap();
        // FTS5 starts a new segment at every statement of a transaction after its first: rows
        // inserted straight in statements of a few hundred were five segments here.
        let (_, segments, _) = fts_structure(&store).await;
        assert_eq!(segments, 1, "one commit, one segment");
        let f = SearchFilter {
            limit: 3_000,
            ..Default::default()
        };
        assert_eq!(
            store.search("probe", &f, false).await.unwrap().hits.len(),
            2_200
        );
        fts_integrity_check(&store).await;
        store.close().await;
    }

    #[tokio::test]
    async fn batches_of_many_sizes_no_longer_fill_the_writer_statement_cache() {
        use sqlx::Connection;
        let dir = tempfile::tempdir().unwrap();
        let store = store_with(dir.path(), &[7]).await;
        // Batches of 1 to 200 posts: a statement per distinct size would be 200 statements.
        let mut next = 1;
        for size in 1..=200 {
            let rows: Vec<MessageRow> = (next..next + size)
                .map(|i| post(i, 50_000 + i64::from(i), "cache probe"))
                .collect();
            next += size;
            store.ingest(7, &rows, None).await.unwrap();
        }
        let tx = store.begin_write().await.unwrap();
        let cached = tx.cached_statements_size();
        drop(tx);
        assert!(cached <= 30, "{cached} statements cached by the writer");
        store.close().await;
    }

    #[tokio::test]
    async fn a_small_channel_searched_for_a_common_word_gets_its_own_posts_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with(dir.path(), &[1, 2]).await;
        // Channel 1: 3,000 posts with the word; channel 2: 12 (0.4% of the archive), interleaved
        // in time with channel 1's.
        let big: Vec<MessageRow> = (1..=3000)
            .map(|i| post(i, 10_000 + i64::from(i) * 10, "common word"))
            .collect();
        store.ingest(1, &big, None).await.unwrap();
        let small: Vec<MessageRow> = (1..=12)
            .map(|i| post(i, 10_005 + i64::from(i) * 2_000, "a common sight"))
            .collect();
        store.ingest(2, &small, None).await.unwrap();
        let f = SearchFilter {
            channel_id: Some(2),
            limit: 5,
            ..Default::default()
        };
        assert!(store.small_channel_common_term("common", &f).await.unwrap());
        let found = store.search("common", &f, false).await.unwrap();
        assert_eq!(ids(&found), vec![12, 11, 10, 9, 8]);
        assert!(found.hits.iter().all(|h| h.channel_id == 2));
        assert!(
            found.hits[0].snippet.contains("\u{1}common\u{2}"),
            "{:?}",
            found.hits[0]
        );
        let page2 = SearchFilter {
            offset: 5,
            ..f.clone()
        };
        assert_eq!(
            ids(&store.search("common", &page2, false).await.unwrap()),
            vec![7, 6, 5, 4, 3]
        );
        let window = SearchFilter {
            since: Some(10_005 + 3 * 2_000),
            until: Some(10_005 + 6 * 2_000),
            ..f.clone()
        };
        assert_eq!(
            ids(&store.search("common", &window, false).await.unwrap()),
            vec![5, 4, 3]
        );
        // The same answers from the newest-first walk, which the big channel takes.
        let big_f = SearchFilter {
            channel_id: Some(1),
            limit: 3,
            ..Default::default()
        };
        assert!(
            !store
                .small_channel_common_term("common", &big_f)
                .await
                .unwrap()
        );
        assert_eq!(
            ids(&store.search("common", &big_f, false).await.unwrap()),
            vec![3000, 2999, 2998]
        );
        let everywhere = SearchFilter {
            limit: 3,
            until: Some(10_005 + 12 * 2_000 + 1),
            ..Default::default()
        };
        // 34,005 is channel 2's newest; channel 1's posts at 34,000 and 33,990 come after it.
        assert_eq!(
            ids(&store.search("common", &everywhere, false).await.unwrap()),
            vec![12, 2400, 2399]
        );
        store.close().await;
    }

    #[test]
    fn only_standalone_bare_prefixes_are_spelled_out() {
        let found = |q: &str| -> Vec<(String, String)> {
            standalone_prefixes(q)
                .into_iter()
                .map(|p| (q[p.at].to_string(), p.folded))
                .collect()
        };
        let one = |a: &str, b: &str| vec![(a.to_string(), b.to_string())];
        assert_eq!(found("Infla*"), one("Infla*", "infla"));
        assert_eq!(found("rate AND infla *"), one("infla *", "infla"));
        assert_eq!(found("text:Инфл* OR x"), one("Инфл*", "инфл"));
        assert_eq!(found("(a OR bc*) NOT d"), one("bc*", "bc"));
        // Quoted, joined into a phrase, initial-token, inside NEAR, or not plainly foldable.
        assert!(found("\"infla*\"").is_empty());
        assert!(found("\"rate\" + infla*").is_empty());
        assert!(found("infla* + rate").is_empty());
        assert!(found("^infla*").is_empty());
        assert!(found("NEAR(rate infla*, 3) OR x").is_empty());
        assert!(found("café* мой* foo_bar*").is_empty());
        // After a NEAR group closes, prefixes count again.
        assert_eq!(found("NEAR(a b) cd*"), one("cd*", "cd"));
    }

    #[tokio::test]
    async fn a_spelled_out_prefix_finds_what_fts5s_own_prefix_search_finds() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with(dir.path(), &[1]).await;
        let mut rows = Vec::new();
        let words = [
            "inflation",
            "Inflated",
            "influx",
            "info",
            "infl",
            "ИНФЛЯЦИЯ",
            "инфляции",
        ];
        for (i, w) in words.iter().enumerate() {
            rows.push(post(
                i as i32 + 1,
                1_000 + i as i64,
                &format!("the {w} story"),
            ));
        }
        // 70 words sharing "zq": more than are spelled out.
        for k in 0..70 {
            rows.push(post(100 + k, 2_000 + i64::from(k), &format!("zq{k} item")));
        }
        store.ingest(1, &rows, None).await.unwrap();
        let f = SearchFilter {
            limit: 100,
            ..Default::default()
        };
        for q in [
            "infl*",
            "INFL*",
            "инфл*",
            "zq*",
            "zq1*",
            "nothing*",
            "story AND (infl* OR zq6*)",
        ] {
            let ours = ids(&store.search(q, &f, false).await.unwrap());
            let native: Vec<i64> = sqlx::query_scalar(
                "SELECT m.id FROM messages_fts JOIN messages m ON m.search_key = messages_fts.rowid \
                 WHERE messages_fts MATCH ?1 ORDER BY messages_fts.rowid DESC",
            )
            .bind(q)
            .fetch_all(store.reader())
            .await
            .unwrap();
            assert_eq!(ours, native, "{q}");
        }
        assert_eq!(
            ids(&store.search("infl*", &f, false).await.unwrap()),
            vec![5, 3, 2, 1]
        );
        assert_eq!(
            store.spell_out_prefixes("infl*").await.unwrap(),
            "(\"infl\" OR \"inflated\" OR \"inflation\" OR \"influx\")"
        );
        assert_eq!(
            store.spell_out_prefixes("zq*").await.unwrap(),
            "zq*",
            "left to FTS5"
        );
        store.close().await;
    }
}
