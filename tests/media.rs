//! The media archive against the fake: files of every kind, byte-exact (SHA-256 against the
//! fake's), on DCs other than the account's home (the login copied there), stored once per
//! content, filtered by kind and size, thumbnails of videos; an expired file reference and a
//! FLOOD_WAIT on `upload.getFile` on the way.

mod common;

use std::time::Duration;

use common::media::*;
use common::*;
use fake_telegram::faults::{Fault, FaultKind};
use fake_telegram::flood::QuotaMode;
use fake_telegram::world::MediaKind;
use fake_telegram::{FakeTelegram, Options};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_of_every_kind_are_stored_byte_exact_once_per_content() {
    let fake = one_channel_fake().await;
    let ch = fake.world.channel_id(&fake.info.channels[0]).unwrap();
    // Every kind, on the home DC (4) and on others (5, 2), some of several parts.
    let kinds = [
        (MediaKind::Photo, 150_000, 5),
        (MediaKind::Video, 1_300_000, 4),
        (MediaKind::Round, 400_000, 2),
        (MediaKind::Gif, 90_000, 5),
        (MediaKind::Audio, 700_000, 4),
        (MediaKind::Voice, 30_000, 5),
        (MediaKind::Sticker, 20_000, 2),
        (MediaKind::Document, 2_100_000, 5),
    ];
    let mut want = Vec::new();
    for (i, (kind, size, dc)) in kinds.iter().enumerate() {
        let m = media(*kind, 9_000 + i as i64, *size, *dc);
        let id = fake
            .world
            .post_media(ch, &format!("{kind:?}"), m.clone())
            .unwrap();
        want.push((id as i64, m.sha256(false)));
    }
    // The same file in 20 posts (a repost): fetched and stored once.
    let shared = media(MediaKind::Photo, 7_777, 333_333, 5);
    let mut reposts = Vec::new();
    for i in 0..20 {
        reposts.push(
            fake.world
                .post_media(ch, &format!("again {i}"), shared.clone())
                .unwrap() as i64,
        );
    }
    // Too big for the configured maximum: skipped, with why.
    let big = fake
        .world
        .post_media(ch, "big", media(MediaKind::Document, 6_000, 6_000_000, 4))
        .unwrap() as i64;
    let env = telegram_env_with(
        &fake,
        "[media]\nkinds = [\"all\"]\nmax_file_size = \"5 MB\"\nmin_free_space = 1\n",
    );
    login_and_add(&env, &fake, &fake.info.channels).await;
    let mut child = started(&env).await;
    // One query: read as two, a row queued between them passed the wait while pending.
    wait_daemon_for(&mut child, "every file", Duration::from_secs(120), || {
        sql(
            &env,
            "SELECT count(*) || ' ' || count(*) FILTER (WHERE state = 'pending') FROM media",
        ) == format!("{} 0", kinds.len() + 21)
    })
    .await;
    let got = rows(&env, ch);
    let state = env.state_dir();
    for (id, sha) in &want {
        let r = got.iter().find(|r| r.0 == *id).unwrap();
        assert_eq!(
            (&r.3, &r.4),
            (&"done".to_string(), &String::new()),
            "post {id}"
        );
        assert_eq!(&r.1, sha, "post {id}: the fake's bytes");
        let path = state.join(&r.2);
        assert_eq!(&sha_of_file(&path), sha, "post {id}: the bytes on disk");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(path.metadata().unwrap().permissions().mode() & 0o777, 0o600);
    }
    let paths: std::collections::BTreeSet<&String> = got
        .iter()
        .filter(|r| reposts.contains(&r.0))
        .map(|r| &r.2)
        .collect();
    assert_eq!(paths.len(), 1, "one file for the 20 reposts");
    let r = got.iter().find(|r| r.0 == reposts[0]).unwrap();
    assert_eq!(r.1, shared.sha256(false));
    let big_row = got.iter().find(|r| r.0 == big).unwrap();
    assert_eq!(big_row.3, "skipped");
    assert!(
        big_row.4.contains("larger than the maximum"),
        "{}",
        big_row.4
    );
    // Nothing left half-written.
    let partial = state.join("media/.partial");
    let left = std::fs::read_dir(&partial).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "no partial file left");
    let stats = fake.world.stats();
    assert_eq!(stats.calls_during_wait, 0);
    assert_eq!(stats.bans, 0);
    assert!(
        stats.requests["auth.importAuthorization"] >= 2,
        "the login was copied to DCs 5 and 2 for their files"
    );
    let out = run_with_input(&env, &["media", "status"], "").await;
    let status = text(&out);
    assert!(
        status
            .lines()
            .any(|l| l.split_whitespace().nth(1) == Some("28")),
        "{status}"
    );
    stop(&mut child);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_reference_and_a_flood_wait_do_not_stop_a_download() {
    let fake = one_channel_fake().await;
    let ch = fake.world.channel_id(&fake.info.channels[0]).unwrap();
    let video = media(MediaKind::Video, 4_242, 3_000_000, 5);
    let photo = media(MediaKind::Photo, 4_343, 100_000, 4);
    let v = fake.world.post_media(ch, "video", video.clone()).unwrap() as i64;
    let p = fake.world.post_media(ch, "photo", photo.clone()).unwrap() as i64;
    // Photos only, and thumbnails of videos: the video's thumbnail is fetched, not the video.
    let env = telegram_env_with(&fake, "[media]\nkinds = [\"photo\"]\nmin_free_space = 1\n");
    login_and_add(&env, &fake, &fake.info.channels).await;
    // References good for a second, parts slower than that: the reference expires mid-file.
    fake.world.lock().file_reference_ttl = 1;
    fake.faults.add(Fault {
        kind: FaultKind::Latency { ms: 1_100 },
        method: Some("upload.getFile".into()),
        count: 3,
    });
    fake.faults.add(Fault {
        kind: FaultKind::FloodWait { secs: 3 },
        method: Some("upload.getFile".into()),
        count: 1,
    });
    let refetches = || {
        fake.world
            .stats()
            .requests
            .get("channels.getMessages")
            .copied()
            .unwrap_or(0)
    };
    let mut child = started(&env).await;
    wait_daemon_for(&mut child, "both files", Duration::from_secs(90), || {
        sql(&env, "SELECT count(*) FROM media WHERE state = 'done'") == "2"
    })
    .await;
    let got = rows(&env, ch);
    let thumb = got.iter().find(|r| r.0 == v).unwrap();
    assert_eq!(thumb.1, video.sha256(true), "the video's thumbnail");
    assert_eq!(
        got.iter().find(|r| r.0 == p).unwrap().1,
        photo.sha256(false)
    );
    assert!(
        refetches() >= 2,
        "the posts were read again for fresh references"
    );
    let stats = fake.world.stats();
    assert_eq!(stats.calls_during_wait, 0, "no call during the FLOOD_WAIT");
    assert_eq!(stats.bans, 0);
    stop(&mut child);
}

/// Sets a file's modification time an hour back (`gc` leaves files changed lately alone).
fn age(p: &std::path::Path) {
    let ok = std::process::Command::new("touch")
        .args(["-d", "1 hour ago"])
        .arg(p)
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_finds_a_damaged_and_a_missing_file_and_gc_removes_only_orphans() {
    let fake = one_channel_fake().await;
    let ch = fake.world.channel_id(&fake.info.channels[0]).unwrap();
    for i in 0..3 {
        fake.world
            .post_media(
                ch,
                "photo",
                media(MediaKind::Photo, 5_100 + i, 50_000 + i * 1_000, 4),
            )
            .unwrap();
    }
    let env = telegram_env_with(&fake, "[media]\nkinds = [\"photo\"]\nmin_free_space = 1\n");
    login_and_add(&env, &fake, &fake.info.channels).await;
    let all_done = || sql(&env, "SELECT count(*) FROM media WHERE state = 'done'") == "3";
    let mut child = started(&env).await;
    wait_daemon_for(&mut child, "the photos", Duration::from_secs(60), all_done).await;
    stop(&mut child);

    let state = env.state_dir();
    let got = rows(&env, ch);
    let (damaged, missing, kept) = (
        state.join(&got[0].2),
        state.join(&got[1].2),
        state.join(&got[2].2),
    );
    let mut bytes = std::fs::read(&damaged).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&damaged, bytes).unwrap();
    std::fs::remove_file(&missing).unwrap();
    let orphan = state.join("media/ab/cd/0000-orphan.bin");
    std::fs::create_dir_all(orphan.parent().unwrap()).unwrap();
    std::fs::write(&orphan, b"no post points here").unwrap();
    let stale_partial = state.join("media/.partial/1_999.part");
    std::fs::create_dir_all(stale_partial.parent().unwrap()).unwrap();
    std::fs::write(&stale_partial, b"half a file nobody wants").unwrap();
    let fresh_orphan = state.join("media/ab/cd/0001-new.bin");
    std::fs::write(&fresh_orphan, b"just written").unwrap();
    for p in [&orphan, &stale_partial, &kept] {
        age(p);
    }

    let out = run_with_input(&env, &["media", "verify"], "").await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("3 file(s) checked: 1 missing, 1 damaged; 2 post(s) queued"),
        "{}",
        text(&out)
    );
    assert_eq!(
        sql(&env, "SELECT count(*) FROM media WHERE state = 'pending'"),
        "2"
    );
    let out = run_with_input(&env, &["media", "gc"], "").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("2 file(s) no post needs removed"),
        "{}",
        text(&out)
    );
    assert!(
        !orphan.exists() && !stale_partial.exists(),
        "orphans removed"
    );
    assert!(kept.exists(), "a file a post points to is kept");
    assert!(fresh_orphan.exists(), "a file written lately is left alone");

    // Fetched again: every file exact, verify clean.
    let mut child = started(&env).await;
    wait_daemon_for(
        &mut child,
        "the photos again",
        Duration::from_secs(60),
        all_done,
    )
    .await;
    stop(&mut child);
    let out = run_with_input(&env, &["media", "verify"], "").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

/// `channels add --media` sets what a channel archives; without it a new channel gets
/// `[media]`'s kinds (none without the section); `media off` stops it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_add_media_chooses_what_a_channel_archives() {
    let fake = FakeTelegram::start(Options {
        channels: 2,
        posts: 5,
        password: None,
        quotas: QuotaMode::Strict,
        ..Default::default()
    })
    .await
    .unwrap();
    let env = telegram_env_with(&fake, "");
    login_and_add(&env, &fake, &[]).await;
    let (a, b) = (&fake.info.channels[0], &fake.info.channels[1]);
    let out = run_with_input(&env, &["channels", "add", a, "--media", "photo,round"], "").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = run_with_input(&env, &["channels", "add", b], "").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let kinds = |name: &str| {
        sql(
            &env,
            &format!(
                "SELECT coalesce(media_kinds, 'none') FROM channels WHERE username = '{name}'"
            ),
        )
    };
    assert_eq!(kinds(a), "photo,video_note");
    assert_eq!(kinds(b), "none", "no [media] section: nothing archived");
    let out = run_with_input(&env, &["channels", "add", a, "--media", "pictures"], "").await;
    assert_ne!(out.status.code(), Some(0));
    assert!(
        text(&out).contains("expected kinds among"),
        "{}",
        text(&out)
    );
    let out = run_with_input(&env, &["media", "off", a], "").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(kinds(a), "none");
}
