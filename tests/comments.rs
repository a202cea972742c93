//! Comments: a channel followed `--with-comments` has its discussion group found and followed,
//! comments from before and after the start stored and linked to their posts (`v_comments`),
//! searchable like posts.

mod common;

use common::*;
use fake_telegram::flood::QuotaMode;
use fake_telegram::world::{ChannelChange, Sender};
use fake_telegram::{FakeTelegram, Options};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comments_are_backfilled_and_followed_live_linked_to_their_posts() {
    let fake = FakeTelegram::start(Options {
        channels: 1,
        posts: 10,
        password: None,
        quotas: QuotaMode::Off,
        ..Default::default()
    })
    .await
    .unwrap();
    let ch = fake.world.channel_id(&fake.info.channels[0]).unwrap();
    fake.world
        .change_channel(&ChannelChange {
            channel: ch.to_string(),
            comments: Some(true),
            ..Default::default()
        })
        .unwrap();
    let group = fake.world.lock().channels[&ch].discussion.unwrap();
    let ada = Sender {
        id: 901,
        first_name: "Ada".into(),
        last_name: None,
        username: Some("ada".into()),
    };
    // A post made now has a thread; two comments on it before the daemon starts.
    let post = fake.world.post(ch, "A post worth discussing").unwrap();
    fake.world.comment(ch, post, &ada, "first comment").unwrap();
    fake.world
        .comment(ch, post, &ada, "second comment")
        .unwrap();

    let env = telegram_env(&fake);
    login_and_add(&env, &fake, &[]).await;
    let out = run_with_input(
        &env,
        &["channels", "add", &fake.info.channels[0], "--with-comments"],
        "",
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let mut child = started(&env).await;
    wait_daemon(&mut child, "the discussion group followed and read", || {
        sql(
            &env,
            &format!("SELECT discussion_of FROM channels WHERE id = {group}"),
        ) == ch.to_string()
            && stored_ids(&env, group) == world_ids(&fake, group)
    })
    .await;
    // A comment made now, on a post made now: followed live.
    let later = fake.world.post(ch, "Another post").unwrap();
    let bob = Sender {
        id: 902,
        first_name: "Bob".into(),
        last_name: None,
        username: None,
    };
    fake.world.comment(ch, later, &bob, "live comment").unwrap();
    wait_daemon(&mut child, "the live comment", || {
        sql(&env, "SELECT count(*) FROM v_comments") == "3"
    })
    .await;
    assert_eq!(
        sql(
            &env,
            "SELECT channel_id || '|' || post_id || '|' || text || '|' || coalesce(from_name, '') \
             FROM v_comments ORDER BY group_id, id"
        ),
        format!(
            "{ch}|{post}|first comment|Ada\n{ch}|{post}|second comment|Ada\n{ch}|{later}|live comment|Bob"
        )
    );
    // Searchable like posts.
    let out = run_with_input(&env, &["search", "live comment"], "").await;
    assert!(
        text(&out).contains("*live* *comment*")
            && text(&out).contains(&format!("https://t.me/c/{group}/")),
        "{}",
        text(&out)
    );
    stop(&mut child);
}
