//! The media archive when things go wrong: files Telegram moved to another DC
//! (`FILE_MIGRATE`), connections dropped and errors mid-file, kill -9 during downloads, the
//! media budget reached, and a real full disk.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::disk::{Tmpfs, fill};
use common::media::*;
use common::*;
use fake_telegram::FakeTelegram;
use fake_telegram::faults::{Fault, FaultKind};
use fake_telegram::world::{Media, MediaKind};

/// Posts `files` in the fake's first channel: `(post id, file)`.
fn post_all(fake: &FakeTelegram, files: &[Media]) -> Vec<(i64, Media)> {
    let ch = fake.world.channel_id(&fake.info.channels[0]).unwrap();
    files
        .iter()
        .map(|m| {
            let id = fake
                .world
                .post_media(ch, &format!("file {}", m.id), m.clone())
                .unwrap();
            (id as i64, m.clone())
        })
        .collect()
}

/// Every file done and byte-exact, on disk as in its row; nothing else under `media/` (no
/// orphan file, no partial one).
fn all_exact(env: &Env, ch: i64, want: &[(i64, Media)]) {
    let got = rows(env, ch);
    let state = env.state_dir();
    for (id, m) in want {
        let r = got
            .iter()
            .find(|r| r.0 == *id)
            .unwrap_or_else(|| panic!("no row for post {id}"));
        assert_eq!(r.3, "done", "post {id}: {}", r.4);
        assert_eq!(r.1, m.sha256(false), "post {id}: the fake's bytes");
        assert_eq!(sha_of_file(&state.join(&r.2)), r.1, "post {id}: on disk");
    }
    let on_disk: BTreeSet<String> = files_under(&state.join("media"))
        .into_iter()
        .map(|p| {
            p.strip_prefix(&state)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let named: BTreeSet<String> = got.iter().map(|r| r.2.clone()).collect();
    assert_eq!(on_disk, named, "the files on disk are those the rows name");
}

fn ready_body(env: &Env) -> String {
    get(env.health_addr(), "/readyz").1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_moved_to_another_dc_and_faults_mid_file_still_arrive_byte_exact() {
    let fake = one_channel_fake().await;
    let ch = fake.world.channel_id(&fake.info.channels[0]).unwrap();
    let home = fake.info.home_dc;
    let away = if home == 5 { 4 } else { 5 };
    // Posts name the DC the file was on; Telegram has moved it since.
    let moved = media(MediaKind::Document, 71, 2_600_000, away);
    let moved_home = media(MediaKind::Video, 72, 1_800_000, home);
    let stays = media(MediaKind::Photo, 73, 900_000, away);
    let want = post_all(&fake, &[moved.clone(), moved_home.clone(), stays]);
    assert!(fake.world.move_file(moved.id, 2));
    assert!(fake.world.move_file(moved_home.id, away));
    let env = telegram_env_with(&fake, "[media]\nkinds = [\"all\"]\nmin_free_space = 1\n");
    login_and_add(&env, &fake, &fake.info.channels).await;
    // Mid-file: two dropped connections, 500s and a -503 on parts.
    fake.faults.add(Fault {
        kind: FaultKind::Drop { after: 6 },
        method: None,
        count: 2,
    });
    for kind in [FaultKind::Rpc500, FaultKind::Rpc500, FaultKind::Timeout503] {
        fake.faults.add(Fault {
            kind,
            method: Some("upload.getFile".into()),
            count: 1,
        });
    }
    let mut child = started(&env).await;
    wait_daemon_for(&mut child, "every file", Duration::from_secs(120), || {
        sql(&env, "SELECT count(*) FROM media WHERE state = 'done'") == "3"
    })
    .await;
    all_exact(&env, ch, &want);
    let log = stderr_of(&mut child);
    assert!(
        log.contains("copied to DC 2"),
        "the login was copied to DC 2, where FILE_MIGRATE sent the download:\n{log}"
    );
    let stats = fake.world.stats();
    assert_eq!(stats.calls_during_wait, 0);
    assert_eq!(stats.bans, 0);
    assert_eq!(
        sql(&env, "SELECT max(attempts) FROM media"),
        "0",
        "no file failed on the way: the faults were retried within its download; {}",
        stderr_of(&mut child)
            .lines()
            .filter(|l| l.contains("could not be fetched"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    stop(&mut child);
}

/// A small deterministic generator (xorshift), its seed printed so a failure replays.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_file_ten_times_resumes_each_download_and_loses_no_file() {
    let seed = std::env::var("MEDIA_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("MEDIA_KILL_SEED={seed}");
    let mut rng = Rng(seed);
    let fake = one_channel_fake().await;
    let ch = fake.world.channel_id(&fake.info.channels[0]).unwrap();
    let home = fake.info.home_dc;
    let files: Vec<Media> = (0..8)
        .map(|i| {
            let kind = [MediaKind::Document, MediaKind::Video, MediaKind::Photo][i % 3];
            let dc = [home, 5, 2][i % 3];
            media(kind, 500 + i as i64, 6_000_000 + 700_000 * i as i64, dc)
        })
        .collect();
    let parts: u64 = files
        .iter()
        .map(|m| (m.size as u64).div_ceil(512 * 1024))
        .sum();
    let want = post_all(&fake, &files);
    let env = telegram_env_with(
        &fake,
        "[media]\nkinds = [\"all\"]\nmin_free_space = 1\nparallel = 2\n",
    );
    login_and_add(&env, &fake, &fake.info.channels).await;
    // Parts slow enough that a kill lands mid-file.
    fake.faults.add(Fault {
        kind: FaultKind::Latency { ms: 400 },
        method: Some("upload.getFile".into()),
        count: 0,
    });
    let state = env.state_dir();
    let partial = state.join("media/.partial");
    let downloading = || {
        std::fs::read_dir(&partial)
            .map(|d| d.flatten().any(|e| e.metadata().is_ok_and(|m| m.len() > 0)))
            .unwrap_or(false)
    };
    let done = || sql(&env, "SELECT count(*) FROM media WHERE state = 'done'") == "8";
    let (mut resumed, mut rounds) = (0, 0);
    for round in 0..10 {
        let mut child = started(&env).await;
        // Killed at a random moment once a file is part-way down.
        wait_daemon_for(&mut child, "a download under way", LIMIT * 2, || {
            downloading() || done()
        })
        .await;
        if done() {
            stop(&mut child);
            break;
        }
        tokio::time::sleep(Duration::from_millis(rng.below(800))).await;
        child.kill().unwrap();
        child.wait().unwrap();
        rounds += 1;
        let log = stderr_of(&mut child);
        resumed += log.matches("resuming a download").count();
        // Every file a row says is done is whole and exact.
        for r in rows(&env, ch).iter().filter(|r| r.3 == "done") {
            let m = &want.iter().find(|w| w.0 == r.0).unwrap().1;
            assert_eq!(r.1, m.sha256(false), "round {round}, post {}", r.0);
            assert_eq!(sha_of_file(&state.join(&r.2)), r.1, "round {round}");
        }
        assert_eq!(sql(&env, "PRAGMA integrity_check"), "ok", "round {round}");
    }
    let mut child = started(&env).await;
    wait_daemon_for(&mut child, "every file", Duration::from_secs(120), done).await;
    resumed += stderr_of(&mut child).matches("resuming a download").count();
    stop(&mut child);
    all_exact(&env, ch, &want);
    let calls = fake.world.stats().requests["upload.getFile"];
    eprintln!(
        "{rounds} kills mid-file; {parts} parts in all; {calls} upload.getFile calls; {resumed} downloads resumed"
    );
    assert!(rounds >= 8, "only {rounds} kills landed mid-file");
    assert!(
        resumed >= rounds / 2,
        "{resumed} downloads resumed from their last part after {rounds} kills"
    );
    // A kill costs at most the parts in flight (2 files, 4 parts each) and the part being
    // written; a download that started over would cost its parts again.
    assert!(
        calls <= parts + rounds as u64 * 2 * 5,
        "{calls} calls for {parts} parts: downloads started over instead of resuming"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_budget_pauses_downloads_readiness_says_why_and_text_keeps_coming() {
    let fake = one_channel_fake().await;
    let ch = fake.world.channel_id(&fake.info.channels[0]).unwrap();
    let files: Vec<Media> = (0..4)
        .map(|i| media(MediaKind::Document, 900 + i, 1_200_000, fake.info.home_dc))
        .collect();
    let want = post_all(&fake, &files);
    let env = telegram_env_with(
        &fake,
        "[media]\nkinds = [\"all\"]\nmin_free_space = 1\nmax_total_size = \"3 MB\"\nparallel = 1\n",
    );
    login_and_add(&env, &fake, &fake.info.channels).await;
    let mut child = started(&env).await;
    wait_daemon_for(&mut child, "the budget to be reached", LIMIT * 3, || {
        ready_body(&env).contains("the media budget is reached")
    })
    .await;
    assert_eq!(
        sql(&env, "SELECT count(*) FROM media WHERE state = 'done'"),
        "2",
        "two files of 1.2 MB fit in 3 MB, a third does not"
    );
    assert_eq!(
        sql(&env, "SELECT count(*) FROM media WHERE state = 'pending'"),
        "2"
    );
    // Text is not held up by the paused files.
    let post = fake.world.post(ch, "text goes on").unwrap();
    wait_daemon(&mut child, "the text post", || {
        stored_ids(&env, ch).contains(&post)
    })
    .await;
    stop(&mut child);
    // A larger budget: the rest comes.
    let cfg = std::fs::read_to_string(env.path("config.toml")).unwrap();
    std::fs::write(
        env.path("config.toml"),
        cfg.replace("\"3 MB\"", "\"30 MB\""),
    )
    .unwrap();
    let mut child = started(&env).await;
    wait_daemon_for(&mut child, "every file", LIMIT * 3, || {
        sql(&env, "SELECT count(*) FROM media WHERE state = 'done'") == "4"
    })
    .await;
    wait_daemon(&mut child, "readiness without the warning", || {
        !ready_body(&env).contains("media downloads are paused")
    })
    .await;
    stop(&mut child);
    all_exact(&env, ch, &want);
}

/// A tmpfs mounted for a test, unmounted when dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_pauses_downloads_corrupts_nothing_and_they_resume_when_space_returns() {
    let fake = one_channel_fake().await;
    let ch = fake.world.channel_id(&fake.info.channels[0]).unwrap();
    let files: Vec<Media> = (0..8)
        .map(|i| media(MediaKind::Document, 300 + i, 3_000_000, fake.info.home_dc))
        .collect();
    let want = post_all(&fake, &files);
    let env = telegram_env_with(
        &fake,
        "[media]\nkinds = [\"all\"]\nmin_free_space = \"1 MB\"\nparallel = 2\n",
    );
    // The state directory on a small filesystem of its own: root only.
    let disk = match Tmpfs::mount(&env.state_dir(), "40m") {
        Ok(d) => d,
        Err(why) => {
            eprintln!(
                "SKIPPED a_full_disk_pauses_downloads…: mounting a tmpfs needs root ({why}); the budget test covers pausing"
            );
            return;
        }
    };
    login_and_add(&env, &fake, &fake.info.channels).await;
    fake.faults.add(Fault {
        kind: FaultKind::Latency { ms: 50 },
        method: Some("upload.getFile".into()),
        count: 0,
    });
    let mut child = started(&env).await;
    wait_daemon_for(&mut child, "a first file", LIMIT * 3, || {
        sql(&env, "SELECT count(*) FROM media WHERE state = 'done'") != "0"
    })
    .await;
    // Another program fills the disk while files download.
    let filled = fill(&disk.0);
    eprintln!("filled {filled} bytes");
    wait_daemon_for(&mut child, "downloads to pause", LIMIT * 2, || {
        let body = ready_body(&env);
        body.contains("media downloads are paused") && body.contains("disk")
    })
    .await;
    let paused_at = sql(&env, "SELECT count(*) FROM media WHERE state = 'done'");
    let text = fake
        .world
        .post(ch, "posted while the disk is full")
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Nothing half-done is taken for done.
    for r in rows(&env, ch).iter().filter(|r| r.3 == "done") {
        let m = &want.iter().find(|w| w.0 == r.0).unwrap().1;
        assert_eq!(sha_of_file(&env.state_dir().join(&r.2)), m.sha256(false));
    }
    assert!(
        sql(&env, "SELECT count(*) FROM media WHERE state = 'failed'") == "0",
        "a full disk fails no file"
    );
    // Space returns: downloads and writes resume, without a restart.
    std::fs::remove_file(disk.0.join("filler")).unwrap();
    wait_daemon_for(&mut child, "every file", Duration::from_secs(120), || {
        sql(&env, "SELECT count(*) FROM media WHERE state = 'done'") == "8"
    })
    .await;
    wait_daemon(&mut child, "the text post", || {
        stored_ids(&env, ch).contains(&text)
    })
    .await;
    wait_daemon(&mut child, "readiness without the warning", || {
        !ready_body(&env).contains("media downloads are paused")
    })
    .await;
    eprintln!("{paused_at} of 8 files were done when the disk filled");
    stop(&mut child);
    assert_eq!(sql(&env, "PRAGMA integrity_check"), "ok");
    all_exact(&env, ch, &want);
    drop(disk);
}
