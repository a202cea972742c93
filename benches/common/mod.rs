//! Set-up the benchmarks share: the daemon binary, a database, a channel row, a parser
//! connection logged in to the fake Telegram. Each benchmark uses a part of it.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use tgparser::config::{StoreConfig, TelegramConfig, TelegramServerConfig};
use tgparser::parser::client::Connected;
use tgparser::store::{NewChannel, Store};
use tgparser::vault::Vault;

pub const BIN: &str = env!("CARGO_BIN_EXE_tgparser");

/// The daemon binary with `dir/config.toml`, run in `dir`, without what systemd or a shell
/// would hand it (notify socket, watchdog, log filter).
pub fn cmd(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.arg("--config")
        .arg(dir.join("config.toml"))
        .args(args)
        .current_dir(dir)
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("RUST_LOG");
    c
}

/// The database in `dir` (created and migrated if needed), two readers.
pub async fn store(dir: &Path) -> Store {
    Store::open(&StoreConfig {
        dir: dir.to_path_buf(),
        busy_timeout: Duration::from_secs(5),
        read_connections: 2,
    })
    .await
    .unwrap()
}

/// A broadcast channel row `@{username}`, as `channels add` would store it.
pub fn channel(id: i64, username: &str, title: &str) -> NewChannel {
    NewChannel {
        id,
        access_hash: Some(1),
        username: Some(username.into()),
        title: title.into(),
        about: None,
        participants: None,
        kind: "broadcast",
        since: None,
        last: None,
        added_by: None,
        membership: "join",
        with_comments: false,
        discussion_of: None,
    }
}

/// A parser connection to `fake`, logged in with the fake's code, its session kept in `store`.
/// `dir` holds `api_hash` and `auth_key.hex` (the fake's pre-shared key). Pacing is off: the
/// fake's quotas are off in every benchmark, which measure the pipeline, not the pacing.
pub async fn logged_in(
    fake: &fake_telegram::FakeTelegram,
    dir: &Path,
    store: &Store,
    vault: Arc<Vault>,
) -> Connected {
    let tg = TelegramConfig {
        api_id: 94575,
        api_hash_file: dir.join("api_hash"),
        server: Some(TelegramServerConfig {
            address: fake.info.mtproto,
            auth_key_file: dir.join("auth_key.hex"),
        }),
        proxy: None,
        follow_sweep: std::time::Duration::from_secs(900),
        join: true,
        follow_schedule: Default::default(),
        guard: tgparser::guard::GuardConfig {
            pacing: Default::default(),
            ..Default::default()
        },
    };
    let guard = tgparser::guard::Guard::new(tg.guard.clone(), None);
    let conn = tgparser::parser::client::connect(&tg, store.clone(), vault, guard)
        .await
        .unwrap();
    let token = tgparser::parser::login::request_code(&conn, &fake.info.phone)
        .await
        .unwrap();
    let _ = tgparser::parser::login::submit_code(&conn, &token, &fake.info.code)
        .await
        .unwrap();
    conn
}

/// The database in `dir/state` with its vault checked against `dir/vault.key`, and a parser
/// connection logged in to `fake` (see [`logged_in`]).
pub async fn state_logged_in(fake: &fake_telegram::FakeTelegram, dir: &Path) -> (Store, Connected) {
    let store = store(&dir.join("state")).await;
    let vault = Arc::new(Vault::new(
        &tgparser::vault::VaultKey::from_file(&dir.join("vault.key")).unwrap(),
    ));
    store
        .verify_or_init_vault(&vault, &dir.join("vault.key"))
        .await
        .unwrap();
    let conn = logged_in(fake, dir, &store, vault).await;
    (store, conn)
}
