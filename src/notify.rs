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

/// Sends WATCHDOG=1 every half of the watchdog interval, but only while the database answers:
/// a daemon whose store is wedged should be restarted by systemd, not kept alive. Also keeps
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
        let ok = health.refresh().await.is_ok();
        if every.is_some() {
            if ok {
                send(&[NotifyState::Watchdog]);
            } else {
                tracing::warn!("database does not answer; withholding the watchdog ping");
            }
        }
        let summary = health.current().summary.clone();
        if summary != last_status {
            status(&summary);
            last_status = summary;
        }
    }
}
