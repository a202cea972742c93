//! Tests of `store::search`.

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
        matches!(&e, SearchError::Query { .. })
            && e.to_string().contains("not valid search syntax"),
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
        // FTS5's own prefix search of the same expression, nothing spelled out.
        let native: Vec<i64> = sqlx::query_scalar(
            "SELECT m.id FROM messages_fts JOIN messages m ON m.search_key = messages_fts.rowid \
             WHERE messages_fts MATCH ?1 ORDER BY messages_fts.rowid DESC",
        )
        .bind(Query::parse(q).unwrap().expr.to_fts5())
        .fetch_all(store.reader())
        .await
        .unwrap();
        assert_eq!(ours, native, "{q}");
    }
    assert_eq!(
        ids(&store.search("infl*", &f, false).await.unwrap()),
        vec![5, 3, 2, 1]
    );
    let spelled = |q: &str| {
        let store = store.clone();
        let expr = Query::parse(q).unwrap().expr;
        async move { store.fts_query(&expr).await.unwrap() }
    };
    assert_eq!(
        spelled("infl*").await,
        "(\"infl\" OR \"inflated\" OR \"inflation\" OR \"influx\")"
    );
    assert_eq!(spelled("zq*").await, "\"zq\"*", "left to FTS5");
    store.close().await;
}

/// The search index's words, as FTS5 lists them: (word, search key, position), in order.
async fn index_words(store: &Store) -> Vec<(String, i64, i64)> {
    sqlx::query_as("SELECT term, doc, \"offset\" FROM messages_terms ORDER BY doc, \"offset\"")
        .fetch_all(store.reader())
        .await
        .unwrap()
}

/// The index as it should be: every stored post's words (`text::index_words`, computed here
/// from the stored text), indexed from scratch into a separate table with the same tokenizer.
async fn index_rebuilt_from_the_texts(store: &Store) -> Vec<(String, i64, i64)> {
    let texts: Vec<(i64, String)> = sqlx::query_as("SELECT search_key, text FROM messages")
        .fetch_all(store.reader())
        .await
        .unwrap();
    let mut c = store.begin_write().await.unwrap();
    for sql in [
        "CREATE VIRTUAL TABLE temp.oracle USING fts5 (words, \
         tokenize = \"unicode61 remove_diacritics 2 categories 'L* N* M* Co So'\")",
        "CREATE VIRTUAL TABLE temp.oracle_terms USING fts5vocab ('temp', 'oracle', 'instance')",
    ] {
        sqlx::query(sql).execute(&mut *c).await.unwrap();
    }
    for (key, text) in texts {
        sqlx::query("INSERT INTO temp.oracle (rowid, words) VALUES (?1, ?2)")
            .bind(key)
            .bind(crate::text::index_words(&text))
            .execute(&mut *c)
            .await
            .unwrap();
    }
    let words = sqlx::query_as(
        "SELECT term, doc, \"offset\" FROM temp.oracle_terms ORDER BY doc, \"offset\"",
    )
    .fetch_all(&mut *c)
    .await
    .unwrap();
    for sql in ["DROP TABLE temp.oracle_terms", "DROP TABLE temp.oracle"] {
        sqlx::query(sql).execute(&mut *c).await.unwrap();
    }
    c.commit().await.unwrap();
    words
}

#[tokio::test]
async fn the_index_holds_each_posts_words_through_edits_replays_and_purges() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(dir.path(), &[7]).await;
    let rows = [
        post(1, 100, "ёлка во дворе"),
        post(2, 200, "ЁЛКА ВО ДВОРЕ"),
        post(3, 300, "Ёлка и ёжик 比特币大涨"),
        post(4, 400, "елка без точек"),
        post(5, 500, ""),
    ];
    store.ingest(7, &rows, None).await.unwrap();
    // The same posts again, unchanged (a poll reading them once more), and a post given twice
    // in one batch.
    store.ingest(7, &rows, None).await.unwrap();
    store
        .ingest(
            7,
            &[post(6, 600, "first copy"), post(6, 600, "second copy")],
            None,
        )
        .await
        .unwrap();
    let f = SearchFilter {
        limit: 10,
        ..Default::default()
    };
    for q in ["елка", "ёлка", "ЁЛКА"] {
        assert_eq!(
            ids(&store.search(q, &f, false).await.unwrap()),
            vec![4, 3, 2, 1],
            "{q}"
        );
    }
    assert_eq!(
        ids(&store.search("copy", &f, false).await.unwrap()),
        vec![6]
    );
    assert_eq!(
        ids(&store.search("first", &f, false).await.unwrap()),
        Vec::<i64>::new()
    );
    assert_eq!(
        index_words(&store).await,
        index_rebuilt_from_the_texts(&store).await
    );

    let edits = [
        post(4, 400, "теперь ёлка"),
        post(1, 100, "просто ель"),
        post(3, 300, "Ёжик"),
        post(2, 200, "Ёж и ёлка"),
    ];
    store.ingest(7, &edits, None).await.unwrap();
    assert_eq!(
        ids(&store.search("елка", &f, false).await.unwrap()),
        vec![4, 2]
    );
    assert_eq!(
        ids(&store.search("ежик", &f, false).await.unwrap()),
        vec![3]
    );
    assert_eq!(
        ids(&store.search("比特币", &f, false).await.unwrap()),
        Vec::<i64>::new()
    );
    assert_eq!(ids(&store.search("ель", &f, false).await.unwrap()), vec![1]);
    assert_eq!(
        index_words(&store).await,
        index_rebuilt_from_the_texts(&store).await
    );
    fts_integrity_check(&store).await;

    // Deleted rows leave the index by their key: purged, the index is empty.
    store.remove_channel(7, true).await.unwrap();
    assert_eq!(index_words(&store).await, vec![]);
    fts_integrity_check(&store).await;
    store.close().await;
}
