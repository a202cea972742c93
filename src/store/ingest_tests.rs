//! Tests of `store::ingest`: rows fitted to the schema's CHECK constraints, which the move into
//! `messages` skips.

use super::*;
use crate::store::testing;

async fn store_with_channel(dir: &std::path::Path) -> Store {
    let store = testing::store(dir, 1).await;
    store
        .add_channel(&testing::channel(7, Some("c7"), "C7"))
        .await
        .unwrap();
    store
}

fn post(id: i32, text: &str) -> MessageRow {
    MessageRow {
        id,
        kind: "post",
        date: 1_700_000_000 + i64::from(id),
        text: text.into(),
        entities: Some(r#"[{"type":"bold","offset":0,"length":4}]"#.into()),
        ..Default::default()
    }
}

/// `(entities, media_kind, convert_error)` of a stored post.
async fn stored(
    store: &Store,
    id: i32,
) -> (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
) {
    let mut tx = store.begin_write().await.unwrap();
    let row = sqlx::query_as(
        "SELECT entities, reactions, media_kind, convert_error FROM messages \
         WHERE channel_id = 7 AND id = ?",
    )
    .bind(id)
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    row
}

#[tokio::test]
async fn a_post_with_invalid_json_no_longer_fails_its_whole_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_channel(dir.path()).await;
    let mut bad = post(2, "second");
    bad.entities = Some("[{\"type\":\"bold\"".into());
    bad.reactions = Some(r#"{"results":[]}"#.into());
    bad.media_kind = Some("hologram");
    bad.convert_error = Some("reply header: unknown constructor".into());
    // Before, SQLite's CHECKs refused the bad row and with it the other two.
    store
        .ingest(7, &[post(1, "first"), bad, post(3, "third")], None)
        .await
        .unwrap();
    let (entities, reactions, media_kind, error) = stored(&store, 2).await;
    assert_eq!(entities, None, "the broken column is left out");
    assert_eq!(reactions.as_deref(), Some(r#"{"results":[]}"#));
    assert_eq!(media_kind.as_deref(), Some("unsupported"));
    let error = error.unwrap();
    assert!(
        error.starts_with("reply header: unknown constructor; ")
            && error.contains("entities is not valid JSON (EOF while parsing")
            && error.contains("media kind \"hologram\""),
        "{error}"
    );
    for id in [1, 3] {
        let (entities, _, _, error) = stored(&store, id).await;
        assert_eq!(
            entities.as_deref(),
            Some(r#"[{"type":"bold","offset":0,"length":4}]"#)
        );
        assert_eq!(error, None);
    }
    let f = crate::store::SearchFilter {
        limit: 10,
        ..Default::default()
    };
    let found = store.search("second", &f, false).await.unwrap();
    assert_eq!(found.hits.len(), 1, "the fitted post is searchable");
    store.close().await;
}

#[tokio::test]
async fn every_other_write_is_still_checked() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_channel(dir.path()).await;
    store.ingest(7, &[post(1, "first")], None).await.unwrap();
    let mut tx = store.begin_write().await.unwrap();
    let e = sqlx::query("UPDATE messages SET entities = 'not json' WHERE id = 1")
        .execute(&mut *tx)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("CHECK constraint failed"), "{e}");
    tx.rollback().await.unwrap();
    store.close().await;
}

#[tokio::test]
async fn backfill_commits_and_other_writes_never_meet_a_locked_database() {
    let dir = tempfile::tempdir().unwrap();
    // No busy wait at all: two connections writing at once would fail with SQLITE_BUSY.
    let store = Store::open(&crate::config::StoreConfig {
        dir: dir.path().join("s"),
        busy_timeout: std::time::Duration::ZERO,
        read_connections: 1,
    })
    .await
    .unwrap();
    store
        .add_channel(&testing::channel(7, Some("c7"), "C7"))
        .await
        .unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..40 {
        let store = store.clone();
        tasks.spawn(async move {
            if i % 2 == 0 {
                let rows: Vec<MessageRow> =
                    (0..50).map(|k| post(i * 100 + k + 1, "busy")).collect();
                store.ingest(7, &rows, None).await
            } else {
                store
                    .audit("test", "probe", serde_json::json!({ "i": i }))
                    .await
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap().unwrap();
    }
    let mut tx = store.begin_write().await.unwrap();
    let (posts, probes): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM messages), \
                (SELECT count(*) FROM audit_log WHERE action = 'probe')",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!((posts, probes), (20 * 50, 20));
    store.close().await;
}

/// The quoted values of the first `<column> IN (...)` in `sql`.
fn allowed(sql: &str, column: &str) -> Vec<String> {
    let from = sql.find(&format!("{column} IN (")).unwrap() + column.len() + 5;
    let list = &sql[from..from + sql[from..].find(')').unwrap()];
    list.split(',')
        .map(|v| v.trim().trim_matches('\'').to_string())
        .collect()
}

#[tokio::test]
async fn the_kinds_the_writer_fits_rows_to_are_the_schemas() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_channel(dir.path()).await;
    let mut tx = store.begin_write().await.unwrap();
    let (sql,): (String,) =
        sqlx::query_as("SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = 'messages'")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(allowed(&sql, "kind"), KINDS);
    assert_eq!(allowed(&sql, "media_kind"), MEDIA_KINDS);
    // Every one of them is stored as it is.
    let rows: Vec<MessageRow> = MEDIA_KINDS
        .iter()
        .zip(1..)
        .map(|(kind, id)| MessageRow {
            media_kind: Some(kind),
            kind: KINDS[(id % 2) as usize],
            ..post(id, "media")
        })
        .collect();
    store.ingest(7, &rows, None).await.unwrap();
    for (kind, id) in MEDIA_KINDS.iter().zip(1..) {
        let (_, _, media_kind, error) = stored(&store, id).await;
        assert_eq!(media_kind.as_deref(), Some(*kind));
        assert_eq!(error, None);
    }
    store.close().await;
}

#[tokio::test]
async fn what_the_writer_takes_for_json_sqlite_takes_too() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_channel(dir.path()).await;
    let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    let samples = [
        r#"{"a":[1,2.5,-0,1e10,true,null,"x\u00e9\n"]}"#.to_string(),
        " [1] ".into(),
        "123456789012345678901234567890".into(),
        "1e400".into(),
        r#""\ud800""#.into(),
        r#""\ud83d\ude80""#.into(),
        "\"a\tb\"".into(),
        "[1,]".into(),
        "{'a':1}".into(),
        "{a:1}".into(),
        "NaN".into(),
        "01".into(),
        "1.".into(),
        ".5".into(),
        "0x10".into(),
        r#""\x41""#.into(),
        "[1] x".into(),
        "/* c */ 1".into(),
        String::new(),
        deep(128),
        deep(129),
        deep(1000),
        deep(1001),
        format!("[\"{}\"]", "[".repeat(2000)),
    ];
    let mut tx = store.begin_write().await.unwrap();
    let mut taken = 0;
    for s in &samples {
        let (valid,): (bool,) = sqlx::query_as("SELECT json_valid(?)")
            .bind(s)
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        assert_eq!(
            json_ok(s).is_ok(),
            valid,
            "{s:?}: the writer's check and SQLite's json_valid disagree"
        );
        taken += usize::from(valid);
    }
    tx.rollback().await.unwrap();
    assert!(taken >= 5, "the samples include valid JSON ({taken} taken)");
    store.close().await;
}

#[tokio::test]
async fn a_json_value_nested_deeper_than_sqlite_takes_is_no_longer_stored() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_channel(dir.path()).await;
    let mut deep = post(1, "deep");
    deep.entities = Some(format!("{}{}", "[".repeat(1001), "]".repeat(1001)));
    store.ingest(7, &[deep], None).await.unwrap();
    let (entities, _, _, error) = stored(&store, 1).await;
    assert_eq!(entities, None);
    let error = error.unwrap();
    assert!(error.contains("nested 1001 deep"), "{error}");
    // What is stored passes SQLite's own check.
    let mut tx = store.begin_write().await.unwrap();
    let (bad,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM messages WHERE entities IS NOT NULL AND NOT json_valid(entities)",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(bad, 0);
    store.close().await;
}

/// Stored ids of a channel, ascending.
async fn ids_of(store: &Store, channel_id: i64) -> Vec<i32> {
    sqlx::query_scalar("SELECT id FROM messages WHERE channel_id = ? ORDER BY id")
        .bind(channel_id)
        .fetch_all(store.reader())
        .await
        .unwrap()
}

#[tokio::test]
async fn purging_a_channel_while_its_pages_await_commit_no_longer_fails_the_other_channels_pages() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_channel(dir.path()).await;
    store
        .add_channel(&testing::channel(8, Some("c8"), "C8"))
        .await
        .unwrap();
    let seven = [post(1, "seven one"), post(2, "seven two")];
    let eight = [post(1, "eight one"), post(2, "eight two")];
    // Pages of both channels fetched; channel 7 is purged before they are committed.
    store.remove_channel(7, true).await.unwrap();
    let cursor = |channel_id| {
        Some(CursorAdvance {
            channel_id,
            cursor: 1,
            done: false,
        })
    };
    // Before, channel 7's posts failed the commit's foreign key, and channel 8's went with them.
    store
        .ingest_group(&[
            (7, seven.as_slice(), cursor(7)),
            (8, eight.as_slice(), cursor(8)),
        ])
        .await
        .unwrap();
    assert_eq!(ids_of(&store, 8).await, vec![1, 2]);
    assert_eq!(ids_of(&store, 7).await, Vec::<i32>::new());
    let cursor8: Option<i32> =
        sqlx::query_scalar("SELECT backfill_cursor FROM channels WHERE id = 8")
            .fetch_one(store.reader())
            .await
            .unwrap();
    assert_eq!(cursor8, Some(1));
    // A live post of the purged channel is dropped too, not an error.
    assert_eq!(
        store
            .ingest_live(7, &[post(3, "late")], None)
            .await
            .unwrap(),
        0
    );
    assert_eq!(ids_of(&store, 7).await, Vec::<i32>::new());
    assert!(
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM channels WHERE id = 7")
            .fetch_one(store.reader())
            .await
            .unwrap()
            == 0
    );
}

/// A post's text changed by another program kept its version; the parser's next edit of it
/// recorded that version again, and the upsert's conflict policy overrode the trigger's
/// OR IGNORE: the batch failed, and at every retry.
#[tokio::test]
async fn an_edit_after_another_program_changed_the_text_is_stored_not_refused_forever() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_channel(dir.path()).await;
    store.ingest(7, &[post(1, "first")], None).await.unwrap();
    sqlx::query("UPDATE messages SET text = 'by hand' WHERE channel_id = 7 AND id = 1")
        .execute(&store.writer)
        .await
        .unwrap();
    store
        .ingest_live(7, &[post(1, "edited on Telegram"), post(2, "next")], None)
        .await
        .unwrap();
    let versions: Vec<(i64, String)> = sqlx::query_as(
        "SELECT version, text FROM v_post_history WHERE channel_id = 7 AND message_id = 1 ORDER BY version",
    )
    .fetch_all(store.reader())
    .await
    .unwrap();
    assert_eq!(
        versions,
        [
            (1, "first".to_string()),
            (2, "by hand".to_string()),
            (3, "edited on Telegram".to_string())
        ]
    );
    assert_eq!(ids_of(&store, 7).await, [1, 2]);
    store.close().await;
}
