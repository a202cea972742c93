use super::{Recheck, RecheckPage, Rechecked};
use crate::store::{MessageRow, Store, testing};

fn post(id: i32, text: &str) -> MessageRow {
    MessageRow {
        id,
        kind: "post",
        date: 1_000 + i64::from(id),
        text: text.into(),
        ..Default::default()
    }
}

async fn scalar(store: &Store, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(store.reader())
        .await
        .unwrap()
}

/// Posts 10..=40 stored; Telegram since edited 35, deleted 38 and 22, and has 41 and 42 (a
/// hole: 41 was never stored) and 5..9 below the stored range (the backfill's).
#[tokio::test]
async fn a_recheck_finds_edits_and_deletions_page_by_page_and_touches_nothing_outside_its_range() {
    let dir = tempfile::tempdir().unwrap();
    let store = testing::store(dir.path(), 1).await;
    store
        .add_channel(&testing::channel(1, None, "c"))
        .await
        .unwrap();
    store.touch_bot_user(7, None, "Ann", Some(7)).await.unwrap();
    store
        .subscribe(7, 7, "words", "hole", None)
        .await
        .unwrap()
        .unwrap();
    let stored: Vec<MessageRow> = (10..=40).map(|i| post(i, &format!("post {i}"))).collect();
    store.ingest(1, &stored, None).await.unwrap();
    store.ingest(1, &[post(42, "newest")], None).await.unwrap();

    store.queue_recheck(1, 0, "too_long").await.unwrap();
    let r = store.rechecks().await.unwrap();
    assert_eq!(
        r,
        [Recheck {
            channel: 1,
            before: 0
        }]
    );

    // Page 1: ids 42..=30 as Telegram has them now (38 gone, 35 edited, 41 a hole).
    let mut page: Vec<MessageRow> = (30..=42)
        .filter(|i| *i != 38)
        .map(|i| match i {
            35 => post(35, "post 35, edited"),
            41 => post(41, "the hole"),
            42 => post(42, "newest"),
            i => post(i, &format!("post {i}")),
        })
        .collect();
    page.reverse();
    let present: Vec<i32> = page.iter().map(|m| m.id).collect();
    let got = store.recheck_page(r[0], &page, &present, 30).await.unwrap();
    assert_eq!(
        got,
        RecheckPage {
            page: Rechecked {
                checked: 11,
                edited: 1,
                deleted: 1,
                found: 1,
            },
            total: Rechecked {
                checked: 11,
                edited: 1,
                deleted: 1,
                found: 1,
            },
            next: Some(30),
        }
    );
    // A replayed page (a crash before the next) finds nothing more.
    let again = store
        .recheck_page(
            Recheck {
                channel: 1,
                before: 0,
            },
            &page,
            &present,
            30,
        )
        .await
        .unwrap();
    assert_eq!(
        (again.page.edited, again.page.deleted, again.page.found),
        (0, 0, 0)
    );
    assert_eq!(
        store.rechecks().await.unwrap(),
        [Recheck {
            channel: 1,
            before: 30
        }],
        "a replay of an older page keeps the queue's place"
    );

    // Page 2: ids 29..=5 (22 gone); 5..=9 lie below the stored range: left to the backfill.
    let page: Vec<MessageRow> = (5..30)
        .rev()
        .filter(|i| *i != 22)
        .map(|i| post(i, &format!("post {i}")))
        .collect();
    let present: Vec<i32> = page.iter().map(|m| m.id).collect();
    let got = store
        .recheck_page(
            Recheck {
                channel: 1,
                before: 30,
            },
            &page,
            &present,
            5,
        )
        .await
        .unwrap();
    assert_eq!(
        (got.page.edited, got.page.deleted, got.page.found, got.next),
        (0, 1, 0, None)
    );
    assert_eq!(
        (
            got.total.checked,
            got.total.edited,
            got.total.deleted,
            got.total.found
        ),
        (11 + 12 + 19, 1, 2, 1),
        "the replayed page counted its re-reads"
    );
    assert!(store.rechecks().await.unwrap().is_empty(), "done");
    let last = store.recheck_progress().await.unwrap();
    assert_eq!(last.len(), 1);
    assert!(
        last[0].finished_at.is_some(),
        "kept as the channel's last recheck"
    );
    assert_eq!(last[0].so_far, got.total);

    assert_eq!(
        text(&store, "SELECT group_concat(id) FROM (SELECT id FROM messages WHERE channel_id = 1 AND deleted_at IS NOT NULL ORDER BY id)").await,
        "22,38"
    );
    assert_eq!(
        text(&store, "SELECT group_concat(id) FROM (SELECT id FROM messages WHERE channel_id = 1 AND version > 1)").await,
        "35"
    );
    assert_eq!(scalar(&store, "SELECT min(id) FROM messages").await, 10);
    assert_eq!(
        scalar(&store, "SELECT count(*) FROM outbox WHERE kind = 'alert'").await,
        1,
        "the hole's post alerted; no re-read post alerted"
    );
    assert!(store.check_search_index().await.unwrap().sound());

    // Queued again half-way: it starts again from the top.
    store.queue_recheck(1, 0, "operator").await.unwrap();
    let r = store.rechecks().await.unwrap();
    store
        .recheck_page(r[0], &[post(42, "newest")], &[42], 42)
        .await
        .unwrap();
    store.queue_recheck(1, 0, "too_long").await.unwrap();
    assert_eq!(
        store.rechecks().await.unwrap(),
        [Recheck {
            channel: 1,
            before: 0
        }]
    );
    // A paused channel's recheck waits; a purged channel's goes with it.
    store.set_channel_state(1, "paused", None).await.unwrap();
    assert!(store.rechecks().await.unwrap().is_empty());
    store.remove_channel(1, true).await.unwrap();
    assert_eq!(scalar(&store, "SELECT count(*) FROM rechecks").await, 0);
    store.close().await;
}

async fn text(store: &Store, sql: &'static str) -> String {
    sqlx::query_scalar(sql)
        .fetch_one(store.reader())
        .await
        .unwrap()
}
