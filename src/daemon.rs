//! The daemon: opens the store and vault, starts the parts under supervision, reports READY,
//! and drains cleanly on SIGTERM/SIGINT.
//!
//! Start order matters for systemd: READY=1 is sent only after migrations ran, the vault key was
//! proven against the database and the health port is bound. Shutdown order: readiness turns
//! 503 and STOPPING=1 first, then the parts drain, then the health port, then the database.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::health::{self, Health};
use crate::notify;
use crate::store::{StateLock, Store};
use crate::supervisor::{Backoff, PartError, PartState, Registry, Supervisor};
use crate::vault::{Vault, VaultKey};

/// Everything must be down within this after a stop signal (systemd's default is 90 s; the
/// product promises 10 s).
const DRAIN_PARTS: Duration = Duration::from_secs(7);
const DRAIN_HEALTH: Duration = Duration::from_secs(1);

#[derive(Debug, Default, Clone)]
pub struct RunOptions {
    /// Stop by itself after this long (`demo --for`).
    pub run_for: Option<Duration>,
}

/// Tells how the daemon got to READY, for the start banner and the benchmark.
pub struct Started {
    pub health_addr: std::net::SocketAddr,
    pub took: Duration,
}

/// No core dump, before any secret is read: a crash's dump would hold the vault key, the auth
/// keys and the bot token in clear. (The systemd unit says `LimitCORE=0` too; this covers a
/// daemon started any other way.)
fn no_core_dumps() {
    use rustix::process::{Resource, Rlimit, setrlimit};
    let none = Rlimit {
        current: Some(0),
        maximum: Some(0),
    };
    if let Err(e) = setrlimit(Resource::Core, none) {
        tracing::warn!(error = %e, "cannot turn core dumps off; a crash could write secrets to disk");
    }
}

pub async fn run(cfg: Config, opts: RunOptions) -> anyhow::Result<()> {
    run_with(cfg, opts, |_| {}).await
}

/// As [`run`], calling `on_ready` once the daemon is ready (the demo prints its banner there).
pub async fn run_with(
    cfg: Config,
    opts: RunOptions,
    on_ready: impl FnOnce(&Started),
) -> anyhow::Result<()> {
    let t0 = Instant::now();
    // Signal handlers first: a SIGTERM that arrives between READY and the wait below must
    // start a clean shutdown, not kill the process with the default action.
    let stop = StopSignals::install()?;
    no_core_dumps();
    for w in &cfg.warnings {
        tracing::warn!("{w}");
    }
    let _lock = StateLock::acquire(&cfg.store.dir)?;
    let key = VaultKey::from_file(&cfg.vault.key_file)?;
    let vault = Arc::new(Vault::new(&key));
    drop(key);
    let store = notify::extending_start(
        "opening the database (a schema upgrade can take minutes on a large archive)",
        Store::open(&cfg.store),
    )
    .await?;
    store
        .verify_or_init_vault(&vault, &cfg.vault.key_file)
        .await?;

    let listener = health::bind(cfg.health.listen).with_context(|| {
        format!(
            "cannot listen on health.listen = {} (is another daemon using it?)",
            cfg.health.listen
        )
    })?;
    let health_addr = listener.local_addr()?;
    let listener = Arc::new(listener);

    let registry = Registry::default();
    let health = Health::new(registry.clone(), store.clone());
    // Two supervisors so the health port outlives the other parts while they drain.
    let infra = Supervisor::new(registry.clone(), Backoff::default());
    let parts = Supervisor::new(registry.clone(), Backoff::default());

    {
        let health = health.clone();
        let listener = listener.clone();
        infra.spawn("health", move |ctx| {
            let health = health.clone();
            let listener = listener.clone();
            async move {
                health::serve(health, &listener, ctx.cancel)
                    .await
                    .map_err(|e| PartError::Retry(format!("health server: {e}")))
            }
        });
    }
    let control = Arc::new(crate::parser::control::SessionControl::default());
    let mut windows_guard: Option<crate::guard::Guard> = None;
    match &cfg.telegram {
        Some(tg) => {
            let (tg, store, vault, control) =
                (tg.clone(), store.clone(), vault.clone(), control.clone());
            let media = cfg.media.clone();
            // Told through the bot when the account stops working for good (frozen).
            let admins = cfg
                .bot
                .as_ref()
                .map(|b| b.admins.clone())
                .unwrap_or_default();
            // One guard and one set of live statistics for the daemon's life, so pacing
            // windows, FLOOD_WAIT pauses and breakers survive restarts of the part.
            let guard = crate::guard::Guard::new(tg.guard.clone(), Some(health.clone()));
            // And across restarts of the daemon: the calls the last process made still count.
            match store.guard_windows().await {
                Ok(w) => guard.restore(&w),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the saved pacing windows; starting with empty ones")
                }
            }
            windows_guard = Some(guard.clone());
            let stats = Arc::new(crate::parser::part::LiveStats::default());
            {
                let (g, s) = (guard.clone(), stats.clone());
                health.add_metrics(Arc::new(move |out: &mut String| {
                    g.write_metrics(out);
                    s.write_metrics(out);
                }));
            }
            parts.spawn("parser", move |ctx| {
                crate::parser::part::run(
                    ctx,
                    tg.clone(),
                    crate::parser::part::Deps {
                        store: store.clone(),
                        vault: vault.clone(),
                        guard: guard.clone(),
                        stats: stats.clone(),
                        control: control.clone(),
                        admins: admins.clone(),
                        media: media.clone(),
                    },
                )
            });
        }
        None => registry.set(
            "parser",
            PartState::NotConfigured {
                hint: "set telegram.api_id and telegram.api_hash_file".into(),
            },
        ),
    }
    match &cfg.bot {
        Some(bot) => {
            let (bot, store, health) = (bot.clone(), store.clone(), health.clone());
            let account = Arc::new(crate::bot::Account {
                telegram: cfg.telegram.clone(),
                vault: vault.clone(),
                control: control.clone(),
                media: cfg.media.clone(),
            });
            parts.spawn("bot", move |ctx| {
                crate::bot::run(
                    ctx,
                    bot.clone(),
                    store.clone(),
                    Some(health.clone()),
                    account.clone(),
                )
            });
        }
        None => registry.set(
            "bot",
            PartState::NotConfigured {
                hint: "set bot.token_file".into(),
            },
        ),
    }

    let background = CancellationToken::new();
    tokio::spawn(health.clone().run_refresher(background.clone()));
    // The first snapshot must reflect the real database state before READY.
    health
        .refresh()
        .await
        .map_err(|e| anyhow::anyhow!("database does not answer at start: {e}"))?;
    store
        .audit(
            "daemon",
            "start",
            serde_json::json!({"version": env!("CARGO_PKG_VERSION")}),
        )
        .await?;

    let started = Started {
        health_addr,
        took: t0.elapsed(),
    };
    let summary = health.current().summary.clone();
    notify::ready(&summary);
    tracing::info!(
        health = %format!("http://{health_addr}"),
        db = %store.path().display(),
        took_ms = started.took.as_millis() as u64,
        "ready: {summary}"
    );
    on_ready(&started);
    tokio::spawn(notify::run_watchdog(health.clone(), background.clone()));
    if let Some(g) = windows_guard.clone() {
        tokio::spawn(save_windows(g, store.clone(), background.clone()));
    }
    tokio::spawn(watch_clock(store.clone(), background.clone()));

    stop.wait(opts.run_for).await;

    tracing::info!("stopping: draining parts");
    health.begin_shutdown();
    notify::stopping();
    let drained = parts.shutdown(DRAIN_PARTS).await;
    if !drained {
        tracing::warn!("some parts did not stop within {DRAIN_PARTS:?}; stopping anyway");
    }
    infra.shutdown(DRAIN_HEALTH).await;
    background.cancel();
    if let Some(g) = &windows_guard
        && let Err(e) = store.save_guard_windows(&g.windows()).await
    {
        tracing::warn!(error = %e, "cannot save the pacing windows");
    }
    let _ = store
        .audit("daemon", "stop", serde_json::json!({"drained": drained}))
        .await;
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Saves the guard's pacing windows every few seconds (a kill -9 loses at most that much).
async fn save_windows(
    guard: crate::guard::Guard,
    store: crate::store::Store,
    cancel: tokio_util::sync::CancellationToken,
) {
    let mut last = Vec::new();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(WINDOWS_EVERY) => {}
            _ = cancel.cancelled() => return,
        }
        let now = guard.windows();
        if now != last {
            match store.save_guard_windows(&now).await {
                Ok(()) => last = now,
                Err(e) => tracing::debug!(error = %e, "cannot save the pacing windows now"),
            }
        }
    }
}

/// Looks at the wall clock every second; when it went back, moves the retries scheduled in
/// wall-clock time back with it (`Store::clock_went_back`), until that is written.
async fn watch_clock(store: crate::store::Store, cancel: tokio_util::sync::CancellationToken) {
    let mut watch = crate::time::ClockWatch::default();
    let mut owed = 0i64;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = cancel.cancelled() => return,
        }
        match watch.jumped() {
            Some(j) if j < 0 => {
                tracing::warn!(
                    jump_s = j,
                    "the system clock went back; retries scheduled meanwhile move back with it"
                );
                owed -= j;
            }
            Some(j) => tracing::warn!(jump_s = j, "the system clock jumped ahead"),
            None => {}
        }
        if owed > 0 {
            match store.clock_went_back(owed).await {
                Ok(moved) => {
                    tracing::info!(moved, "retries rescheduled for the clock set back");
                    owed = 0;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot reschedule retries for the clock set back now; trying again")
                }
            }
        }
    }
}

/// How often the pacing windows are saved.
const WINDOWS_EVERY: Duration = Duration::from_secs(2);

struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn install() -> anyhow::Result<StopSignals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(StopSignals {
            term: signal(SignalKind::terminate()).context("cannot watch SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot watch SIGINT")?,
        })
    }

    async fn wait(mut self, run_for: Option<Duration>) {
        let deadline = async {
            match run_for {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = deadline => tracing::info!("run time is up"),
            _ = self.term.recv() => tracing::info!("SIGTERM received"),
            _ = self.int.recv() => tracing::info!("SIGINT received"),
        }
    }
}
