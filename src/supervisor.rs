//! Supervision of the daemon's parts (health, bot, parser, alerts) inside the one runtime.
//!
//! Each part is a task with its own cancellation token. A part that returns a retryable error or
//! panics is logged and restarted with exponential backoff (1 s doubling to 30 s, with jitter)
//! while the others keep running; a part that fails fatally (revoked credentials, say) stays
//! down and readiness reports why. Every state change lands in the [`Registry`], which the
//! health port and `STATUS=` read.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Where a part is in its life.
#[derive(Debug, Clone, PartialEq)]
pub enum PartState {
    /// Its configuration is absent; `hint` says which keys to set.
    NotConfigured {
        hint: String,
    },
    Running,
    /// Failed and waiting `retry_in` before the next start.
    Backoff {
        retry_in: Duration,
        error: String,
    },
    /// Failed in a way a restart cannot fix; stays down.
    Failed {
        reason: String,
    },
    Stopped,
}

impl PartState {
    pub fn name(&self) -> &'static str {
        match self {
            PartState::NotConfigured { .. } => "not_configured",
            PartState::Running => "running",
            PartState::Backoff { .. } => "backoff",
            PartState::Failed { .. } => "failed",
            PartState::Stopped => "stopped",
        }
    }

    pub const ALL_NAMES: [&'static str; 5] =
        ["not_configured", "running", "backoff", "failed", "stopped"];

    pub fn describe(&self) -> String {
        match self {
            PartState::NotConfigured { hint } => format!("not configured: {hint}"),
            PartState::Running => "running".into(),
            PartState::Backoff { retry_in, error } => {
                format!(
                    "restarting in {:.1} s after: {error}",
                    retry_in.as_secs_f64()
                )
            }
            PartState::Failed { reason } => format!("failed: {reason}"),
            PartState::Stopped => "stopped".into(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct PartStatus {
    pub state: PartState,
    pub restarts: u64,
    pub since: Instant,
}

/// Shared view of every part's state.
#[derive(Clone)]
pub struct Registry {
    parts: Arc<Mutex<BTreeMap<String, PartStatus>>>,
    /// A change counter. A watch channel, not a `Notify`: a change made while the health
    /// refresher is busy must still wake it afterwards, not be lost.
    changed: Arc<watch::Sender<u64>>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            parts: Arc::default(),
            changed: Arc::new(watch::channel(0).0),
        }
    }
}

impl Registry {
    pub fn set(&self, name: &str, state: PartState) {
        let mut parts = self.parts.lock().unwrap_or_else(|p| p.into_inner());
        let entry = parts.entry(name.to_string()).or_insert(PartStatus {
            state: PartState::Stopped,
            restarts: 0,
            since: Instant::now(),
        });
        if entry.state != state {
            entry.since = Instant::now();
        }
        entry.state = state;
        drop(parts);
        self.changed.send_modify(|n| *n += 1);
    }

    fn count_restart(&self, name: &str) {
        let mut parts = self.parts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = parts.get_mut(name) {
            p.restarts += 1;
        }
    }

    pub fn snapshot(&self) -> Vec<(String, PartStatus)> {
        let parts = self.parts.lock().unwrap_or_else(|p| p.into_inner());
        parts.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    pub fn get(&self, name: &str) -> Option<PartStatus> {
        let parts = self.parts.lock().unwrap_or_else(|p| p.into_inner());
        parts.get(name).cloned()
    }

    /// A receiver that sees every state change made after this call.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

/// Why a part stopped.
#[derive(Debug, thiserror::Error)]
pub enum PartError {
    /// Worth another try after a pause (network, timeouts, a bug hit by one input).
    #[error("{0}")]
    Retry(String),
    /// No restart will help until an operator acts (revoked session, wrong credentials).
    #[error("{0}")]
    Fatal(String),
}

/// Restart delays: `min` doubling up to `max`, each with ±25% jitter so parts that failed
/// together do not retry in lockstep.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub min: Duration,
    pub max: Duration,
    /// A part that ran this long before failing starts again from `min`.
    pub reset_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            min: Duration::from_secs(1),
            max: Duration::from_secs(30),
            reset_after: Duration::from_secs(60),
        }
    }
}

impl Backoff {
    pub fn delay(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(16);
        let base = self.min.saturating_mul(1u32 << exp).min(self.max);
        let jitter = rand::rng().random_range(0.75..1.25);
        base.mul_f64(jitter).min(self.max)
    }
}

/// What a running part gets: its cancellation token and the registry, to report finer states.
#[derive(Clone)]
pub struct PartContext {
    pub name: &'static str,
    pub cancel: CancellationToken,
    pub registry: Registry,
}

pub struct Supervisor {
    registry: Registry,
    token: CancellationToken,
    tracker: TaskTracker,
    backoff: Backoff,
}

impl Supervisor {
    pub fn new(registry: Registry, backoff: Backoff) -> Self {
        Supervisor {
            registry,
            token: CancellationToken::new(),
            tracker: TaskTracker::new(),
            backoff,
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Starts `factory` as a supervised part; it is called again for every restart.
    pub fn spawn<F, Fut>(&self, name: &'static str, factory: F)
    where
        F: Fn(PartContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), PartError>> + Send + 'static,
    {
        let registry = self.registry.clone();
        let token = self.token.clone();
        let backoff = self.backoff;
        // Set before the task runs, so a readiness snapshot taken right after spawn sees it.
        registry.set(name, PartState::Running);
        self.tracker.spawn(async move {
            let mut failures = 0u32;
            loop {
                if token.is_cancelled() {
                    break;
                }
                registry.set(name, PartState::Running);
                let ctx = PartContext {
                    name,
                    cancel: token.child_token(),
                    registry: registry.clone(),
                };
                let started = Instant::now();
                let error = match tokio::spawn(factory(ctx)).await {
                    Ok(Ok(())) if token.is_cancelled() => break,
                    Ok(Ok(())) => "exited unexpectedly".to_string(),
                    Ok(Err(PartError::Fatal(reason))) => {
                        tracing::error!(part = name, %reason, "part failed fatally; it stays down until an operator acts");
                        registry.set(name, PartState::Failed { reason });
                        return;
                    }
                    Ok(Err(PartError::Retry(e))) => e,
                    Err(join) if join.is_panic() => {
                        format!("panicked: {}", panic_message(join.into_panic()))
                    }
                    Err(_) => break,
                };
                if started.elapsed() >= backoff.reset_after {
                    failures = 0;
                }
                failures += 1;
                let retry_in = backoff.delay(failures);
                tracing::warn!(part = name, %error, retry_in_ms = retry_in.as_millis() as u64, "part failed; restarting");
                registry.count_restart(name);
                registry.set(name, PartState::Backoff { retry_in, error });
                tokio::select! {
                    _ = tokio::time::sleep(retry_in) => {}
                    _ = token.cancelled() => break,
                }
            }
            registry.set(name, PartState::Stopped);
        });
    }

    /// Cancels every part and waits up to `deadline` for them to drain. Returns whether all did.
    pub async fn shutdown(&self, deadline: Duration) -> bool {
        self.token.cancel();
        self.tracker.close();
        tokio::time::timeout(deadline, self.tracker.wait())
            .await
            .is_ok()
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn fast() -> Backoff {
        Backoff {
            min: Duration::from_millis(10),
            max: Duration::from_millis(40),
            reset_after: Duration::from_secs(60),
        }
    }

    #[test]
    fn backoff_doubles_to_the_cap_with_jitter() {
        let b = Backoff::default();
        for _ in 0..50 {
            let d1 = b.delay(1);
            assert!(d1 >= Duration::from_millis(750) && d1 <= Duration::from_millis(1250));
            let d3 = b.delay(3);
            assert!(d3 >= Duration::from_secs(3) && d3 <= Duration::from_secs(5));
            assert!(b.delay(30) <= Duration::from_secs(30));
            assert!(b.delay(30) >= Duration::from_millis(22_500));
        }
    }

    #[tokio::test]
    async fn a_panicking_part_is_restarted_and_others_keep_running() {
        let reg = Registry::default();
        let sup = Supervisor::new(reg.clone(), fast());
        let runs = Arc::new(AtomicU32::new(0));
        let r = runs.clone();
        sup.spawn("flaky", move |ctx| {
            let r = r.clone();
            async move {
                if r.fetch_add(1, Ordering::SeqCst) < 2 {
                    panic!("boom from outside data");
                }
                ctx.cancel.cancelled().await;
                Ok(())
            }
        });
        sup.spawn("steady", |ctx| async move {
            ctx.cancel.cancelled().await;
            Ok(())
        });
        tokio::time::timeout(Duration::from_secs(5), async {
            while runs.load(Ordering::SeqCst) < 3 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let flaky = reg.get("flaky").unwrap();
        assert_eq!(flaky.state, PartState::Running);
        assert_eq!(flaky.restarts, 2);
        assert_eq!(reg.get("steady").unwrap().restarts, 0);
        assert!(sup.shutdown(Duration::from_secs(2)).await);
        assert_eq!(reg.get("flaky").unwrap().state, PartState::Stopped);
    }

    /// Regression: with `Notify::notify_waiters`, a change made while nobody was waiting was
    /// lost, so the health snapshot stayed stale until its next timer tick.
    #[tokio::test]
    async fn a_change_made_before_waiting_is_not_lost() {
        let reg = Registry::default();
        let mut rx = reg.subscribe();
        reg.set("bot", PartState::Running);
        tokio::time::timeout(Duration::from_millis(100), rx.changed())
            .await
            .expect("change seen")
            .unwrap();
    }

    #[tokio::test]
    async fn a_fatal_failure_stays_down() {
        let reg = Registry::default();
        let sup = Supervisor::new(reg.clone(), fast());
        let runs = Arc::new(AtomicU32::new(0));
        let r = runs.clone();
        sup.spawn("parser", move |_ctx| {
            r.fetch_add(1, Ordering::SeqCst);
            async { Err(PartError::Fatal("AUTH_KEY_UNREGISTERED".into())) }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(matches!(
            reg.get("parser").unwrap().state,
            PartState::Failed { .. }
        ));
        assert!(sup.shutdown(Duration::from_secs(1)).await);
    }
}
