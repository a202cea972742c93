//! Tests of the search index's build, resume and its agreement with FTS5's own checks.

use crate::store::{MessageRow, SearchFilter, Store, testing};

fn posts(n: i32) -> Vec<MessageRow> {
    (1..=n)
        .map(|i| MessageRow {
            id: i,
            kind: "post",
            date: 1_000 + i64::from(i),
            text: format!("post {i} 比特币{} Ёлка", i % 7),
            ..Default::default()
        })
        .collect()
}

/// A store with channel 1 holding `n` of [`posts`].
async fn with_posts(dir: &std::path::Path, n: i32) -> Store {
    let store = testing::store(dir, 1).await;
    store
        .add_channel(&testing::channel(1, None, "c"))
        .await
        .unwrap();
    store.ingest(1, &posts(n), None).await.unwrap();
    store
}

async fn exec(store: &Store, sql: &str) {
    let mut tx = store.begin_write().await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

async fn count(store: &Store, q: &str) -> usize {
    store
        .search(
            q,
            &SearchFilter {
                limit: 100_000,
                ..Default::default()
            },
            false,
        )
        .await
        .unwrap()
        .hits
        .len()
}

/// FTS5's own check of the index's structure; then the whole index compared, word for word,
/// with what the posts' texts cut to.
async fn index_is_sound(store: &Store) {
    exec(
        store,
        "INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 1)",
    )
    .await;
    let check = store.check_search_index().await.unwrap();
    assert!(check.sound(), "{check:?}");
}

#[tokio::test]
async fn fts5s_checks_tell_the_truth_about_the_contentless_index() {
    let dir = tempfile::tempdir().unwrap();
    let store = with_posts(dir.path(), 300).await;
    let mut edited = posts(300);
    edited[10].text = "edited 東京都".into();
    store.ingest(1, &edited[..20], None).await.unwrap();
    index_is_sound(&store).await;
    assert_eq!(
        (count(&store, "елка").await, count(&store, "東京").await),
        (299, 1)
    );
    // The index declares no content, so FTS5 refuses to rebuild it from something else.
    let mut tx = store.begin_write().await.unwrap();
    let refused = sqlx::query("INSERT INTO messages_fts (messages_fts) VALUES ('rebuild')")
        .execute(&mut *tx)
        .await
        .unwrap_err();
    drop(tx);
    assert!(refused.to_string().contains("contentless"), "{refused}");
    store.close().await;
}

#[tokio::test]
async fn the_check_finds_words_the_index_holds_wrongly() {
    let dir = tempfile::tempdir().unwrap();
    let store = with_posts(dir.path(), 50).await;
    index_is_sound(&store).await;
    let key: i64 = sqlx::query_scalar("SELECT search_key FROM messages WHERE id = 7")
        .fetch_one(store.reader())
        .await
        .unwrap();
    exec(
        &store,
        &format!("INSERT INTO messages_fts (rowid, words) VALUES ({key}, 'stray'), (1, 'orphan')"),
    )
    .await;
    let check = store.check_search_index().await.unwrap();
    assert_eq!(
        (check.posts, check.mismatched, check.stray),
        (50, 1, 1),
        "{check:?}"
    );
    assert!(check.examples[0].contains("stray"), "{check:?}");
    store.close().await;
}

#[tokio::test]
async fn an_interrupted_build_resumes_where_it_stopped_and_a_new_word_rule_rebuilds() {
    let dir = tempfile::tempdir().unwrap();
    let store = with_posts(dir.path(), 5_000).await;
    // A build killed after its batches below post 3,001: their words committed, the rest not.
    let from: i64 = sqlx::query_scalar("SELECT search_key FROM messages WHERE id = 3001")
        .fetch_one(store.reader())
        .await
        .unwrap();
    let rest: Vec<(i64, String)> =
        sqlx::query_as("SELECT search_key, text FROM messages WHERE search_key >= ?1")
            .bind(from)
            .fetch_all(store.reader())
            .await
            .unwrap();
    let mut tx = store.begin_write().await.unwrap();
    for (key, text) in &rest {
        super::remove(&mut tx, *key, &crate::text::index_words(text))
            .await
            .unwrap();
    }
    sqlx::query("UPDATE search_index SET pending_from = ?1")
        .bind(from)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    // Meanwhile another program edits a post the build has not reached and one it has: the
    // first is indexed as it is now by the build, the second settled after it.
    exec(
        &store,
        "UPDATE messages SET text = 'late edit' WHERE id IN (10, 4000)",
    )
    .await;
    let writer = store.writer.clone();
    assert_eq!(
        super::catch_up(&writer).await.unwrap(),
        2_000,
        "only the rest"
    );
    assert_eq!(count(&store, "post").await, 4_998);
    assert_eq!(count(&store, "late").await, 2);
    index_is_sound(&store).await;
    // Words cut by other rules (an older build): everything again.
    exec(&store, "UPDATE search_index SET version = 0").await;
    assert_eq!(super::catch_up(&writer).await.unwrap(), 5_000);
    // 714 posts end in 3 (i % 7), two of them since edited.
    assert_eq!(count(&store, "比特币3").await, 712);
    index_is_sound(&store).await;
    store.close().await;
}

#[tokio::test]
async fn other_programs_inserts_edits_and_deletes_reach_the_index_at_the_next_write() {
    let dir = tempfile::tempdir().unwrap();
    let store = with_posts(dir.path(), 100).await;
    exec(
        &store,
        "INSERT INTO messages (channel_id, id, date, text, fetched_at, updated_at) \
         VALUES (1, 9001, 99, 'scripted fox', 0, 0); \
         UPDATE messages SET text = 'scripted wolf', version = version + 1 WHERE id = 1; \
         UPDATE messages SET text = 'scripted bear', version = version + 1 WHERE id = 1; \
         DELETE FROM messages WHERE id IN (2, 3)",
    )
    .await;
    assert_eq!(count(&store, "scripted").await, 0, "not settled yet");
    let another = MessageRow {
        id: 7_000,
        kind: "post",
        date: 9_000,
        text: "a post of ours".into(),
        ..Default::default()
    };
    store.ingest(1, &[another], None).await.unwrap();
    assert_eq!(count(&store, "scripted").await, 2);
    assert_eq!(count(&store, "bear").await, 1);
    assert_eq!(count(&store, "wolf").await, 0);
    assert_eq!(count(&store, "post").await, 98);
    index_is_sound(&store).await;
    store.close().await;
}

#[tokio::test]
async fn a_new_post_never_takes_the_key_of_a_deleted_post_whose_words_are_still_indexed() {
    let dir = tempfile::tempdir().unwrap();
    let store = with_posts(dir.path(), 5).await;
    // The newest post of its second deleted by another program: its words stay in the index
    // until settled, under its key, the next free one of that second.
    exec(&store, "DELETE FROM messages WHERE id = 5").await;
    let same_second = MessageRow {
        id: 6,
        kind: "post",
        date: 1_005,
        text: "same second".into(),
        ..Default::default()
    };
    store.ingest(1, &[same_second], None).await.unwrap();
    index_is_sound(&store).await;
    assert_eq!(count(&store, "second").await, 1);
    assert_eq!(count(&store, "post").await, 4);
    store.close().await;
}

#[tokio::test]
async fn purging_a_channel_takes_its_words_out_of_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let store = with_posts(dir.path(), 700).await;
    store
        .add_channel(&testing::channel(2, None, "d"))
        .await
        .unwrap();
    store.ingest(2, &posts(3), None).await.unwrap();
    assert_eq!(store.remove_channel(1, true).await.unwrap(), 700);
    let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM search_pending")
        .fetch_one(store.reader())
        .await
        .unwrap();
    assert_eq!(queued, 0);
    index_is_sound(&store).await;
    assert_eq!(count(&store, "post").await, 3);
    store.close().await;
}
