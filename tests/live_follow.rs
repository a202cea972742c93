//! Live follow as real Telegram allows it: pushes reach members only (and not reliably), so the
//! daemon joins what it follows and polls every channel on a schedule; with no pushes at all,
//! every post, edit and deletion still reaches the store within a bounded lag, within the
//! quota.

mod common;

use std::time::{Duration, Instant};

use common::*;
use fake_telegram::flood::{Quota, QuotaMode};
use fake_telegram::world::PushMode;
use fake_telegram::{FakeTelegram, Options};

fn memberships(env: &Env) -> String {
    sql(
        env,
        "SELECT group_concat(membership, ',') FROM (SELECT membership FROM channels ORDER BY added_at, id)",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_joins_what_it_follows_and_a_channel_past_the_limit_is_polled() {
    let fake = FakeTelegram::start(Options {
        channels: 3,
        posts: 20,
        password: None,
        quotas: QuotaMode::Off,
        ..Default::default()
    })
    .await
    .unwrap();
    // The account may be in two channels: the third meets CHANNELS_TOO_MUCH.
    fake.world.lock().join_limits.max_channels = 2;
    let env = telegram_env(&fake);
    login_and_add(&env, &fake, &fake.info.channels).await;
    assert_eq!(memberships(&env), "join,join,join");
    let ids: Vec<i64> = fake
        .info
        .channels
        .iter()
        .map(|u| fake.world.channel_id(u).unwrap())
        .collect();
    let mut child = started(&env).await;
    wait_daemon(&mut child, "the joins", || {
        memberships(&env) == "joined,joined,too_many"
    })
    .await;
    let user = fake.world.account_id(&fake.info.phone).unwrap();
    let members: Vec<i64> = fake.world.joined(user).iter().map(|c| c.0).collect();
    assert_eq!(
        members,
        ids[..2].to_vec(),
        "the fake's list of the account's channels"
    );
    assert!(audited(&env, "join_too_many"));
    wait_daemon(&mut child, "the backfill", || {
        sql(
            &env,
            "SELECT count(*) FROM channels WHERE backfill_state = 'done'",
        ) == "3"
    })
    .await;

    // Posts in every channel: the members' are pushed, the third's found by polling.
    for round in 0..5 {
        for id in &ids {
            fake.world.post(*id, &format!("live {round}")).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_daemon_for(&mut child, "every post", Duration::from_secs(60), || {
        ids.iter()
            .all(|id| stored_view(&env, *id) == world_view(&fake, *id))
    })
    .await;
    let worst_pushed = sql(
        &env,
        &format!(
            "SELECT max(fetched_at - date) FROM messages WHERE channel_id IN ({}, {}) AND text LIKE 'live %'",
            ids[0], ids[1]
        ),
    );
    assert!(
        worst_pushed.parse::<i64>().unwrap() <= 2,
        "pushed posts stored within 2 s, the worst took {worst_pushed} s"
    );
    let polls = http_metric(&env, "tg_channel_polls_total", ids[2]);
    assert!(polls >= 1.0, "the third channel was polled");
    stop(&mut child);
}

/// A metric's value for one channel, read from the daemon's /metrics.
fn http_metric(env: &Env, name: &str, channel: i64) -> f64 {
    let (_, body) = get(env.health_addr(), "/metrics");
    body.lines()
        .find(|l| l.starts_with(name) && l.contains(&format!("channel_id=\"{channel}\"")))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// With no pushes at all (`--pushes none`) and the fake's default quota for
/// `getChannelDifference`, 200 channels posting at different rates: every post, edit and
/// deletion reaches the store, no FLOOD_WAIT is met, and every post within the bound the
/// schedule gives (one poll per channel per `channels / budget` seconds at worst).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_pushes_every_change_of_200_channels_reaches_the_store_within_the_quota() {
    const CHANNELS: usize = 200;
    let fake = FakeTelegram::start(Options {
        channels: CHANNELS,
        posts: 3,
        password: None,
        quotas: QuotaMode::Strict,
        pushes: PushMode::None,
        ..Default::default()
    })
    .await
    .unwrap();
    // Reading 200 histories is set-up here, not what is measured: its quota is raised on both
    // sides. getChannelDifference keeps Telegram's (the fake's default) and the daemon's pace.
    fake.shared.flood.set_quota(
        "messages.getHistory",
        Quota {
            calls: 1000,
            window: Duration::from_secs(30),
        },
    );
    let env = telegram_env_with(
        &fake,
        "join = false\nfollow_sweep_secs = 120\n[telegram.pacing]\n\"messages.getHistory\" = \"1000/30s\"\n",
    );
    let out = run_with_input(
        &env,
        &["login", "--phone", &fake.info.phone],
        &format!("{}\n", fake.info.code),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // The channels as `channels add --no-join` stores them (200 resolves would take 40 minutes
    // at Telegram's pace).
    let user = fake.world.account_id(&fake.info.phone).unwrap();
    let ids: Vec<i64> = fake.world.lock().channels.keys().copied().collect();
    let rows: Vec<String> = {
        let w = fake.world.lock();
        w.channels
            .values()
            .map(|c| {
                format!(
                    "({}, {}, '{}', 'T', 'no_join', 1, 1)",
                    c.id,
                    c.hash_for(user),
                    c.username.clone().unwrap_or_default()
                )
            })
            .collect()
    };
    sql_write(
        &env,
        &format!(
            "INSERT INTO channels (id, access_hash, username, title, membership, added_at, updated_at) VALUES {}",
            rows.join(",")
        ),
    );
    let mut child = started(&env).await;
    wait_daemon_for(&mut child, "the backfill", Duration::from_secs(120), || {
        sql(
            &env,
            "SELECT count(*) FROM channels WHERE backfill_state = 'done'",
        ) == CHANNELS.to_string()
    })
    .await;

    // 30 s of traffic: channel k posts at a rate ∝ 1/k (Zipf); edits and deletions in a few.
    let started_at = Instant::now();
    let mut tick = 0u64;
    while started_at.elapsed() < Duration::from_secs(30) {
        tick += 1;
        for (k, id) in ids.iter().enumerate() {
            let period = (k as u64 + 1) * 2;
            if tick.is_multiple_of(period) {
                fake.world
                    .post(*id, &format!("post at tick {tick}"))
                    .unwrap();
            }
        }
        if tick.is_multiple_of(10) {
            // A backfilled post: stored before its edit, so each edit is a version (the
            // newest post, often edited before any poll read it, made none by chance).
            let ch = ids[(tick as usize / 10) % 20];
            let old = fake.world.lock().channels[&ch]
                .posts
                .values()
                .find(|p| p.action.is_none())
                .map(|p| p.id)
                .unwrap();
            fake.world
                .edit(ch, old, &format!("edited at tick {tick}"))
                .unwrap();
            let ch = ids[20 + (tick as usize / 10) % 20];
            let first = *fake.world.lock().channels[&ch].posts.keys().next().unwrap();
            fake.world.delete(ch, &[first]).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Every channel is polled at least once in `CHANNELS / budget` seconds (1.5 polls a second).
    let bound = Duration::from_secs_f64(CHANNELS as f64 / 1.5 + 20.0);
    wait_daemon_for(&mut child, "every change", bound, || {
        ids.iter()
            .all(|id| stored_view(&env, *id) == world_view(&fake, *id))
    })
    .await;
    let stats = fake.world.stats();
    assert_eq!(stats.flood_waits, 0, "no FLOOD_WAIT met");
    assert_eq!(stats.bans, 0);
    let worst = sql(
        &env,
        "SELECT max(fetched_at - date) FROM messages WHERE text LIKE 'post at tick %'",
    );
    assert!(
        worst.parse::<f64>().unwrap() <= bound.as_secs_f64(),
        "every post within {} s; the worst took {worst} s",
        bound.as_secs()
    );
    let edits = sql(&env, "SELECT count(*) FROM message_versions");
    assert!(edits.parse::<i64>().unwrap() > 0, "edits kept as versions");
    stop(&mut child);
}

/// A channel renamed (username and title) is followed under its new name, the old one kept in
/// `channel_names`; a channel that banned the account is marked, readiness warns, the admins
/// are told once, and the other channel goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renamed_channel_keeps_its_old_names_and_a_lost_one_is_told_once() {
    const ADMIN: i64 = 4242;
    let fake = FakeTelegram::start(Options {
        channels: 2,
        posts: 10,
        password: None,
        quotas: QuotaMode::Off,
        ..Default::default()
    })
    .await
    .unwrap();
    let env = bot_env_for(&fake, &[ADMIN], "info");
    login_and_add(&env, &fake, &fake.info.channels).await;
    let (a, b) = (
        fake.world.channel_id(&fake.info.channels[0]).unwrap(),
        fake.world.channel_id(&fake.info.channels[1]).unwrap(),
    );
    let old_title = fake.world.lock().channels[&a].title.clone();
    let mut child = start_with_bot(&env).await;
    wait_daemon(&mut child, "the joins and the backfill", || {
        memberships(&env) == "joined,joined"
            && sql(
                &env,
                "SELECT count(*) FROM channels WHERE backfill_state = 'done'",
            ) == "2"
    })
    .await;

    fake.world
        .change_channel(&fake_telegram::world::ChannelChange {
            channel: a.to_string(),
            username: Some("renamed_news".into()),
            title: Some("Renamed News".into()),
            ..Default::default()
        })
        .unwrap();
    wait_daemon(&mut child, "the new name", || {
        sql(
            &env,
            &format!("SELECT username || '|' || title FROM channels WHERE id = {a}"),
        ) == "renamed_news|Renamed News"
    })
    .await;
    assert_eq!(
        sql(
            &env,
            &format!("SELECT username || '|' || title FROM channel_names WHERE channel_id = {a}")
        ),
        format!("{}|{old_title}", fake.info.channels[0])
    );

    fake.world
        .change_channel(&fake_telegram::world::ChannelChange {
            channel: b.to_string(),
            ban: Some(fake.info.phone.clone()),
            ..Default::default()
        })
        .unwrap();
    wait_daemon_for(
        &mut child,
        "the lost channel marked",
        Duration::from_secs(60),
        || {
            sql(
                &env,
                &format!("SELECT state || ' ' || last_error FROM channels WHERE id = {b}"),
            ) == "private CHANNEL_PRIVATE"
        },
    )
    .await;
    let told = || {
        fake.bot
            .calls(false)
            .iter()
            .filter(|c| {
                c.method == "sendmessage"
                    && c.params["chat_id"].as_i64() == Some(ADMIN)
                    && c.params["text"]
                        .as_str()
                        .is_some_and(|t| t.contains("can no longer be read"))
            })
            .count()
    };
    wait_daemon(&mut child, "the admins told", || told() == 1).await;
    let (code, ready) = get(env.health_addr(), "/readyz");
    assert_eq!(code, 200, "a lost channel warns, it does not fail: {ready}");
    assert!(ready.contains("can no longer be read"), "{ready}");
    // The other channel goes on; the admins are not told again.
    let id = fake.world.post(a, "still here").unwrap();
    wait_daemon(&mut child, "the other channel's post", || {
        stored_ids(&env, a).contains(&id)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(told(), 1, "told once");
    // /status says how the channels are followed.
    fake.bot.user_message(&fake_telegram::botapi::UserMessage {
        user_id: ADMIN,
        text: Some("/status".into()),
        ..Default::default()
    });
    wait_daemon(&mut child, "the /status answer", || {
        fake.bot.calls(false).iter().any(|c| {
            c.method == "sendmessage"
                && c.params["text"].as_str().is_some_and(|t| {
                    t.contains(
                        "Followed: 1 pushed and polled, 0 polled only, 0 waiting for join approval; 1 lost",
                    )
                })
        })
    })
    .await;
    stop(&mut child);
}

/// Private channels are added by their invite links (`t.me/+HASH`, `t.me/joinchat/HASH`): the
/// account joins; a link that asks for approval leaves the request queued until an admin
/// approves; expired, invalid and `--no-join` links are refused with what to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invite_links_join_wait_for_approval_and_are_refused_when_they_should_be() {
    let fake = FakeTelegram::start(Options {
        channels: 3,
        posts: 30,
        password: None,
        quotas: QuotaMode::Off,
        ..Default::default()
    })
    .await
    .unwrap();
    let ids: Vec<i64> = fake
        .info
        .channels
        .iter()
        .map(|u| fake.world.channel_id(u).unwrap())
        .collect();
    let invite = |ch: i64, request_needed: bool, expires_in: Option<i32>| {
        fake.world
            .invite(&fake_telegram::world::InviteSpec {
                channel: ch.to_string(),
                request_needed,
                expires_in,
                revoke: None,
            })
            .unwrap()
    };
    fake.world.set_private(ids[1], true).unwrap();
    fake.world.set_private(ids[2], true).unwrap();
    let open = invite(ids[1], false, None);
    let approval = invite(ids[2], true, None);
    let expired = invite(ids[0], false, Some(-1));
    let env = telegram_env(&fake);
    login_and_add(&env, &fake, &[]).await;

    let add = |args: Vec<String>| {
        let env = &env;
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run_with_input(env, &args, "").await
        }
    };
    let out = add(vec![
        "channels".into(),
        "add".into(),
        format!("https://t.me/+{open}"),
    ])
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("added"), "{}", text(&out));
    assert_eq!(
        sql(
            &env,
            &format!("SELECT membership FROM channels WHERE id = {}", ids[1])
        ),
        "joined"
    );
    let out = add(vec![
        "channels".into(),
        "add".into(),
        format!("t.me/joinchat/{approval}"),
    ])
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("an admin of the channel must approve"),
        "{}",
        text(&out)
    );
    assert_eq!(sql(&env, "SELECT state FROM channel_requests"), "pending");
    for (link, says) in [
        (format!("tg://join?invite={expired}"), "has expired"),
        ("https://t.me/+AAAAAAAAAAAAAAAA".to_string(), "is not valid"),
    ] {
        let out = add(vec!["channels".into(), "add".into(), link.clone()]).await;
        assert_eq!(out.status.code(), Some(1), "{link}: {}", text(&out));
        assert!(text(&out).contains(says), "{link}: {}", text(&out));
    }
    let out = add(vec![
        "channels".into(),
        "add".into(),
        format!("https://t.me/+{open}"),
        "--no-join".into(),
    ])
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("--no-join"), "{}", text(&out));

    // The admin approves; the daemon's first look at the queued request adds the channel.
    fake.world
        .change_channel(&fake_telegram::world::ChannelChange {
            channel: ids[2].to_string(),
            approve: Some(fake.info.phone.clone()),
            ..Default::default()
        })
        .unwrap();
    let mut child = started(&env).await;
    wait_daemon(&mut child, "the approved channel added and read", || {
        sql(&env, "SELECT state FROM channel_requests") == "done"
            && stored_ids(&env, ids[2]) == world_ids(&fake, ids[2])
            && stored_ids(&env, ids[1]) == world_ids(&fake, ids[1])
    })
    .await;
    assert_eq!(memberships(&env), "joined,joined");
    stop(&mut child);
}

/// A supergroup's messages keep their sender (`from_id`), with the sender's name in `users`,
/// whether read from history or followed live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supergroup_messages_keep_their_senders_from_history_and_live() {
    let fake = FakeTelegram::start(Options {
        channels: 1,
        posts: 5,
        password: None,
        quotas: QuotaMode::Off,
        ..Default::default()
    })
    .await
    .unwrap();
    let ch = fake.world.channel_id(&fake.info.channels[0]).unwrap();
    fake.world
        .change_channel(&fake_telegram::world::ChannelChange {
            channel: ch.to_string(),
            megagroup: Some(true),
            ..Default::default()
        })
        .unwrap();
    let ada = fake_telegram::world::Sender {
        id: 777,
        first_name: "Ada".into(),
        last_name: Some("Lovelace".into()),
        username: Some("ada".into()),
    };
    let bob = fake_telegram::world::Sender {
        id: 778,
        first_name: "Bob".into(),
        last_name: None,
        username: None,
    };
    for i in 0..3 {
        fake.world
            .post_from(ch, &ada, &format!("history {i}"))
            .unwrap();
    }
    let env = telegram_env(&fake);
    login_and_add(&env, &fake, &fake.info.channels).await;
    assert_eq!(sql(&env, "SELECT kind FROM channels"), "megagroup");
    let mut child = started(&env).await;
    wait_daemon(&mut child, "the backfill", || {
        sql(&env, "SELECT backfill_state FROM channels") == "done"
    })
    .await;
    let id = fake.world.post_from(ch, &bob, "live from Bob").unwrap();
    wait_daemon(&mut child, "the live message", || {
        stored_ids(&env, ch).contains(&id)
    })
    .await;
    assert_eq!(
        sql(
            &env,
            "SELECT from_id || '|' || coalesce(from_name, '') || '|' || coalesce(from_username, '') \
             FROM v_posts WHERE from_id IS NOT NULL ORDER BY id"
        ),
        "777|Ada Lovelace|ada\n777|Ada Lovelace|ada\n777|Ada Lovelace|ada\n778|Bob|"
    );
    let own = fake.world.lock().channels[&ch]
        .posts
        .values()
        .filter(|p| p.from_id.is_none())
        .count();
    assert_eq!(
        sql(&env, "SELECT count(*) FROM messages WHERE from_id IS NULL"),
        own.to_string(),
        "the channel's own posts have no sender"
    );
    stop(&mut child);
}
