//! `tgparser media …`: what each channel archives of its posts' files, and how far it got.

use std::process::ExitCode;

use anyhow::{anyhow, bail};
use clap::Subcommand;

use crate::config::Config;
use crate::config::media::{parse_kinds, parse_size};
use crate::store::{MediaPolicy, Store};

#[derive(Debug, Subcommand)]
pub enum MediaCommand {
    /// Per channel: files stored, their size, and files pending, failed and skipped.
    Status,
    /// Archive a channel's files: these kinds (photo, video, round, gif, audio, voice,
    /// sticker, document, or all; default: `media.kinds`), queued for every post stored and
    /// every post to come. Safe while the daemon runs (it picks them up).
    On {
        channel: String,
        kinds: Vec<String>,
        /// Files larger than this are skipped ("50 MB"; default: `media.max_file_size`).
        #[arg(long)]
        max_size: Option<String>,
        /// A video not downloaded (its kind off, or too big) gets its thumbnail.
        #[arg(long)]
        video_thumbnails: Option<bool>,
    },
    /// Archive no more files of a channel (those stored stay).
    Off { channel: String },
    /// Hash every stored file again; a missing or damaged one is fetched again (its rows go
    /// back to the queue). Exit 1 if any was found.
    Verify,
    /// Remove the files no post points to any more, and partial downloads no longer needed.
    Gc,
    /// Download the queued files of these posts now, in the foreground, with progress (those
    /// waiting to be tried again are tried once more). While the daemon runs, it fetches them
    /// itself: this then shows its progress. Exit 1 if files failed or there was no room.
    Fetch {
        /// Only this channel (@name, t.me link or id).
        #[arg(long)]
        channel: Option<String>,
        /// Posts from this date on (YYYY-MM-DD, UTC).
        #[arg(long)]
        since: Option<String>,
        /// Posts before this date.
        #[arg(long)]
        until: Option<String>,
    },
}

pub async fn run(cfg: &Config, c: &MediaCommand) -> anyhow::Result<ExitCode> {
    match c {
        MediaCommand::Status => status(cfg).await,
        MediaCommand::On {
            channel,
            kinds,
            max_size,
            video_thumbnails,
        } => {
            let kinds = if kinds.is_empty() {
                if cfg.media.kinds.is_empty() && !cfg.media.video_thumbnails {
                    bail!(
                        "name the kinds to archive (photo, video, round, gif, audio, voice, sticker, document, or all), or set media.kinds"
                    );
                }
                cfg.media.kinds.clone()
            } else {
                parse_kinds(kinds).map_err(|e| anyhow!("kinds: {e}"))?
            };
            let max_size = max_size
                .as_deref()
                .map(parse_size)
                .transpose()
                .map_err(|e| anyhow!("--max-size: {e}"))?;
            let policy = MediaPolicy {
                kinds,
                max_size,
                video_thumbs: video_thumbnails.unwrap_or(cfg.media.video_thumbnails),
            };
            set(cfg, channel, policy).await
        }
        MediaCommand::Off { channel } => set(cfg, channel, MediaPolicy::default()).await,
        MediaCommand::Verify => verify(cfg).await,
        MediaCommand::Gc => gc(cfg).await,
        MediaCommand::Fetch {
            channel,
            since,
            until,
        } => {
            super::media_fetch::fetch(cfg, channel.as_deref(), since.as_deref(), until.as_deref())
                .await
        }
    }
}

async fn verify(cfg: &Config) -> anyhow::Result<ExitCode> {
    let store = Store::open(&cfg.store).await?;
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("verifying {pos}/{len} files {wide_bar}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let v = crate::media::maintain::verify(&store, &cfg.store.dir, |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })
    .await?;
    bar.finish_and_clear();
    println!(
        "{} file(s) checked: {} missing, {} damaged; {} post(s) queued to fetch again",
        v.checked, v.missing, v.damaged, v.requeued
    );
    store.close().await;
    Ok(if v.missing + v.damaged > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

async fn gc(cfg: &Config) -> anyhow::Result<ExitCode> {
    let store = Store::open(&cfg.store).await?;
    let c = crate::media::maintain::gc(&store, &cfg.store.dir).await?;
    println!(
        "{} file(s) no post needs removed ({})",
        c.files,
        human(c.bytes as i64)
    );
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

async fn set(cfg: &Config, channel: &str, policy: MediaPolicy) -> anyhow::Result<ExitCode> {
    let store = Store::open(&cfg.store).await?;
    let Some(ch) = store.find_channel(channel).await? else {
        bail!("{channel} is not followed; `tgparser channels list` shows those that are");
    };
    store.set_media_policy(ch.id, &policy).await?;
    if policy.is_off() {
        println!("{}: no more files are archived", ch.display_name());
    } else {
        let queued = store
            .media_enqueue_channel(ch.id, cfg.media.max_file_size)
            .await?;
        println!(
            "{}: archiving {}{}; {queued} file(s) of stored posts queued",
            ch.display_name(),
            if policy.kinds.is_empty() {
                "no kind".to_string()
            } else {
                policy.kinds.join(", ")
            },
            if policy.video_thumbs {
                " (and thumbnails of videos not downloaded)"
            } else {
                ""
            }
        );
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

pub(super) fn human(bytes: i64) -> String {
    let b = bytes as f64;
    if b >= 1e9 {
        format!("{:.1} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.1} MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.1} kB", b / 1e3)
    } else {
        format!("{bytes} B")
    }
}

async fn status(cfg: &Config) -> anyhow::Result<ExitCode> {
    let store = Store::open_read_only(&cfg.store).await?;
    let rows = store.media_counts().await?;
    if rows.is_empty() {
        println!("no channel archives files; `tgparser media on <channel>` starts one");
    } else {
        println!(
            "{:<32} {:>8} {:>10} {:>8} {:>7} {:>8}",
            "channel", "files", "size", "pending", "failed", "skipped"
        );
        for r in &rows {
            println!(
                "{:<32} {:>8} {:>10} {:>8} {:>7} {:>8}",
                r.name,
                r.done,
                human(r.bytes),
                r.pending,
                r.failed,
                r.skipped
            );
        }
        println!(
            "stored: {} (each content once)",
            human(store.media_bytes().await?)
        );
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}
