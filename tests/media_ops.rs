//! The media archive as operators and bot users reach it: `media fetch` in the foreground (and
//! beside a running daemon), `export --with-media-paths`, `/add … --media` and a search
//! result's photo sent by the bot.

mod common;

use std::time::{Duration, Instant};

use common::media::*;
use common::*;
use fake_telegram::botapi::UserMessage;
use fake_telegram::flood::QuotaMode;
use fake_telegram::world::MediaKind;
use fake_telegram::{FakeTelegram, Options};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_fetch_downloads_the_chosen_posts_files_now_and_export_names_their_paths() {
    let fake = one_channel_fake().await;
    let name = fake.info.channels[0].clone();
    let ch = fake.world.channel_id(&name).unwrap();
    let files = [
        media(MediaKind::Photo, 41, 300_000, 5),
        media(MediaKind::Document, 42, 1_500_000, 4),
        media(MediaKind::Voice, 43, 40_000, 2),
    ];
    let mut want = Vec::new();
    for m in &files {
        let id = fake.world.post_media(ch, "a file", m.clone()).unwrap();
        want.push((id as i64, m.clone()));
    }
    let env = telegram_env_with(&fake, "[media]\nkinds = [\"all\"]\nmin_free_space = 1\n");
    login_and_add(&env, &fake, &fake.info.channels).await;
    let out = run_with_input(&env, &["backfill"], "").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // Posts of another span: nothing to fetch.
    let out = run_with_input(&env, &["media", "fetch", "--since", "2099-01-01"], "").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("0 file(s) fetched"), "{}", text(&out));
    assert_eq!(
        sql(&env, "SELECT count(*) FROM media WHERE state = 'pending'"),
        "3"
    );
    let out = run_with_input(&env, &["media", "fetch", "--channel", &name], "").await;
    let said = text(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(said.contains("3 file(s) fetched"), "{said}");
    let got = rows(&env, ch);
    for (id, m) in &want {
        let r = got.iter().find(|r| r.0 == *id).unwrap();
        assert_eq!((r.3.as_str(), r.1.clone()), ("done", m.sha256(false)));
    }

    // Export names each post's file by its absolute path.
    let out = run_with_input(&env, &["export", "--with-media-paths"], "").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines.len(),
        3 + 1,
        "the files' posts and the channel's creation"
    );
    for l in lines.iter().filter(|l| !l["media_state"].is_null()) {
        let path = std::path::PathBuf::from(l["media_path"].as_str().unwrap());
        assert!(path.is_absolute(), "{path:?}");
        let m = &want
            .iter()
            .find(|w| Some(w.0) == l["id"].as_i64())
            .unwrap()
            .1;
        assert_eq!(sha_of_file(&path), m.sha256(false));
        assert_eq!(l["media_state"], "done");
    }
    let out = run_with_input(
        &env,
        &["export", "--format", "csv", "--with-media-paths"],
        "",
    )
    .await;
    let csv = String::from_utf8_lossy(&out.stdout).into_owned();
    let header = csv.lines().next().unwrap();
    assert!(header.ends_with(",media_path,media_state"), "{header}");
    assert_eq!(
        csv.lines().skip(1).filter(|l| l.ends_with(",done")).count(),
        3,
        "{csv}"
    );
    let out = run_with_input(&env, &["export"], "").await;
    assert!(!String::from_utf8_lossy(&out.stdout).contains("media_path"));

    // Beside a running daemon (which holds the session), it shows the daemon's progress.
    let late = media(MediaKind::Document, 44, 900_000, 5);
    let late_id = fake.world.post_media(ch, "later", late.clone()).unwrap() as i64;
    let mut child = started(&env).await;
    wait_daemon(&mut child, "the new post's file queued", || {
        rows(&env, ch).iter().any(|r| r.0 == late_id)
    })
    .await;
    let out = run_with_input(&env, &["media", "fetch"], "").await;
    let said = text(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(said.contains("the daemon is running"), "{said}");
    let r = rows(&env, ch).into_iter().find(|r| r.0 == late_id).unwrap();
    assert_eq!((r.3.as_str(), r.1), ("done", late.sha256(false)));
    stop(&mut child);
}

fn calls_to(fake: &FakeTelegram, chat: i64, method: &str) -> Vec<serde_json::Value> {
    fake.bot
        .calls(false)
        .into_iter()
        .filter(|c| {
            // A multipart upload's fields are strings.
            let to = &c.params["chat_id"];
            c.method == method
                && (to.as_i64() == Some(chat) || to.as_str() == Some(&chat.to_string()))
        })
        .map(|c| c.params)
        .collect()
}

/// Sends `text` as `user` and returns the bot's next message to them.
async fn ask(fake: &FakeTelegram, user: i64, text: &str) -> serde_json::Value {
    let before = calls_to(fake, user, "sendmessage").len();
    fake.bot.user_message(&UserMessage {
        user_id: user,
        text: Some(text.to_string()),
        ..Default::default()
    });
    let t = Instant::now();
    loop {
        let sent = calls_to(fake, user, "sendmessage");
        if sent.len() > before {
            return sent[before].clone();
        }
        assert!(
            t.elapsed() < Duration::from_secs(70),
            "no answer to {text:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_added_with_media_in_the_bot_archives_photos_and_search_sends_them() {
    const ADMIN: i64 = 1;
    let fake = FakeTelegram::start(Options {
        channels: 1,
        posts: 0,
        password: None,
        quotas: QuotaMode::Off,
        bot_limits: false,
        ..Default::default()
    })
    .await
    .unwrap();
    let name = fake.info.channels[0].clone();
    let ch = fake.world.channel_id(&name).unwrap();
    let photo = media(MediaKind::Photo, 51, 250_000, 5);
    let doc = media(MediaKind::Document, 52, 400_000, 4);
    fake.world
        .post_media(ch, "Aurora over the fjord tonight", photo.clone())
        .unwrap();
    fake.world
        .post_media(ch, "Aurora forecast in the attached report", doc)
        .unwrap();
    fake.world.post(ch, "Aurora, text only").unwrap();
    let env = bot_env_for(&fake, &[ADMIN], "info");
    // `[media]` archives nothing by default here: `/add … --media photo` chooses.
    let cfg = std::fs::read_to_string(env.path("config.toml")).unwrap();
    std::fs::write(
        env.path("config.toml"),
        format!("{cfg}[media]\nmin_free_space = 1\n"),
    )
    .unwrap();
    login_and_add(&env, &fake, &[]).await;
    let mut child = start_with_bot(&env).await;
    let added = ask(&fake, ADMIN, &format!("/add @{name} --media photo")).await;
    let said = added["text"].as_str().unwrap_or_default();
    assert!(said.contains("Files archived: photo"), "{said}");
    let bad = ask(&fake, ADMIN, &format!("/add @{name} --media pictures")).await;
    assert!(
        bad["text"].as_str().unwrap_or_default().contains("--media"),
        "{bad}"
    );
    wait_daemon_for(&mut child, "the photo", Duration::from_secs(60), || {
        sql(&env, "SELECT count(*) FROM media WHERE state = 'done'") == "1"
    })
    .await;
    assert_eq!(
        sql(&env, "SELECT count(*) FROM media"),
        "1",
        "only photos are archived"
    );

    let found = ask(&fake, ADMIN, "/search aurora").await;
    let text = found["text"].as_str().unwrap_or_default();
    assert!(text.contains("📷 "), "{text}");
    let kb = buttons(&found);
    let photo_buttons: Vec<_> = kb.iter().filter(|b| b.1.starts_with("p:")).collect();
    assert_eq!(photo_buttons.len(), 1, "{kb:?}");
    let results = fake
        .bot
        .bot_messages(ADMIN)
        .into_iter()
        .rev()
        .find(|m| m["text"].as_str().is_some_and(|t| t.contains("Results")))
        .and_then(|m| m["message_id"].as_i64());
    fake.bot.user_message(&UserMessage {
        user_id: ADMIN,
        kind: Some("callback".into()),
        data: Some(photo_buttons[0].1.clone()),
        message_id: results,
        ..Default::default()
    });
    wait_daemon(&mut child, "the photo to be sent", || {
        !calls_to(&fake, ADMIN, "sendphoto").is_empty()
    })
    .await;
    let sent = &calls_to(&fake, ADMIN, "sendphoto")[0];
    assert_eq!(
        sent["photo"]["file_size"].as_i64(),
        Some(photo.size),
        "{sent}"
    );
    assert!(
        sent["caption"]
            .as_str()
            .is_some_and(|c| c.contains(&format!("t.me/{name}/"))),
        "{sent}"
    );
    // A button for a post whose photo is not stored says so.
    fake.bot.user_message(&UserMessage {
        user_id: ADMIN,
        kind: Some("callback".into()),
        data: Some(format!("p:{ch}:999999")),
        message_id: results,
        ..Default::default()
    });
    wait_daemon(&mut child, "the press to be answered", || {
        fake.bot.calls(false).iter().any(|c| {
            c.method == "answercallbackquery" && c.params.to_string().contains("not stored")
        })
    })
    .await;
    stop(&mut child);
}
