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

/// FTS5's own check of the index against its declared content (`rank` 1 compares with
/// `search_words`): migrations 0006 to 0015 failed it on every archive ("database disk image is
/// malformed"), as they declared `messages.text` while indexing folded text.
async fn fts_check_against_content(store: &Store) {
    exec(
        store,
        "INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 1)",
    )
    .await;
}

#[tokio::test]
async fn fts5s_content_check_and_rebuild_tell_the_truth_about_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let store = with_posts(dir.path(), 300).await;
    let mut edited = posts(300);
    edited[10].text = "edited 東京都".into();
    store.ingest(1, &edited[..20], None).await.unwrap();
    fts_check_against_content(&store).await;
    // FTS5's documented 'rebuild' gives back the same index: the folds are in the content.
    let before = (count(&store, "елка").await, count(&store, "東京").await);
    exec(
        &store,
        "INSERT INTO messages_fts (messages_fts) VALUES ('rebuild')",
    )
    .await;
    fts_check_against_content(&store).await;
    assert_eq!(before, (299, 1));
    assert_eq!(
        (count(&store, "елка").await, count(&store, "東京").await),
        before
    );
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
    exec(
        &store,
        &format!(
            "DELETE FROM search_words WHERE search_key >= {from}; \
             UPDATE search_index SET pending_from = {from}"
        ),
    )
    .await;
    let writer = store.writer.clone();
    assert_eq!(
        super::catch_up(&writer).await.unwrap(),
        2_000,
        "only the rest"
    );
    assert_eq!(count(&store, "post").await, 5_000);
    fts_check_against_content(&store).await;
    // Words cut by other rules (an older build): everything again.
    exec(&store, "UPDATE search_index SET version = 0").await;
    assert_eq!(super::catch_up(&writer).await.unwrap(), 5_000);
    assert_eq!(count(&store, "比特币3").await, 714);
    fts_check_against_content(&store).await;
    // Another program's rows are indexed at the next write.
    exec(
        &store,
        "INSERT INTO messages (channel_id, id, date, text, fetched_at, updated_at) \
         VALUES (1, 9001, 99, 'scripted fox', 0, 0); \
         UPDATE messages SET text = 'scripted wolf', version = version + 1 WHERE id = 1",
    )
    .await;
    assert_eq!(count(&store, "scripted").await, 0);
    let another = MessageRow {
        id: 7_000,
        kind: "post",
        date: 9_000,
        text: "a post of ours".into(),
        ..Default::default()
    };
    store.ingest(1, &[another], None).await.unwrap();
    assert_eq!(count(&store, "scripted").await, 2);
    assert_eq!(count(&store, "wolf").await, 1);
    fts_check_against_content(&store).await;
    store.close().await;
}
