//! The multilingual corpus (tests/corpus/multilingual.toml) through the index and the alert
//! matcher, and the words against the index's own tokenizer on random text.

use std::collections::BTreeSet;

use rand::{Rng, SeedableRng};
use sqlx::Connection;

use super::words::terms;
use super::{Query, snippet, term_texts};
use crate::store::{Matcher, MessageRow, SearchFilter, testing};

pub(crate) struct Post {
    pub lang: String,
    pub text: String,
    pub hits: Vec<String>,
    pub misses: Vec<String>,
}

pub(crate) fn corpus() -> Vec<Post> {
    let c: toml::Value =
        toml::from_str(include_str!("../../tests/corpus/multilingual.toml")).unwrap();
    let list = |v: &toml::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|q| q.as_str().unwrap().to_string())
            .collect()
    };
    c["post"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| Post {
            lang: p["lang"].as_str().unwrap().into(),
            text: p["text"].as_str().unwrap().into(),
            hits: list(&p["match"]),
            misses: list(&p["miss"]),
        })
        .collect()
}

/// Every query of the corpus against every post: the index's answer (FTS5, through
/// `Store::search`) is the matcher's, and each post is found by its `match` words and not by its
/// `miss` words — by search, by a subscription, and with the match marked in the snippet.
#[tokio::test]
async fn index_and_matcher_agree_on_every_corpus_post_and_query() {
    let posts = corpus();
    let dir = tempfile::tempdir().unwrap();
    let store = testing::store(dir.path(), 1).await;
    store
        .add_channel(&testing::channel(1, Some("c"), "C"))
        .await
        .unwrap();
    let rows: Vec<MessageRow> = posts
        .iter()
        .enumerate()
        .map(|(i, p)| MessageRow {
            id: i as i32 + 1,
            kind: "post",
            date: 1_000 + i as i64,
            text: p.text.clone(),
            ..Default::default()
        })
        .collect();
    store.ingest(1, &rows, None).await.unwrap();
    let f = SearchFilter {
        limit: 1000,
        ..Default::default()
    };
    let queries: BTreeSet<&str> = posts
        .iter()
        .flat_map(|p| p.hits.iter().chain(&p.misses))
        .map(String::as_str)
        .collect();
    for q in &queries {
        let by_index: BTreeSet<i64> = store
            .search(q, &f, false)
            .await
            .unwrap()
            .hits
            .iter()
            .map(|h| h.id)
            .collect();
        let expr = Query::parse(q).unwrap().expr;
        let by_matcher: BTreeSet<i64> = posts
            .iter()
            .enumerate()
            .filter(|(_, p)| expr.matches(&term_texts(&p.text)))
            .map(|(i, _)| i as i64 + 1)
            .collect();
        assert_eq!(by_index, by_matcher, "index and matcher disagree on {q:?}");
        for (i, p) in posts.iter().enumerate() {
            let id = i as i64 + 1;
            let subscribed = Matcher::words_match(q, &p.text);
            assert_eq!(
                subscribed,
                by_matcher.contains(&id),
                "{q:?} in {:?}",
                p.text
            );
            if p.hits.iter().any(|h| h == q) {
                assert!(
                    by_index.contains(&id),
                    "{} post {:?} not found by {q:?}",
                    p.lang,
                    p.text
                );
                let s = snippet(&p.text, &expr, 300);
                assert!(s.contains(super::MATCH_START), "{q:?} not marked in {s:?}");
            }
            if p.misses.iter().any(|m| m == q) {
                assert!(
                    !by_index.contains(&id),
                    "{} post {:?} found by {q:?}",
                    p.lang,
                    p.text
                );
            }
        }
    }
    store.close().await;
}

/// An in-memory FTS5 table `f` with the index's tokenizer (migration 0017) and its
/// vocabulary `v`.
async fn index_tokenizer() -> sqlx::SqliteConnection {
    let mut c = sqlx::SqliteConnection::connect("sqlite::memory:")
        .await
        .unwrap();
    sqlx::query(
        "CREATE VIRTUAL TABLE f USING fts5 (words, content = '', \
         tokenize = \"unicode61 remove_diacritics 2 categories 'L* N* M* Co So'\")",
    )
    .execute(&mut c)
    .await
    .unwrap();
    sqlx::query("CREATE VIRTUAL TABLE v USING fts5vocab ('f', 'instance')")
        .execute(&mut c)
        .await
        .unwrap();
    c
}

/// Text from every script the corpus holds plus random code points of every plane.
fn random_text(rng: &mut rand::rngs::StdRng, pool: &[char]) -> String {
    let n = rng.random_range(0..40);
    (0..n)
        .map(|_| {
            if rng.random_bool(0.7) {
                pool[rng.random_range(0..pool.len())]
            } else if rng.random_bool(0.3) {
                ' '
            } else {
                loop {
                    if let Some(c) = char::from_u32(rng.random_range(0..0x3_0000)) {
                        break c;
                    }
                }
            }
        })
        .collect()
}

/// The index's tokenizer (FTS5 unicode61 with migration 0017's options) keeps every word this
/// module makes exactly as it is: same words, same order. So what the index holds is what the
/// matcher compares, and a query's quoted words reach FTS5 unchanged.
#[tokio::test]
async fn words_are_fixed_points_of_the_index_tokenizer() {
    let mut c = index_tokenizer().await;
    let seed: u64 = std::env::var("TEXT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let posts = corpus();
    let pool: Vec<char> = posts
        .iter()
        .flat_map(|p| p.text.chars())
        .chain("ẞßİıςΣ\u{301}\u{FE0F}\u{200D}👨‍👩‍👧🏽ｶﾞ\u{640}\u{64B}".chars())
        .collect();
    let mut texts: Vec<String> = posts.iter().map(|p| p.text.clone()).collect();
    texts.extend((0..3000).map(|_| random_text(&mut rng, &pool)));
    for (i, text) in texts.iter().enumerate() {
        let ours: Vec<String> = terms(text).into_iter().map(|t| t.text).collect();
        sqlx::query("INSERT INTO f (rowid, words) VALUES (?1, ?2)")
            .bind(i as i64)
            .bind(ours.join(" "))
            .execute(&mut c)
            .await
            .unwrap();
        let theirs: Vec<String> =
            sqlx::query_scalar("SELECT term FROM v WHERE doc = ?1 ORDER BY \"offset\"")
                .bind(i as i64)
                .fetch_all(&mut c)
                .await
                .unwrap();
        assert_eq!(
            ours, theirs,
            "seed {seed} (TEXT_SEED replays it), text {text:?}"
        );
    }
}

/// Every code point, between two letters: the index's tokenizer reads the words made of it
/// exactly as they are (SQLite's Unicode tables and ICU's differ on a handful of characters;
/// `words::is_word_char` follows SQLite there).
#[tokio::test]
async fn every_code_point_reaches_the_index_as_the_matcher_reads_it() {
    let mut c = index_tokenizer().await;
    let all: Vec<char> = (0..0x11_0000u32).filter_map(char::from_u32).collect();
    let mut ours: Vec<(i64, String, char)> = Vec::new();
    for (doc, chunk) in all.chunks(8192).enumerate() {
        let mut words = Vec::new();
        for ch in chunk {
            for t in terms(&format!("a{ch}a")) {
                ours.push((doc as i64, t.text.clone(), *ch));
                words.push(t.text);
            }
        }
        sqlx::query("INSERT INTO f (rowid, words) VALUES (?1, ?2)")
            .bind(doc as i64)
            .bind(words.join(" "))
            .execute(&mut c)
            .await
            .unwrap();
    }
    let theirs: Vec<(i64, String)> =
        sqlx::query_as("SELECT doc, term FROM v ORDER BY doc, \"offset\"")
            .fetch_all(&mut c)
            .await
            .unwrap();
    let first_difference = ours
        .iter()
        .zip(&theirs)
        .find(|((d, w, _), (d2, w2))| d != d2 || w != w2);
    if let Some(((_, w, ch), (_, w2))) = first_difference {
        panic!(
            "U+{:04X}: the matcher reads {w:?}, the index {w2:?}",
            *ch as u32
        );
    }
    assert_eq!(ours.len(), theirs.len());
}
