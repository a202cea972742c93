//! The store and the vault through the CLI: keygen, rotate-key, migrate, refusing a database from
//! a newer version or a key that does not match.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use common::*;
use sqlx::Connection;
use tgparser::store::SEALED_COLUMNS;
use tgparser::vault::{Vault, VaultKey};

const AUTH_KEY: [u8; 256] = [0x5a; 256];

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn connect(db: &Path) -> sqlx::SqliteConnection {
    sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap()
}

/// Puts a sealed auth key for DC 2 into the session table, as the parser will.
fn seal_auth_key(env: &Env) {
    let key = VaultKey::from_file(&env.path("vault.key")).unwrap();
    let vault = Vault::new(&key);
    let col = SEALED_COLUMNS
        .iter()
        .find(|c| c.table == "session_dcs")
        .unwrap();
    let record = vault.seal(col.context("2"), &AUTH_KEY).unwrap();
    rt().block_on(async {
        let mut c = connect(&env.state_dir().join("tgparser.db")).await;
        sqlx::query("INSERT INTO session_dcs (dc_id, ipv4, ipv6, auth_key, updated_at) VALUES (2, '127.0.0.1:443', '[::1]:443', ?, 0)")
            .bind(record)
            .execute(&mut c)
            .await
            .unwrap();
    });
}

fn read_auth_key(env: &Env, key_file: &str) -> Result<Vec<u8>, String> {
    let key = VaultKey::from_file(&env.path(key_file)).map_err(|e| e.to_string())?;
    let vault = Vault::new(&key);
    let col = SEALED_COLUMNS
        .iter()
        .find(|c| c.table == "session_dcs")
        .unwrap();
    let record: Vec<u8> = rt().block_on(async {
        let mut c = connect(&env.state_dir().join("tgparser.db")).await;
        sqlx::query_scalar("SELECT auth_key FROM session_dcs WHERE dc_id = 2")
            .fetch_one(&mut c)
            .await
            .unwrap()
    });
    vault
        .open(col.context("2"), &record)
        .map(|z| z.to_vec())
        .map_err(|e| e.to_string())
}

fn migrate(env: &Env) -> String {
    let out = env.run(&["migrate"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Runs the daemon to READY and stops it: creates the database and the vault canary.
fn start_and_stop(env: &Env) {
    let notify = NotifySocket::new(env.dir.path());
    let mut child = spawn_daemon(env, Some(&notify));
    let ready = notify.wait_for("READY=1", Duration::from_secs(20));
    sigterm(&child);
    let (code, _) = wait_exit(&mut child, Duration::from_secs(10));
    let err = stderr_of(&mut child);
    std::fs::remove_file(&notify.path).unwrap();
    assert!(ready.is_ok(), "{err}");
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn keygen_writes_a_private_key_and_never_overwrites() {
    let env = Env::new();
    env.write_config("");
    let out = env.run(&["keygen"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let key_path = env.path("vault.key");
    let mode = std::fs::metadata(&key_path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let first = std::fs::read(&key_path).unwrap();
    assert_eq!(first.len(), 65, "64 hex characters and a newline");
    let out = env.run(&["keygen"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to overwrite"));
    assert_eq!(std::fs::read(&key_path).unwrap(), first);
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains(std::str::from_utf8(&first[..64]).unwrap()),
        "the key is never printed"
    );
}

#[test]
fn migrations_are_idempotent() {
    let env = Env::new();
    env.write_config("");
    let first = migrate(&env);
    assert!(first.contains("schema"), "{first}");
    assert!(!first.contains("pending"), "{first}");
    let second = migrate(&env);
    assert_eq!(first, second);
    let n: i64 = rt().block_on(async {
        let mut c = connect(&env.state_dir().join("tgparser.db")).await;
        sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
            .fetch_one(&mut c)
            .await
            .unwrap()
    });
    assert_eq!(n as usize, tgparser::store::MIGRATOR.iter().count());
}

#[test]
fn a_database_from_a_future_version_is_refused_and_left_alone() {
    let env = Env::new();
    env.write_config("");
    env.keygen();
    migrate(&env);
    let db = env.state_dir().join("tgparser.db");
    rt().block_on(async {
        let mut c = connect(&db).await;
        sqlx::query("INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (9999, 'from the future', 1, x'00', 0)")
            .execute(&mut c)
            .await
            .unwrap();
        c.close().await.unwrap();
    });
    let before = std::fs::read(&db).unwrap();
    let out = env.run(&["run"]);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("newer tgparser") && err.contains("9999"),
        "{err}"
    );
    assert_eq!(std::fs::read(&db).unwrap(), before, "nothing written");
}

#[test]
fn the_wrong_vault_key_is_refused_and_nothing_is_overwritten() {
    let env = Env::new();
    env.write_config("");
    env.keygen();
    start_and_stop(&env);
    seal_auth_key(&env);
    std::fs::rename(env.path("vault.key"), env.path("right.key")).unwrap();
    env.keygen();
    let out = env.run(&["run"]);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is not the key this database was sealed with"),
        "{err}"
    );
    // The sealed value is intact and still opens with the right key.
    assert_eq!(read_auth_key(&env, "right.key").unwrap(), AUTH_KEY.to_vec());
}

#[test]
fn rotate_key_reseals_everything_and_the_daemon_starts_with_the_new_key() {
    let env = Env::new();
    env.write_config("");
    env.keygen();
    start_and_stop(&env);
    seal_auth_key(&env);
    let old_key = std::fs::read(env.path("vault.key")).unwrap();

    let out = env.run(&["rotate-key"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("re-sealed 2 values"),
        "{}",
        text(&out)
    );
    assert_eq!(std::fs::read(env.path("vault.key.old")).unwrap(), old_key);
    assert_ne!(std::fs::read(env.path("vault.key")).unwrap(), old_key);
    let mode = std::fs::metadata(env.path("vault.key"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);

    assert_eq!(read_auth_key(&env, "vault.key").unwrap(), AUTH_KEY.to_vec());
    assert!(
        read_auth_key(&env, "vault.key.old").is_err(),
        "old key no longer opens"
    );
    start_and_stop(&env);
}

#[test]
fn rotate_key_is_refused_while_the_daemon_runs() {
    let env = Env::new();
    env.write_config("");
    env.keygen();
    let notify = NotifySocket::new(env.dir.path());
    let mut child = spawn_daemon(&env, Some(&notify));
    notify
        .wait_for("READY=1", Duration::from_secs(20))
        .expect("READY=1");
    let out = env.run(&["rotate-key"]);
    sigterm(&child);
    wait_exit(&mut child, Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("stop it first"));
    assert!(!env.path("vault.key.new").exists());
    assert!(!env.path("vault.key.old").exists());
}

#[test]
fn schema_has_check_constraints_on_enum_columns() {
    let env = Env::new();
    env.write_config("");
    migrate(&env);
    rt().block_on(async {
        let mut c = connect(&env.state_dir().join("tgparser.db")).await;
        let bad = [
            "INSERT INTO channels (id, title, state, added_at, updated_at) VALUES (1, 't', 'bogus', 0, 0)",
            "INSERT INTO bot_users (user_id, role, created_at, updated_at) VALUES (1, 'root', 0, 0)",
            "INSERT INTO outbox (dedupe_key, chat_id, kind, payload, next_attempt_at, created_at) VALUES ('k', 1, 'spam', '{}', 0, 0)",
            "INSERT INTO session_peers (kind, peer_id, updated_at) VALUES ('alien', 1, 0)",
            "INSERT INTO session_peers (kind, peer_id, channel_kind, updated_at) VALUES ('channel', 1, 'forum?', 0)",
        ];
        for sql in bad {
            assert!(sqlx::query(sql).execute(&mut c).await.is_err(), "accepted: {sql}");
        }
        sqlx::query("INSERT INTO channels (id, title, added_at, updated_at) VALUES (1, 't', 0, 0)")
            .execute(&mut c)
            .await
            .unwrap();
        sqlx::query("INSERT INTO messages (channel_id, id, date, text, fetched_at, updated_at) VALUES (1, 10, 0, 'Привет мир', 0, 0)")
            .execute(&mut c)
            .await
            .unwrap();
        // Another program's insert is queued for tgparser to index (src/store/index.rs).
        let queued: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM search_pending")
            .fetch_one(&mut c)
            .await
            .unwrap();
        assert_eq!(queued, 1, "the search index's queue follows inserts");
    });
}
