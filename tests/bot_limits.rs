//! Every bot answer stays inside Telegram's limits, and every button press is answered: the
//! real binary against the fake Bot API, which refuses what Telegram refuses (4,096 UTF-16
//! units of visible text, HTML it cannot parse, an edit that changes nothing).

mod common;

use std::time::Duration;

use common::bot::*;
use common::*;
use fake_telegram::FakeTelegram;
use fake_telegram::botapi::UserMessage;

fn presses_answered(fake: &FakeTelegram) -> usize {
    fake.bot
        .calls(false)
        .iter()
        .filter(|c| c.method == "answercallbackquery" && c.status == 200)
        .count()
}

fn press(fake: &FakeTelegram, user: i64, data: &str, message_id: i64) {
    fake.bot.user_message(&UserMessage {
        user_id: user,
        kind: Some("callback".into()),
        data: Some(data.to_string()),
        message_id: Some(message_id),
        ..Default::default()
    });
}

/// A user with 50 long subscriptions got no answer to `/subscriptions`: the list was over
/// 4,096 characters ("message is too long"), so they could neither see nor remove any.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_long_subscriptions_are_listed_in_pages_within_telegrams_limit_and_each_can_be_removed()
 {
    let fake = FakeTelegram::start(fake_opts()).await.unwrap();
    let env = bot_env(&fake, "info").await;
    let mut child = start(&fake, &env).await;
    const SUBBER: i64 = 6;
    has(&ask(&fake, ADMIN, "/allow 6").await, "may use the bot now");
    for i in 0..50 {
        // Long regexes with astral letters: 2 UTF-16 units each.
        let pattern = format!("{i}𝔞{}", "(alpha|beta|𝔤𝔞𝔪𝔪𝔞)".repeat(12));
        has(
            &ask(&fake, SUBBER, &format!("/subscribe /{pattern}/")).await,
            "Subscribed",
        );
    }
    let listing = ask(&fake, SUBBER, "/subscriptions").await;
    has(&listing, "page 1 of 5");
    has(&listing, "1. /0𝔞");
    assert!(listing.encode_utf16().count() <= 4096, "{listing}");
    let sent = last_call_to(&fake, SUBBER, "sendmessage");
    let kb = buttons(&sent);
    assert_eq!(kb.len(), 11, "ten removes and Next: {kb:?}");
    assert_eq!(kb[10].0, "Next ›");
    let listing_id = sent_to(&fake, SUBBER).len() as i64 * 2;
    // Next page, then remove its first subscription (the 11th).
    press(&fake, SUBBER, &kb[10].1, listing_id);
    wait_until("page 2", Duration::from_secs(10), || {
        last_call_to(&fake, SUBBER, "editmessagetext")["text"]
            .as_str()
            .is_some_and(|t| t.contains("page 2 of 5") && t.contains("11. /10𝔞"))
    })
    .await;
    let page2 = buttons(&last_call_to(&fake, SUBBER, "editmessagetext"));
    assert!(page2[0].0.starts_with("✖ 11."), "{page2:?}");
    press(&fake, SUBBER, &page2[0].1, listing_id);
    wait_until("the removal", Duration::from_secs(10), || {
        sql(&env, "SELECT count(*) FROM subscriptions WHERE active = 1") == "49"
    })
    .await;
    wait_until("page 2 redrawn", Duration::from_secs(10), || {
        last_call_to(&fake, SUBBER, "editmessagetext")["text"]
            .as_str()
            .is_some_and(|t| t.contains("page 2 of 5") && t.contains("11. /11𝔞"))
    })
    .await;
    wait_until("every press answered", Duration::from_secs(10), || {
        presses_answered(&fake) == 2
    })
    .await;
    stop(&mut child);
}

/// A second press of the same page button: Telegram answers the edit "message is not
/// modified", and the press was never answered, so the button kept spinning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_page_pressed_twice_is_answered_both_times() {
    let fake = FakeTelegram::start(fake_opts()).await.unwrap();
    let env = bot_env(&fake, "info").await;
    let name = fake.info.channels[0].clone();
    let ch = fake.world.channel_id(&name).unwrap();
    for i in 0..7 {
        fake.world.post(ch, &format!("Quasarline {i}")).unwrap();
    }
    let mut child = start(&fake, &env).await;
    wait_until("the backfill", Duration::from_secs(20), || {
        sql(
            &env,
            &format!("SELECT backfill_state FROM channels WHERE id = {ch}"),
        ) == "done"
    })
    .await;
    has(&ask(&fake, ADMIN, "/allow 5").await, "may use the bot now");
    has(&ask(&fake, 5, "/search quasarline").await, "Results 1–5");
    let kb = buttons(&last_call_to(&fake, 5, "sendmessage"));
    press(&fake, 5, &kb[0].1, 2);
    wait_until("the first press answered", Duration::from_secs(10), || {
        presses_answered(&fake) == 1
    })
    .await;
    press(&fake, 5, &kb[0].1, 2);
    wait_until("the second press answered", Duration::from_secs(10), || {
        presses_answered(&fake) == 2
    })
    .await;
    let refused = fake
        .bot
        .calls(false)
        .iter()
        .filter(|c| c.method == "editmessagetext" && c.status == 400)
        .count();
    assert_eq!(
        refused, 1,
        "the second edit changed nothing and Telegram said so"
    );
    stop(&mut child);
}

/// A group upgraded to a supergroup: Telegram refuses every message to the old id with
/// `migrate_to_chat_id`, and each alert to it failed, row by row, forever. Now the group's
/// subscriptions and queue move to the supergroup, and the alert arrives there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_to_a_group_upgraded_to_a_supergroup_follow_it_there() {
    const OLD: i64 = -100_777;
    const NEW: i64 = -1_000_000_777;
    let fake = FakeTelegram::start(fake_opts()).await.unwrap();
    let env = bot_env(&fake, "info").await;
    let ch = fake.world.channel_id(&fake.info.channels[0]).unwrap();
    let mut child = start(&fake, &env).await;
    wait_until("the backfill", Duration::from_secs(20), || {
        sql(
            &env,
            &format!("SELECT backfill_state FROM channels WHERE id = {ch}"),
        ) == "done"
    })
    .await;
    has(
        &ask_in(
            &fake,
            ADMIN,
            Some(OLD),
            &format!("/subscribe@{} zorbexite", fake.info.bot_username),
        )
        .await,
        "Subscribed",
    );
    fake.bot.migrate_group(OLD, NEW);
    fake.world.post(ch, "Zorbexite found on the moon").unwrap();
    wait_until(
        "the alert in the supergroup",
        Duration::from_secs(30),
        || {
            fake.bot.calls(false).iter().any(|c| {
                c.method == "sendmessage"
                    && c.status == 200
                    && c.params["chat_id"].as_i64() == Some(NEW)
                    && c.params["text"]
                        .as_str()
                        .is_some_and(|t| t.contains("Zorbexite"))
            })
        },
    )
    .await;
    assert_eq!(
        sql(&env, "SELECT group_concat(chat_id) FROM subscriptions"),
        NEW.to_string()
    );
    let refused = fake
        .bot
        .calls(false)
        .iter()
        .filter(|c| c.params["chat_id"].as_i64() == Some(OLD) && c.status == 400)
        .count();
    assert_eq!(refused, 1, "one refusal, then the new id");
    assert_eq!(
        sql(&env, "SELECT count(*) FROM outbox WHERE state = 'failed'"),
        "0"
    );
    stop(&mut child);
}

/// `/subscribe` in a group by someone who had never written to the bot in private failed on
/// the database's foreign key (no `bot_users` row) and went unanswered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscribe_in_a_group_by_someone_who_never_wrote_in_private_is_answered() {
    const GROUP: i64 = -100_555;
    let fake = FakeTelegram::start(fake_opts()).await.unwrap();
    let env = bot_env(&fake, "info").await;
    let mut child = start(&fake, &env).await;
    // An administrator by the configuration: no row of theirs until they write.
    has(
        &ask_in(
            &fake,
            ADMIN,
            Some(GROUP),
            &format!("/subscribe@{} quarkbloom", fake.info.bot_username),
        )
        .await,
        "Subscribed",
    );
    assert_eq!(
        sql(&env, "SELECT user_id || ' ' || chat_id FROM subscriptions"),
        format!("{ADMIN} {GROUP}")
    );
    assert_eq!(
        sql(
            &env,
            &format!("SELECT chat_id IS NULL FROM bot_users WHERE user_id = {ADMIN}")
        ),
        "1",
        "a group says nothing of the user's private chat"
    );
    stop(&mut child);
}
