//! The fake must never be what a benchmark measures. This prints:
//! - posts/s of `messages.getHistory` to one real grammers client over loopback (quotas off),
//!   with and without gzip, beside the fake's own ceiling for the same pages (building,
//!   serializing and encrypting them in-process, no network, no client);
//! - Bot API requests/s over 64 keep-alive connections, beside a static HTTP responder driven
//!   by the same client.
//!
//! Run: `cargo bench -p fake-telegram --bench throughput` (add `-- --quick` for a short run).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use fake_telegram::flood::QuotaMode;
use fake_telegram::mtproto::wire;
use fake_telegram::{FakeTelegram, Options};
use grammers_tl_types::{enums, functions};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(quick));
}

async fn run(quick: bool) {
    let posts = if quick { 20_000 } else { 100_000 };
    println!(
        "fake-telegram throughput ({} cores)\n",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    println!(
        "messages.getHistory, one channel of {posts} generated posts (~text, entities, media metadata):"
    );
    for gzip in [None, Some(16 * 1024)] {
        let fake = FakeTelegram::start(Options {
            channels: 1,
            posts,
            quotas: QuotaMode::Off,
            gzip_over: gzip,
            password: None,
            ..Default::default()
        })
        .await
        .unwrap();
        let c = common::connect(&fake).client;
        common::login(&fake, &c).await;
        let peer = c
            .resolve_username(&fake.info.channels[0])
            .await
            .unwrap()
            .unwrap()
            .to_ref()
            .await
            .unwrap()
            .unwrap();
        let mut best = 0.0f64;
        let mut n = 0;
        for _ in 0..if quick { 1 } else { 3 } {
            let t = Instant::now();
            let mut it = c.iter_messages(peer);
            n = 0;
            while let Some(_m) = it.next().await.unwrap() {
                n += 1;
            }
            best = best.max(n as f64 / t.elapsed().as_secs_f64());
        }
        let ceiling = server_ceiling(&fake, gzip.is_some());
        println!(
            "  gzip {:<4} grammers client end to end   {:>9.0} posts/s ({n} posts, best of runs)",
            if gzip.is_some() { "on" } else { "off" },
            best
        );
        println!(
            "            reference: the fake alone        {:>9.0} posts/s (pages built, serialized, encrypted in-process)",
            ceiling
        );
        println!(
            "            client / fake-alone ratio        {:>9.2}  (below 1: the client, not the fake, sets the pace)",
            best / ceiling
        );
    }
    println!(
        "  target: >= 200,000 posts/s of getHistory to one grammers client with quotas off; the fake\n  alone must stay well above what any client it serves can take\n"
    );

    let requests = if quick { 200 } else { 1_000 };
    let fake = FakeTelegram::start(Options::default()).await.unwrap();
    let path = format!("/bot{}/getMe", fake.info.bot_token);
    let ours = load(fake.info.bot_api, &path, 64, requests).await;
    let floor_addr = static_responder(ours.body_len).await;
    let floor = load(floor_addr, &path, 64, requests).await;
    println!("Bot API getMe, 64 concurrent keep-alive connections x {requests} requests:");
    print_load("fake Bot API", &ours);
    print_load("reference: static HTTP responder", &floor);
    println!(
        "  ratio to reference {:.2}x of its req/s; target >= 10,000 req/s",
        ours.rps() / floor.rps()
    );
}

/// The fake's own cost per page: what the server does for one getHistory, minus the network.
fn server_ceiling(fake: &FakeTelegram, gzip: bool) -> f64 {
    let w = fake.world.lock();
    let ch = w.channels.values().next().unwrap();
    let t = Instant::now();
    let mut offset = 0;
    let mut total = 0usize;
    loop {
        let req = functions::messages::GetHistory {
            peer: enums::InputPeer::Empty,
            offset_id: offset,
            offset_date: 0,
            add_offset: 0,
            limit: 100,
            max_id: 0,
            min_id: 0,
            hash: 0,
        };
        let page = fake_telegram::mtproto::history_page(ch, &req);
        if page.is_empty() {
            break;
        }
        offset = page.last().map(|p| p.id).unwrap_or(0);
        total += page.len();
        let bytes = fake_telegram::mtproto::page_bytes(ch, &page, 1);
        let body = if gzip {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut enc, &bytes).unwrap();
            enc.finish().unwrap()
        } else {
            bytes
        };
        let mut plain = vec![0u8; 32];
        plain.extend_from_slice(&body);
        let enc = wire::encrypt_for_client(&fake.auth_key, plain);
        let mut seq = 0;
        std::hint::black_box(wire::pack_frame(&mut seq, &enc));
    }
    total as f64 / t.elapsed().as_secs_f64()
}

struct Load {
    requests: usize,
    errors: usize,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
    body_len: usize,
}

impl Load {
    fn rps(&self) -> f64 {
        (self.requests - self.errors) as f64 / self.elapsed.as_secs_f64()
    }
}

fn print_load(name: &str, r: &Load) {
    println!(
        "  {name:<34} {:>8.0} req/s  p50 {:>6.3} ms  p99 {:>6.3} ms  {} errors of {}",
        r.rps(),
        r.p50.as_secs_f64() * 1e3,
        r.p99.as_secs_f64() * 1e3,
        r.errors,
        r.requests
    );
}

async fn load(addr: std::net::SocketAddr, path: &str, conns: usize, per_conn: usize) -> Load {
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let req = format!("GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n");
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per_conn);
            let mut errors = 0;
            let mut body_len = 0;
            let Ok(s) = TcpStream::connect(addr).await else {
                return (lat, per_conn, 0);
            };
            let _ = s.set_nodelay(true);
            let mut s = BufReader::new(s);
            for _ in 0..per_conn {
                let t = Instant::now();
                match request(&mut s, req.as_bytes()).await {
                    Ok((200, n)) => {
                        body_len = n;
                        lat.push(t.elapsed())
                    }
                    _ => errors += 1,
                }
            }
            (lat, errors, body_len)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    let mut body_len = 0;
    for t in tasks {
        let (lat, e, n) = t.await.unwrap();
        all.extend(lat);
        errors += e;
        body_len = body_len.max(n);
    }
    let elapsed = t.elapsed();
    all.sort();
    let pick = |q: f64| {
        all.get(((all.len().max(1) - 1) as f64 * q).round() as usize)
            .copied()
            .unwrap_or_default()
    };
    Load {
        requests: conns * per_conn,
        errors,
        elapsed,
        p50: pick(0.5),
        p99: pick(0.99),
        body_len,
    }
}

async fn request(s: &mut BufReader<TcpStream>, req: &[u8]) -> std::io::Result<(u16, usize)> {
    s.get_mut().write_all(req).await?;
    let mut line = String::new();
    s.read_line(&mut line).await?;
    let code = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let mut len = 0usize;
    loop {
        line.clear();
        s.read_line(&mut line).await?;
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await?;
    Ok((code, len))
}

async fn static_responder(body_len: usize) -> std::net::SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let body = "x".repeat(body_len.max(1));
    let resp = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            let resp = resp.clone();
            tokio::spawn(async move {
                let _ = s.set_nodelay(true);
                let mut s = BufReader::new(s);
                let mut line = String::new();
                loop {
                    loop {
                        line.clear();
                        match s.read_line(&mut line).await {
                            Ok(0) | Err(_) => return,
                            _ if line == "\r\n" => break,
                            _ => {}
                        }
                    }
                    if s.get_mut().write_all(resp.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}
