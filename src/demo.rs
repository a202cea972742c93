//! `tgparser demo`: the whole daemon, offline, on a temporary state directory with a fresh vault
//! key. No credentials, no network beyond loopback. Later parts (the fake Telegram, the parser,
//! the bot) join it here as they arrive.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use rand::Rng;

use crate::config::Config;
use crate::daemon::{self, RunOptions};
use crate::vault::VaultKey;

/// Removes the temporary state directory when the demo ends, however it ends.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn demo_config(dir: &Path, listen: SocketAddr) -> anyhow::Result<Config> {
    let mut t = toml::Table::new();
    let mut store = toml::Table::new();
    store.insert("dir".into(), dir.display().to_string().into());
    let mut vault = toml::Table::new();
    vault.insert(
        "key_file".into(),
        dir.join("vault.key").display().to_string().into(),
    );
    let mut health = toml::Table::new();
    health.insert("listen".into(), listen.to_string().into());
    health.insert("allow_remote".into(), (!listen.ip().is_loopback()).into());
    t.insert("store".into(), store.into());
    t.insert("vault".into(), vault.into());
    t.insert("health".into(), health.into());
    Ok(Config::from_toml(&t.to_string(), None, &[], None)?)
}

pub async fn run(
    run_for: Option<Duration>,
    state_dir: Option<PathBuf>,
    listen: SocketAddr,
) -> anyhow::Result<()> {
    let (dir, _cleanup) = match state_dir {
        Some(d) => (d, None),
        None => {
            let d = std::env::temp_dir().join(format!(
                "tgparser-demo-{}-{:08x}",
                std::process::id(),
                rand::rng().random::<u32>()
            ));
            (d.clone(), Some(TempDir(d)))
        }
    };
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the demo state directory {}", dir.display()))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    let key_file = dir.join("vault.key");
    if !key_file.exists() {
        VaultKey::generate().write_new_file(&key_file)?;
    }
    let cfg = demo_config(&dir, listen)?;
    crate::logging::init(&cfg.log);
    let state_dir = dir.display().to_string();
    daemon::run_with(cfg, RunOptions { run_for }, |s| {
        println!();
        println!(
            "tgparser demo is running (ready in {} ms)",
            s.took.as_millis()
        );
        println!("  state directory  {state_dir}");
        println!("  health           curl http://{}/readyz", s.health_addr);
        println!("  metrics          curl http://{}/metrics", s.health_addr);
        match run_for {
            Some(d) => println!("  stops by itself after {} s", d.as_secs()),
            None => println!("  press Ctrl-C to stop"),
        }
        println!();
    })
    .await
}
