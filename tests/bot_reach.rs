//! Whether the bot can read its updates, as readiness shows it. (A Bot API out of reach through
//! a dead proxy is in proxy.rs.)

mod common;

use std::time::Duration;

use common::*;
use fake_telegram::faults::{Fault, FaultKind};
use fake_telegram::{FakeTelegram, Options};

/// Another instance polling the same token makes getUpdates answer 409 Conflict: the bot gets
/// nothing, and readiness used to pass while the log alone said so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_409_conflict_on_get_updates_fails_readiness_with_what_to_do_until_it_stops() {
    let fake = FakeTelegram::start(Options::default()).await.unwrap();
    let env = bot_env_for(&fake, &[1], "info");
    let mut child = start_with_bot(&env).await;
    let health = env.health_addr();
    fake.faults.add(Fault {
        kind: FaultKind::Status { code: 409 },
        method: Some("getUpdates".into()),
        count: 0,
    });
    let mut last = String::new();
    wait_until("readiness to fail", Duration::from_secs(40), || {
        let (code, body) = get(health, "/readyz");
        last = body;
        code == 503 && last.contains("bot:getUpdates")
    })
    .await;
    assert!(last.contains("409 Conflict"), "{last}");
    assert!(
        last.contains("stop the other one"),
        "says what to do: {last}"
    );
    fake.faults.clear();
    // The conflict ends (the other instance stopped): readiness passes again.
    wait_until("readiness to pass", Duration::from_secs(90), || {
        get(health, "/readyz").0 == 200
    })
    .await;
    sigterm(&child);
    let (code, _) = wait_exit(&mut child, Duration::from_secs(10));
    assert_eq!(code, Some(0), "{}", stderr_of(&mut child));
}

/// `sendMessage` failing while `getUpdates` succeeds: the Bot API breaker never opens (each
/// successful poll resets it), so alerts fell behind for as long as it lasted with readiness
/// passing and only `/metrics` knowing. Readiness now warns, with the count, the wait and the
/// error, and clears once they go out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_that_keep_failing_to_send_show_in_readiness_until_they_go_out() {
    let fake = FakeTelegram::start(Options::default()).await.unwrap();
    let env = bot_env_for(&fake, &[1], "info");
    let mut child = start_with_bot(&env).await;
    let health = env.health_addr();
    common::bot::ask(&fake, 1, "/start").await;
    fake.faults.add(Fault {
        kind: FaultKind::Status { code: 502 },
        method: Some("sendMessage".into()),
        count: 0,
    });
    sql_write(
        &env,
        "INSERT INTO outbox (dedupe_key, chat_id, kind, payload, next_attempt_at, created_at) \
         VALUES ('test:failing', 1, 'notice', '{\"text\":\"held back\"}', 0, CAST(strftime('%s', 'now') AS INTEGER));",
    );
    let mut last = String::new();
    wait_until("readiness to warn", Duration::from_secs(40), || {
        let (code, body) = get(health, "/readyz");
        last = body;
        code == 200 && last.contains("outbox:delivery")
    })
    .await;
    assert!(
        last.contains("1 message(s) failed 3 or more deliveries"),
        "{last}"
    );
    assert!(last.contains("Bad Gateway"), "names the error: {last}");
    assert!(last.contains("\"status\":\"warn\""), "{last}");

    fake.faults.clear();
    wait_until(
        "the message sent and the warning gone",
        Duration::from_secs(60),
        || {
            one(
                &env,
                "SELECT state FROM outbox WHERE dedupe_key = 'test:failing'",
            ) == "sent"
                && !get(health, "/readyz").1.contains("outbox:delivery")
        },
    )
    .await;
    sigterm(&child);
    let (code, _) = wait_exit(&mut child, Duration::from_secs(10));
    assert_eq!(code, Some(0), "{}", stderr_of(&mut child));
}
