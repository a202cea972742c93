//! Channels and backfill end to end: the real binary, the fake Telegram over loopback MTProto.

mod common;

use std::process::{Output, Stdio};
use std::time::Duration;

use common::*;
use fake_telegram::flood::QuotaMode;
use fake_telegram::world::{EntityKind, MediaKind};
use fake_telegram::{FakeTelegram, Options};
use rand::Rng;

async fn setup(opts: Options) -> (FakeTelegram, Env) {
    let fake = FakeTelegram::start(Options {
        password: None,
        quotas: QuotaMode::Off,
        ..opts
    })
    .await
    .unwrap();
    let env = telegram_env(&fake);
    let out = run(
        &env,
        &["login", "--phone", &fake.info.phone.clone()],
        &format!("{}\n", fake.info.code),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    (fake, env)
}

async fn run(env: &Env, args: &[&str], input: &str) -> Output {
    run_with_input(env, args, input).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_of_50000_posts_over_5_channels_stores_exactly_every_post_with_every_field() {
    let (fake, env) = setup(Options {
        channels: 5,
        posts: 10_000,
        ..Default::default()
    })
    .await;
    for name in &fake.info.channels {
        let out = run(
            &env,
            &["channels", "add", &format!("https://t.me/{name}")],
            "",
        )
        .await;
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }
    let out = run(&env, &["backfill"], "").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("backfill complete"));

    let mut total = 0;
    for name in &fake.info.channels {
        let id = fake.world.channel_id(name).unwrap();
        let stored = stored_ids(&env, id);
        assert_eq!(
            stored,
            world_ids(&fake, id),
            "{name}: exactly the set of ids"
        );
        assert_eq!(
            sql(
                &env,
                &format!("SELECT post_count FROM channels WHERE id = {id}")
            ),
            stored.len().to_string(),
            "{name}: the kept count matches"
        );
        total += stored.len();
    }
    assert!(total > 50_000, "{total}");
    assert_eq!(
        sql(
            &env,
            "SELECT COUNT(*) FROM channels WHERE backfill_state = 'done'"
        ),
        "5"
    );

    // Every field round-trips, for every post of one channel.
    let ch = fake.world.channel_id(&fake.info.channels[0]).unwrap();
    let rows = sql(
        &env,
        &format!(
            "SELECT id, kind, date, coalesce(edit_date,''), views, forwards, coalesce(replies,''), coalesce(grouped_id,''), \
             coalesce(reply_to_msg_id,''), pinned, coalesce(post_author,''), coalesce(media_kind,''), \
             coalesce(json_extract(media,'$.file_name'),''), coalesce(json_extract(media,'$.size'),''), \
             coalesce(json_array_length(entities),0), coalesce(json_extract(entities,'$[0].type'),''), \
             coalesce(json_extract(entities,'$[0].length'),''), coalesce(json_extract(fwd_from,'$.channel_post'),''), \
             coalesce(json_array_length(reactions),0), coalesce(json_extract(action,'$.type'),''), length(text) \
             FROM messages WHERE channel_id = {ch} ORDER BY id"
        ),
    );
    let w = fake.world.lock();
    let posts = &w.channels[&ch].posts;
    let mut checked = 0;
    for line in rows.lines() {
        let f: Vec<&str> = line.split('|').collect();
        let p = &posts[&f[0].parse::<i32>().unwrap()];
        assert_eq!(f[2], p.date.to_string());
        if let Some(action) = &p.action {
            assert_eq!(f[1], "service");
            let want = match action {
                fake_telegram::world::ServiceAction::ChannelCreate { .. } => "channel_create",
                fake_telegram::world::ServiceAction::EditTitle { .. } => "edit_title",
                fake_telegram::world::ServiceAction::PinMessage { .. } => "pin_message",
            };
            assert_eq!(f[19], want);
            continue;
        }
        assert_eq!(f[1], "post");
        assert_eq!(f[3], p.edit_date.map(|d| d.to_string()).unwrap_or_default());
        assert_eq!(f[4], p.views.to_string());
        assert_eq!(f[5], p.forwards.to_string());
        assert_eq!(f[6], p.replies.to_string());
        assert_eq!(
            f[7],
            p.grouped_id.map(|g| g.to_string()).unwrap_or_default()
        );
        assert_eq!(f[8], p.reply_to.map(|g| g.to_string()).unwrap_or_default());
        assert_eq!(f[9], if p.pinned { "1" } else { "0" });
        assert_eq!(f[10], p.post_author.clone().unwrap_or_default());
        match &p.media {
            None => assert_eq!(f[11], ""),
            Some(m) => {
                let kind = match m.kind {
                    MediaKind::Photo => "photo",
                    MediaKind::Document => "document",
                    MediaKind::Video => "video",
                    MediaKind::Round => "video_note",
                    MediaKind::Audio => "audio",
                    MediaKind::Voice => "voice",
                    MediaKind::Sticker => "sticker",
                    MediaKind::Gif => "animation",
                };
                assert_eq!(f[11], kind);
                if m.kind == MediaKind::Document {
                    assert_eq!(f[12], m.file_name.clone().unwrap_or_default());
                    assert_eq!(f[13], m.size.to_string());
                }
            }
        }
        assert_eq!(f[14], p.entities.len().to_string());
        if let Some(e) = p.entities.first() {
            let t = match e.kind {
                EntityKind::Bold => "bold",
                EntityKind::Url => "url",
                EntityKind::Hashtag => "hashtag",
                _ => "other",
            };
            assert_eq!(f[15], t);
            assert_eq!(f[16], e.length.to_string(), "UTF-16 lengths as sent");
        }
        assert_eq!(
            f[17],
            p.fwd_from
                .as_ref()
                .and_then(|x| x.channel_post)
                .map(|c| c.to_string())
                .unwrap_or_default()
        );
        assert_eq!(f[18], p.reactions.len().to_string());
        checked += 1;
    }
    assert!(checked > 9_000);
    drop(w);
    // Texts compared exactly through the FTS-indexed column (newlines, Cyrillic, emoji).
    let text_of = sql(
        &env,
        &format!("SELECT hex(text) FROM messages WHERE channel_id = {ch} AND id = 5"),
    );
    let want = hex::encode_upper(fake.world.lock().channels[&ch].posts[&5].text.as_bytes());
    assert_eq!(text_of, want);
}

/// Kill rounds: 20 in the suite; `scripts/reliability` sets `TGPARSER_KILL_ROUNDS=200`.
fn kill_rounds() -> usize {
    std::env::var("TGPARSER_KILL_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_moments_during_backfill_resumes_exactly() {
    let rounds = kill_rounds();
    // Enough history that the kills land mid-backfill for every round.
    let (fake, env) = setup(Options {
        channels: 3,
        posts: (rounds * 150).max(3_000),
        ..Default::default()
    })
    .await;
    for name in &fake.info.channels {
        let out = run(&env, &["channels", "add", name], "").await;
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }
    let mut last_cursors: Vec<i64> = vec![i64::MAX; 3];
    let mut rng = rand::rng();
    for round in 0..rounds {
        let mut child = env
            .cmd(&["backfill"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(rng.random_range(30..400))).await;
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        assert_eq!(sql(&env, "PRAGMA integrity_check"), "ok", "round {round}");
        for (i, name) in fake.info.channels.iter().enumerate() {
            let id = fake.world.channel_id(name).unwrap();
            let c = sql(
                &env,
                &format!(
                    "SELECT coalesce(backfill_cursor, 9223372036854775807) FROM channels WHERE id = {id}"
                ),
            );
            let c: i64 = c.parse().unwrap();
            assert!(
                c <= last_cursors[i],
                "round {round}: cursor of {name} moved backwards"
            );
            last_cursors[i] = c;
            // Everything at or above the cursor is stored: nothing skipped.
            let stored = stored_ids(&env, id);
            let expected: Vec<i32> = world_ids(&fake, id)
                .into_iter()
                .filter(|x| i64::from(*x) >= c)
                .collect();
            if c != i64::MAX {
                assert_eq!(stored, expected, "round {round}: {name}");
            }
        }
    }
    let out = run(&env, &["backfill"], "").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    for name in &fake.info.channels {
        let id = fake.world.channel_id(name).unwrap();
        assert_eq!(stored_ids(&env, id), world_ids(&fake, id), "{name}");
    }
    assert_eq!(sql(&env, "PRAGMA integrity_check"), "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_channel_references_are_clear_and_write_nothing() {
    let (fake, env) = setup(Options::default()).await;
    // Shut out: banned from the channel (a private one has no username to resolve).
    fake.world
        .change_channel(&fake_telegram::world::ChannelChange {
            channel: fake.info.channels[1].clone(),
            ban: Some(fake.info.phone.clone()),
            ..Default::default()
        })
        .unwrap();
    let cases = [
        ("no!such name", "not a valid channel name"),
        ("@nosuchchannel", "there is no channel @nosuchchannel"),
        (fake.info.channels[1].as_str(), "private channel"),
        ("12345", "numeric id"),
    ];
    for (input, needle) in cases {
        let out = run(&env, &["channels", "add", input], "").await;
        assert_eq!(out.status.code(), Some(1), "{input}: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(needle),
            "{input}: {}",
            text(&out)
        );
    }
    assert_eq!(sql(&env, "SELECT COUNT(*) FROM channels"), "0");

    // --last limits the backfill; --since with a bad date is refused before anything happens.
    let out = run(
        &env,
        &["channels", "add", &fake.info.channels[0], "--last", "150"],
        "",
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = run(&env, &["backfill"], "").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(sql(&env, "SELECT COUNT(*) FROM messages"), "150");
    let out = run(
        &env,
        &[
            "channels",
            "add",
            &fake.info.channels[2],
            "--since",
            "2026-02-31",
        ],
        "",
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("YYYY-MM-DD"));

    let out = run(&env, &["channels", "list"], "").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        listing.contains(&format!("@{}", fake.info.channels[0])) && listing.contains("100.0%"),
        "{listing}"
    );
    let out = run(
        &env,
        &["channels", "remove", &fake.info.channels[0], "--purge"],
        "",
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(sql(&env, "SELECT COUNT(*) FROM messages"), "0");
    assert_eq!(
        sql(&env, "SELECT COUNT(*) FROM messages_terms"),
        "0",
        "the FTS index follows deletes"
    );
}
