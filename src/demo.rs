//! `tgparser demo`: the whole daemon, offline. It starts the fake Telegram in-process (MTProto and
//! Bot API over loopback) and runs the daemon against it while simulated people talk to the bot:
//! the admin logs the parsing account in through the chat (phone, the code typed with spaces,
//! the 2FA password) and adds three channels, which the parser backfills with visible progress
//! while new posts keep arriving live, then reads one channel's stored posts again from history
//! (a recheck, as `tgparser channels recheck` asks); a stranger is refused, then allowed; the user subscribes
//! to a keyword, alerts arrive as matching posts come in, and a search answers. Every exchange is
//! printed. No credentials, no network beyond loopback.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rand::Rng;

use crate::config::Config;
use crate::daemon::{self, RunOptions};
use crate::store::Store;
use crate::vault::VaultKey;

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
         [bot]\ntoken_file = {token:?}\napi_url = \"http://{bot_api}\"\nadmins = [{DEMO_ADMIN}]\n\n\
         [media]\nkinds = [\"photo\", \"voice\", \"sticker\"]\nmin_free_space = \"100 MB\"\n",
        dir = dir.display().to_string(),
        key = dir.join("vault.key").display().to_string(),
        remote = !listen.ip().is_loopback(),
        hash = dir.join("api_hash").display().to_string(),
        ak = dir.join("auth_key.hex").display().to_string(),
        token = dir.join("bot_token").display().to_string(),
    );
    Ok(Config::from_toml(&text, None, &[], None)?)
}

/// Prints backfill progress until every channel is done, then what arrives live.
async fn report(store_cfg: crate::config::StoreConfig) {
    tokio::time::sleep(Duration::from_millis(500)).await;
    let Ok(store) = Store::open(&store_cfg).await else {
        return;
    };
    let mut done_reported = false;
    let mut last_total = 0;
    let mut last_media = (0, 0);
    let mut rechecking: Option<String> = None;
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
            if chs.is_empty() {
                continue;
            }
            println!("backfill: {}", line.join(" | "));
            if chs.iter().all(|c| c.backfill_state == "done") {
                println!("backfill complete: {total} posts; following live posts now");
                // Joined channels get Telegram's pushes; every channel is polled as well.
                let how: Vec<String> = chs
                    .iter()
                    .map(|c| format!("{} {}", c.display_name(), c.followed_by()))
                    .collect();
                println!("followed: {}", how.join(" | "));
                done_reported = true;
                // As `tgparser channels recheck` does (and the daemon by itself when Telegram
                // says too much happened to send as updates): the stored posts read again.
                if let Some(c) = chs.first()
                    && store.queue_recheck(c.id, 0, "operator").await.is_ok()
                {
                    println!(
                        "recheck: {} asked for (tgparser channels recheck): its stored posts are read again from history for edits and deletions missed",
                        c.display_name()
                    );
                    rechecking = Some(c.display_name());
                }
            }
        } else if total != last_total {
            println!(
                "live: {} new posts stored (total {total})",
                total - last_total
            );
        }
        if let Some(name) = &rechecking
            && let Ok(all) = store.recheck_progress().await
            && let Some(st) = all.iter().find(|st| st.finished_at.is_some())
        {
            let f = st.so_far;
            println!(
                "recheck: {name} done: {} posts read again, {} edited, {} deleted, {} missing found",
                f.checked, f.edited, f.deleted, f.found
            );
            rechecking = None;
        }
        // The media archive: photos, voice messages and stickers, each content stored once.
        if let Ok(counts) = store.media_counts().await {
            let done: i64 = counts.iter().map(|c| c.done).sum();
            let pending: i64 = counts.iter().map(|c| c.pending).sum();
            if (done, pending) != last_media && done > 0 {
                let bytes = store.media_bytes().await.unwrap_or(0);
                println!(
                    "media: {done} files stored ({:.1} MB under media/, each content once), {pending} to fetch",
                    bytes as f64 / 1e6
                );
                last_media = (done, pending);
            }
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
    write_private(&dir.join("auth_key.hex"), &fake.info.auth_key_file())?;
    write_private(&dir.join("bot_token"), &fake.info.bot_token)?;
    let cfg = demo_config(&dir, listen, fake.info.mtproto, fake.info.bot_api)?;
    crate::logging::init(&cfg.log);
    println!(
        "fake Telegram: MTProto DC {} {} (DCs 1-5) · Bot API {} · control {}",
        fake.info.dc_id, fake.info.mtproto, fake.info.bot_api, fake.info.control
    );
    println!(
        "  the account lives on DC {}: the login below follows PHONE_MIGRATE_{} there",
        fake.info.home_dc, fake.info.home_dc
    );

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
                // Every third post in Chinese, Japanese or Korean: found by its words all the same.
                let text = match n % 9 {
                    3 => format!("突发 #{n}：今天比特币大涨了，breaking"),
                    6 => format!("速報 #{n}：東京都でビットコインが急上昇 breaking"),
                    0 => format!("속보 #{n}: 비트코인이 사상 최고가를 경신했다 breaking"),
                    _ => format!("Breaking #{n}: live post from the demo world 🚀"),
                };
                world.post(id, &text);
            }
        }
    });
    let reporter = tokio::spawn(report(cfg.store.clone()));
    let talker = tokio::spawn(converse(fake.bot.clone(), fake.info.clone()));
    let state_dir = dir.display().to_string();
    let check_cfg = cfg.clone();
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
    if result.is_ok() {
        // What `tgparser check` says of the archive the demo left.
        println!("\narchive check (tgparser check):");
        if let Err(e) = crate::cli::check::check(&check_cfg).await {
            println!("  the check could not run: {e}");
        }
    }
    result
}

/// A line of the bot's HTML as a terminal shows it: tags dropped, entities read.
fn plain(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut in_tag = false;
    for c in line.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

/// Prints what the bot sends, as it sends it (answers and alerts alike).
async fn print_bot(bot: Arc<fake_telegram::botapi::BotApi>) {
    let mut seen = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let calls = bot.calls(false);
        for c in calls.iter().skip(seen) {
            let chat = c.params["chat_id"].as_i64().unwrap_or(0);
            let who = match chat {
                DEMO_ADMIN => "admin",
                DEMO_USER => "user",
                _ => "someone",
            };
            match c.method.as_str() {
                "sendmessage" | "editmessagetext" if c.status == 200 => {
                    let text = c.params["text"].as_str().unwrap_or_default();
                    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
                    let verb = if c.method == "sendmessage" {
                        "to"
                    } else {
                        "edits for"
                    };
                    println!("bot {verb} {who}:");
                    for l in lines.by_ref().take(4) {
                        println!("     > {}", plain(l));
                    }
                    if lines.next().is_some() {
                        println!("     > …");
                    }
                }
                "deletemessage" => {
                    println!("bot deletes the {who}'s message (it carried a code or a password)")
                }
                _ => {}
            }
        }
        seen = calls.len();
    }
}

/// People talking to the bot through the fake Bot API.
async fn converse(bot: Arc<fake_telegram::botapi::BotApi>, info: fake_telegram::Info) {
    use fake_telegram::botapi::UserMessage;
    let printer = tokio::spawn(print_bot(bot.clone()));
    let spaced: String = info
        .code
        .chars()
        .map(String::from)
        .collect::<Vec<_>>()
        .join(" ");
    let mut script: Vec<(i64, &str, String, u64)> = vec![
        (DEMO_ADMIN, "admin", "/login".into(), 2),
        (DEMO_ADMIN, "admin", info.phone.clone(), 2),
        (DEMO_ADMIN, "admin", spaced, 2),
        (DEMO_ADMIN, "admin", info.password.clone(), 4),
    ];
    for (i, name) in info.channels.iter().enumerate() {
        // The first one says which of its files to archive; the others take `[media]`'s.
        let media = if i == 0 { " --media photo,voice" } else { "" };
        script.push((DEMO_ADMIN, "admin", format!("/add @{name}{media}"), 2));
    }
    script.extend([
        (DEMO_USER, "a stranger", "/help".to_string(), 2),
        (DEMO_ADMIN, "admin", format!("/allow {DEMO_USER}"), 2),
        (DEMO_USER, "user", "/subscribe breaking".into(), 8),
        (DEMO_USER, "user", "/search breaking".into(), 3),
        (DEMO_USER, "user", "/subscribe 比特币".into(), 2),
        (DEMO_USER, "user", "/search 東京".into(), 2),
        (DEMO_USER, "user", "/search 비트코인".into(), 2),
        (DEMO_USER, "user", "/pause @technews".into(), 2),
        (DEMO_ADMIN, "admin", "/status".into(), 2),
    ]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    for (user, who, text, pause) in script {
        // The password is typed, not shown.
        let shown = if text == info.password {
            "•".repeat(text.chars().count())
        } else {
            text.clone()
        };
        println!("{who} ({user}) says: {shown}");
        bot.user_message(&UserMessage {
            user_id: user,
            text: Some(text),
            first_name: Some(who.to_string()),
            ..Default::default()
        });
        tokio::time::sleep(Duration::from_secs(pause)).await;
    }
    // Posts keep matching the subscription: alerts keep arriving (printed by the printer).
    let _ = printer.await;
}
