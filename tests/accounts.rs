//! Accounts as Telegram has them: on any DC, with any code delivery, refused for the reasons
//! Telegram gives, frozen, or moved to another DC while the daemon runs. `tgparser login` and the
//! daemon against the fake, whose test account lives on DC 4 (every login here migrates).

mod common;

use std::time::Duration;

use common::*;
use fake_telegram::world::{AccountSpec, CodeDelivery};
use fake_telegram::{FakeTelegram, Options};

const ADMIN: i64 = 1;

async fn fake() -> FakeTelegram {
    FakeTelegram::start(Options {
        channels: 1,
        posts: 50,
        password: None,
        ..Default::default()
    })
    .await
    .unwrap()
}

fn account(fake: &FakeTelegram, spec: AccountSpec) -> String {
    fake.world.upsert_account(&spec).unwrap();
    spec.phone
}

async fn login(env: &Env, phone: &str, input: &str) -> std::process::Output {
    run_with_input(env, &["login", "--phone", phone], input).await
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Whether the session holds a logged-in user (the peer cache's own entry).
fn logged_in(env: &Env) -> bool {
    sql(env, "SELECT count(*) FROM session_peers WHERE is_self = 1") == "1"
}

/// `wait_until`, showing the daemon's log if it times out.
async fn wait_daemon(
    child: &mut std::process::Child,
    what: &str,
    limit: Duration,
    mut f: impl FnMut() -> bool,
) {
    let t = std::time::Instant::now();
    while !f() {
        if t.elapsed() > limit {
            panic!(
                "timed out after {limit:?} waiting for {what}; the daemon's log:\n{}",
                stderr_of(child)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_follows_phone_migrate_to_the_accounts_dc_and_the_session_stays_there() {
    let fake = fake().await;
    assert_eq!(fake.info.home_dc, 4);
    let env = telegram_env(&fake);
    let out = login(&env, &fake.info.phone, &format!("{}\n", fake.info.code)).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // One auth.sendCode answered PHONE_MIGRATE_4 on DC 2, the next sent the code on DC 4.
    assert_eq!(fake.world.stats().requests["auth.sendCode"], 2);
    assert_eq!(sql(&env, "SELECT home_dc FROM session_state"), "4");
    // DC 4's address came from help.getConfig and is kept, with its sealed key.
    let dc4 = fake.info.dcs[&4].address.to_string();
    assert_eq!(
        sql(&env, "SELECT ipv4 FROM session_dcs WHERE dc_id = 4"),
        dc4
    );
    // A new process goes straight to DC 4, logged in.
    let out = run_with_input(&env, &["login"], "").await;
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("already logged in"),
        "{}",
        text(&out)
    );
    assert_eq!(fake.world.stats().requests["auth.sendCode"], 2);
    // No DC's key is in the state directory, raw or as hex.
    for key in fake.auth_keys.values() {
        for f in files_under(&env.state_dir()) {
            let data = std::fs::read(&f).unwrap();
            assert!(!contains(&data, &key.data), "raw key in {}", f.display());
            assert!(!contains(&data, hex::encode(key.data).as_bytes()));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_on_dc1_logs_in_as_well() {
    let fake = fake().await;
    let phone = account(
        &fake,
        AccountSpec {
            phone: "+999661110001".into(),
            dc: Some(1),
            ..Default::default()
        },
    );
    let env = telegram_env(&fake);
    let out = login(&env, &phone, "12345\n").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(sql(&env, "SELECT home_dc FROM session_state"), "1");
    assert!(logged_in(&env));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_code_delivery_is_named_in_the_prompt_and_email_codes_are_sent_as_such() {
    let fake = fake().await;
    let cases = [
        (CodeDelivery::App, None, "to the account's Telegram app"),
        (CodeDelivery::Sms, None, "by SMS to +999661110002"),
        (
            CodeDelivery::Email,
            Some("reader@example.com"),
            "login email r***@example.com",
        ),
        (
            CodeDelivery::Fragment,
            None,
            "open https://fragment.com/number/999661110002/code",
        ),
    ];
    for (delivery, email, says) in cases {
        let phone = account(
            &fake,
            AccountSpec {
                phone: "+999661110002".into(),
                delivery: Some(delivery),
                email: email.map(str::to_string),
                ..Default::default()
            },
        );
        let env = telegram_env(&fake);
        let out = login(&env, &phone, "12345\n").await;
        assert_eq!(out.status.code(), Some(0), "{delivery:?}: {}", text(&out));
        assert!(stderr(&out).contains(says), "{delivery:?}: {}", text(&out));
        assert!(logged_in(&env), "{delivery:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_email_is_set_up_when_telegram_asks_for_one() {
    let fake = fake().await;
    let phone = account(
        &fake,
        AccountSpec {
            phone: "+999661110003".into(),
            delivery: Some(CodeDelivery::SetupEmail),
            ..Default::default()
        },
    );
    let env = telegram_env(&fake);
    // An address Telegram refuses, a good one, a wrong email code, the right one, then the
    // login code Telegram sends to the new address.
    let out = login(
        &env,
        &phone,
        "not an address\nme@example.org\n99999\n1 2 3 4 5\n12345\n",
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let err = stderr(&out);
    assert!(err.contains("set up a login email"), "{err}");
    assert!(err.contains("does not take"), "{err}");
    assert!(err.contains("That code is wrong"), "{err}");
    assert!(err.contains("login email m***@example.org"), "{err}");
    assert!(logged_in(&env));
    let a = fake
        .world
        .lock()
        .accounts
        .iter()
        .find(|a| a.phone == phone)
        .cloned()
        .unwrap();
    assert_eq!(a.email.as_deref(), Some("me@example.org"));
    let requests = fake.world.stats().requests;
    assert_eq!(requests["account.verifyEmail"], 2);
    assert_eq!(requests["auth.signIn"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_numbers_get_a_clear_answer_and_leave_no_login_behind() {
    let fake = fake().await;
    let banned = account(
        &fake,
        AccountSpec {
            phone: "+999661110004".into(),
            banned: Some(true),
            ..Default::default()
        },
    );
    let unoccupied = account(
        &fake,
        AccountSpec {
            phone: "+999661110005".into(),
            unoccupied: Some(true),
            dc: Some(5),
            ..Default::default()
        },
    );
    let paying = account(
        &fake,
        AccountSpec {
            phone: "+999661110006".into(),
            delivery: Some(CodeDelivery::Payment),
            ..Default::default()
        },
    );
    for (phone, input, says) in [
        (banned.as_str(), "", "has banned the phone number"),
        (
            unoccupied.as_str(),
            "12345\n",
            "has no Telegram account. Signing up is not done here",
        ),
        (paying.as_str(), "", "asks for a payment"),
        ("+10000000000", "", "does not know the phone number"),
    ] {
        let env = telegram_env(&fake);
        let out = login(&env, phone, input).await;
        assert_eq!(out.status.code(), Some(1), "{phone}: {}", text(&out));
        assert!(stderr(&out).contains(says), "{phone}: {}", text(&out));
        assert!(!logged_in(&env), "{phone}");
    }
    // The unoccupied number went through NETWORK_MIGRATE_5 to its DC first.
    assert!(fake.world.stats().requests["auth.signIn"] >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_account_stops_the_parser_once_fails_readiness_and_tells_the_admins() {
    let fake = fake().await;
    let env = bot_env_for(&fake, &[ADMIN], "info");
    login_and_add(&env, &fake, &fake.info.channels.clone()).await;
    let cfg = std::fs::read_to_string(env.path("config.toml")).unwrap();
    std::fs::write(
        env.path("config.toml"),
        format!("{cfg}[telegram.guard]\nheartbeat_secs = 0.5\n"),
    )
    .unwrap();
    fake.world
        .upsert_account(&AccountSpec {
            phone: fake.info.phone.clone(),
            frozen: Some(true),
            ..Default::default()
        })
        .unwrap();
    let notify = NotifySocket::new(env.dir.path());
    let mut child = spawn_daemon(&env, Some(&notify));
    notify
        .wait_for("READY=1", Duration::from_secs(20))
        .expect("READY=1");
    let health = env.health_addr();
    let mut last = String::new();
    wait_daemon(
        &mut child,
        "readiness to fail",
        Duration::from_secs(30),
        || {
            let (code, body) = get(health, "/readyz");
            last = body;
            code == 503 && last.contains("froze the parsing account")
        },
    )
    .await;
    assert!(last.contains("appeal"), "says what to do: {last}");
    assert!(audited(&env, "account_frozen"));
    wait_daemon(
        &mut child,
        "the admins' notice",
        Duration::from_secs(20),
        || {
            fake.bot.calls(false).iter().any(|c| {
                c.method == "sendmessage"
                    && c.params["chat_id"].as_i64() == Some(ADMIN)
                    && c.params["text"]
                        .as_str()
                        .is_some_and(|t| t.contains("froze the parsing account"))
            })
        },
    )
    .await;
    // No storm: the refused calls stop at once instead of being retried as a FLOOD_WAIT.
    let before = fake.world.stats().requests.values().sum::<u64>();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = fake.world.stats().requests.values().sum::<u64>();
    assert!(
        after - before <= 2,
        "{} calls after the freeze",
        after - before
    );
    let (_, metrics) = get(health, "/metrics");
    assert!(
        metrics.contains("tgparser_part_restarts_total{part=\"parser\"} 0"),
        "{metrics}"
    );
    sigterm(&child);
    let (code, _) = wait_exit(&mut child, Duration::from_secs(10));
    assert_eq!(code, Some(0), "{}", stderr_of(&mut child));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_moved_to_another_dc_is_followed_there_while_the_daemon_runs() {
    let fake = fake().await;
    let env = telegram_env_with(
        &fake,
        &format!("{NO_PACING}[telegram.guard]\nheartbeat_secs = 0.5\n"),
    );
    login_and_add(&env, &fake, &fake.info.channels.clone()).await;
    let notify = NotifySocket::new(env.dir.path());
    let mut child = spawn_daemon(&env, Some(&notify));
    notify
        .wait_for("READY=1", Duration::from_secs(20))
        .expect("READY=1");
    let ch = fake.world.channel_id(&fake.info.channels[0]).unwrap();
    wait_daemon(&mut child, "the backfill", Duration::from_secs(20), || {
        sql(&env, "SELECT backfill_state FROM channels") == "done"
    })
    .await;
    fake.world
        .upsert_account(&AccountSpec {
            phone: fake.info.phone.clone(),
            dc: Some(1),
            ..Default::default()
        })
        .unwrap();
    // The next call on DC 4 answers USER_MIGRATE_1: the login is copied there and kept.
    wait_daemon(
        &mut child,
        "the session to move",
        Duration::from_secs(20),
        || sql(&env, "SELECT home_dc FROM session_state") == "1",
    )
    .await;
    let id = fake.world.post(ch, "posted after the move").unwrap();
    wait_daemon(&mut child, "the new post", Duration::from_secs(20), || {
        stored_ids(&env, ch).contains(&id)
    })
    .await;
    let requests = fake.world.stats().requests;
    assert_eq!(requests["auth.exportAuthorization"], 1);
    assert_eq!(requests["auth.importAuthorization"], 1);
    sigterm(&child);
    let (code, _) = wait_exit(&mut child, Duration::from_secs(10));
    assert_eq!(code, Some(0), "{}", stderr_of(&mut child));
}

/// The parser opens the session every few seconds while it waits for a login, holding the
/// session gate a moment each time; a `/login` arriving then was answered "Another login is in
/// progress" instead of waiting that moment out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_while_the_parser_opens_the_session_is_not_refused_as_another_login() {
    let fake = fake().await;
    let env = bot_env_for(&fake, &[ADMIN], "info");
    let mut child = start_with_bot(&env).await;
    // At once: the parser is opening the session for the first time (it writes every DC's key).
    fake.bot.user_message(&fake_telegram::botapi::UserMessage {
        user_id: ADMIN,
        text: Some("/login".into()),
        ..Default::default()
    });
    let mut answer = String::new();
    wait_daemon(
        &mut child,
        "the bot's answer",
        Duration::from_secs(20),
        || {
            let sent: Vec<String> = fake
                .bot
                .calls(false)
                .iter()
                .filter(|c| c.method == "sendmessage")
                .filter_map(|c| c.params["text"].as_str().map(str::to_string))
                .collect();
            answer = sent.last().cloned().unwrap_or_default();
            !sent.is_empty()
        },
    )
    .await;
    assert!(answer.contains("phone number"), "{answer}");
    sigterm(&child);
    let (code, _) = wait_exit(&mut child, Duration::from_secs(10));
    assert_eq!(code, Some(0), "{}", stderr_of(&mut child));
}

/// The chat dialog, for an account whose code goes to an email it must set up first: the bot
/// asks for the address, then the code sent there (deleted once read), then the login code
/// Telegram sends to the new address, and names where each went.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bot_sets_up_a_login_email_when_telegram_asks_for_one() {
    let fake = fake().await;
    let phone = account(
        &fake,
        AccountSpec {
            phone: "+999661110007".into(),
            delivery: Some(CodeDelivery::SetupEmail),
            ..Default::default()
        },
    );
    let env = bot_env_for(&fake, &[ADMIN], "info");
    let mut child = start_with_bot(&env).await;
    let sent = |fake: &FakeTelegram| -> Vec<String> {
        fake.bot
            .calls(false)
            .iter()
            .filter(|c| c.method == "sendmessage")
            .filter_map(|c| c.params["text"].as_str().map(str::to_string))
            .collect()
    };
    let mut answers = Vec::new();
    for (say, expect) in [
        ("/login", "phone number"),
        (phone.as_str(), "set up a login email"),
        ("me@example.net", "m***@example.net"),
        ("1 2 3 4 5", "login email m***@example.net"),
        ("1 2 3 4 5", "Logged in as"),
    ] {
        let before = sent(&fake).len();
        fake.bot.user_message(&fake_telegram::botapi::UserMessage {
            user_id: ADMIN,
            text: Some(say.into()),
            ..Default::default()
        });
        wait_daemon(&mut child, expect, Duration::from_secs(20), || {
            sent(&fake).len() > before
        })
        .await;
        let answer = sent(&fake)[before].clone();
        assert!(answer.contains(expect), "after {say:?}: {answer}");
        answers.push(answer);
    }
    // Both codes were deleted from the chat once read.
    let deleted = fake
        .bot
        .calls(false)
        .iter()
        .filter(|c| c.method == "deletemessage")
        .count();
    assert_eq!(deleted, 2, "{answers:?}");
    assert_eq!(sql(&env, "SELECT home_dc FROM session_state"), "4");
    sigterm(&child);
    let (code, _) = wait_exit(&mut child, Duration::from_secs(10));
    assert_eq!(code, Some(0), "{}", stderr_of(&mut child));
}
