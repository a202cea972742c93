//! Telethon 1.45 (from PyPI, in a virtualenv this test creates under target/ on first run)
//! talks to the fake: an independent client proves the fake speaks MTProto, not only grammers'
//! dialect of it.

use std::path::{Path, PathBuf};

use fake_telegram::flood::QuotaMode;
use fake_telegram::{FakeTelegram, Options};

const TELETHON: &str = "telethon==1.45.0";

/// A Python with Telethon: `$TELETHON_PYTHON`, or a virtualenv made (once) under target/.
fn python() -> PathBuf {
    fake_telegram::python::with_packages(
        "TELETHON_PYTHON",
        Path::new(env!("CARGO_TARGET_TMPDIR")),
        "telethon-1.45-venv",
        &[TELETHON],
    )
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
