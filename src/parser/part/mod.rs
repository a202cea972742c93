//! The parser as a part of the daemon: waits for a login, then backfills the followed channels a
//! page at a time in turn while following new posts, edits and deletions live. Channel changes
//! (added, removed, paused from the CLI or the bot) are picked up from the database without a
//! restart.
//!
//! Updates are the follower's (`parser::follow`): pushed or caught up from each channel's saved
//! pts. Posts it cannot get that way are refilled from history: a post whose id jumps past the
//! newest stored one queues a refill of the ids in between (in the database, with the post:
//! `store::Refill`, so a crash cannot lose it), and a start tops up each channel that has no
//! saved pts from its newest stored post.

use std::sync::Arc;
use std::time::{Duration, Instant};

use grammers_client::InvocationError;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::backfill::{self, BackfillError};
use super::client::{self, Connected};
use super::control::SessionControl;
use crate::config::TelegramConfig;
use crate::guard::Guard;
use crate::store::{ChannelRecord, Store};
use crate::supervisor::{PartContext, PartError, PartState};
use crate::vault::Vault;

mod requests;
mod stats;

pub use stats::LiveStats;

const IDLE: Duration = Duration::from_secs(2);
const LOGIN_POLL: Duration = Duration::from_secs(5);

fn is_revoked(e: &InvocationError) -> bool {
    matches!(e, InvocationError::Rpc(r) if r.name == "AUTH_KEY_UNREGISTERED" || r.name == "SESSION_REVOKED" || r.name == "USER_DEACTIVATED" || r.name == "USER_DEACTIVATED_BAN")
}

pub(crate) use crate::store::Refill;

/// What the parser part works with, made once for the daemon's life.
pub struct Deps {
    pub store: Store,
    pub vault: Arc<Vault>,
    pub guard: Guard,
    pub stats: Arc<LiveStats>,
    pub control: Arc<SessionControl>,
    /// Bot admins, told when the account stops working for good.
    pub admins: Vec<i64>,
    /// What the media archive downloads.
    pub media: crate::config::MediaConfig,
}

/// The parser's tasks beside the work loop, and their settings.
struct Tasks {
    heartbeat: Duration,
    follow: super::follow::Settings,
    media: crate::config::MediaConfig,
}

pub async fn run(ctx: PartContext, tg: TelegramConfig, deps: Deps) -> Result<(), PartError> {
    let Deps {
        store,
        vault,
        guard,
        stats,
        control,
        admins,
        media,
    } = deps;
    let connect = || async {
        // Not while the bot's login dialog is writing the session.
        let _gate = control.hold().await;
        client::connect(&tg, store.clone(), vault.clone(), guard.clone())
            .await
            .map_err(|e| {
                if e.is_config() {
                    PartError::Fatal(e.to_string())
                } else {
                    PartError::Retry(e.to_string())
                }
            })
    };
    // Set when Telegram revoked the session: the part stays failed (readiness fails) until the
    // account logs in again, through the bot or the CLI, and then parses on by itself.
    let mut revoked_by: Option<String> = None;
    loop {
        let mut conn = connect().await?;
        // Logged in? If not, wait for a login (CLI or bot) instead of failing: readiness warns.
        loop {
            // Through the DC's breaker: a DC that keeps failing here opens it (readiness
            // shows `breaker:mtproto-dcN`) and is left alone until it may be tried again.
            let authorized = match conn
                .guard
                .outside(conn.dc(), conn.client.is_authorized())
                .await
            {
                Ok(r) => r,
                Err(e) => {
                    let wait = match &e {
                        crate::guard::GuardError::Unavailable { retry_in, .. } => *retry_in,
                        _ => LOGIN_POLL,
                    };
                    tracing::warn!(error = %e, "not connecting to Telegram until the breaker lets a call through");
                    ctx.registry.set(
                        ctx.name,
                        PartState::Backoff {
                            error: e.to_string(),
                            retry_in: wait,
                        },
                    );
                    drop(conn);
                    tokio::select! {
                        _ = tokio::time::sleep(wait.max(Duration::from_millis(100))) => {}
                        _ = ctx.cancel.cancelled() => return Ok(()),
                    }
                    conn = connect().await?;
                    continue;
                }
            };
            match authorized {
                Ok(true) => break,
                Ok(false) => ctx.registry.set(
                    ctx.name,
                    match &revoked_by {
                        Some(reason) => PartState::Failed {
                            reason: reason.clone(),
                        },
                        None => PartState::NotConfigured {
                            hint: "the account is not logged in: run `tgparser login`".into(),
                        },
                    },
                ),
                Err(e) if is_revoked(&e) => {
                    // Audited once per revocation, not at every look.
                    let reason = match revoked_by.take() {
                        Some(reason) => reason,
                        None => revoked_reason(&store, &e.to_string()).await,
                    };
                    ctx.registry.set(
                        ctx.name,
                        PartState::Failed {
                            reason: reason.clone(),
                        },
                    );
                    revoked_by = Some(reason);
                }
                // grammers says only "session error" for our session store's failures
                // (a full disk, another program's lock): say what it was.
                Err(InvocationError::Session(e)) => return Err(PartError::Retry(e.to_string())),
                Err(e) => return Err(PartError::Retry(format!("cannot reach Telegram: {e}"))),
            }
            // The session may be written by `tgparser login` or the bot meanwhile: let go of
            // it and reopen it.
            drop(conn);
            tokio::select! {
                _ = control.wait_login(LOGIN_POLL) => {}
                _ = ctx.cancel.cancelled() => return Ok(()),
            }
            conn = connect().await?;
        }
        if revoked_by.take().is_some() {
            tracing::info!("logged in again after the session was revoked; parsing resumes");
        }
        match logged_in(
            &ctx,
            conn,
            &store,
            &stats,
            &control,
            Tasks {
                heartbeat: tg.guard.heartbeat,
                follow: super::follow::Settings {
                    admins: admins.clone().into(),
                    sweep: tg.follow_sweep,
                    join: tg.join,
                    schedule: tg.follow_schedule,
                },
                media: media.clone(),
            },
        )
        .await
        {
            Err(PartError::Fatal(reason)) if reason.starts_with(FROZEN) => {
                tell_admins(&store, &admins, "account_frozen", &reason).await;
                return Err(PartError::Fatal(reason));
            }
            Err(PartError::Fatal(reason)) if reason.starts_with(REVOKED) => {
                tracing::error!("{reason}");
                ctx.registry.set(
                    ctx.name,
                    PartState::Failed {
                        reason: reason.clone(),
                    },
                );
                revoked_by = Some(reason);
            }
            other => return other,
        }
    }
}

/// The parser at work with a logged-in connection, until it stops: cancelled, a logout asked
/// through the bot, or a failure (a revoked session among them).
async fn logged_in(
    ctx: &PartContext,
    mut conn: Connected,
    store: &Store,
    stats: &Arc<LiveStats>,
    control: &SessionControl,
    tasks: Tasks,
) -> Result<(), PartError> {
    let Tasks {
        heartbeat: heartbeat_every,
        follow: settings,
        media,
    } = tasks;
    ctx.registry.set(ctx.name, PartState::Running);
    tracing::info!("parser running");

    let (refill_tx, refill_rx) = mpsc::unbounded_channel();
    // Posts made while the daemon was not following. A channel with a saved pts is caught up
    // by the follower (posts, edits and deletions); one without (its pts was never read) is
    // topped up from history above its newest stored post.
    for ch in store
        .channels()
        .await
        .map_err(|e| PartError::Retry(e.to_string()))?
    {
        if ch.state == "active"
            && conn.session.channel_pts(ch.id).is_none()
            && let Ok(Some(newest)) = store.newest_id(ch.id).await
        {
            let _ = refill_tx.send(Refill {
                channel: ch.id,
                after: i32::try_from(newest).unwrap_or(i32::MAX),
                before: 0,
            });
        }
    }
    let updates = conn.updates.take();
    let conn = Arc::new(conn);
    let follow = tokio::spawn(super::follow::follow(
        conn.clone(),
        updates,
        store.clone(),
        ctx.cancel.clone(),
        refill_tx,
        stats.clone(),
        settings.clone(),
    ));
    let requests = tokio::spawn(requests::requests_loop(
        conn.clone(),
        store.clone(),
        settings.join,
        crate::store::MediaPolicy::for_new(&media),
        ctx.cancel.clone(),
    ));
    let heartbeat = tokio::spawn(heartbeat(
        conn.clone(),
        store.clone(),
        ctx.cancel.clone(),
        heartbeat_every,
    ));
    // Files, beside the text: never in its way.
    let media_dir = store
        .path()
        .parent()
        .map_or_else(|| std::path::PathBuf::from("media"), |d| d.join("media"));
    let mut media = tokio::spawn(
        crate::media::Downloader::new(conn.clone(), store.clone(), media, media_dir)
            .run(ctx.cancel.clone()),
    );
    let joined = |what: &'static str| {
        move |r: Result<Result<(), PartError>, tokio::task::JoinError>| match r {
            Ok(r) => r,
            Err(e) => Err(PartError::Retry(format!("{what} stopped: {e}"))),
        }
    };
    let mut follow = follow;
    let mut requests = requests;
    let mut heartbeat = heartbeat;
    let mut logout = None;
    let result = tokio::select! {
        r = work_loop(&conn, store, &ctx.cancel, refill_rx, stats) => r,
        r = &mut requests => joined("channel requests")(r),
        r = &mut follow => joined("following updates")(r),
        r = &mut heartbeat => joined("the heartbeat")(r),
        r = &mut media => joined("the media downloads")(r),
        tx = control.logout_requested() => {
            logout = Some(tx);
            Ok(())
        }
    };
    requests.abort();
    heartbeat.abort();
    media.abort();
    follow.abort();
    // What the follower stored is covered by the pts it saved: written now, not in a second.
    let _ = conn.session.flush().await;
    if let Some(answer) = logout {
        // Asked through the bot: log out with our own connection, then wait for a new login
        // (the supervisor restarts the part, which finds no login).
        let who = super::login::current_account(&conn)
            .await
            .ok()
            .flatten()
            .map(|a| format!("{} (id {})", a.name, a.user_id))
            .unwrap_or_else(|| "the account".into());
        let r = super::login::logout(&conn)
            .await
            .map(|()| who)
            .map_err(|e| e.to_string());
        let outcome = match &r {
            Ok(_) => "the account logged out; waiting for a new login".to_string(),
            Err(e) => format!("logging out failed ({e}); resuming"),
        };
        let _ = answer.send(r);
        return Err(PartError::Retry(outcome));
    }
    result
}

/// A refill Telegram refuses (a 400) this many times is dropped.
const REFILL_REFUSALS: u32 = 3;

/// A cheap call (`updates.getState`) at an interval, so an idle parser still notices a revoked
/// session or an unreachable DC (readiness shows either) instead of waiting for the next post.
async fn heartbeat(
    conn: Arc<Connected>,
    store: Store,
    cancel: CancellationToken,
    every: Duration,
) -> Result<(), PartError> {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = cancel.cancelled() => return Ok(()),
        }
        match conn
            .invoke(&grammers_client::tl::functions::updates::GetState {})
            .await
        {
            Ok(_) => {}
            Err(crate::guard::GuardError::Revoked(e)) => return Err(revoked(&store, &e).await),
            Err(crate::guard::GuardError::Frozen(e)) => return Err(frozen(&store, &e).await),
            // The guard counts it (breaker, readiness); the heartbeat goes on.
            Err(e) => tracing::debug!(error = %e, "heartbeat failed"),
        }
    }
}

/// How the error a revoked session stops the parser with begins (see `run`).
const REVOKED: &str = "Telegram revoked the session";

/// Audits a revoked session and says what to do about it.
async fn revoked_reason(store: &Store, error: &str) -> String {
    let _ = store
        .audit(
            "daemon",
            "session_revoked",
            serde_json::json!({ "error": error }),
        )
        .await;
    format!(
        "{REVOKED} ({error}); log in again: /login in the bot (parsing resumes by itself), or \
         `tgparser login` with the daemon stopped"
    )
}

/// The error a revoked session stops the parser's tasks with; `run` waits for a new login.
async fn revoked(store: &Store, error: &str) -> PartError {
    PartError::Fatal(revoked_reason(store, error).await)
}

/// The error a revoked session or a frozen account stops the parser with (audited).
pub(crate) async fn fatal(store: &Store, e: crate::guard::GuardError) -> PartError {
    match e {
        crate::guard::GuardError::Frozen(name) => frozen(store, &name).await,
        crate::guard::GuardError::Revoked(name) => revoked(store, &name).await,
        other => PartError::Retry(other.to_string()),
    }
}

/// How the error a frozen account stops the parser with begins.
const FROZEN: &str = "Telegram froze the parsing account";

/// Audits a frozen account; the error stops the part for good (nothing is retried: every
/// call would be refused again, and a storm of refused calls does the account no good).
async fn frozen(store: &Store, error: &str) -> PartError {
    let _ = store
        .audit(
            "daemon",
            "account_frozen",
            serde_json::json!({ "error": error }),
        )
        .await;
    PartError::Fatal(crate::guard::GuardError::Frozen(error.to_string()).to_string())
}

/// Queues `text` to every admin through the bot, once a day per `what`.
async fn tell_admins(store: &Store, admins: &[i64], what: &str, text: &str) {
    let day = crate::time::unix_now() / 86_400;
    for &chat in admins {
        if let Err(e) = store
            .queue_notice(chat, &format!("notice:{what}:{day}:{chat}"), text)
            .await
        {
            tracing::warn!(error = %e, "cannot queue the notice to the admins");
        }
    }
}

/// What to do with a failed page or refill: go on, wait, or stop the part.
async fn handle(
    err: BackfillError,
    store: &Store,
    cancel: &CancellationToken,
) -> Result<(), PartError> {
    match err {
        BackfillError::Private(name) => {
            tracing::warn!(channel = %name, "channel is private; skipped until resumed");
            Ok(())
        }
        BackfillError::Revoked(e) => Err(revoked(store, &e).await),
        BackfillError::Frozen(e) => Err(frozen(store, &e).await),
        BackfillError::Unavailable { retry_in, message } => {
            tracing::warn!(retry_in_s = retry_in.as_secs(), "{message}");
            tokio::select! {
                _ = tokio::time::sleep(retry_in.max(Duration::from_millis(100))) => Ok(()),
                _ = cancel.cancelled() => Ok(()),
            }
        }
        // One channel's trouble (a 400 for its history) must not stop the others.
        BackfillError::Telegram { channel, error } => {
            tracing::warn!(%channel, %error, "history request refused; will try again later");
            Ok(())
        }
        // A full disk or another program's lock: wait for writes to work again; the posts
        // not stored are fetched again (the cursor did not move; a refill is queued).
        BackfillError::Store(e) if crate::store::writes::failing().is_some() => {
            tracing::warn!("{e}; waiting for the database to take writes");
            store.wait_writable(cancel).await;
            Ok(())
        }
        BackfillError::Store(e) => Err(PartError::Retry(e.to_string())),
    }
}

async fn log_page(store: &Store, stored: Vec<(i64, backfill::PageOutcome)>) {
    for (id, _) in stored.into_iter().filter(|(_, o)| o.done) {
        let name = match store.find_channel(&id.to_string()).await {
            Ok(Some(c)) => c.display_name(),
            _ => id.to_string(),
        };
        tracing::info!(channel = %name, "backfill complete");
    }
}

async fn work_loop(
    conn: &Connected,
    store: &Store,
    cancel: &CancellationToken,
    mut refills: mpsc::UnboundedReceiver<Refill>,
    stats: &LiveStats,
) -> Result<(), PartError> {
    let mut last_flush = Instant::now();
    let mut queued: Vec<Refill> = Vec::new();
    let mut refused: std::collections::HashMap<Refill, u32> = std::collections::HashMap::new();
    let mut pipe = backfill::Pipeline::new(store.clone());
    loop {
        if cancel.is_cancelled() {
            let _ = pipe.finish().await;
            return Ok(());
        }
        while let Ok(r) = refills.try_recv() {
            if !queued.contains(&r) {
                queued.push(r);
            }
        }
        // Refills first: they are the freshest posts. Those in memory (a start's top-up, a
        // range the database could not take), then those in the database (of active
        // channels: a paused channel's wait for it to resume).
        let next = match queued.first().copied() {
            Some(r) => {
                queued.remove(0);
                Some((r, false))
            }
            None => store
                .refills()
                .await
                .map_err(|e| PartError::Retry(e.to_string()))?
                .first()
                .map(|r| (*r, true)),
        };
        if let Some((r, stored)) = next {
            let ch = store
                .find_channel(&r.channel.to_string())
                .await
                .map_err(|e| PartError::Retry(e.to_string()))?;
            let Some(ch) = ch.filter(|c| c.state == "active") else {
                continue;
            };
            let res = tokio::select! {
                r = backfill::refill(conn, store, &ch, r.after, r.before) => r,
                _ = cancel.cancelled() => return Ok(()),
            };
            match res {
                Ok(n) => {
                    refused.remove(&r);
                    // Also the database's copy of a range taken from memory.
                    store
                        .refill_done(r)
                        .await
                        .map_err(|e| PartError::Retry(e.to_string()))?;
                    if n > 0 {
                        tracing::info!(channel = %ch.display_name(), posts = n, after = r.after, "gap refilled from history");
                    }
                    stats.refilled(ch.id, &ch.display_name(), n);
                }
                Err(e) => {
                    // Try again later; a refusal (a 400) only a few times, or a refill
                    // Telegram keeps refusing would run before every backfill page forever.
                    let again = match &e {
                        BackfillError::Private(_) => false,
                        BackfillError::Telegram { .. } if stored => !store
                            .refill_refused(r, REFILL_REFUSALS)
                            .await
                            .map_err(|e| PartError::Retry(e.to_string()))?,
                        BackfillError::Telegram { .. } => {
                            let tries = refused.entry(r).or_insert(0);
                            *tries += 1;
                            *tries < REFILL_REFUSALS
                        }
                        _ => true,
                    };
                    if !again {
                        refused.remove(&r);
                        store
                            .refill_done(r)
                            .await
                            .map_err(|e| PartError::Retry(e.to_string()))?;
                    } else if !stored {
                        queued.push(r);
                    }
                    handle(e, store, cancel).await?;
                }
            }
            continue;
        }
        let pending: Vec<ChannelRecord> = store
            .channels()
            .await
            .map_err(|e| PartError::Retry(e.to_string()))?
            .into_iter()
            .filter(|c| c.state == "active" && c.backfill_state != "done")
            .filter_map(|c| pipe.view(c))
            .collect();
        if pending.is_empty() {
            match pipe.finish().await {
                Ok(prev) => log_page(store, prev).await,
                Err(e) => handle(e, store, cancel).await?,
            }
            tokio::select! {
                _ = tokio::time::sleep(IDLE) => {}
                r = refills.recv() => if let Some(r) = r { queued.push(r) },
                _ = cancel.cancelled() => return Ok(()),
            }
        }
        for ch in pending {
            let res = tokio::select! {
                r = pipe.step(conn, &ch) => r,
                _ = cancel.cancelled() => {
                    let _ = pipe.finish().await;
                    return Ok(());
                }
            };
            match res {
                Ok(prev) => log_page(store, prev).await,
                Err(e) => handle(e, store, cancel).await?,
            }
            if !refills.is_empty() {
                break;
            }
        }
        if last_flush.elapsed() > Duration::from_secs(5) {
            let _ = conn.session.flush().await;
            last_flush = Instant::now();
        }
    }
}
