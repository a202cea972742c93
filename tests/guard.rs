//! The guard around MTProto calls, end to end: the real binary against the fake Telegram's flood
//! quotas and injected faults.

mod common;

use std::time::{Duration, Instant};

use common::*;
use fake_telegram::faults::{Fault, FaultKind};
use fake_telegram::flood::QuotaMode;
use fake_telegram::world::Stats;
use fake_telegram::{FakeTelegram, Options};

/// The fake's default getHistory quota: 30 calls per 30 s (a sliding window).
const QUOTA_CALLS: u64 = 30;
const QUOTA_WINDOW: Duration = Duration::from_secs(30);

fn history_calls(s: &Stats) -> u64 {
    s.requests.get("messages.getHistory").copied().unwrap_or(0)
}

/// The least time `calls` allowed getHistory calls can take under the quota: each call past the
/// first window's worth waits for a call a window older to leave it.
fn minimum_for(calls: u64) -> Duration {
    QUOTA_WINDOW * ((calls.saturating_sub(1) / QUOTA_CALLS) as u32)
}

fn metric(body: &str, name: &str) -> Option<f64> {
    body.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn start(fake: &FakeTelegram, env: &Env) -> (std::process::Child, Instant) {
    login_and_add(env, fake, &fake.info.channels.clone()).await;
    let notify = NotifySocket::new(env.dir.path());
    let child = spawn_daemon(env, Some(&notify));
    notify
        .wait_for("READY=1", Duration::from_secs(20))
        .expect("READY=1");
    (child, Instant::now())
}

fn assert_exact(env: &Env, fake: &FakeTelegram) {
    for name in &fake.info.channels {
        let ch = fake.world.channel_id(name).unwrap();
        assert_eq!(
            stored_ids(env, ch),
            world_ids(fake, ch),
            "@{name}: every post stored, nothing skipped"
        );
    }
}

fn stop(mut child: std::process::Child) {
    sigterm(&child);
    let (code, _) = wait_exit(&mut child, Duration::from_secs(10));
    assert_eq!(code, Some(0), "{}", stderr_of(&mut child));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_pacing_meets_no_flood_wait_and_takes_about_the_minimum_the_quotas_allow() {
    let fake = FakeTelegram::start(Options {
        channels: 3,
        posts: 1_500,
        password: None,
        quotas: QuotaMode::Default,
        ..Default::default()
    })
    .await
    .unwrap();
    let env = telegram_env_with(&fake, "");
    let before = fake.world.stats();
    let (child, t) = start(&fake, &env).await;
    wait_until("every channel backfilled", Duration::from_secs(150), || {
        sql(
            &env,
            "SELECT count(*) FROM channels WHERE backfill_state != 'done'",
        ) == "0"
    })
    .await;
    let elapsed = t.elapsed();
    let after = fake.world.stats();
    let calls = history_calls(&after) - history_calls(&before);
    let minimum = minimum_for(calls);
    println!(
        "{calls} getHistory calls in {:.1} s; the quota's minimum is {} s",
        elapsed.as_secs_f64(),
        minimum.as_secs()
    );
    assert!(
        calls > QUOTA_CALLS,
        "the test must need more than one window"
    );
    assert_eq!(
        after.flood_waits, before.flood_waits,
        "paced: no FLOOD_WAIT"
    );
    assert!(
        elapsed >= minimum,
        "faster than the quota allows is impossible without FLOOD_WAIT"
    );
    assert!(
        elapsed <= minimum.mul_f64(1.10),
        "{elapsed:?} is more than 10% over the minimum {minimum:?}"
    );
    assert_exact(&env, &fake);
    stop(child);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flood_wait_pauses_the_method_with_no_call_during_the_wait_and_strict_mode_never_bans() {
    let fake = FakeTelegram::start(Options {
        channels: 2,
        posts: 2_000,
        password: None,
        quotas: QuotaMode::Strict,
        ..Default::default()
    })
    .await
    .unwrap();
    // Pacing looser than the server's quota, so the server has to say FLOOD_WAIT.
    let env = telegram_env_with(
        &fake,
        "[telegram.pacing]\n\"messages.getHistory\" = \"1000/30s\"\n",
    );
    let health = env.health_addr();
    let before = fake.world.stats();
    let (child, t) = start(&fake, &env).await;

    // While the method is paused, readiness warns (200) and names it; the wait is counted.
    let mut seen_ready = None;
    wait_until(
        "the FLOOD_WAIT to show in /readyz",
        Duration::from_secs(30),
        || {
            let (code, body) = get(health, "/readyz");
            let shown = body.contains("floodWait:messages.getHistory");
            if shown {
                seen_ready = Some((code, body));
            }
            shown
        },
    )
    .await;
    let (code, body) = seen_ready.unwrap();
    assert_eq!(code, 200, "a FLOOD_WAIT warns, it does not fail: {body}");
    assert!(body.contains("\"warn\""), "{body}");
    let (_, metrics) = get(health, "/metrics");
    let waited = metric(&metrics, "tg_flood_wait_seconds_total").unwrap();
    assert!(waited >= 1.0, "tg_flood_wait_seconds_total = {waited}");

    wait_until("every channel backfilled", Duration::from_secs(120), || {
        sql(
            &env,
            "SELECT count(*) FROM channels WHERE backfill_state != 'done'",
        ) == "0"
    })
    .await;
    let elapsed = t.elapsed();
    let after = fake.world.stats();
    let waits = after.flood_waits - before.flood_waits;
    let allowed = history_calls(&after) - history_calls(&before) - waits;
    let minimum = minimum_for(allowed);
    println!(
        "{allowed} getHistory calls and {waits} FLOOD_WAIT in {:.1} s; the quota's minimum is {} s",
        elapsed.as_secs_f64(),
        minimum.as_secs()
    );
    assert!(waits >= 1, "the server must have asked us to wait");
    assert_eq!(
        after.calls_during_wait, before.calls_during_wait,
        "no call while told to wait"
    );
    assert_eq!(after.bans, 0, "strict mode never bans us");
    assert!(
        elapsed <= minimum.mul_f64(1.10),
        "{elapsed:?} is more than 10% over the minimum {minimum:?}"
    );
    assert_exact(&env, &fake);
    // The pause is over: readiness no longer mentions it.
    wait_until(
        "the FLOOD_WAIT check to clear",
        Duration::from_secs(5),
        || !get(health, "/readyz").1.contains("floodWait:"),
    )
    .await;
    stop(child);
}

const FAST_BREAKER: &str = "[telegram.guard]\nbreaker_failures = 5\nbreaker_cooldown_secs = 1\nbreaker_cooldown_max_secs = 4\nretry_delay_secs = 0.05\nretry_delay_max_secs = 0.2\ncall_timeout_secs = 0.5\n";

/// The DC the parser talks to: the account's home DC, where the login moved it.
const HOME_DC: i32 = 4;

async fn wait_breaker_open(health: std::net::SocketAddr, cause: &str) {
    let t = Instant::now();
    loop {
        let (code, body) = get(health, "/readyz");
        if body.contains(&format!("breaker:mtproto-dc{HOME_DC}")) && body.contains("open after") {
            assert_eq!(code, 503, "an open breaker fails readiness: {body}");
            let (_, metrics) = get(health, "/metrics");
            assert_eq!(
                metric(
                    &metrics,
                    &format!("tg_breaker_state{{dc=\"{HOME_DC}\",state=\"open\"}}")
                ),
                Some(1.0),
                "{metrics}"
            );
            return;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "{cause} did not open the breaker; last /readyz: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_breaker_closed(env: &Env, health: std::net::SocketAddr) {
    wait_until(
        "the breaker to close and the backfill to finish",
        Duration::from_secs(30),
        || {
            let (code, body) = get(health, "/readyz");
            code == 200
                && !body.contains("breaker:")
                && sql(
                    env,
                    "SELECT count(*) FROM channels WHERE backfill_state != 'done'",
                ) == "0"
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_500s_and_timeouts_open_the_breaker_readiness_shows_it_and_it_closes_when_faults_stop()
 {
    let fake = FakeTelegram::start(Options {
        channels: 2,
        posts: 1_000,
        password: None,
        quotas: QuotaMode::Off,
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(fake.info.home_dc, HOME_DC);
    let env = telegram_env_with(&fake, &format!("{NO_PACING}{FAST_BREAKER}"));
    let health = env.health_addr();
    let (first, second) = (fake.info.channels[0].clone(), fake.info.channels[1].clone());
    login_and_add(&env, &fake, std::slice::from_ref(&first)).await;
    fake.faults.add(Fault {
        kind: FaultKind::Rpc500,
        method: Some("messages.getHistory".into()),
        count: 0,
    });
    let notify = NotifySocket::new(env.dir.path());
    let child = spawn_daemon(&env, Some(&notify));
    notify
        .wait_for("READY=1", Duration::from_secs(20))
        .expect("READY=1");

    wait_breaker_open(health, "500 INTERNAL_SERVER_ERROR").await;
    assert_eq!(sql(&env, "SELECT count(*) FROM messages"), "0");
    fake.faults.clear();
    wait_breaker_closed(&env, health).await;

    // Timeouts: answers slower than call_timeout_secs, for a channel added while running.
    fake.faults.add(Fault {
        kind: FaultKind::Latency { ms: 1_500 },
        method: Some("messages.getHistory".into()),
        count: 0,
    });
    let out = run_with_input(&env, &["channels", "add", &second], "").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    wait_breaker_open(health, "timeouts").await;
    fake.faults.clear();
    wait_breaker_closed(&env, health).await;

    let (_, metrics) = get(health, "/metrics");
    assert!(
        metric(
            &metrics,
            &format!("tg_breaker_opened_total{{dc=\"{HOME_DC}\"}}")
        )
        .unwrap()
            >= 2.0
    );
    assert!(metric(&metrics, "tg_request_timeouts_total").unwrap() >= 5.0);
    assert!(metric(&metrics, "tg_request_failures_total").unwrap() >= 10.0);
    assert_exact(&env, &fake);
    stop(child);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_session_stops_the_parser_fatally_fails_readiness_and_is_audited() {
    let fake = FakeTelegram::start(Options {
        channels: 1,
        posts: 300,
        password: None,
        quotas: QuotaMode::Off,
        ..Default::default()
    })
    .await
    .unwrap();
    // A short heartbeat: the parser is idle once the backfill is done, and must still notice.
    let env = telegram_env_with(
        &fake,
        &format!("{NO_PACING}[telegram.guard]\nheartbeat_secs = 0.5\n"),
    );
    let health = env.health_addr();
    let (child, _) = start(&fake, &env).await;
    wait_until("the backfill", Duration::from_secs(20), || {
        sql(&env, "SELECT backfill_state FROM channels") == "done"
    })
    .await;
    assert_eq!(get(health, "/readyz").0, 200);

    fake.world.revoke(None);
    let mut last = String::new();
    wait_until("readiness to fail", Duration::from_secs(20), || {
        let (code, body) = get(health, "/readyz");
        last = body;
        code == 503 && last.contains("revoked the session")
    })
    .await;
    assert!(last.contains("tgparser login"), "says what to do: {last}");
    assert!(audited(&env, "session_revoked"));
    // Fatal: the part stays down (no restart loop against a dead session).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, metrics) = get(health, "/metrics");
    assert!(
        metrics.contains("tgparser_part_restarts_total{part=\"parser\"} 0"),
        "{metrics}"
    );
    stop(child);
}

/// 500s, -503s and drops at the connect step (grammers' `is_authorized`, outside our calls)
/// never reached the breaker: the parser restarted with backoff, and readiness never showed
/// `breaker:mtproto-dc…`. Now they count against it, the breaker opens, and when the faults
/// stop the parser connects and parses on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_at_the_connect_step_open_the_breaker_and_it_closes_when_they_stop() {
    let fake = FakeTelegram::start(Options {
        channels: 1,
        posts: 50,
        password: None,
        quotas: QuotaMode::Off,
        ..Default::default()
    })
    .await
    .unwrap();
    let env = telegram_env_with(&fake, &format!("{NO_PACING}{FAST_BREAKER}"));
    let health = env.health_addr();
    login_and_add(&env, &fake, &fake.info.channels.clone()).await;
    for kind in [FaultKind::Rpc500, FaultKind::Timeout503] {
        fake.faults.add(Fault {
            kind,
            method: Some("updates.getState".into()),
            count: 0,
        });
    }
    let notify = NotifySocket::new(env.dir.path());
    let child = spawn_daemon(&env, Some(&notify));
    notify
        .wait_for("READY=1", Duration::from_secs(20))
        .expect("READY=1");
    wait_breaker_open(health, "500s at the connect step").await;
    fake.faults.clear();
    wait_breaker_closed(&env, health).await;
    assert_exact(&env, &fake);
    stop(child);
}
