//! Bot benchmark, against the fake Bot API (its limits off, the daemon's pacing off: this
//! measures our handling, not Telegram's quotas):
//! 1. command handling: N updates (`/help` and `/status` alternating, from 500 users) queued at
//!    once; updates/s until every answer reached the fake; the daemon's peak RSS meanwhile;
//! 2. alert latency: live posts matching subscriptions, from the alert's enqueue (inside the
//!    ingest transaction) to the fake receiving `sendMessage` — p50/p99/max;
//! 3. reference in the same run: aiogram 3 (Python) answering the same commands against the same
//!    fake, when it can be installed into a virtualenv (`target/bench-venv`).
//!
//! Run: `cargo bench --bench bot` (`-- --quick` for a shorter run).

mod common;
use common::cmd;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fake_telegram::botapi::UserMessage;
use tgparser::store::NewChannel;

fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn sent_messages(fake: &fake_telegram::FakeTelegram) -> u64 {
    fake.bot.stats()["requests"]["sendmessage"]
        .as_u64()
        .unwrap_or(0)
}

/// Queues `n` commands from 500 users; returns (seconds until all were answered, peak RSS KiB
/// of `pid` meanwhile).
fn command_load(fake: &fake_telegram::FakeTelegram, n: u64, pid: u32) -> (f64, u64) {
    let (secs, peak, _, _) = command_load_detail(fake, n, pid);
    (secs, peak)
}

/// As [`command_load`], also with the anonymous and file-backed parts of RSS at the peak.
fn command_load_detail(
    fake: &fake_telegram::FakeTelegram,
    n: u64,
    pid: u32,
) -> (f64, u64, u64, u64) {
    let before = sent_messages(fake);
    let t = Instant::now();
    for i in 0..n {
        fake.bot.user_message(&UserMessage {
            user_id: 100_000 + (i % 500) as i64,
            text: Some(if i % 2 == 0 { "/help" } else { "/status" }.into()),
            ..Default::default()
        });
    }
    let (mut peak, mut anon, mut file) = (0, 0, 0);
    while sent_messages(fake) < before + n {
        let rss = status_kib(pid, "VmRSS:").unwrap_or(0);
        if rss > peak {
            peak = rss;
            anon = status_kib(pid, "RssAnon:").unwrap_or(0);
            file = status_kib(pid, "RssFile:").unwrap_or(0);
        }
        assert!(
            t.elapsed() < Duration::from_secs(300),
            "only {} of {n} answers after 5 minutes",
            sent_messages(fake) - before
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    (t.elapsed().as_secs_f64(), peak, anon, file)
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The aiogram reference: its answers per second on the same load, if it can be installed.
fn aiogram_reference(
    rt: &tokio::runtime::Runtime,
    dir: &Path,
    n: u64,
) -> Result<(f64, u64), String> {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-venv");
    let python = venv.join("bin/python");
    if !python.exists() {
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .map_err(|e| format!("python3: {e}"))?
            .success();
        if !ok {
            return Err("python3 -m venv failed".into());
        }
    }
    let pip = Command::new(venv.join("bin/pip"))
        .args(["install", "-q", "aiogram>=3,<4"])
        .output()
        .map_err(|e| format!("pip: {e}"))?;
    if !pip.status.success() {
        return Err(format!(
            "pip install aiogram failed: {}",
            String::from_utf8_lossy(&pip.stderr).trim()
        ));
    }
    // A fresh fake, so nothing of the daemon's run is in its queue.
    let fake = rt.block_on(async {
        fake_telegram::FakeTelegram::start(fake_telegram::Options {
            channels: 1,
            posts: 1,
            bot_limits: false,
            ..Default::default()
        })
        .await
        .unwrap()
    });
    let token_file = dir.join("aiogram_token");
    std::fs::write(&token_file, &fake.info.bot_token).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/reference/aiogram_bot.py");
    let mut child: Child = Command::new(&python)
        .arg(script)
        .arg(format!("http://{}", fake.info.bot_api))
        .arg(&token_file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting aiogram: {e}"))?;
    // Warm up: one answer.
    let (_, _) = command_load(&fake, 1, child.id());
    let r = command_load(&fake, n, child.id());
    let _ = child.kill();
    let _ = child.wait();
    Ok(r)
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let n_commands: u64 = if quick { 5_000 } else { 20_000 };
    let (subscribers, alert_posts) = if quick { (10, 50) } else { (10, 200) };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let health: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    println!(
        "tgparser bot benchmark: {n_commands} commands; {subscribers} subscribers x {alert_posts} matching posts"
    );

    let fake = rt.block_on(async {
        fake_telegram::FakeTelegram::start(fake_telegram::Options {
            channels: 1,
            posts: 100,
            password: None,
            quotas: fake_telegram::flood::QuotaMode::Off,
            bot_limits: false,
            ..Default::default()
        })
        .await
        .unwrap()
    });
    std::fs::write(d.join("api_hash"), "a3406de8d171bb422bb6ddf3bbd800e2\n").unwrap();
    std::fs::write(d.join("auth_key.hex"), fake.info.auth_key_file()).unwrap();
    std::fs::write(d.join("bot_token"), format!("{}\n", fake.info.bot_token)).unwrap();
    for f in ["api_hash", "auth_key.hex", "bot_token"] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d.join(f), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let pacing_off = "[telegram.pacing]\n\"messages.getHistory\" = \"off\"\n\"contacts.resolveUsername\" = \"off\"\n\"updates.getChannelDifference\" = \"off\"\n";
    std::fs::write(
        d.join("config.toml"),
        format!(
            "[store]\ndir = \"state\"\n[vault]\nkey_file = \"vault.key\"\n[health]\nlisten = \"{health}\"\n[log]\nlevel = \"warn\"\n\
             [telegram]\napi_id = 94575\napi_hash_file = \"api_hash\"\n[telegram.server]\naddress = \"{}\"\nauth_key_file = \"auth_key.hex\"\n{pacing_off}\
             [bot]\ntoken_file = \"bot_token\"\napi_url = \"http://{}\"\nadmins = [1]\nopen = true\nsend_rate = \"off\"\nchat_rate = \"off\"\ngroup_rate = \"off\"\ndigest_after = 0\n",
            fake.info.mtproto, fake.info.bot_api
        ),
    )
    .unwrap();
    assert!(cmd(&d, &["keygen"]).status().unwrap().success());

    // Logged in, the channel added and backfilled, as the daemon would leave it.
    let channel = rt.block_on(async {
        let (store, conn) = common::state_logged_in(&fake, &d).await;
        let c = tgparser::parser::resolve::resolve(&conn, &fake.info.channels[0])
            .await
            .unwrap();
        store
            .add_channel(&NewChannel::from_tl(&c, None, None))
            .await
            .unwrap();
        conn.session.flush().await.unwrap();
        drop(conn);
        store.close().await;
        c.id
    });

    let mut daemon: Child = cmd(&d, &["run"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = daemon.id();
    // Ready when the bot answers.
    let t = Instant::now();
    let warm = 1000;
    let (_, _) = command_load(&fake, warm, pid);
    println!(
        "  daemon answering after {:.1} s ({warm} warm-up commands)",
        t.elapsed().as_secs_f64()
    );

    let idle = status_kib(pid, "VmRSS:").unwrap_or(0);
    let (secs, peak_kib, anon, file) = command_load_detail(&fake, n_commands, pid);
    let ours = n_commands as f64 / secs;
    let mb = |k: u64| k as f64 / 1024.0;
    println!(
        "  command handling: {n_commands} updates in {secs:.2} s = {ours:.0} updates/s (target >= 5,000); peak RSS {:.1} MB (target <= 40 MB): {:.1} MB anonymous + {:.1} MB of the mapped binary and libraries; {:.1} MB before the load",
        mb(peak_kib),
        mb(anon),
        mb(file),
        mb(idle)
    );

    // Alerts: subscribers, then matching posts at 10 per second.
    let subs_before = sent_messages(&fake);
    for u in 0..subscribers {
        fake.bot.user_message(&UserMessage {
            user_id: 200_000 + u,
            text: Some("/subscribe latencyprobe".into()),
            ..Default::default()
        });
    }
    while sent_messages(&fake) < subs_before + subscribers as u64 {
        std::thread::sleep(Duration::from_millis(20));
    }
    // Let the live follower settle (the backfill of the channel's history first).
    std::thread::sleep(Duration::from_secs(3));
    let mut peak_alert_kib = 0;
    for i in 0..alert_posts {
        fake.world
            .post(channel, &format!("latencyprobe {i}: a post that matches"))
            .unwrap();
        peak_alert_kib = peak_alert_kib.max(status_kib(pid, "VmRSS:").unwrap_or(0));
        std::thread::sleep(Duration::from_millis(100));
    }
    let want = subscribers as usize * alert_posts;
    let db = d.join("state/tgparser.db");
    let t = Instant::now();
    let created: Vec<(i64, i64, i64)> = loop {
        let out = Command::new("sqlite3")
            .arg("-readonly")
            .arg(&db)
            .arg("SELECT chat_id, json_extract(payload, '$.message_id'), created_ms FROM outbox WHERE kind = 'alert' AND state = 'sent'")
            .output()
            .expect("the sqlite3 CLI");
        let rows: Vec<(i64, i64, i64)> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let mut p = l.split('|').map(|x| x.parse::<i64>().ok());
                Some((p.next()??, p.next()??, p.next()??))
            })
            .collect();
        if rows.len() >= want || t.elapsed() > Duration::from_secs(60) {
            break rows;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let calls = fake.bot.calls(false);
    let mut lat: Vec<i64> = Vec::with_capacity(created.len());
    for (chat, message_id, created_ms) in &created {
        let link_end = format!("/{message_id}");
        if let Some(c) = calls.iter().find(|c| {
            c.method == "sendmessage"
                && c.params["chat_id"].as_i64() == Some(*chat)
                && c.params["text"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("🔔") && t.trim_end().ends_with(&link_end))
        }) {
            lat.push(c.unix_ms - created_ms);
        }
    }
    lat.sort_unstable();
    println!(
        "  alert latency (enqueue in the ingest transaction -> sendMessage received): {} alerts, p50 {} ms, p99 {} ms (target <= 100 ms), max {} ms; peak RSS {:.1} MB",
        lat.len(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or(0),
        peak_alert_kib as f64 / 1024.0
    );
    if lat.len() < want {
        println!(
            "  WARNING: only {} of {want} alerts were delivered within a minute",
            lat.len()
        );
    }
    let _ = Command::new("kill").arg(pid.to_string()).status();
    let _ = daemon.wait();

    match aiogram_reference(&rt, &d, n_commands) {
        Ok((secs, peak)) => {
            let theirs = n_commands as f64 / secs;
            println!(
                "  reference, same run: aiogram 3 (Python) answering the same {n_commands} commands: {theirs:.0} updates/s, peak RSS {:.1} MB; ratio ours/aiogram {:.2}",
                peak as f64 / 1024.0,
                ours / theirs
            );
        }
        Err(e) => println!("  reference: aiogram unavailable ({e})"),
    }
}
