//! Telegram's refusals while following: a resolve FLOOD_WAIT of hours (answered at once, the
//! request kept queued), a channel followed already (never resolved again), an access hash
//! that went stale (looked up again once, and the channel goes on).

mod common;

use std::time::{Duration, Instant};

use common::*;
use fake_telegram::faults::{Fault, FaultKind};
use fake_telegram::flood::QuotaMode;
use fake_telegram::{FakeTelegram, Options};

async fn fake() -> FakeTelegram {
    FakeTelegram::start(Options {
        channels: 2,
        posts: 20,
        password: None,
        quotas: QuotaMode::Off,
        ..Default::default()
    })
    .await
    .unwrap()
}

fn resolves(fake: &FakeTelegram) -> u64 {
    fake.world
        .stats()
        .requests
        .get("contacts.resolveUsername")
        .copied()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_resolve_wait_is_answered_at_once_and_a_followed_channel_is_not_resolved_again() {
    let fake = fake().await;
    let env = telegram_env(&fake);
    login_and_add(&env, &fake, std::slice::from_ref(&fake.info.channels[0])).await;
    let mut child = started(&env).await;
    // Followed already: answered from the database, no resolve.
    let before = resolves(&fake);
    let out = run_with_input(&env, &["channels", "add", &fake.info.channels[0]], "").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("already followed"), "{}", text(&out));
    assert_eq!(resolves(&fake), before, "resolved again");

    // Telegram makes resolving wait ten minutes: the answer comes at once, the request stays.
    fake.faults.add(Fault {
        kind: FaultKind::FloodWait { secs: 600 },
        method: Some("contacts.resolveUsername".into()),
        count: 1,
    });
    let t = Instant::now();
    let out = run_with_input(&env, &["channels", "add", &fake.info.channels[1]], "").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("Telegram asks to wait 10 min"),
        "{}",
        text(&out)
    );
    assert!(
        t.elapsed() < Duration::from_secs(15),
        "answered in {:?}",
        t.elapsed()
    );
    assert_eq!(
        sql(
            &env,
            "SELECT state FROM channel_requests ORDER BY id DESC LIMIT 1"
        ),
        "pending"
    );
    // Nothing is called during the wait.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(fake.world.stats().calls_during_wait, 0);
    stop(&mut child);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_access_hash_is_looked_up_again_once_and_the_channel_goes_on() {
    let fake = fake().await;
    let env = telegram_env(&fake);
    login_and_add(&env, &fake, std::slice::from_ref(&fake.info.channels[0])).await;
    let ch = fake.world.channel_id(&fake.info.channels[0]).unwrap();
    let right = sql(
        &env,
        &format!("SELECT access_hash FROM channels WHERE id = {ch}"),
    );
    let mut child = started(&env).await;
    wait_daemon(&mut child, "the backfill", || {
        sql(&env, "SELECT backfill_state FROM channels") == "done"
    })
    .await;
    stop(&mut child);
    // The stored hash goes stale (Telegram refuses it with CHANNEL_INVALID).
    sql_write(
        &env,
        &format!("UPDATE channels SET access_hash = 12345 WHERE id = {ch}"),
    );
    let id = fake
        .world
        .post(ch, "posted while the hash was stale")
        .unwrap();
    let mut child = started(&env).await;
    wait_daemon(&mut child, "the post", || {
        stored_ids(&env, ch).contains(&id)
    })
    .await;
    assert_eq!(
        sql(
            &env,
            &format!("SELECT access_hash FROM channels WHERE id = {ch}")
        ),
        right
    );
    assert_eq!(
        sql(&env, &format!("SELECT state FROM channels WHERE id = {ch}")),
        "active"
    );
    stop(&mut child);
}
