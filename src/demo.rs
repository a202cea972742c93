//! `tgparser demo`: the whole daemon, offline. It starts the fake Telegram in-process (MTProto and
//! Bot API over loopback), logs the parsing account in with the fake's code and 2FA password,
//! follows three channels, and runs the daemon: the parser backfills them with visible progress
//! while new posts keep arriving live, and simulated people talk to the bot (an admin, a stranger
//! the admin then allows). No credentials, no network beyond loopback.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};
use rand::Rng;

use crate::config::Config;
use crate::daemon::{self, RunOptions};
use crate::parser::client;
use crate::parser::login::{self, Step};
use crate::store::{NewChannel, Store};
use crate::vault::{Vault, VaultKey};

/// The public test app id Telegram's documentation uses; the fake accepts any positive id.
const DEMO_API_ID: i32 = 94575;
const DEMO_API_HASH: &str = "a3406de8d171bb422bb6ddf3bbd800e2";
/// The demo's bot administrator and a second person who talks to the bot.
const DEMO_ADMIN: i64 = 1001;
const DEMO_USER: i64 = 2002;

/// Removes the temporary state directory when the demo ends, however it ends.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(())
}

fn demo_config(
    dir: &Path,
    listen: SocketAddr,
    mtproto: SocketAddr,
    bot_api: SocketAddr,
) -> anyhow::Result<Config> {
    let text = format!(
        "[store]\ndir = {dir:?}\n\n[vault]\nkey_file = {key:?}\n\n[health]\nlisten = \"{listen}\"\nallow_remote = {remote}\n\n\
         [telegram]\napi_id = {DEMO_API_ID}\napi_hash_file = {hash:?}\n\n[telegram.server]\naddress = \"{mtproto}\"\nauth_key_file = {ak:?}\n\n\
         [bot]\ntoken_file = {token:?}\napi_url = \"http://{bot_api}\"\nadmins = [{DEMO_ADMIN}]\n",
        dir = dir.display().to_string(),
        key = dir.join("vault.key").display().to_string(),
        remote = !listen.ip().is_loopback(),
        hash = dir.join("api_hash").display().to_string(),
        ak = dir.join("auth_key.hex").display().to_string(),
        token = dir.join("bot_token").display().to_string(),
    );
    Ok(Config::from_toml(&text, None, &[], None)?)
}

/// Logs in and follows the fake's channels, as a user would with `login` and `channels add`.
async fn prepare(cfg: &Config, fake: &fake_telegram::FakeTelegram) -> anyhow::Result<()> {
    let tg = cfg
        .telegram
        .as_ref()
        .ok_or_else(|| anyhow!("demo config has no telegram section"))?;
    let key = VaultKey::from_file(&cfg.vault.key_file)?;
    let vault = Arc::new(Vault::new(&key));
    let store = Store::open(&cfg.store).await?;
    store
        .verify_or_init_vault(&vault, &cfg.vault.key_file)
        .await?;
    let conn = client::connect(tg, store.clone(), vault, client::interactive_guard(tg)).await?;
    if login::current_account(&conn)
        .await
        .map_err(|e| anyhow!("{e}"))?
        .is_none()
    {
        println!(
            "logging in as {} with the fake's code and 2FA password…",
            fake.info.phone
        );
        let token = login::request_code(&conn, &fake.info.phone)
            .await
            .map_err(|e| anyhow!("{e}"))?;
        match login::submit_code(&conn, &token, &fake.info.code)
            .await
            .map_err(|e| anyhow!("{e}"))?
        {
            Step::Done(_) => {}
            Step::Password(pt) => {
                login::submit_password(&conn, pt, &fake.info.password)
                    .await
                    .map_err(|(e, _)| anyhow!("{e}"))?;
            }
        }
    }
    for name in &fake.info.channels {
        let c = crate::parser::resolve::resolve(&conn, name).await?;
        store
            .add_channel(&NewChannel::from_tl(&c, None, None))
            .await?;
        println!("following @{name} ({})", c.title);
    }
    conn.session.flush().await?;
    drop(conn);
    store.close().await;
    Ok(())
}

/// Prints backfill progress until every channel is done, then what arrives live.
async fn report(store_cfg: crate::config::StoreConfig) {
    tokio::time::sleep(Duration::from_millis(500)).await;
    let Ok(store) = Store::open(&store_cfg).await else {
        return;
    };
    let mut done_reported = false;
    let mut last_total = 0;
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let Ok(chs) = store.channels().await else {
            continue;
        };
        let total: i64 = chs.iter().map(|c| c.stored).sum();
        if !done_reported {
            let line: Vec<String> = chs
                .iter()
                .map(|c| {
                    format!(
                        "{} {} posts {:.0}%",
                        c.display_name(),
                        c.stored,
                        c.backfill_percent()
                    )
                })
                .collect();
            println!("backfill: {}", line.join(" | "));
            if chs.iter().all(|c| c.backfill_state == "done") {
                println!("backfill complete: {total} posts; following live posts now");
                done_reported = true;
            }
        } else if total != last_total {
            println!(
                "live: {} new posts stored (total {total})",
                total - last_total
            );
        }
        last_total = total;
    }
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
    let fake = fake_telegram::FakeTelegram::start(fake_telegram::Options {
        channels: 3,
        posts: 900,
        ..Default::default()
    })
    .await
    .context("starting the built-in fake Telegram")?;
    write_private(&dir.join("api_hash"), DEMO_API_HASH)?;
    write_private(&dir.join("auth_key.hex"), &fake.info.auth_key)?;
    write_private(&dir.join("bot_token"), &fake.info.bot_token)?;
    let cfg = demo_config(&dir, listen, fake.info.mtproto, fake.info.bot_api)?;
    crate::logging::init(&cfg.log);
    println!(
        "fake Telegram: MTProto {} · Bot API {} · control {}",
        fake.info.mtproto, fake.info.bot_api, fake.info.control
    );
    prepare(&cfg, &fake).await?;

    // Live posts keep arriving while the demo runs.
    let world = fake.world.clone();
    let channels = fake.info.channels.clone();
    let poster = tokio::spawn(async move {
        let mut n = 0u32;
        loop {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            n += 1;
            let name = &channels[n as usize % channels.len()];
            if let Some(id) = world.channel_id(name) {
                world.post(
                    id,
                    &format!("Breaking #{n}: live post from the demo world 🚀"),
                );
            }
        }
    });
    let reporter = tokio::spawn(report(cfg.store.clone()));
    let talker = tokio::spawn(converse(fake.bot.clone()));
    let state_dir = dir.display().to_string();
    let result = daemon::run_with(cfg, RunOptions { run_for }, |s| {
        println!();
        println!(
            "tgparser demo is running (ready in {} ms)",
            s.took.as_millis()
        );
        println!("  state directory  {state_dir}");
        println!("  health           curl http://{}/readyz", s.health_addr);
        println!("  metrics          curl http://{}/metrics", s.health_addr);
        println!(
            "  database         sqlite3 {state_dir}/tgparser.db 'SELECT count(*) FROM messages'"
        );
        match run_for {
            Some(d) => println!("  stops by itself after {} s", d.as_secs()),
            None => println!("  press Ctrl-C to stop"),
        }
        println!();
    })
    .await;
    poster.abort();
    reporter.abort();
    talker.abort();
    result
}

/// People talking to the bot through the fake Bot API; each exchange is printed.
async fn converse(bot: Arc<fake_telegram::botapi::BotApi>) {
    use fake_telegram::botapi::UserMessage;
    let script: &[(i64, &str, &str)] = &[
        (DEMO_ADMIN, "admin", "/status"),
        (DEMO_USER, "a stranger", "/help"),
        (DEMO_ADMIN, "admin", "/allow 2002"),
        (DEMO_USER, "user", "/help"),
        (DEMO_USER, "user", "/pause @technews"),
        (DEMO_ADMIN, "admin", "/channels"),
    ];
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (user, who, text) in script {
        let sent_before = bot
            .calls(false)
            .iter()
            .filter(|c| c.method == "sendmessage")
            .count();
        bot.user_message(&UserMessage {
            user_id: *user,
            text: Some(text.to_string()),
            first_name: Some(who.to_string()),
            ..Default::default()
        });
        let mut answer = None;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let sent: Vec<_> = bot
                .calls(false)
                .into_iter()
                .filter(|c| c.method == "sendmessage")
                .collect();
            if let Some(c) = sent.get(sent_before) {
                answer = c.params["text"].as_str().map(str::to_string);
                break;
            }
        }
        let answer = answer.unwrap_or_else(|| "(no answer)".into());
        let mut lines = answer.lines();
        println!("bot: {who} ({user}) says {text}");
        for l in lines.by_ref().take(4) {
            println!("     > {l}");
        }
        if lines.next().is_some() {
            println!("     > …");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
