//! Telethon 1.45 (from PyPI, in a virtualenv this test creates under target/ on first run)
//! talks to the fake: an independent client proves the fake speaks MTProto, not only grammers'
//! dialect of it.

use std::path::PathBuf;
use std::process::Command;

use fake_telegram::flood::QuotaMode;
use fake_telegram::{FakeTelegram, Options};

const TELETHON: &str = "telethon==1.45.0";

/// A Python with Telethon: `$TELETHON_PYTHON`, or a virtualenv made (once) under target/.
fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("TELETHON_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("telethon-1.45-venv");
    let py = venv.join("bin/python");
    let ready = venv.join(".installed");
    if !ready.exists() {
        let st = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("python3 is needed to run Telethon");
        assert!(st.success(), "python3 -m venv failed");
        let out = Command::new(&py)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                TELETHON,
            ])
            .output()
            .expect("pip runs");
        assert!(
            out.status.success(),
            "pip install {TELETHON} failed (PyPI must be reachable):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(&ready, TELETHON).unwrap();
    }
    py
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telethon_signs_in_with_2fa_and_reads_every_post() {
    let py = tokio::task::spawn_blocking(python).await.unwrap();
    let fake = FakeTelegram::start(Options {
        channels: 1,
        posts: 450,
        quotas: QuotaMode::Off,
        ..Default::default()
    })
    .await
    .unwrap();
    let info = serde_json::to_string(&fake.info).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/telethon/client.py");
    let out = tokio::process::Command::new(&py)
        .arg(script)
        .arg(&info)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "telethon client failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let result: serde_json::Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(result["authorized_before"], false);
    assert_eq!(result["wrong_code"], "PHONE_CODE_INVALID");
    assert_eq!(result["me"], "Test");
    let ids: Vec<i64> = result["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    let expected: Vec<i64> = {
        let w = fake.world.lock();
        w.channels
            .values()
            .next()
            .unwrap()
            .posts
            .keys()
            .rev()
            .map(|&i| i as i64)
            .collect()
    };
    assert_eq!(ids, expected, "every post, newest first, each once");
    let texts = result["texts"].as_array().unwrap();
    let w = fake.world.lock();
    let ch = w.channels.values().next().unwrap();
    for (t, p) in texts.iter().zip(ch.posts.values().rev()) {
        assert_eq!(t.as_str().unwrap_or(""), p.text);
    }
}
