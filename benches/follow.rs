//! Following benchmark: the daemon's memory while it follows 500 channels holding 1,000,000 stored
//! posts, with live posts arriving, beside the sqlite3 CLI reading the same database.
//!
//! Run: `cargo bench --bench follow` (add `-- --quick` for 100 channels and a shorter run).

mod common;
use common::cmd;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tgparser::store::{CursorAdvance, NewChannel};

fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn http_get(addr: std::net::SocketAddr, path: &str) -> Option<(u16, String)> {
    tgparser::cli::http_get(addr, path, Duration::from_secs(2)).ok()
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (channels, posts) = if quick { (100, 2_000) } else { (500, 2_000) };
    let live_for = Duration::from_secs(if quick { 10 } else { 30 });
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
        "tgparser following benchmark: {channels} channels x {posts} posts, live posts for {} s",
        live_for.as_secs()
    );
    let t = Instant::now();
    let fake = rt.block_on(async {
        fake_telegram::FakeTelegram::start(fake_telegram::Options {
            channels,
            posts,
            password: None,
            quotas: fake_telegram::flood::QuotaMode::Off,
            // Memory, not delivery, is measured here: every post pushed, joined or not (the
            // poll benchmark measures delivery with no pushes at all).
            pushes: fake_telegram::world::PushMode::All,
            ..Default::default()
        })
        .await
        .unwrap()
    });
    std::fs::write(d.join("api_hash"), "a3406de8d171bb422bb6ddf3bbd800e2\n").unwrap();
    std::fs::write(d.join("auth_key.hex"), fake.info.auth_key_file()).unwrap();
    for f in ["api_hash", "auth_key.hex"] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d.join(f), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let pacing_off = "[telegram.pacing]\n\"messages.getHistory\" = \"off\"\n\"contacts.resolveUsername\" = \"off\"\n\"updates.getChannelDifference\" = \"off\"\n";
    std::fs::write(
        d.join("config.toml"),
        format!(
            "[store]\ndir = \"state\"\n[vault]\nkey_file = \"vault.key\"\n[health]\nlisten = \"{health}\"\n[log]\nlevel = \"warn\"\n[telegram]\napi_id = 94575\napi_hash_file = \"api_hash\"\n[telegram.server]\naddress = \"{}\"\nauth_key_file = \"auth_key.hex\"\n{pacing_off}",
            fake.info.mtproto
        ),
    )
    .unwrap();
    assert!(cmd(&d, &["keygen"]).status().unwrap().success());

    // The database as the daemon would have left it: logged in, every channel followed and
    // backfilled. Rows are the fake's posts through the parser's own conversion.
    let stored = rt.block_on(async {
        let (store, conn) = common::state_logged_in(&fake, &d).await;
        let mut stored = 0usize;
        for name in &fake.info.channels {
            let c = tgparser::parser::resolve::resolve(&conn, name)
                .await
                .unwrap();
            store
                .add_channel(&NewChannel::from_tl(&c, None, None))
                .await
                .unwrap();
            let rows: Vec<_> = {
                let w = fake.world.lock();
                let ch = &w.channels[&c.id];
                ch.posts
                    .values()
                    .rev()
                    .filter_map(|p| {
                        tgparser::parser::convert::message_row(
                            &fake_telegram::mtproto::convert::message(ch, p),
                        )
                    })
                    .collect()
            };
            for batch in rows.chunks(1000) {
                let last = batch.as_ptr_range().end == rows.as_ptr_range().end;
                store
                    .ingest(
                        c.id,
                        batch,
                        Some(CursorAdvance {
                            channel_id: c.id,
                            cursor: batch.iter().map(|r| r.id).min().unwrap_or(1),
                            done: last,
                        }),
                    )
                    .await
                    .unwrap();
            }
            stored += rows.len();
        }
        conn.session.flush().await.unwrap();
        drop(conn);
        store.close().await;
        stored
    });
    println!(
        "  prepared {stored} stored posts in {:.0} s",
        t.elapsed().as_secs_f64()
    );

    let mut daemon: Child = cmd(&d, &["run"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = daemon.id();
    let t = Instant::now();
    loop {
        if let Some((200, body)) = http_get(health, "/readyz")
            && body.contains(
                "\"part:parser\":[{\"componentType\":\"component\",\"observedValue\":\"running\"",
            )
        {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the daemon's parser did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    println!(
        "  daemon following after {:.1} s",
        t.elapsed().as_secs_f64()
    );

    // Live posts across the channels, 100 a second, while memory is sampled.
    let ids: Vec<i64> = fake
        .info
        .channels
        .iter()
        .map(|n| fake.world.channel_id(n).unwrap())
        .collect();
    let t = Instant::now();
    let mut posted = 0usize;
    let mut peak_rss = 0u64;
    while t.elapsed() < live_for {
        for _ in 0..10 {
            let ch = ids[posted % ids.len()];
            fake.world
                .post(ch, &format!("live post {posted}: новости 🚀 market update"))
                .unwrap();
            posted += 1;
        }
        peak_rss = peak_rss.max(status_kib(pid, "VmRSS:").unwrap_or(0));
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(3));
    let hwm = status_kib(pid, "VmHWM:").unwrap_or(0);
    let rss = status_kib(pid, "VmRSS:").unwrap_or(0);
    let metrics = http_get(health, "/metrics")
        .map(|m| m.1)
        .unwrap_or_default();
    let live_stored: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("tg_channel_live_posts_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
    let _ = daemon.wait();

    // Reference: the sqlite3 CLI counting the same database's posts.
    let mut sq = Command::new("sqlite3")
        .arg(d.join("state/tgparser.db"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = sq.stdin.take().unwrap();
        writeln!(stdin, "SELECT count(*) FROM messages;").unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        let sq_rss = status_kib(sq.id(), "VmHWM:").unwrap_or(0);
        drop(stdin);
        let _ = sq.wait();
        println!(
            "  live posts: {posted} posted, {live_stored:.0} stored live (the rest by refill or after the sample)"
        );
        println!(
            "  daemon RSS: {:.1} MB now, peak {:.1} MB (VmHWM {:.1} MB); target <= 80 MB",
            rss as f64 / 1024.0,
            peak_rss as f64 / 1024.0,
            hwm as f64 / 1024.0
        );
        println!(
            "  reference: sqlite3 CLI counting the same {stored} posts, VmHWM {:.1} MB; ratio {:.2}",
            sq_rss as f64 / 1024.0,
            hwm as f64 / sq_rss.max(1) as f64
        );
    }
}
