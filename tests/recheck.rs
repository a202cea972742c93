//! Rechecks against the fake: a channel's stored posts read again from history, to find the
//! edits and deletions no update brings (after `channelDifferenceTooLong`, or asked by an
//! operator with `tgparser channels recheck`).

mod common;

use common::*;

/// More happened while the daemon was stopped than Telegram hands out as events: the catch-up
/// answered `channelDifferenceTooLong`, and the edits and deletions of older posts in that
/// stretch were lost for good (only new posts were refilled). The stored posts are now read
/// again from history, as Telegram's documentation asks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_and_deletions_lost_in_a_difference_too_long_are_found_in_history() {
    let (fake, env, ch) = one_channel(250).await;
    let exact = || stored_view(&env, ch) == world_view(&fake, ch);
    let mut child = started(&env).await;
    wait_daemon(&mut child, "the backfill", exact).await;
    stop(&mut child);

    // Posts old and new (on several history pages) edited and deleted, the newest deleted,
    // then more posts than the fake's difference hands out (500 events).
    let ids: Vec<i32> = world_view(&fake, ch)
        .into_iter()
        .filter(|(_, t)| !t.is_empty())
        .map(|(id, _)| id)
        .collect();
    let newest = *ids.last().unwrap();
    for &id in &[ids[3], ids[120], newest - 1] {
        fake.world
            .edit(ch, id, &format!("post {id}, edited while away"))
            .unwrap();
    }
    fake.world.delete(ch, &[ids[7], ids[150], newest]).unwrap();
    for i in 0..600 {
        fake.world
            .post(ch, &format!("busy while away {i}"))
            .unwrap();
    }
    let mut child = started(&env).await;
    wait_daemon(&mut child, "the edits and deletions of the stretch", exact).await;
    wait_daemon(&mut child, "the recheck's end", || {
        one(
            &env,
            "SELECT count(*) FROM rechecks WHERE finished_at IS NULL",
        ) == "0"
    })
    .await;
    stop(&mut child);
    assert_eq!(
        one(
            &env,
            &format!("SELECT count(*) FROM messages WHERE channel_id = {ch} AND version = 2")
        ),
        "3",
        "each edit a new version"
    );
    assert_eq!(one(&env, "PRAGMA integrity_check"), "ok");
}

/// An archive that missed changes (here: two posts' stored texts and a deletion undone behind
/// the daemon's back, as a restore of an old backup would) is set right by
/// `tgparser channels recheck`, which a running daemon picks up; `channels list` shows it while
/// it runs, and a paused channel's waits for it to resume.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_recheck_sets_right_what_the_archive_missed() {
    let (fake, env, ch) = one_channel(320).await;
    let exact = || stored_view(&env, ch) == world_view(&fake, ch);
    let mut child = started(&env).await;
    wait_daemon(&mut child, "the backfill", exact).await;
    let ids: Vec<i32> = world_view(&fake, ch)
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let gone = ids[40];
    fake.world.delete(ch, &[gone]).unwrap();
    wait_daemon(&mut child, "the deletion", exact).await;
    sql_write(
        &env,
        &format!(
            "UPDATE messages SET text = 'stale' WHERE channel_id = {ch} AND id IN ({}, {}); \
             UPDATE messages SET deleted_at = NULL WHERE channel_id = {ch} AND id = {gone};",
            ids[5], ids[300]
        ),
    );
    assert!(!exact());

    let name = format!("@{}", fake.info.channels[0]);
    let out = env.run(&["channels", "pause", &name]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = env.run(&["channels", "recheck", &name]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("starts when the channel is resumed"),
        "{}",
        text(&out)
    );
    let out = env.run(&["channels", "list"]);
    assert!(
        text(&out).contains("re-reading stored posts from history (from the newest; so far 0 read"),
        "{}",
        text(&out)
    );
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert!(!exact(), "a paused channel's recheck ran");

    let out = env.run(&["channels", "resume", &name]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    wait_daemon(&mut child, "the recheck", || {
        exact()
            && one(
                &env,
                "SELECT count(*) FROM rechecks WHERE finished_at IS NULL",
            ) == "0"
    })
    .await;
    stop(&mut child);
    assert_eq!(one(&env, "PRAGMA integrity_check"), "ok");
    let out = env.run(&["channels", "list"]);
    assert!(
        text(&out).contains("2 edited, 1 deleted, 0 missing found"),
        "the last recheck stays listed: {}",
        text(&out)
    );
    let log = stderr_of(&mut child);
    assert!(
        log.contains("recheck complete") && log.contains("edited=2 deleted=1 found=0"),
        "{log}"
    );
}
