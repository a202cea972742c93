//! The daemon follows channels live: new posts, edits (versions kept), deletions (soft), and a
//! pts gap filled from getChannelDifference — the real binary against the fake Telegram.

mod common;

use std::time::{Duration, Instant};

use common::*;
use fake_telegram::flood::QuotaMode;
use fake_telegram::{FakeTelegram, Options};

async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_stores_live_posts_edits_deletions_and_fills_a_gap() {
    let fake = FakeTelegram::start(Options {
        channels: 2,
        posts: 300,
        password: None,
        quotas: QuotaMode::Off,
        ..Default::default()
    })
    .await
    .unwrap();
    let env = telegram_env(&fake);
    let out = run_with_input(
        &env,
        &["login", "--phone", &fake.info.phone.clone()],
        &format!("{}\n", fake.info.code),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let name = fake.info.channels[0].clone();
    let out = run_with_input(&env, &["channels", "add", &name], "").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let ch = fake.world.channel_id(&name).unwrap();

    let notify = NotifySocket::new(env.dir.path());
    let mut child = spawn_daemon(&env, Some(&notify));
    notify
        .wait_for("READY=1", Duration::from_secs(20))
        .expect("READY=1");
    let t = Instant::now();
    while sql(&env, "SELECT backfill_state FROM channels") != "done" {
        if t.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "no backfill within 20 s; daemon log:\n{}",
                stderr_of(&mut child)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let id = fake.world.post(ch, "Live: первая новость 🚀").unwrap();
    wait_until("the new post", || {
        sql(
            &env,
            &format!("SELECT text FROM messages WHERE id = {id} AND channel_id = {ch}"),
        ) == "Live: первая новость 🚀"
    })
    .await;

    fake.world
        .edit(ch, id, "Live: исправленная новость")
        .unwrap();
    wait_until("the edit", || {
        sql(
            &env,
            &format!("SELECT version FROM messages WHERE id = {id} AND channel_id = {ch}"),
        ) == "2"
    })
    .await;
    assert_eq!(
        sql(
            &env,
            &format!(
                "SELECT text FROM message_versions WHERE message_id = {id} AND channel_id = {ch} AND version = 1"
            )
        ),
        "Live: первая новость 🚀",
        "the text before the edit is kept as version 1"
    );

    fake.world.delete(ch, &[id]).unwrap();
    wait_until("the deletion", || {
        sql(
            &env,
            &format!(
                "SELECT deleted_at IS NOT NULL FROM messages WHERE id = {id} AND channel_id = {ch}"
            ),
        ) == "1"
    })
    .await;
    assert_eq!(
        sql(
            &env,
            &format!("SELECT text FROM messages WHERE id = {id} AND channel_id = {ch}")
        ),
        "Live: исправленная новость",
        "a deleted post keeps its text"
    );

    let missed = fake.world.open_gap(ch, 5).unwrap();
    let after = fake.world.post(ch, "After the gap").unwrap();
    let want = missed.len() + 1;
    let ids = missed
        .iter()
        .chain([after].iter())
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",");
    wait_until("the gap to be filled", || {
        sql(
            &env,
            &format!("SELECT count(*) FROM messages WHERE channel_id = {ch} AND id IN ({ids})"),
        ) == want.to_string()
    })
    .await;

    // Posts of a channel nobody follows are not stored.
    let other = fake.world.channel_id(&fake.info.channels[1]).unwrap();
    fake.world.post(other, "not followed").unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        sql(
            &env,
            &format!("SELECT count(*) FROM messages WHERE channel_id = {other}")
        ),
        "0"
    );

    sigterm(&child);
    let (code, _) = wait_exit(&mut child, Duration::from_secs(10));
    assert_eq!(code, Some(0), "{}", stderr_of(&mut child));
    assert_eq!(sql(&env, "PRAGMA integrity_check"), "ok");
}
