//! The daemon follows channels live: new posts, edits (versions kept), deletions (soft), a pts
//! gap filled from getChannelDifference, a too-long gap refilled from history, a dropped
//! connection — the real binary against the fake Telegram.

mod common;

use std::time::{Duration, Instant};

use common::*;
use fake_telegram::faults::{Fault, FaultKind};
use fake_telegram::flood::QuotaMode;
use fake_telegram::{FakeTelegram, Options};

const LIMIT: Duration = Duration::from_secs(20);

fn count_of(env: &Env, ch: i64, ids: &[i32]) -> usize {
    let list = ids
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",");
    sql(
        env,
        &format!("SELECT count(*) FROM messages WHERE channel_id = {ch} AND id IN ({list})"),
    )
    .parse()
    .unwrap()
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
    wait_until("the new post", LIMIT, || {
        sql(
            &env,
            &format!("SELECT text FROM messages WHERE id = {id} AND channel_id = {ch}"),
        ) == "Live: первая новость 🚀"
    })
    .await;

    fake.world
        .edit(ch, id, "Live: исправленная новость")
        .unwrap();
    wait_until("the edit", LIMIT, || {
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
    wait_until("the deletion", LIMIT, || {
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
    wait_until("the gap to be filled", LIMIT, || {
        sql(
            &env,
            &format!("SELECT count(*) FROM messages WHERE channel_id = {ch} AND id IN ({ids})"),
        ) == want.to_string()
    })
    .await;

    // A too-long gap: more than getChannelDifference hands out (the fake answers
    // channelDifferenceTooLong past 500 events), so the posts come from history.
    let mut missed = fake.world.open_gap(ch, 650).unwrap();
    missed.push(fake.world.post(ch, "After the long gap").unwrap());
    wait_until("the too-long gap to be refilled", LIMIT, || {
        count_of(&env, ch, &missed) == missed.len()
    })
    .await;

    // A dropped connection: the next client message closes it (here: the getChannelDifference a
    // small gap asks for). Posts made around the drop and after the reconnection all arrive.
    let connections = fake.world.stats().connections;
    fake.faults.add(Fault {
        kind: FaultKind::Drop { after: 0 },
        method: None,
        count: 1,
    });
    let mut around = fake.world.open_gap(ch, 2).unwrap();
    around.push(fake.world.post(ch, "As the connection drops").unwrap());
    around.push(fake.world.post(ch, "While reconnecting").unwrap());
    wait_until("a reconnection", LIMIT, || {
        fake.world.stats().connections > connections
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    around.push(fake.world.post(ch, "After reconnecting").unwrap());
    wait_until("every post around the drop", LIMIT, || {
        count_of(&env, ch, &around) == around.len()
    })
    .await;
    let kept: Vec<i32> = sql(
        &env,
        &format!(
            "SELECT id FROM messages WHERE channel_id = {ch} AND deleted_at IS NULL ORDER BY id"
        ),
    )
    .lines()
    .map(|l| l.parse().unwrap())
    .collect();
    assert_eq!(
        kept,
        world_ids(&fake, ch),
        "after gaps and a drop the stored set (less the soft-deleted post) is the channel's"
    );

    // Metrics: delivery lag per channel, refilled posts counted.
    let (_, metrics) = get(env.health_addr(), "/metrics");
    assert!(
        metrics.contains(&format!(
            "tg_channel_delivery_lag_seconds{{channel_id=\"{ch}\""
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains("tg_delivery_lag_seconds_count"),
        "{metrics}"
    );
    let refilled: f64 = metrics
        .lines()
        .find(|l| {
            l.starts_with(&format!(
                "tg_channel_refilled_posts_total{{channel_id=\"{ch}\""
            ))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(refilled >= 650.0, "refilled {refilled}: {metrics}");

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

    // Channel commands beside the running daemon: `add` is resolved by the daemon (through its
    // session and guard) and its answer printed; pause/resume write the database directly.
    let out = run_with_input(&env, &["channels", "add", "@no_such_channel"], "").await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("there is no channel @no_such_channel"),
        "{}",
        text(&out)
    );
    let second = fake.info.channels[1].clone();
    let out = run_with_input(&env, &["channels", "add", &second], "").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("added"), "{}", text(&out));
    wait_until("the added channel's backfill", LIMIT, || {
        sql(
            &env,
            &format!("SELECT backfill_state FROM channels WHERE id = {other}"),
        ) == "done"
    })
    .await;
    assert_eq!(stored_ids(&env, other), world_ids(&fake, other));
    let out = run_with_input(&env, &["channels", "pause", &second], "").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        sql(
            &env,
            &format!("SELECT state FROM channels WHERE id = {other}")
        ),
        "paused"
    );
    assert_eq!(
        sql(&env, "SELECT group_concat(state) FROM channel_requests"),
        "failed,done"
    );

    sigterm(&child);
    let (code, _) = wait_exit(&mut child, Duration::from_secs(10));
    assert_eq!(code, Some(0), "{}", stderr_of(&mut child));
    assert_eq!(sql(&env, "PRAGMA integrity_check"), "ok");
}
