//! Media download benchmark: the files of a channel (1 to 50 MB, on the account's home DC),
//! served by the fake over loopback with its quotas off, downloaded by `tgparser media fetch`
//! one file at a time and eight at a time, and beside it, in the same run on the same files,
//! by Telethon 1.45's `download_media` (with cryptg, its native AES, as its docs advise;
//! installed from PyPI into a virtualenv under target/ on the first run).
//!
//! Prints MB/s, peak RSS (VmHWM of the process) and CPU time per MB (of the whole `media fetch`
//! process; of the downloads in Telethon) for each. Targets: tgparser at least twice
//! Telethon's throughput, and at most 64 MB of RSS with eight files at once (parts go straight
//! to disk: memory must not grow with file size).
//!
//! Run: `cargo bench --bench media` (about a minute; `-- --quick` for a quarter of the bytes).

mod common;
use common::cmd;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fake_telegram::flood::QuotaMode;
use fake_telegram::world::{Media, MediaKind};
use tgparser::store::{FILE_KINDS, MediaPolicy, NewChannel};

const TELETHON: &[&str] = &["telethon==1.45.0", "cryptg==0.6.0"];

fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A Python with Telethon and cryptg: `$TELETHON_PYTHON`, or a virtualenv made once.
fn python() -> PathBuf {
    fake_telegram::python::with_packages(
        "TELETHON_PYTHON",
        Path::new(env!("CARGO_TARGET_TMPDIR")),
        "telethon-1.45-cryptg-venv",
        TELETHON,
    )
}

struct Measured {
    mb_per_s: f64,
    rss_mib: f64,
    /// CPU time (user + system) of the client process per MB downloaded: what the client
    /// itself costs, apart from the server both share.
    cpu_ms_per_mb: f64,
}

/// User plus system CPU time of a process so far, in milliseconds.
fn cpu_ms(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) end with ")".
    let rest = s.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks * 1000.0 / 100.0)
}

/// A state directory logged in to `fake`, its channel added with every kind of file on.
fn prepared(
    rt: &tokio::runtime::Runtime,
    fake: &fake_telegram::FakeTelegram,
    d: &Path,
    parallel: usize,
) {
    std::fs::create_dir_all(d).unwrap();
    std::fs::write(d.join("api_hash"), "a3406de8d171bb422bb6ddf3bbd800e2\n").unwrap();
    std::fs::write(d.join("auth_key.hex"), fake.info.auth_key_file()).unwrap();
    for f in ["api_hash", "auth_key.hex"] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d.join(f), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    std::fs::write(
        d.join("config.toml"),
        format!(
            "[store]\ndir = \"state\"\n[vault]\nkey_file = \"vault.key\"\n[log]\nlevel = \"warn\"\n\
             [telegram]\napi_id = 94575\napi_hash_file = \"api_hash\"\njoin = false\n\
             [telegram.server]\naddress = \"{}\"\nauth_key_file = \"auth_key.hex\"\n\
             [media]\nkinds = [\"all\"]\nmax_file_size = \"60 MB\"\nmin_free_space = \"100 MB\"\nparallel = {parallel}\n",
            fake.info.mtproto
        ),
    )
    .unwrap();
    assert!(cmd(d, &["keygen"]).status().unwrap().success());
    rt.block_on(async {
        let (store, conn) = common::state_logged_in(fake, d).await;
        let c = tgparser::parser::resolve::resolve(&conn, &fake.info.channels[0])
            .await
            .unwrap();
        store
            .add_channel(&NewChannel::from_tl(&c, None, None).without_joining())
            .await
            .unwrap();
        store
            .set_media_policy(
                c.id,
                &MediaPolicy {
                    kinds: FILE_KINDS.iter().map(|k| k.to_string()).collect(),
                    max_size: None,
                    video_thumbs: false,
                },
            )
            .await
            .unwrap();
        conn.session.flush().await.unwrap();
        drop(conn);
        store.close().await;
    });
    let out = cmd(d, &["backfill"]).output().unwrap();
    assert!(
        out.status.success(),
        "backfill: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `tgparser media fetch` in `d`: its own MB/s figure and the process's peak RSS.
fn tgparser_fetch(d: &Path, bytes: u64) -> Measured {
    let t = Instant::now();
    let mut child = cmd(d, &["media", "fetch"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (mut hwm, mut cpu) = (0, 0.0f64);
    while child.try_wait().unwrap().is_none() {
        hwm = hwm.max(status_kib(pid, "VmHWM:").unwrap_or(0));
        cpu = cpu.max(cpu_ms(pid).unwrap_or(0.0));
        std::thread::sleep(Duration::from_millis(20));
    }
    let wall = t.elapsed();
    let out = child.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "media fetch: {said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // "N file(s) fetched (X MB, Y MB/s)": the command's own clock, from its first call to
    // its last byte (not the process start and the login check).
    let rate = said
        .split(", ")
        .nth(1)
        .and_then(|s| {
            let mut w = s.split_whitespace();
            let n: f64 = w.next()?.parse().ok()?;
            let unit = match w.next()?.trim_end_matches([')', ';']) {
                "B/s" => 1e-6,
                "kB/s" => 1e-3,
                "MB/s" => 1.0,
                "GB/s" => 1e3,
                _ => return None,
            };
            Some(n * unit)
        })
        .unwrap_or_else(|| bytes as f64 / 1e6 / wall.as_secs_f64());
    Measured {
        mb_per_s: rate,
        rss_mib: hwm as f64 / 1024.0,
        cpu_ms_per_mb: cpu / (bytes as f64 / 1e6),
    }
}

/// Telethon's `download_media` of every file of the channel, one after another.
fn telethon(fake: &fake_telegram::FakeTelegram, d: &Path) -> (Measured, bool) {
    let py = python();
    let info = serde_json::to_string(&fake.info).unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/benches/reference/telethon_download.py"
    );
    let files = d.join("telethon-files");
    std::fs::create_dir_all(&files).unwrap();
    let out = Command::new(py)
        .arg(script)
        .arg(&info)
        .arg(&files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "telethon: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
    let mb = r["bytes"].as_f64().unwrap() / 1e6;
    (
        Measured {
            mb_per_s: mb / r["secs"].as_f64().unwrap(),
            rss_mib: r["maxrss_kib"].as_f64().unwrap() / 1024.0,
            cpu_ms_per_mb: r["cpu_secs"].as_f64().unwrap() * 1000.0 / mb,
        },
        r["cryptg"].as_bool().unwrap_or(false),
    )
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let fake = rt.block_on(async {
        fake_telegram::FakeTelegram::start(fake_telegram::Options {
            channels: 1,
            posts: 0,
            password: None,
            quotas: QuotaMode::Off,
            ..Default::default()
        })
        .await
        .unwrap()
    });
    let ch = fake.world.channel_id(&fake.info.channels[0]).unwrap();
    let mut sizes_mb: Vec<i64> = vec![1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 45, 50];
    if quick {
        sizes_mb = vec![1, 2, 4, 8, 12, 16];
    }
    let mut bytes = 0u64;
    for (i, mb) in sizes_mb.iter().enumerate() {
        // Sizes that are not whole parts, as real files.
        let size = mb * 1_000_000 + 12_345;
        let mut m = Media::document(
            10_000 + i as i64,
            "application/zip",
            size,
            &format!("f{i}.zip"),
        );
        m.kind = MediaKind::Document;
        m.dc = fake.info.home_dc;
        bytes += size as u64;
        fake.world.post_media(ch, &format!("file {i}"), m).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    println!(
        "media download: {} files of 1–{} MB, {:.0} MB in all, over loopback, quotas off",
        sizes_mb.len(),
        sizes_mb.last().unwrap(),
        bytes as f64 / 1e6
    );
    let one = dir.path().join("one");
    prepared(&rt, &fake, &one, 1);
    let seq = tgparser_fetch(&one, bytes);
    let eight = dir.path().join("eight");
    prepared(&rt, &fake, &eight, 8);
    let par = tgparser_fetch(&eight, bytes);
    let (tele, cryptg) = telethon(&fake, dir.path());
    let row = |what: &str, m: &Measured, note: &str| {
        println!(
            "  {what:<42} {:>6.1} MB/s   peak RSS {:>5.1} MiB   CPU {:>5.1} ms/MB{note}",
            m.mb_per_s, m.rss_mib, m.cpu_ms_per_mb
        )
    };
    row("tgparser media fetch, 1 file at a time", &seq, "");
    row(
        "tgparser media fetch, 8 files at a time",
        &par,
        "   (RSS target <= 64 MB)",
    );
    row(
        if cryptg {
            "Telethon 1.45 download_media (cryptg)"
        } else {
            "Telethon 1.45 download_media (no cryptg)"
        },
        &tele,
        "",
    );
    println!(
        "  tgparser / Telethon, one file at a time: {:.1}x the throughput (target >= 2x), {:.1}x less CPU per MB",
        seq.mb_per_s / tele.mb_per_s,
        tele.cpu_ms_per_mb / seq.cpu_ms_per_mb
    );
    println!(
        "  (the fake serves every part of a connection in turn, encrypting it, on these cores too:\n   \
         one file or eight at a time come to about the same rate when it is the bound)"
    );
}
