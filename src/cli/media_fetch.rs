//! `tgparser media fetch`: the queued files of a selection of posts, downloaded now in the
//! foreground with a progress bar — or, while the daemon runs (it holds the session and
//! downloads them itself), its progress on them.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use tokio_util::sync::CancellationToken;

use super::media::human;
use super::ops::{channel_arg, date_arg};
use crate::config::Config;
use crate::store::{Locked, MediaSelection, MediaTally, Store};

/// How often the progress is read from the database.
const TICK: Duration = Duration::from_millis(500);
/// While watching the daemon: how long without a finished file before asking whether it can
/// download at all.
const STALL: Duration = Duration::from_secs(60);

pub async fn fetch(
    cfg: &Config,
    channel: Option<&str>,
    since: Option<&str>,
    until: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let since = date_arg("since", since)?;
    let until = date_arg("until", until)?;
    let (_lock, store, conn) = match super::login::open(cfg).await {
        Ok(x) => x,
        Err(e) if e.downcast_ref::<Locked>().is_some() => {
            return watch(cfg, channel, since, until).await;
        }
        Err(e) => return Err(e),
    };
    if crate::parser::login::current_account(&conn)
        .await
        .map_err(|e| anyhow!("{e}"))?
        .is_none()
    {
        bail!("the parsing account is not logged in; run `tgparser login` first");
    }
    let sel = MediaSelection {
        channel_id: channel_arg(&store, channel).await?,
        since,
        until,
    };
    let conn = Arc::new(conn);
    let downloader = crate::media::Downloader::new(
        conn.clone(),
        store.clone(),
        cfg.media.clone(),
        cfg.store.dir.join("media"),
    );
    let cancel = CancellationToken::new();
    // Ctrl-C stops after the parts in flight: what was written is resumed next time.
    tokio::spawn({
        let cancel = cancel.clone();
        async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                cancel.cancel();
            }
        }
    });
    let before = store.media_tally(&sel).await?;
    let bar = Progress::new(before);
    let shown = tokio::spawn({
        let (store, sel, bar) = (store.clone(), sel.clone(), bar.clone());
        async move {
            loop {
                tokio::time::sleep(TICK).await;
                if let Ok(t) = store.media_tally(&sel).await {
                    bar.show(t);
                }
            }
        }
    });
    let t = Instant::now();
    let result = downloader.fetch(&sel, &cancel).await;
    shown.abort();
    // The next process (the daemon, or this command again) counts these calls too.
    if let Err(e) = store.save_guard_windows(&conn.guard.windows()).await {
        tracing::warn!(error = %e, "cannot save the pacing windows");
    }
    let after = store.media_tally(&sel).await?;
    bar.done();
    let stopped = result.map_err(|e| anyhow!("downloads stopped: {e}"))?;
    let secs = t.elapsed().as_secs_f64().max(0.001);
    let bytes = after.done_bytes - before.done_bytes;
    println!(
        "{} file(s) fetched ({}, {}/s); {} skipped, {} failed in all; {} still pending",
        after.done - before.done,
        human(bytes),
        human((bytes as f64 / secs) as i64),
        after.skipped,
        after.failed,
        after.pending
    );
    if after.waiting > 0 {
        println!(
            "{} file(s) failed for now and are tried again later (`tgparser media status`)",
            after.waiting
        );
    }
    if cancel.is_cancelled() {
        println!("interrupted: the parts written are kept, and the next run resumes them");
    }
    store.close().await;
    if let Some(why) = stopped {
        eprintln!("downloads paused: {why}");
        return Ok(ExitCode::from(1));
    }
    Ok(if after.failed > before.failed || after.waiting > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The daemon runs and downloads: its progress on the selection, until nothing of it is
/// left to try now.
async fn watch(
    cfg: &Config,
    channel: Option<&str>,
    since: Option<i64>,
    until: Option<i64>,
) -> anyhow::Result<ExitCode> {
    let store = Store::open_read_only(&cfg.store).await?;
    let sel = MediaSelection {
        channel_id: channel_arg(&store, channel).await?,
        since,
        until,
    };
    eprintln!(
        "the daemon is running and downloads these files itself; showing its progress (Ctrl-C stops watching, not the downloads)"
    );
    let before = store.media_tally(&sel).await?;
    let bar = Progress::new(before);
    let mut last = before;
    let mut moved = Instant::now();
    let mut warned = false;
    loop {
        let t = store.media_tally(&sel).await?;
        bar.show(t);
        if t.pending == t.waiting {
            break;
        }
        if t != last {
            (last, moved, warned) = (t, Instant::now(), false);
        } else if moved.elapsed() > STALL && !warned {
            bar.println(
                "no file finished in the last minute: is the parser logged in and Telegram reachable (`tgparser status`)? Are downloads paused for room (`/readyz`)?",
            );
            warned = true;
        }
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    bar.done();
    let after = store.media_tally(&sel).await?;
    println!(
        "{} file(s) fetched ({}); {} skipped, {} failed in all; {} still pending",
        after.done - before.done,
        human(after.done_bytes - before.done_bytes),
        after.skipped,
        after.failed,
        after.pending
    );
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

/// The progress bar (on a terminal), from the selection's tally.
#[derive(Clone)]
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    before: MediaTally,
}

impl Progress {
    fn new(before: MediaTally) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = indicatif::ProgressBar::new(before.pending as u64);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} {pos}/{len} files {wide_bar} {msg} ({elapsed})",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            b.enable_steady_tick(Duration::from_millis(200));
            b
        });
        Progress { bar, before }
    }

    fn show(&self, t: MediaTally) {
        let Some(b) = &self.bar else { return };
        let ended = |x: &MediaTally| x.done + x.failed + x.skipped;
        let pos = (ended(&t) - ended(&self.before)).max(0) as u64;
        b.set_length(pos + t.pending as u64);
        b.set_position(pos);
        b.set_message(human(t.done_bytes - self.before.done_bytes));
    }

    fn println(&self, line: &str) {
        match &self.bar {
            Some(b) => b.println(line),
            None => eprintln!("{line}"),
        }
    }

    fn done(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
