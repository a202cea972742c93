//! `tgparser channels …` and `tgparser backfill`: which channels the parser follows, and reading
//! their history in the foreground with visible progress.

use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use grammers_client::tl;

use super::login::open;
use crate::config::Config;
use crate::guard::GuardError;
use crate::parser::backfill;
use crate::store::{NewChannel, Store, normalize_ref};

/// Resolves a channel reference through Telegram: `@name`, a t.me link, or the id of a channel
/// the account has already seen.
pub(crate) async fn resolve(
    conn: &crate::parser::client::Connected,
    input: &str,
) -> anyhow::Result<tl::types::Channel> {
    let name = normalize_ref(input);
    if name.is_empty() {
        bail!("{input:?} is not a channel: give @username, a t.me link or a channel id");
    }
    if name.parse::<i64>().is_ok() {
        bail!(
            "{input}: a numeric id can only be added for a channel already in the database; use its @username or t.me link"
        );
    }
    let valid = name.len() >= 4
        && name.len() <= 32
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        bail!(
            "{input:?} is not a valid channel name or link (names are 4-32 letters, digits and _)"
        );
    }
    let res = conn
        .invoke(&tl::functions::contacts::ResolveUsername {
            username: name.clone(),
            referer: None,
        })
        .await;
    let resolved = match res {
        Ok(tl::enums::contacts::ResolvedPeer::Peer(p)) => p,
        Err(e) if e.is_rpc("USERNAME_NOT_OCCUPIED") => bail!("there is no channel @{name}"),
        Err(e) if e.is_rpc("USERNAME_INVALID") => {
            bail!("{input:?} is not a valid channel name or link")
        }
        Err(GuardError::Flood { secs, .. }) => {
            bail!("Telegram asks to wait {secs} s before resolving more names; try again then")
        }
        Err(e) => return Err(anyhow!("resolving @{name} failed: {e}")),
    };
    for chat in resolved.chats {
        match chat {
            tl::enums::Chat::Channel(c) => return Ok(c),
            tl::enums::Chat::ChannelForbidden(c) => {
                bail!(
                    "@{name} ({}) is a private channel: the account must join it first",
                    c.title
                )
            }
            _ => {}
        }
    }
    bail!("@{name} is not a channel (it is a user or a bot)")
}

pub async fn add(
    cfg: &Config,
    reference: &str,
    since: Option<&str>,
    last: Option<i64>,
) -> anyhow::Result<ExitCode> {
    let since = match since {
        Some(s) => Some(
            crate::time::parse_date(s)
                .ok_or_else(|| anyhow!("--since {s:?}: expected a date as YYYY-MM-DD"))?,
        ),
        None => None,
    };
    if last.is_some_and(|n| n <= 0) {
        bail!("--last must be a positive number of posts");
    }
    let (_lock, store, conn) = open(cfg).await?;
    if login_missing(&conn).await? {
        bail!("the parsing account is not logged in; run `tgparser login` first");
    }
    let c = resolve(&conn, reference).await?;
    let new = store
        .add_channel(&NewChannel::from_tl(&c, since, last))
        .await?;
    store
        .audit(
            "cli",
            "channel_add",
            serde_json::json!({"channel_id": c.id, "username": c.username}),
        )
        .await?;
    println!(
        "{} {} (@{}, id {}); `tgparser backfill` reads its history",
        if new { "added" } else { "already followed:" },
        c.title,
        c.username.as_deref().unwrap_or("-"),
        c.id
    );
    drop(conn);
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

async fn login_missing(conn: &crate::parser::client::Connected) -> anyhow::Result<bool> {
    Ok(crate::parser::login::current_account(conn)
        .await
        .map_err(|e| anyhow!("{e}"))?
        .is_none())
}

fn ago(ts: Option<i64>) -> String {
    match ts {
        None => "-".into(),
        Some(t) => {
            let s = (crate::time::unix_now() - t).max(0);
            match s {
                0..=119 => format!("{s} s"),
                120..=7_199 => format!("{} min", s / 60),
                7_200..=172_799 => format!("{} h", s / 3600),
                _ => format!("{} d", s / 86_400),
            }
        }
    }
}

pub async fn list(cfg: &Config) -> anyhow::Result<ExitCode> {
    let store = Store::open(&cfg.store).await?;
    let channels = store.channels().await?;
    if channels.is_empty() {
        println!("no channels yet; add one with `tgparser channels add @name`");
    } else {
        println!(
            "{:<32} {:<22} {:>9} {:>9} {:<20} {:>8} {:<8}",
            "title", "username", "posts", "backfill", "newest post (UTC)", "lag", "state"
        );
        for c in &channels {
            let title: String = c.title.chars().take(31).collect();
            println!(
                "{:<32} {:<22} {:>9} {:>8.1}% {:<20} {:>8} {:<8}",
                title,
                c.username
                    .as_deref()
                    .map(|u| format!("@{u}"))
                    .unwrap_or_else(|| c.id.to_string()),
                c.stored,
                c.backfill_percent(),
                c.last_post_at
                    .map(|t| crate::time::rfc3339(
                        std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.max(0) as u64),
                        false
                    ))
                    .unwrap_or_else(|| "-".into()),
                ago(c.last_post_at),
                c.state
            );
        }
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

pub async fn set_state(
    cfg: &Config,
    reference: &str,
    action: &str,
    purge: bool,
) -> anyhow::Result<ExitCode> {
    let _lock = crate::store::StateLock::acquire(&cfg.store.dir)?;
    let store = Store::open(&cfg.store).await?;
    let ch = store.find_channel(reference).await?.ok_or_else(|| {
        anyhow!("{reference} is not among the followed channels (see `tgparser channels list`)")
    })?;
    match action {
        "remove" => {
            let n = store.remove_channel(ch.id, purge).await?;
            if purge {
                println!(
                    "removed {} and deleted its {n} stored posts",
                    ch.display_name()
                );
            } else {
                println!(
                    "removed {} (its posts stay; --purge deletes them)",
                    ch.display_name()
                );
            }
        }
        "pause" => {
            store.set_channel_state(ch.id, "paused", None).await?;
            println!("paused {}", ch.display_name());
        }
        _ => {
            store.set_channel_state(ch.id, "active", None).await?;
            println!("resumed {}", ch.display_name());
        }
    }
    store
        .audit(
            "cli",
            &format!("channel_{action}"),
            serde_json::json!({"channel_id": ch.id, "purge": purge}),
        )
        .await?;
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

pub async fn run_backfill(cfg: &Config, only: Option<&str>) -> anyhow::Result<ExitCode> {
    let (_lock, store, conn) = open(cfg).await?;
    if login_missing(&conn).await? {
        bail!("the parsing account is not logged in; run `tgparser login` first");
    }
    let only = match only {
        Some(r) => Some(
            store
                .find_channel(r)
                .await?
                .ok_or_else(|| anyhow!("{r} is not among the followed channels"))?
                .id,
        ),
        None => None,
    };
    let t = std::time::Instant::now();
    let total = backfill::run_all(&conn, &store, only, |ch, page| {
        eprintln!(
            "{:<24} {:>8} posts {:>6.1}%{}",
            ch.display_name(),
            ch.stored,
            ch.backfill_percent(),
            if page.done { "  done" } else { "" }
        );
    })
    .await
    .context("backfill stopped")?;
    conn.session.flush().await?;
    println!(
        "backfill complete: {total} posts stored in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    drop(conn);
    store.close().await;
    Ok(ExitCode::SUCCESS)
}
