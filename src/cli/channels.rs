//! `tgparser channels …` and `tgparser backfill`: which channels the parser follows, and reading
//! their history in the foreground with visible progress.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use clap::Subcommand;

use super::login::open;
use crate::config::Config;
use crate::parser::backfill;
use crate::parser::resolve::{ResolveError, resolve};
use crate::store::{NewChannel, Store};

#[derive(Debug, Subcommand)]
pub enum ChannelsCommand {
    /// Follow a channel: @name, a t.me link, or tg://resolve?domain=name.
    Add {
        channel: String,
        /// Backfill only posts from this date on (YYYY-MM-DD, UTC).
        #[arg(long, conflicts_with = "last")]
        since: Option<String>,
        /// Backfill only the newest N posts.
        #[arg(long)]
        last: Option<i64>,
        /// Follow it without joining it (the account does not visibly subscribe; the
        /// channel is polled, never pushed).
        #[arg(long)]
        no_join: bool,
        /// Follow its comments too: its discussion group is found and followed as a channel
        /// of its own (`v_comments` links each comment to its post).
        #[arg(long)]
        with_comments: bool,
        /// Archive its posts' files of these kinds (photo, video, round, gif, audio, voice,
        /// sticker, document, all or none; comma-separated). Default: `media.kinds`.
        #[arg(long, value_name = "KINDS")]
        media: Option<String>,
    },
    /// List followed channels: posts stored, backfill progress, newest post, lag, state.
    List,
    /// Stop following a channel.
    Remove {
        channel: String,
        /// Also delete its stored posts.
        #[arg(long)]
        purge: bool,
    },
    /// Pause a channel (nothing is fetched for it until resumed).
    Pause { channel: String },
    /// Resume a paused channel.
    Resume { channel: String },
    /// Read a channel's stored posts again from history, newest first, to find edits and
    /// deletions the archive missed (the daemon does this by itself when Telegram says too much
    /// happened to hand out as updates). The running daemon starts within seconds.
    Recheck { channel: String },
}

pub async fn run(cfg: &Config, c: &ChannelsCommand) -> anyhow::Result<ExitCode> {
    match c {
        ChannelsCommand::Add {
            channel,
            since,
            last,
            no_join,
            with_comments,
            media,
        } => {
            let media = match media {
                Some(m) => Some(
                    crate::config::media::parse_kinds(std::slice::from_ref(m))
                        .map_err(|e| anyhow!("--media: {e}"))?,
                ),
                None => None,
            };
            add(
                cfg,
                channel,
                since.as_deref(),
                *last,
                AddOptions {
                    no_join: *no_join,
                    with_comments: *with_comments,
                    media,
                },
            )
            .await
        }
        ChannelsCommand::List => list(cfg).await,
        ChannelsCommand::Remove { channel, purge } => {
            set_state(cfg, channel, "remove", *purge).await
        }
        ChannelsCommand::Pause { channel } => set_state(cfg, channel, "pause", false).await,
        ChannelsCommand::Resume { channel } => set_state(cfg, channel, "resume", false).await,
        ChannelsCommand::Recheck { channel } => set_state(cfg, channel, "recheck", false).await,
    }
}

/// How `channels add` follows the channel.
#[derive(Debug, Clone, Default)]
pub struct AddOptions {
    /// Without joining it.
    pub no_join: bool,
    /// Its comments too.
    pub with_comments: bool,
    /// The kinds of files to archive, if not `media.kinds`.
    pub media: Option<Vec<String>>,
}

/// Sets `channel`'s media policy from `--media` and queues its stored posts' files.
async fn apply_media(
    cfg: &Config,
    store: &Store,
    channel: i64,
    kinds: &[String],
) -> anyhow::Result<()> {
    crate::media::set_kinds(store, &cfg.media, channel, kinds).await?;
    Ok(())
}

pub async fn add(
    cfg: &Config,
    reference: &str,
    since: Option<&str>,
    last: Option<i64>,
    opts: AddOptions,
) -> anyhow::Result<ExitCode> {
    let (no_join, with_comments) = (opts.no_join, opts.with_comments);
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
    let (_lock, store, conn) = match open(cfg).await {
        Ok(x) => x,
        // The daemon runs and holds the session: hand the request to it.
        Err(e) if e.downcast_ref::<crate::store::Locked>().is_some() => {
            return add_through_daemon(cfg, reference, since, last, opts).await;
        }
        Err(e) => return Err(e),
    };
    if login_missing(&conn).await? {
        bail!("the parsing account is not logged in; run `tgparser login` first");
    }
    // A channel followed already is never resolved again (resolving is the scarcest call).
    if let Some(known) = store.find_channel(reference).await?
        && (known.state == "active" || known.state == "paused")
    {
        if no_join && known.membership == "join" {
            store.set_membership(known.id, "no_join").await?;
        }
        if with_comments && !known.with_comments {
            store.set_with_comments(known.id).await?;
        }
        if let Some(kinds) = &opts.media {
            apply_media(cfg, &store, known.id, kinds).await?;
        }
        println!("{}", crate::parser::resolve::known_line(&known));
        drop(conn);
        store.close().await;
        return Ok(ExitCode::SUCCESS);
    }
    if no_join && crate::store::invite_hash(reference).is_some() {
        bail!("{}", ResolveError::InviteNoJoin(reference.to_string()));
    }
    let c = match resolve(&conn, reference).await {
        Ok(c) => c,
        Err(e @ ResolveError::JoinRequested(_)) => {
            // The daemon finishes it once an admin approves.
            let id = store
                .request_channel(reference, since, last, "cli", false, with_comments)
                .await?;
            store.note_channel_request(id, &e.to_string()).await?;
            println!("{e}");
            drop(conn);
            store.close().await;
            return Ok(ExitCode::SUCCESS);
        }
        Err(e) => return Err(e.into()),
    };
    let mut row = NewChannel::from_tl(&c, since, last);
    if no_join || cfg.telegram.as_ref().is_some_and(|t| !t.join) {
        row = row.without_joining();
    }
    row.with_comments = with_comments;
    let new = store.add_channel(&row).await?;
    match &opts.media {
        Some(kinds) => apply_media(cfg, &store, c.id, kinds).await?,
        None if new => {
            store
                .set_media_policy(c.id, &crate::store::MediaPolicy::for_new(&cfg.media))
                .await?
        }
        None => {}
    }
    store
        .audit(
            "cli",
            "channel_add",
            serde_json::json!({"channel_id": c.id, "username": c.username}),
        )
        .await?;
    println!(
        "{}; {}; `tgparser backfill` reads its history",
        crate::parser::resolve::added_line(&c, new),
        crate::parser::resolve::membership_line(row.membership)
    );
    drop(conn);
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

/// How long `channels add` waits for a running daemon to resolve the channel. Resolving is paced
/// (Telegram allows a few names a minute), so this is generous.
const DAEMON_ANSWER: std::time::Duration = std::time::Duration::from_secs(120);

async fn add_through_daemon(
    cfg: &Config,
    reference: &str,
    since: Option<i64>,
    last: Option<i64>,
    opts: AddOptions,
) -> anyhow::Result<ExitCode> {
    let store = Store::open(&cfg.store).await?;
    let id = store
        .request_channel(
            reference,
            since,
            last,
            "cli",
            opts.no_join,
            opts.with_comments,
        )
        .await?;
    eprintln!("the daemon is running; asked it to add {reference}…");
    let started = std::time::Instant::now();
    loop {
        let r = store
            .channel_request(id)
            .await?
            .ok_or_else(|| anyhow!("the request to add {reference} disappeared"))?;
        match r.state.as_str() {
            // An answer while it stays queued (a join request waiting for approval).
            "pending" if r.outcome.is_some() => {
                println!("{}", r.outcome.unwrap_or_default());
                store.close().await;
                return Ok(ExitCode::SUCCESS);
            }
            "done" => {
                // The daemon gave it `[media]`'s kinds; `--media` is set here.
                if let (Some(kinds), Some(ch)) = (&opts.media, r.channel_id) {
                    apply_media(cfg, &store, ch, kinds).await?;
                }
                println!("{}", r.outcome.unwrap_or_default());
                store.close().await;
                return Ok(ExitCode::SUCCESS);
            }
            "failed" => {
                store.close().await;
                bail!(
                    "{}",
                    r.outcome
                        .unwrap_or_else(|| "the daemon could not add it".into())
                );
            }
            _ if started.elapsed() > DAEMON_ANSWER => {
                println!(
                    "the daemon has not answered yet (is the parser logged in and Telegram reachable?); the request stays queued: see `tgparser channels list` later"
                );
                store.close().await;
                return Ok(ExitCode::SUCCESS);
            }
            _ => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
        }
    }
}

async fn login_missing(conn: &crate::parser::client::Connected) -> anyhow::Result<bool> {
    Ok(crate::parser::login::current_account(conn)
        .await
        .map_err(|e| anyhow!("{e}"))?
        .is_none())
}

pub async fn list(cfg: &Config) -> anyhow::Result<ExitCode> {
    // Read-only, like the other reading commands: a listing never creates, migrates or writes
    // the database a running daemon uses. No database yet means no channel added yet.
    let (channels, rechecks) = match Store::open_read_only(&cfg.store).await {
        Ok(store) => {
            let channels = store.channels().await;
            let rechecks = store.recheck_progress().await;
            store.close().await;
            (channels?, rechecks?)
        }
        Err(crate::store::StoreError::Missing(_)) => (Vec::new(), Vec::new()),
        Err(e) => return Err(e.into()),
    };
    if channels.is_empty() {
        println!("no channels yet; add one with `tgparser channels add @name`");
    } else {
        println!(
            "{:<32} {:<22} {:>9} {:>9} {:<20} {:>8} {:<8} followed",
            "title", "username", "posts", "backfill", "newest post (UTC)", "lag", "state"
        );
        for c in &channels {
            let title: String = c.title.chars().take(31).collect();
            println!(
                "{:<32} {:<22} {:>9} {:>8.1}% {:<20} {:>8} {:<8} {}",
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
                crate::time::ago(c.last_post_at),
                c.state,
                c.followed_by()
            );
        }
    }
    for st in rechecks {
        let (r, so_far) = (st.recheck, st.so_far);
        let name = channels
            .iter()
            .find(|c| c.id == r.channel)
            .map_or_else(|| r.channel.to_string(), |c| c.display_name());
        let found = format!(
            "{} read, {} edited, {} deleted, {} missing found",
            so_far.checked, so_far.edited, so_far.deleted, so_far.found
        );
        match st.finished_at {
            Some(at) => println!(
                "{name}: last recheck from history finished {} ({found})",
                crate::time::rfc3339(
                    std::time::UNIX_EPOCH + std::time::Duration::from_secs(at.max(0) as u64),
                    false
                )
            ),
            None if r.before == 0 => println!(
                "{name}: re-reading stored posts from history (from the newest; so far {found})"
            ),
            None => println!(
                "{name}: re-reading stored posts from history (below id {}; so far {found})",
                r.before
            ),
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn set_state(
    cfg: &Config,
    reference: &str,
    action: &str,
    purge: bool,
) -> anyhow::Result<ExitCode> {
    // No state lock: a running daemon re-reads the channels within seconds.
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
        "recheck" => {
            store.queue_recheck(ch.id, 0, "operator").await?;
            let paused = if ch.state == "active" {
                ""
            } else {
                " (it starts when the channel is resumed)"
            };
            println!(
                "queued a recheck of {}: its stored posts are read again from history{paused}",
                ch.display_name()
            );
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
    // A bar per channel on a terminal; plain lines for logs and pipes.
    let tty = std::io::stderr().is_terminal();
    let bars = indicatif::MultiProgress::new();
    let style = indicatif::ProgressStyle::with_template(
        "{prefix:<24} [{bar:30}] {pos:>3}% {msg} ({elapsed})",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
    .progress_chars("=> ");
    let mut shown: std::collections::HashMap<i64, indicatif::ProgressBar> =
        std::collections::HashMap::new();
    let total = backfill::run_all(&conn, &store, only, |ch, page| {
        if !tty {
            eprintln!(
                "{:<24} {:>8} posts {:>6.1}%{}",
                ch.display_name(),
                ch.stored,
                ch.backfill_percent(),
                if page.done { "  done" } else { "" }
            );
            return;
        }
        let bar = shown.entry(ch.id).or_insert_with(|| {
            let b = bars.add(indicatif::ProgressBar::new(100));
            b.set_style(style.clone());
            b.set_prefix(ch.display_name());
            b
        });
        bar.set_position(ch.backfill_percent().round().clamp(0.0, 100.0) as u64);
        if page.done {
            bar.set_position(100);
            bar.finish_with_message(format!("{} posts, done", ch.stored));
        } else {
            bar.set_message(format!("{} posts", ch.stored));
        }
    })
    .await
    .context("backfill stopped")?;
    for bar in shown.values() {
        bar.abandon();
    }
    conn.session.flush().await?;
    println!(
        "backfill complete: {total} posts stored in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    drop(conn);
    store.close().await;
    Ok(ExitCode::SUCCESS)
}
