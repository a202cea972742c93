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
use std::time::Duration;

use grammers_client::InvocationError;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::client::{self, Connected};
use super::control::SessionControl;
use crate::config::TelegramConfig;
use crate::guard::Guard;
use crate::store::Store;
use crate::supervisor::{PartContext, PartError, PartState};
use crate::vault::Vault;

mod requests;
mod stats;
mod work;

pub use stats::LiveStats;

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
        r = work::work_loop(&conn, store, &ctx.cancel, refill_rx, stats) => r,
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
pub(super) async fn revoked(store: &Store, error: &str) -> PartError {
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
pub(super) async fn frozen(store: &Store, error: &str) -> PartError {
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
