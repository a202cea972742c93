//! The daemon follows channels live: new posts, edits (versions kept), deletions (soft), a pts
//! gap filled from getChannelDifference, a too-long gap refilled from history, a dropped
//! connection — the real binary against the fake Telegram.

mod common;

use std::time::{Duration, Instant};

use common::*;
use fake_telegram::faults::{Fault, FaultKind};
use fake_telegram::flood::QuotaMode;
use fake_telegram::{FakeTelegram, Options};

const LIMIT: Duration = Duration::from_secs(20);

fn count_of(env: &Env, ch: i64, ids: &[i32]) -> usize {
    let list = ids
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",");
    sql(
        env,
        &format!("SELECT count(*) FROM messages WHERE channel_id = {ch} AND id IN ({list})"),
    )
    .parse()
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_stores_live_posts_edits_deletions_and_fills_a_gap() {
    let fake = FakeTelegram::start(Options {
        channels: 2,
        posts: 300,
        password: None,
        quotas: QuotaMode::Off,
        ..Default::default()
    })
    .await
    .unwrap();
    let env = telegram_env(&fake);
    let out = run_with_input(
        &env,
        &["login", "--phone", &fake.info.phone.clone()],
        &format!("{}\n", fake.info.code),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let name = fake.info.channels[0].clone();
    let out = run_with_input(&env, &["channels", "add", &name], "").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let ch = fake.world.channel_id(&name).unwrap();

    let notify = NotifySocket::new(env.dir.path());
    let mut child = spawn_daemon(&env, Some(&notify));
    notify
        .wait_for("READY=1", Duration::from_secs(20))
        .expect("READY=1");
    let t = Instant::now();
    while sql(&env, "SELECT backfill_state FROM channels") != "done" {
        if t.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "no backfill within 20 s; daemon log:\n{}",
                stderr_of(&mut child)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let id = fake.world.post(ch, "Live: первая новость 🚀").unwrap();
    wait_until("the new post", LIMIT, || {
        sql(
            &env,
            &format!("SELECT text FROM messages WHERE id = {id} AND channel_id = {ch}"),
        ) == "Live: первая новость 🚀"
    })
    .await;

    fake.world
        .edit(ch, id, "Live: исправленная новость")
        .unwrap();
    wait_until("the edit", LIMIT, || {
        sql(
            &env,
            &format!("SELECT version FROM messages WHERE id = {id} AND channel_id = {ch}"),
        ) == "2"
    })
    .await;
    assert_eq!(
        sql(
            &env,
            &format!(
                "SELECT text FROM message_versions WHERE message_id = {id} AND channel_id = {ch} AND version = 1"
            )
        ),
        "Live: первая новость 🚀",
        "the text before the edit is kept as version 1"
    );

    fake.world.delete(ch, &[id]).unwrap();
    wait_until("the deletion", LIMIT, || {
        sql(
            &env,
            &format!(
                "SELECT deleted_at IS NOT NULL FROM messages WHERE id = {id} AND channel_id = {ch}"
            ),
        ) == "1"
    })
    .await;
    assert_eq!(
        sql(
            &env,
            &format!("SELECT text FROM messages WHERE id = {id} AND channel_id = {ch}")
        ),
        "Live: исправленная новость",
        "a deleted post keeps its text"
    );

    let missed = fake.world.open_gap(ch, 5).unwrap();
    let after = fake.world.post(ch, "After the gap").unwrap();
    let want = missed.len() + 1;
    let ids = missed
        .iter()
        .chain([after].iter())
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",");
    wait_until("the gap to be filled", LIMIT, || {
        sql(
            &env,
            &format!("SELECT count(*) FROM messages WHERE channel_id = {ch} AND id IN ({ids})"),
        ) == want.to_string()
    })
    .await;

    // A too-long gap: more than getChannelDifference hands out (the fake answers
    // channelDifferenceTooLong past 500 events), so the posts come from history.
    let mut missed = fake.world.open_gap(ch, 650).unwrap();
    missed.push(fake.world.post(ch, "After the long gap").unwrap());
    wait_until("the too-long gap to be refilled", LIMIT, || {
        count_of(&env, ch, &missed) == missed.len()
    })
    .await;

    // A dropped connection: the next client message closes it (here: the getChannelDifference a
    // small gap asks for). Posts made around the drop and after the reconnection all arrive.
    let connections = fake.world.stats().connections;
    fake.faults.add(Fault {
        kind: FaultKind::Drop { after: 0 },
        method: None,
        count: 1,
    });
    let mut around = fake.world.open_gap(ch, 2).unwrap();
    around.push(fake.world.post(ch, "As the connection drops").unwrap());
    around.push(fake.world.post(ch, "While reconnecting").unwrap());
    wait_until("a reconnection", LIMIT, || {
        fake.world.stats().connections > connections
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    around.push(fake.world.post(ch, "After reconnecting").unwrap());
    wait_until("every post around the drop", LIMIT, || {
        count_of(&env, ch, &around) == around.len()
    })
    .await;
    let kept: Vec<i32> = sql(
        &env,
        &format!(
            "SELECT id FROM messages WHERE channel_id = {ch} AND deleted_at IS NULL ORDER BY id"
        ),
    )
    .lines()
    .map(|l| l.parse().unwrap())
    .collect();
    assert_eq!(
        kept,
        world_ids(&fake, ch),
        "after gaps and a drop the stored set (less the soft-deleted post) is the channel's"
    );

    // Metrics: delivery lag per channel, refilled posts counted.
    let (_, metrics) = get(env.health_addr(), "/metrics");
    assert!(
        metrics.contains(&format!(
            "tg_channel_delivery_lag_seconds{{channel_id=\"{ch}\""
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains("tg_delivery_lag_seconds_count"),
        "{metrics}"
    );
    let refilled: f64 = metrics
        .lines()
        .find(|l| {
            l.starts_with(&format!(
                "tg_channel_refilled_posts_total{{channel_id=\"{ch}\""
            ))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(refilled >= 650.0, "refilled {refilled}: {metrics}");

    // Posts of a channel nobody follows are not stored.
    let other = fake.world.channel_id(&fake.info.channels[1]).unwrap();
    fake.world.post(other, "not followed").unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        sql(
            &env,
            &format!("SELECT count(*) FROM messages WHERE channel_id = {other}")
        ),
        "0"
    );

    // Channel commands beside the running daemon: `add` is resolved by the daemon (through its
    // session and guard) and its answer printed; pause/resume write the database directly.
    let out = run_with_input(&env, &["channels", "add", "@no_such_channel"], "").await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("there is no channel @no_such_channel"),
        "{}",
        text(&out)
    );
    let second = fake.info.channels[1].clone();
    let out = run_with_input(&env, &["channels", "add", &second], "").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("added"), "{}", text(&out));
    wait_until("the added channel's backfill", LIMIT, || {
        sql(
            &env,
            &format!("SELECT backfill_state FROM channels WHERE id = {other}"),
        ) == "done"
    })
    .await;
    assert_eq!(stored_ids(&env, other), world_ids(&fake, other));
    let out = run_with_input(&env, &["channels", "pause", &second], "").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        sql(
            &env,
            &format!("SELECT state FROM channels WHERE id = {other}")
        ),
        "paused"
    );
    assert_eq!(
        sql(&env, "SELECT group_concat(state) FROM channel_requests"),
        "failed,done"
    );

    sigterm(&child);
    let (code, _) = wait_exit(&mut child, Duration::from_secs(10));
    assert_eq!(code, Some(0), "{}", stderr_of(&mut child));
    assert_eq!(sql(&env, "PRAGMA integrity_check"), "ok");
}

/// WATCHDOG=1 datagrams the daemon sends within `window`.
fn pings_within(notify: &NotifySocket, window: Duration) -> usize {
    let t = Instant::now();
    let mut n = 0;
    while t.elapsed() < window {
        let left = window.saturating_sub(t.elapsed());
        if notify.wait_for("WATCHDOG=1", left).is_ok() {
            n += 1;
        }
    }
    n
}

/// After `database or disk is full`, readiness blamed Telegram ("cannot reach Telegram:
/// session error"), the watchdog kept pinging (its probe only reads) and the parser restarted
/// in a loop. Now readiness names the full disk and what to do, the watchdog withholds its
/// ping while writes fail, and when space returns writes resume by themselves: every post
/// arrives, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_readiness_with_its_cause_withholds_the_watchdog_and_loses_nothing() {
    let fake = FakeTelegram::start(Options {
        channels: 1,
        posts: 20,
        password: None,
        quotas: QuotaMode::Off,
        ..Default::default()
    })
    .await
    .unwrap();
    let env = telegram_env(&fake);
    let disk = match common::disk::Tmpfs::mount(&env.state_dir(), "24m") {
        Ok(d) => d,
        Err(why) => {
            eprintln!("SKIPPED a_full_disk_fails_readiness…: mounting a tmpfs needs root ({why})");
            return;
        }
    };
    login_and_add(&env, &fake, &fake.info.channels.clone()).await;
    let ch = fake.world.channel_id(&fake.info.channels[0]).unwrap();
    let notify = NotifySocket::new(env.dir.path());
    let mut child = spawn_daemon_with(&env, Some(&notify), &[("WATCHDOG_USEC", "2000000")]);
    notify.wait_for("READY=1", LIMIT).expect("READY=1");
    wait_daemon(&mut child, "the backfill", || {
        sql(&env, "SELECT backfill_state FROM channels") == "done"
    })
    .await;
    let filled = common::disk::fill(&disk.0);
    eprintln!("filled {filled} bytes");
    // Posts the daemon must store while the disk is full: more than the write-ahead log it
    // already has room for.
    let mut missed = fake.world.open_gap(ch, 650).unwrap();
    missed.push(
        fake.world
            .post(ch, "posted while the disk is full")
            .unwrap(),
    );
    let ready = || get(env.health_addr(), "/readyz");
    wait_daemon(&mut child, "readiness to name the full disk", || {
        let (code, body) = ready();
        code == 503
            && body.contains("sqlite:writes")
            && body.contains("disk holding the database is full")
    })
    .await;
    let body = ready().1;
    assert!(!body.contains("session error"), "{body}");
    assert_eq!(
        pings_within(&notify, Duration::from_secs(3)),
        0,
        "the watchdog is withheld"
    );
    // Space returns: writes resume by themselves.
    std::fs::remove_file(disk.0.join("filler")).unwrap();
    wait_daemon_for(&mut child, "every post", Duration::from_secs(60), || {
        count_of(&env, ch, &missed) == missed.len()
    })
    .await;
    wait_daemon(&mut child, "readiness to pass", || ready().0 == 200).await;
    assert!(
        pings_within(&notify, Duration::from_secs(3)) >= 2,
        "the watchdog pings again"
    );
    let parser: serde_json::Value = serde_json::from_str(&ready().1).unwrap();
    assert_eq!(
        parser["checks"]["part:parser"][0]["restarts"], 0,
        "the parser waited for the disk instead of restarting: {parser}"
    );
    assert_eq!(stored_ids(&env, ch), world_ids(&fake, ch));
    stop(&mut child);
    assert_eq!(sql(&env, "PRAGMA integrity_check"), "ok");
    drop(disk);
}

/// Another program holding the database's write lock showed as "cannot reach Telegram: session
/// error" and restarted the parser. Now readiness names the lock and what to do, the parser
/// waits, and the posts made meanwhile are stored once the lock is let go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_programs_write_lock_is_named_in_readiness_and_nothing_is_lost() {
    let (fake, env, ch) = one_channel(20).await;
    let cfg = std::fs::read_to_string(env.path("config.toml")).unwrap();
    std::fs::write(
        env.path("config.toml"),
        cfg.replacen("[store]\n", "[store]\nbusy_timeout_ms = 1000\n", 1),
    )
    .unwrap();
    let mut child = started(&env).await;
    wait_daemon(&mut child, "the backfill", || {
        sql(&env, "SELECT backfill_state FROM channels") == "done"
    })
    .await;
    // An sqlite3 shell with a write transaction left open.
    let mut holder = std::process::Command::new("sqlite3")
        .arg(env.state_dir().join("tgparser.db"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let stdin = holder.stdin.as_mut().unwrap();
        stdin
            .write_all(b"BEGIN IMMEDIATE;\nUPDATE write_probe SET at = 1;\n")
            .unwrap();
        stdin.flush().unwrap();
    }
    // Posts made before the shell has the lock could be stored before it: wait for it.
    let db = env.state_dir().join("tgparser.db");
    wait_until("the shell to hold the lock", LIMIT, || {
        let probe = std::process::Command::new("sqlite3")
            .arg(&db)
            .arg("BEGIN IMMEDIATE; ROLLBACK;")
            .output()
            .unwrap();
        !probe.status.success()
    })
    .await;
    let mut posted = vec![
        fake.world
            .post(ch, "posted while another program writes")
            .unwrap(),
    ];
    posted.extend(fake.world.open_gap(ch, 3).unwrap());
    posted.push(fake.world.post(ch, "and another").unwrap());
    let ready = || get(env.health_addr(), "/readyz");
    wait_daemon(&mut child, "readiness to name the lock", || {
        let (code, body) = ready();
        code == 503 && body.contains("another program holds the database's write lock")
    })
    .await;
    assert!(!ready().1.contains("session error"), "{}", ready().1);
    {
        use std::io::Write;
        let mut stdin = holder.stdin.take().unwrap();
        stdin.write_all(b"ROLLBACK;\n.quit\n").unwrap();
    }
    holder.wait().unwrap();
    wait_daemon(&mut child, "the posts made meanwhile", || {
        count_of(&env, ch, &posted) == posted.len()
    })
    .await;
    wait_daemon(&mut child, "readiness to pass", || ready().0 == 200).await;
    let body: serde_json::Value = serde_json::from_str(&ready().1).unwrap();
    assert_eq!(
        body["checks"]["part:parser"][0]["restarts"], 0,
        "the parser waited for the lock instead of restarting: {body}"
    );
    assert_eq!(stored_ids(&env, ch), world_ids(&fake, ch));
    stop(&mut child);
}
