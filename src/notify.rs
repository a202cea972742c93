//! systemd notification: READY, WATCHDOG, STATUS, STOPPING. Silent when `NOTIFY_SOCKET` is unset
//! (the sd-notify crate returns without doing anything then).

use std::sync::Arc;
use std::time::Duration;

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

use crate::health::Health;

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!(error = %e, "sd_notify failed");
    }
}

pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// The watchdog interval systemd asked for, if any.
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled()
}

/// Sends WATCHDOG=1 every half of the watchdog interval, but only while the database answers
/// and takes writes: a daemon whose store is wedged should be restarted by systemd, not kept
/// alive. Also keeps
/// `STATUS=` in step with readiness.
pub async fn run_watchdog(health: Arc<Health>, cancel: CancellationToken) {
    let every = watchdog_interval().map(|d| d / 2);
    let mut last_status = String::new();
    loop {
        let tick = every.unwrap_or(Duration::from_secs(5));
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = cancel.cancelled() => return,
        }
        let ok = health.refresh().await;
        if every.is_some() {
            match ok {
                Ok(_) => send(&[NotifyState::Watchdog]),
                Err(why) => tracing::warn!("withholding the watchdog ping: {why}"),
            }
        }
        let summary = health.current().summary.clone();
        if summary != last_status {
            status(&summary);
            last_status = summary;
        }
    }
}

/// How often [`extending_start`] asks for more time, and how much it asks for each time.
const START_EXTEND_EVERY: Duration = Duration::from_secs(10);
const START_EXTEND_BY: Duration = Duration::from_secs(30);

/// Runs a start step that may take minutes (opening the store applies pending migrations, and
/// one that rebuilds the search index of a large archive takes that long) while asking systemd
/// every 10 s for 30 s more. Without it, systemd's start timeout (90 s by default) kills the
/// daemon mid-upgrade; the migration's transaction rolls back, and every automatic restart
/// would begin the same upgrade again and be killed again. Waiting is still bounded: the
/// store's busy timeout ends any wait for a lock, so only work keeps the step going.
pub async fn extending_start<F: std::future::Future>(what: &str, step: F) -> F::Output {
    let usec = u32::try_from(START_EXTEND_BY.as_micros()).unwrap_or(u32::MAX);
    let mut step = std::pin::pin!(step);
    let mut tick = tokio::time::interval(START_EXTEND_EVERY);
    loop {
        tokio::select! {
            out = &mut step => return out,
            _ = tick.tick() => send(&[
                NotifyState::ExtendTimeoutUsec(usec),
                NotifyState::Watchdog,
                NotifyState::Status(what),
            ]),
        }
    }
}
