//! Foundation benchmark: start to READY on an existing database, idle memory, and `/readyz`
//! under 64 concurrent connections. Each figure is printed beside a reference measured in the
//! same run on the same machine, and the ratio between them.
//!
//! Run: `cargo bench --bench foundation` (add `-- --quick` for a shorter run).

mod common;
use common::cmd;

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let dir = tempfile::tempdir().expect("tempdir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        dir.path().join("config.toml"),
        format!(
            "[store]\ndir = \"state\"\n[vault]\nkey_file = \"vault.key\"\n[health]\nlisten = \"127.0.0.1:{port}\"\n[log]\nlevel = \"warn\"\n"
        ),
    )
    .unwrap();
    let st = cmd(dir.path(), &["keygen"]).status().unwrap();
    assert!(st.success());
    let st = cmd(dir.path(), &["migrate"])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());

    println!("tgparser foundation benchmark ({} cores)", cores());
    println!();

    // 1. Start to READY on an existing database.
    let runs = if quick { 5 } else { 20 };
    let mut ready = Vec::new();
    let mut exec_floor = Vec::new();
    let mut sqlite_open = Vec::new();
    let db = dir.path().join("state/tgparser.db");
    for i in 0..runs {
        let (t, mut child) = start_to_ready(dir.path(), i);
        ready.push(t);
        stop(&mut child);
        let t = Instant::now();
        Command::new("/bin/true").status().unwrap();
        exec_floor.push(t.elapsed());
        let t = Instant::now();
        Command::new("sqlite3")
            .arg(&db)
            .arg("SELECT COUNT(*) FROM _sqlx_migrations;")
            .stdout(Stdio::null())
            .status()
            .unwrap();
        sqlite_open.push(t.elapsed());
    }
    let r = median(&mut ready);
    let f = median(&mut exec_floor);
    let s = median(&mut sqlite_open);
    println!("start to READY (existing DB), median of {runs}:");
    println!(
        "  tgparser run -> READY=1            {:>8.1} ms   (p95 {:.1} ms; target <= 150 ms)",
        ms(r),
        ms(p(&ready, 0.95))
    );
    println!(
        "  reference: exec /bin/true          {:>8.1} ms   ratio {:.1}x",
        ms(f),
        ratio(r, f)
    );
    println!(
        "  reference: sqlite3 CLI opens DB    {:>8.1} ms   ratio {:.1}x",
        ms(s),
        ratio(r, s)
    );
    println!();

    // 2. Idle RSS, and 3. /readyz under load, on one daemon.
    let (_, mut child) = start_to_ready(dir.path(), 999);
    std::thread::sleep(Duration::from_secs(if quick { 1 } else { 3 }));
    let rss = rss_kib(child.id()).unwrap_or(0);
    let mut peer = Command::new("sqlite3")
        .arg(&db)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    if let Some(stdin) = peer.stdin.as_mut() {
        use std::io::Write;
        let _ = stdin.write_all(b"SELECT COUNT(*) FROM messages;\n");
        let _ = stdin.flush();
    }
    std::thread::sleep(Duration::from_millis(300));
    let peer_rss = rss_kib(peer.id()).unwrap_or(0);
    let _ = peer.kill();
    let _ = peer.wait();
    println!("idle memory after READY:");
    println!(
        "  tgparser RSS                       {:>8.1} MB   (target <= 15 MB)",
        rss as f64 / 1024.0
    );
    println!(
        "  reference: sqlite3 CLI, same DB    {:>8.1} MB   ratio {:.1}x",
        peer_rss as f64 / 1024.0,
        rss as f64 / peer_rss.max(1) as f64
    );
    println!();

    let per_conn = if quick { 200 } else { 1000 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let ours = rt.block_on(load(addr, "/readyz", 64, per_conn));
    stop(&mut child);
    let floor_addr = rt.block_on(spawn_floor_server());
    let floor = rt.block_on(load(floor_addr, "/readyz", 64, per_conn));
    println!("/readyz, 64 concurrent keep-alive connections x {per_conn} requests:");
    print_load("tgparser /readyz", &ours);
    print_load("reference: static HTTP responder", &floor);
    println!(
        "  p99 ratio to reference {:.1}x; target p99 <= 5 ms with no errors",
        ratio(ours.p99, floor.p99)
    );
}

#[allow(clippy::zombie_processes)] // the caller stops and waits for the child
fn start_to_ready(dir: &Path, i: usize) -> (Duration, Child) {
    let sock_path = dir.join(format!("notify-{i}.sock"));
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let t = Instant::now();
    let child = cmd(dir, &["run"])
        .env("NOTIFY_SOCKET", &sock_path)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 4096];
    loop {
        let n = sock.recv(&mut buf).expect("READY=1 within 20 s");
        if String::from_utf8_lossy(&buf[..n])
            .lines()
            .any(|l| l == "READY=1")
        {
            let took = t.elapsed();
            let _ = std::fs::remove_file(&sock_path);
            return (took, child);
        }
    }
}

fn stop(child: &mut Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let _ = child.wait();
}

fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn p(v: &[Duration], q: f64) -> Duration {
    let mut s = v.to_vec();
    s.sort();
    s[((s.len() as f64 - 1.0) * q).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(1e-9)
}

struct LoadResult {
    requests: usize,
    errors: usize,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

fn print_load(name: &str, r: &LoadResult) {
    println!(
        "  {name:<34} p50 {:>6.3} ms  p99 {:>6.3} ms  max {:>7.3} ms  {:>8.0} req/s  {} errors of {}",
        ms(r.p50),
        ms(r.p99),
        ms(r.max),
        r.requests as f64 / r.elapsed.as_secs_f64(),
        r.errors,
        r.requests
    );
}

async fn load(addr: std::net::SocketAddr, path: &str, conns: usize, per_conn: usize) -> LoadResult {
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let path = path.to_string();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per_conn);
            let mut errors = 0;
            let Ok(stream) = TcpStream::connect(addr).await else {
                return (lat, per_conn);
            };
            let _ = stream.set_nodelay(true);
            let mut stream = BufReader::new(stream);
            let req = format!("GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n");
            for _ in 0..per_conn {
                let t = Instant::now();
                match request(&mut stream, req.as_bytes()).await {
                    Ok(200) => lat.push(t.elapsed()),
                    _ => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (lat, e) = t.await.unwrap();
        all.extend(lat);
        errors += e;
    }
    let elapsed = t.elapsed();
    all.sort();
    let pick = |q: f64| {
        all.get(((all.len().max(1) - 1) as f64 * q).round() as usize)
            .copied()
            .unwrap_or_default()
    };
    LoadResult {
        requests: conns * per_conn,
        errors,
        elapsed,
        p50: pick(0.5),
        p99: pick(0.99),
        max: all.last().copied().unwrap_or_default(),
    }
}

/// One request on a keep-alive connection; returns the status code.
async fn request(s: &mut BufReader<TcpStream>, req: &[u8]) -> std::io::Result<u16> {
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
    Ok(code)
}

/// The floor for the HTTP figure: a responder that writes a fixed response of the same size as
/// tgparser's /readyz, with no routing, no JSON and no framework.
async fn spawn_floor_server() -> std::net::SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let body = "x".repeat(900);
    let resp = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/health+json\r\ncache-control: no-store\r\ncontent-length: {}\r\n\r\n{body}",
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
                    // Read one request head.
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
