//! The bot's doors, tried as a table: every administrator command by an allowed user and by a
//! stranger (refused, nothing changed), a button press forged with another user's callback
//! data, commands in a group from a stranger, and a channel post claiming an administrator's
//! id. Printed as a table; each row asserted.

mod common;

use std::time::Duration;

use common::bot::*;
use common::*;
use fake_telegram::FakeTelegram;
use fake_telegram::botapi::UserMessage;

const STRANGER: i64 = 8;

/// What any of these attempts could change: channels and their states, roles, subscriptions,
/// channel requests, the audit trail of changes.
fn state(env: &Env) -> String {
    sql(
        env,
        "SELECT (SELECT group_concat(id || ':' || state) FROM channels) || ' | ' || \
         (SELECT group_concat(user_id || ':' || coalesce(role, '-')) FROM (SELECT * FROM bot_users ORDER BY user_id)) || ' | ' || \
         (SELECT count(*) FROM subscriptions WHERE active = 1) || ' | ' || \
         (SELECT count(*) FROM channel_requests) || ' | ' || \
         (SELECT count(*) FROM audit_log WHERE action NOT LIKE 'refused%')",
    )
}

/// Every answer the bot gave in `chat` after the first `from` of them.
fn answers_since(fake: &FakeTelegram, chat: i64, from: usize) -> Vec<String> {
    sent_to(fake, chat)[from..].to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_door_of_the_bot_opens_to_a_user_a_stranger_a_forged_press_or_a_claimed_id() {
    let fake = FakeTelegram::start(fake_opts()).await.unwrap();
    let env = bot_env(&fake, "info").await;
    let name = fake.info.channels[0].clone();
    let mut child = start(&fake, &env).await;
    has(
        &ask(&fake, ADMIN, &format!("/allow {USER}")).await,
        "may use the bot now",
    );
    has(
        &ask(&fake, ADMIN, "/subscribe adminword").await,
        "Subscribed",
    );
    let admin_sub: i64 = sql(
        &env,
        &format!("SELECT id FROM subscriptions WHERE user_id = {ADMIN}"),
    )
    .parse()
    .unwrap();
    let before = state(&env);
    let commands = [
        "/add @durov".to_string(),
        format!("/remove {name}"),
        format!("/remove {name} --purge"),
        format!("/pause {name}"),
        format!("/resume {name}"),
        "/allow 99".into(),
        format!("/deny {USER}"),
        "/login".into(),
        "/logout".into(),
        "/channels".into(),
    ];
    println!("{:<34} {:<40} stranger", "attempt", "allowed user");
    let mut stranger_answers = 0;
    for cmd in &commands {
        let by_user = ask(&fake, USER, cmd).await;
        has(&by_user, "is for the bot's administrators");
        let seen = sent_to(&fake, STRANGER).len();
        fake.bot.user_message(&UserMessage {
            user_id: STRANGER,
            text: Some(cmd.clone()),
            ..Default::default()
        });
        tokio::time::sleep(Duration::from_millis(400)).await;
        let to_stranger = answers_since(&fake, STRANGER, seen);
        for a in &to_stranger {
            has(a, "this bot is private");
        }
        stranger_answers += to_stranger.len();
        println!(
            "{:<34} {:<40} {}",
            cmd,
            "refused: for administrators",
            if to_stranger.is_empty() {
                "silence"
            } else {
                "refused: private"
            }
        );
        assert_eq!(state(&env), before, "{cmd} changed something");
    }
    assert_eq!(stranger_answers, 1, "a stranger is told once, then ignored");

    // A press forged with the administrator's subscription, by the user and by the stranger.
    for who in [USER, STRANGER] {
        fake.bot.user_message(&UserMessage {
            user_id: who,
            kind: Some("callback".into()),
            data: Some(format!("u:{admin_sub}:0")),
            message_id: Some(1),
            ..Default::default()
        });
    }
    wait_until("both presses answered", Duration::from_secs(10), || {
        fake.bot
            .calls(false)
            .iter()
            .filter(|c| c.method == "answercallbackquery")
            .count()
            == 2
    })
    .await;
    let row = format!("press u:{admin_sub}:0");
    let done = "answered, nothing removed";
    println!("{row:<34} {done:<40} {done}");
    assert_eq!(state(&env), before, "a forged press removed a subscription");

    // A stranger's commands in a group the bot is in.
    const GROUP: i64 = -100_999;
    for cmd in [
        "/subscribe@{bot} groupword",
        "/add@{bot} @durov",
        "/allow@{bot} 77",
    ] {
        let cmd = cmd.replace("{bot}", &fake.info.bot_username);
        let seen = sent_to(&fake, GROUP).len();
        fake.bot.user_message(&UserMessage {
            user_id: STRANGER,
            chat_id: Some(GROUP),
            text: Some(cmd.clone()),
            ..Default::default()
        });
        tokio::time::sleep(Duration::from_millis(400)).await;
        for a in answers_since(&fake, GROUP, seen) {
            has(&a, "this bot is private");
        }
        println!("{:<34} {:<40} refused", format!("group: {cmd}"), "-");
        assert_eq!(state(&env), before, "{cmd} in a group changed something");
    }

    // A channel post carrying the administrator's id as its sender: no person, no command.
    let seen = sent_to(&fake, -100_321).len();
    fake.bot.user_message(&UserMessage {
        user_id: ADMIN,
        chat_id: Some(-100_321),
        kind: Some("channel_post".into()),
        text: Some("/allow 77".into()),
        ..Default::default()
    });
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(answers_since(&fake, -100_321, seen).is_empty());
    println!(
        "{:<34} {:<40} ignored",
        "channel post as the admin: /allow 77", "-"
    );
    assert_eq!(
        state(&env),
        before,
        "a channel post acted as the administrator"
    );
    stop(&mut child);
}
