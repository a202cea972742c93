//! The daemon as systemd sees it: READY, probes, watchdog, STOPPING, clean exit.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn run_reports_ready_serves_probes_and_stops_cleanly_on_sigterm() {
    let env = Env::new();
    let addr = env.write_config("");
    env.keygen();
    let notify = NotifySocket::new(env.dir.path());
    let mut child = spawn_daemon(&env, Some(&notify));

    let seen = notify.wait_for("READY=1", Duration::from_secs(20));
    let seen = seen.unwrap_or_else(|s| panic!("no READY=1; got {s:?}: {}", stderr_of(&mut child)));
    assert!(
        seen.iter().any(|m| m.contains("STATUS=ready")),
        "READY comes with a STATUS line: {seen:?}"
    );

    let (code, body) = get(addr, "/livez");
    assert_eq!(code, 200, "{body}");
    // No core dumps, however it was started: one would hold the secrets in clear.
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", child.id())).unwrap();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    assert_eq!(
        core.split_whitespace().skip(4).take(2).collect::<Vec<_>>(),
        ["0", "0"],
        "{core}"
    );

    let (code, body) = get(addr, "/readyz");
    assert_eq!(code, 200, "{body}");
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    // Telegram parts are not configured here: ready, with a warning that says so.
    assert_eq!(doc["status"], "warn", "{doc}");
    assert_eq!(doc["serviceId"], "tgparser");
    let checks = doc["checks"].as_object().unwrap();
    let db = &checks["sqlite:responseTime"][0];
    assert_eq!(db["status"], "pass");
    assert_eq!(db["observedUnit"], "ms");
    assert!(db["observedValue"].as_f64().unwrap() >= 0.0);
    assert_eq!(checks["part:health"][0]["status"], "pass");
    assert_eq!(checks["part:parser"][0]["status"], "warn");
    assert!(
        checks["part:parser"][0]["output"]
            .as_str()
            .unwrap()
            .contains("telegram.api_id"),
        "{doc}"
    );
    assert_eq!(checks["part:bot"][0]["observedValue"], "not_configured");

    let raw = tgparser::cli::http_get(addr, "/readyz", Duration::from_secs(5)).unwrap();
    assert!(!raw.1.is_empty());

    let (code, metrics) = get(addr, "/metrics");
    assert_eq!(code, 200);
    for needle in [
        "process_resident_memory_bytes ",
        "tgparser_uptime_seconds ",
        "tgparser_part_state{part=\"health\",state=\"running\"} 1",
        "tgparser_db_ping_seconds_bucket{le=\"+Inf\"}",
        "tgparser_ready 1",
    ] {
        assert!(
            metrics.contains(needle),
            "metrics lack {needle}:\n{metrics}"
        );
    }

    // Database files are private.
    for name in ["tgparser.db", "tgparser.db-wal", "tgparser.db-shm"] {
        let p = env.state_dir().join(name);
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{name} has mode {mode:o}");
    }

    sigterm(&child);
    let stopping = notify.wait_for("STOPPING=1", Duration::from_secs(10));
    assert!(stopping.is_ok(), "no STOPPING=1: {stopping:?}");
    let (code, took) = wait_exit(&mut child, Duration::from_secs(10));
    let err = stderr_of(&mut child);
    assert_eq!(code, Some(0), "exit after SIGTERM: {err}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert!(err.contains("stopped"), "{err}");
}

/// Regression: the signal handlers were installed only after READY, so a SIGTERM sent right
/// after READY killed the daemon with the default action instead of draining it.
#[test]
fn sigterm_right_after_ready_still_stops_cleanly() {
    let env = Env::new();
    env.write_config("");
    env.keygen();
    for round in 0..10 {
        let notify = NotifySocket::new(env.dir.path());
        let mut child = spawn_daemon(&env, Some(&notify));
        notify
            .wait_for("READY=1", Duration::from_secs(20))
            .expect("READY=1");
        sigterm(&child);
        let (code, _) = wait_exit(&mut child, Duration::from_secs(10));
        std::fs::remove_file(&notify.path).unwrap();
        assert_eq!(code, Some(0), "round {round}: {}", stderr_of(&mut child));
    }
}

#[test]
fn watchdog_pings_at_half_the_interval_systemd_asked_for() {
    let env = Env::new();
    env.write_config("");
    env.keygen();
    let notify = NotifySocket::new(env.dir.path());
    let mut child = env
        .cmd(&["run"])
        .env("NOTIFY_SOCKET", &notify.path)
        .env("WATCHDOG_USEC", "400000")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    notify
        .wait_for("READY=1", Duration::from_secs(20))
        .expect("READY=1");
    let t = Instant::now();
    let mut stamps = Vec::new();
    while stamps.len() < 6 && t.elapsed() < Duration::from_secs(5) {
        if notify
            .wait_for("WATCHDOG=1", Duration::from_secs(2))
            .is_ok()
        {
            stamps.push(t.elapsed());
        }
    }
    sigterm(&child);
    let (code, _) = wait_exit(&mut child, Duration::from_secs(10));
    assert_eq!(code, Some(0));
    assert!(stamps.len() >= 6, "only {} WATCHDOG=1 in 5 s", stamps.len());
    // Every ping well inside the 400 ms systemd would wait for.
    for w in stamps.windows(2) {
        let gap = w[1] - w[0];
        assert!(
            gap < Duration::from_millis(380),
            "gap {gap:?} in {stamps:?}"
        );
    }
}

#[test]
fn no_secret_reaches_any_file_in_the_state_dir() {
    let env = Env::new();
    let token = "7000000001:AAF-known-test-bot-token-do-not-leak";
    let api_hash = "0123456789abcdef0123456789abcdef";
    std::fs::write(env.path("bot_token"), token).unwrap();
    std::fs::write(env.path("api_hash"), api_hash).unwrap();
    for f in ["bot_token", "api_hash"] {
        std::fs::set_permissions(env.path(f), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    env.write_config(
        "[telegram]\napi_id = 12345\napi_hash_file = \"api_hash\"\n[bot]\ntoken_file = \"bot_token\"\nadmins = [1]\n",
    );
    env.keygen();
    let key_hex = std::fs::read_to_string(env.path("vault.key")).unwrap();
    let key_hex = key_hex.trim();
    let key_raw = hex::decode(key_hex).unwrap();

    let notify = NotifySocket::new(env.dir.path());
    let mut child = spawn_daemon(&env, Some(&notify));
    notify
        .wait_for("READY=1", Duration::from_secs(20))
        .expect("READY=1");
    let secrets: [&[u8]; 4] = [
        token.as_bytes(),
        api_hash.as_bytes(),
        key_hex.as_bytes(),
        &key_raw,
    ];
    let check = |when: &str| {
        let files = files_under(&env.state_dir());
        assert!(files.iter().any(|f| f.ends_with("tgparser.db")));
        for f in files {
            let data = std::fs::read(&f).unwrap();
            for s in secrets {
                assert!(
                    !contains(&data, s),
                    "{when}: a secret is in {}",
                    f.display()
                );
            }
        }
    };
    check("while running");
    sigterm(&child);
    let (code, _) = wait_exit(&mut child, Duration::from_secs(10));
    let err = stderr_of(&mut child);
    assert_eq!(code, Some(0), "{err}");
    check("after stop");
    for s in [token, api_hash, key_hex] {
        assert!(!err.contains(s), "a secret reached the log");
    }
}

#[test]
fn a_second_daemon_on_the_same_state_dir_is_refused() {
    let env = Env::new();
    env.write_config("");
    env.keygen();
    let notify = NotifySocket::new(env.dir.path());
    let mut first = spawn_daemon(&env, Some(&notify));
    notify
        .wait_for("READY=1", Duration::from_secs(20))
        .expect("READY=1");
    let out = env.run(&["run"]);
    sigterm(&first);
    wait_exit(&mut first, Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("another tgparser is using the state directory"),
        "{}",
        text(&out)
    );
}

#[test]
fn health_command_exits_0_when_ready_and_1_when_nothing_answers() {
    let env = Env::new();
    env.write_config("");
    env.keygen();
    let out = env.run(&["health", "--timeout", "2"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not answering"));

    let notify = NotifySocket::new(env.dir.path());
    let mut child = spawn_daemon(&env, Some(&notify));
    notify
        .wait_for("READY=1", Duration::from_secs(20))
        .expect("READY=1");
    let out = env.run(&["health"]);
    sigterm(&child);
    wait_exit(&mut child, Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("warn (HTTP 200)"));
}

#[test]
fn demo_logs_in_through_the_chat_and_alerts_and_a_search_answer_then_it_exits_0() {
    let env = Env::new();
    let state = env.path("demo-state");
    let t = Instant::now();
    let out = std::process::Command::new(BIN)
        .args(["demo", "--for", "50", "--state-dir"])
        .arg(&state)
        .env_remove("NOTIFY_SOCKET")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(t.elapsed() < Duration::from_secs(80));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "tgparser demo is running",
        "bot deletes the admin's message (it carried a code or a password)",
        "> Logged in as Test",
        "> added Tech News Daily",
        "backfill complete:",
        "> Sorry, this bot is private.",
        "> Subscribed: alerts for posts with all of: breaking",
        "> 🔔 breaking in ",
        "> Results 1–5 for breaking:",
        "> Subscribed: alerts for posts with all of: 比特币",
        "> Results 1–",
        "for 東京:",
        "for 비트코인:",
        "> Status: ",
    ] {
        assert!(
            stdout.contains(expected),
            "{expected:?} missing from the demo:\n{stdout}"
        );
    }
    assert!(
        state.join("tgparser.db").exists(),
        "--state-dir keeps the database"
    );
}

/// A start that upgrades the schema (migrations 0008, 0016 and 0017 rebuild the search index:
/// minutes on a large archive) tells systemd it needs more time, so the default 90 s start
/// timeout does not kill it mid-upgrade, and the index it rebuilds still finds every post.
#[test]
fn a_start_that_upgrades_the_schema_asks_systemd_for_more_time() {
    let env = Env::new();
    env.write_config("");
    env.keygen();
    assert_eq!(env.run(&["migrate"]).status.code(), Some(0));
    // Posts stored at version 7, as by an older tgparser: migration 0008's index and triggers
    // (re-run here: it replaces the triggers and rebuilds the index; the placeholders stand
    // for 0007's), without the columns and tables of 0009 to 0018 (0010 and 0012 replace
    // views).
    sql_write(
        &env,
        &format!(
            "INSERT INTO channels (id, username, title, added_at, updated_at) VALUES (1, 'up', 'Up', 0, 0);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
             INSERT INTO messages (channel_id, id, date, text, fetched_at, updated_at)
             SELECT 1, i, 1700000000 + i, 'upgrade ' || CASE WHEN i % 3 = 0 THEN 'ёлка' ELSE 'fox' END, 0, 0 FROM n;
             DROP TRIGGER messages_search_insert;
             DROP TRIGGER messages_search_update;
             DROP TRIGGER messages_search_delete;
             CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN SELECT 1; END;
             CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN SELECT 1; END;
             CREATE TRIGGER messages_fts_update AFTER UPDATE ON messages BEGIN SELECT 1; END;
             DROP TABLE search_index;
             DROP TABLE search_pending;
             DROP TABLE messages_terms;
             DROP TABLE messages_fts;
             CREATE VIRTUAL TABLE messages_fts USING fts5 (text);
             CREATE VIRTUAL TABLE messages_terms USING fts5vocab ('messages_fts', 'instance');
             {}
             DROP VIEW v_channel_stats;
             ALTER TABLE channels DROP COLUMN membership;
             ALTER TABLE channel_requests DROP COLUMN no_join;
             CREATE VIEW v_channel_stats AS SELECT 1 AS channel_id;
             DROP VIEW v_comments;
             ALTER TABLE channels DROP COLUMN with_comments;
             ALTER TABLE channels DROP COLUMN discussion_of;
             ALTER TABLE channel_requests DROP COLUMN with_comments;
             DROP TABLE channel_names;
             DROP VIEW v_posts;
             ALTER TABLE messages DROP COLUMN from_id;
             DROP TABLE users;
             CREATE VIEW v_posts AS SELECT 1 AS channel_id;
             DROP TABLE media;
             DROP TABLE media_scan;
             ALTER TABLE channels DROP COLUMN media_kinds;
             ALTER TABLE channels DROP COLUMN media_max_size;
             ALTER TABLE channels DROP COLUMN media_video_thumbs;
             DROP TABLE guard_windows;
             DROP TABLE refills;
             DROP TABLE write_probe;
             DROP TABLE rechecks;
             DROP TRIGGER messages_version_raise;
             DELETE FROM _sqlx_migrations WHERE version >= 8;",
            include_str!("../migrations/0008_fts_columnsize.sql")
        ),
    );
    let notify = NotifySocket::new(env.dir.path());
    let mut child = spawn_daemon(&env, Some(&notify));
    let seen = notify
        .wait_for("READY=1", Duration::from_secs(60))
        .unwrap_or_else(|s| panic!("no READY=1; got {s:?}: {}", stderr_of(&mut child)));
    let before_ready = seen.join("\n");
    sigterm(&child);
    let (code, _) = wait_exit(&mut child, Duration::from_secs(10));
    let logs = stderr_of(&mut child);
    assert_eq!(code, Some(0), "{logs}");
    assert!(
        before_ready.contains("EXTEND_TIMEOUT_USEC=30000000"),
        "no start timeout extension before READY: {before_ready}"
    );
    assert!(
        logs.contains("applying 13 pending database migration(s)"),
        "{logs}"
    );
    assert!(logs.contains("building the search index"), "{logs}");
    assert_eq!(
        sql(
            &env,
            "SELECT count(*) FROM _sqlx_migrations WHERE version >= 8 AND success = 1"
        ),
        "13"
    );
    assert_eq!(
        sql(
            &env,
            "SELECT version, pending_from IS NULL FROM search_index"
        ),
        "1|1"
    );
    // The rebuilt index: sound, every post in it, ё folded as before.
    sql_write(
        &env,
        "INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check')",
    );
    assert_eq!(
        sql(
            &env,
            "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'upgrade'"
        ),
        "3000"
    );
    assert_eq!(
        sql(
            &env,
            "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'елка'"
        ),
        "1000"
    );
}
