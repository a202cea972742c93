//! The guard around every MTProto call the parser makes: per-method pacing, FLOOD_WAIT pauses,
//! a circuit breaker per DC, timeouts and retries with backoff. grammers' own retries are off
//! (`NoRetries`), so every wait happens here, where it is counted, logged and shown in `/readyz`.
//!
//! Pacing is a sliding window per method ("30 calls per 30 s"), not a token bucket: Telegram's
//! flood control counts calls in a window, and a bucket either overshoots such a window (its
//! burst plus its refill) or, sized not to, uses half of it. Each call is counted from the moment
//! its answer arrives, which is never earlier than the moment Telegram counted it, so our window
//! ends after Telegram's does.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use grammers_client::tl::{self, Identifiable, RemoteCall};
use grammers_client::{Client, InvocationError};
use rand::Rng;

use crate::health::{ExtraCheck, Health, Status};

pub mod botapi;
pub mod breaker;
mod dc_breakers;
mod metrics;
pub mod pacing;

pub use breaker::BreakerState;
use breaker::{Breaker, jitter};
use pacing::Gate;
pub use pacing::{Pace, default_pacing};

/// The guard's settings (`[telegram.guard]` and `[telegram.pacing]`).
#[derive(Debug, Clone)]
pub struct GuardConfig {
    /// Method name → pace; a method not listed is not paced (FLOOD_WAIT still pauses it).
    pub pacing: BTreeMap<String, Pace>,
    pub call_timeout: Duration,
    /// Consecutive failures (network, timeout, 5xx) that open a DC's breaker.
    pub breaker_failures: u32,
    pub breaker_cooldown: Duration,
    pub breaker_cooldown_max: Duration,
    /// Retry delay after the first failure, doubling up to `retry_delay_max`.
    pub retry_delay: Duration,
    pub retry_delay_max: Duration,
    /// How often an idle parser checks that its session and DC still answer.
    pub heartbeat: Duration,
    /// The longest FLOOD_WAIT waited out inside a call; a longer one is returned as
    /// `GuardError::Flood` (interactive commands). `None`: every wait is waited out (the daemon).
    pub longest_wait: Option<Duration>,
}

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig {
            pacing: default_pacing(),
            call_timeout: Duration::from_secs(30),
            breaker_failures: 5,
            breaker_cooldown: Duration::from_secs(30),
            breaker_cooldown_max: Duration::from_secs(300),
            retry_delay: Duration::from_secs(1),
            retry_delay_max: Duration::from_secs(30),
            heartbeat: Duration::from_secs(60),
            longest_wait: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    /// Telegram answered with an error that is the caller's to handle (400 and the like).
    #[error("Telegram answered {code} {name}")]
    Rpc {
        code: i32,
        name: String,
        value: Option<u32>,
    },
    /// The session is no longer valid: nothing will work until someone logs in again.
    #[error("Telegram revoked the session ({0}); log in again with `tgparser login`")]
    Revoked(String),
    /// Telegram froze the account (420 FROZEN_METHOD_INVALID): almost every method is refused
    /// until the freeze is lifted, so nothing is retried.
    #[error(
        "Telegram froze the parsing account ({0}): it can no longer read channels. Open Telegram \
         with this account to see why and to appeal; once the freeze is lifted, restart the \
         daemon, or log in with another account"
    )]
    Frozen(String),
    /// The DC's breaker is open: no call is made until `retry_in` has passed.
    #[error("Telegram DC {dc} is unreachable ({last}); next attempt in {} s", retry_in.as_secs())]
    Unavailable {
        dc: i32,
        retry_in: Duration,
        last: String,
    },
    /// FLOOD_WAIT longer than this caller waits for (`GuardConfig::longest_wait`).
    #[error("Telegram asks to wait {secs} s before calling {method} again")]
    Flood { method: &'static str, secs: u32 },
    /// Not an answer from Telegram (our session storage failed, or the client stopped).
    #[error("{0}")]
    Local(String),
}

impl GuardError {
    pub fn is_rpc(&self, name: &str) -> bool {
        matches!(self, GuardError::Rpc { name: n, .. } if n == name)
    }
}

/// What a failed call means for the guard.
enum Failure {
    Flood(u32),
    Revoked(String),
    Frozen(String),
    /// Network, timeout, 5xx: counts against the DC's breaker, retried with backoff.
    Transient(String),
    Answer(GuardError),
}

fn classify(e: InvocationError) -> Failure {
    match e {
        InvocationError::Rpc(r) => {
            if r.name.starts_with("FROZEN_") {
                // 420 too, but not a wait: retrying it every second would be a storm that
                // never ends (TDLib turns it into a 406 for the same reason).
                Failure::Frozen(r.name)
            } else if r.name == "FLOOD_WAIT"
                || r.name == "FLOOD_PREMIUM_WAIT"
                || (r.code == 420 && r.value.is_some())
            {
                Failure::Flood(r.value.unwrap_or(1).max(1))
            } else if matches!(
                r.name.as_str(),
                "AUTH_KEY_UNREGISTERED"
                    | "SESSION_REVOKED"
                    | "USER_DEACTIVATED"
                    | "USER_DEACTIVATED_BAN"
                    | "AUTH_KEY_DUPLICATED"
            ) {
                Failure::Revoked(r.name)
            } else if r.code >= 500 || r.code == -503 || r.name == "Timeout" {
                Failure::Transient(format!("{} {}", r.code, r.name))
            } else {
                Failure::Answer(GuardError::Rpc {
                    code: r.code,
                    name: r.name,
                    value: r.value,
                })
            }
        }
        InvocationError::Session(e) => {
            Failure::Answer(GuardError::Local(format!("the session store failed: {e}")))
        }
        other => Failure::Transient(other.to_string()),
    }
}

#[derive(Default)]
struct Stats {
    calls: AtomicU64,
    failures: AtomicU64,
    flood_waits: AtomicU64,
    /// Milliseconds, summed over every FLOOD_WAIT Telegram asked for.
    flood_wait_ms: AtomicU64,
    paced_ms: AtomicU64,
    timeouts: AtomicU64,
}

struct Inner {
    config: GuardConfig,
    gates: Mutex<HashMap<String, Arc<Mutex<Gate>>>>,
    /// Serializes callers of one method while they wait for a slot, so they go in order.
    turns: Mutex<HashMap<&'static str, Arc<tokio::sync::Mutex<()>>>>,
    breakers: Mutex<BTreeMap<i32, Breaker>>,
    health: Option<Arc<Health>>,
    stats: Stats,
}

/// Cheap to clone; one per daemon (or per CLI command).
#[derive(Clone)]
pub struct Guard(Arc<Inner>);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Decrements the in-flight count and records the answer time even if the call is cancelled
/// (the request may have reached Telegram and counts there).
struct InFlight(Arc<Mutex<Gate>>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut g = lock(&self.0);
        g.in_flight = g.in_flight.saturating_sub(1);
        g.done.push_back(Instant::now());
    }
}

impl Guard {
    pub fn new(config: GuardConfig, health: Option<Arc<Health>>) -> Guard {
        Guard(Arc::new(Inner {
            config,
            gates: Mutex::new(HashMap::new()),
            turns: Mutex::new(HashMap::new()),
            breakers: Mutex::new(BTreeMap::new()),
            health,
            stats: Stats::default(),
        }))
    }

    /// Readiness, where other parts of the parser report their checks.
    pub fn health(&self) -> Option<&Arc<Health>> {
        self.0.health.as_ref()
    }

    pub fn config(&self) -> &GuardConfig {
        &self.0.config
    }

    fn gate(&self, method: &'static str) -> (Arc<Mutex<Gate>>, Arc<tokio::sync::Mutex<()>>) {
        let gate = {
            let mut gates = lock(&self.0.gates);
            match gates.get(method) {
                Some(g) => g.clone(),
                None => gates.entry(method.to_string()).or_default().clone(),
            }
        };
        let turn = lock(&self.0.turns).entry(method).or_default().clone();
        (gate, turn)
    }

    /// Calls `req` on DC `dc` (the home DC, but for a login being copied) through the guard. Waits out pacing and FLOOD_WAIT (never
    /// skipping the call); retries network errors, timeouts and 5xx with backoff until the DC's
    /// breaker opens, then answers `Unavailable`.
    pub async fn invoke<R: RemoteCall + Identifiable>(
        &self,
        client: &Client,
        dc: i32,
        req: &R,
    ) -> Result<R::Return, GuardError> {
        self.invoke_within(client, dc, req, self.0.config.longest_wait)
            .await
    }

    /// As [`Guard::invoke`], waiting out a FLOOD_WAIT only up to `longest` (`None`: any);
    /// a longer one is returned as `GuardError::Flood` (the method stays paused for it).
    pub async fn invoke_within<R: RemoteCall + Identifiable>(
        &self,
        client: &Client,
        dc: i32,
        req: &R,
        longest: Option<Duration>,
    ) -> Result<R::Return, GuardError> {
        let method = tl::name_for_id(R::CONSTRUCTOR_ID);
        let pace = self.0.config.pacing.get(method).copied();
        let (gate, turn) = self.gate(method);
        loop {
            self.breaker_admit(dc)?;
            let in_flight = {
                let _turn = turn.lock().await;
                loop {
                    let next = lock(&gate).next_slot(Instant::now(), pace);
                    match next {
                        None => break,
                        Some(at) => {
                            let wait = at.saturating_duration_since(Instant::now());
                            // Paused by a FLOOD_WAIT longer than this caller waits: say so
                            // now rather than after it.
                            if longest.is_some_and(|w| wait > w)
                                && lock(&gate).paused_until.is_some_and(|p| p >= at)
                            {
                                return Err(GuardError::Flood {
                                    method,
                                    secs: wait.as_secs_f64().ceil() as u32,
                                });
                            }
                            self.0
                                .stats
                                .paced_ms
                                .fetch_add(wait.as_millis() as u64, Ordering::Relaxed);
                            tokio::time::sleep_until(at.into()).await;
                        }
                    }
                }
                lock(&gate).in_flight += 1;
                InFlight(gate.clone())
            };
            self.0.stats.calls.fetch_add(1, Ordering::Relaxed);
            let result =
                tokio::time::timeout(self.0.config.call_timeout, client.invoke_in_dc(dc, req))
                    .await;
            drop(in_flight);
            let failure = match result {
                Ok(Ok(answer)) => {
                    self.breaker_success(dc);
                    return Ok(answer);
                }
                Ok(Err(e)) => classify(e),
                Err(_) => {
                    self.0.stats.timeouts.fetch_add(1, Ordering::Relaxed);
                    Failure::Transient(format!(
                        "{method}: no answer within {} s",
                        self.0.config.call_timeout.as_secs()
                    ))
                }
            };
            match failure {
                Failure::Flood(secs) => {
                    // The server answered, so the DC is healthy.
                    self.breaker_success(dc);
                    self.pause(method, &gate, secs);
                    if longest.is_some_and(|w| Duration::from_secs(u64::from(secs)) > w) {
                        return Err(GuardError::Flood { method, secs });
                    }
                }
                Failure::Revoked(name) => {
                    self.breaker_success(dc);
                    return Err(GuardError::Revoked(name));
                }
                Failure::Frozen(name) => {
                    self.breaker_success(dc);
                    return Err(GuardError::Frozen(name));
                }
                Failure::Answer(e) => {
                    if !matches!(e, GuardError::Local(_)) {
                        self.breaker_success(dc);
                    }
                    return Err(e);
                }
                Failure::Transient(what) => {
                    self.0.stats.failures.fetch_add(1, Ordering::Relaxed);
                    let failures = self.breaker_failure(dc, &what);
                    tracing::warn!(method, dc, failures, error = %what, "Telegram call failed");
                    if let Some(open) = self.open_error(dc) {
                        return Err(open);
                    }
                    let delay = self
                        .0
                        .config
                        .retry_delay
                        .saturating_mul(1 << failures.saturating_sub(1).min(16))
                        .min(self.0.config.retry_delay_max);
                    tokio::time::sleep(jitter(delay, 0.25)).await;
                }
            }
        }
    }

    /// Each method's recent calls and FLOOD_WAIT pause, in wall-clock time: saved, so that a
    /// new process does not start with empty windows and spend a budget the last one already
    /// used (Telegram counts the account's calls, not the process's).
    pub fn windows(&self) -> Vec<pacing::Window> {
        let gates: Vec<(String, Arc<Mutex<Gate>>)> = lock(&self.0.gates)
            .iter()
            .map(|(m, g)| (m.clone(), g.clone()))
            .collect();
        let (now, wall) = (Instant::now(), crate::time::unix_millis());
        gates
            .into_iter()
            .filter_map(|(method, g)| {
                let pace = self.0.config.pacing.get(&method).copied();
                lock(&g).window(&method, pace, now, wall)
            })
            .collect()
    }

    /// Takes up the windows a previous process saved (calls older than a method's window, and
    /// pauses already over, are dropped).
    pub fn restore(&self, windows: &[pacing::Window]) {
        let (now, wall) = (Instant::now(), crate::time::unix_millis());
        for w in windows {
            let pace = self.0.config.pacing.get(&w.method).copied();
            let gate = lock(&self.0.gates)
                .entry(w.method.clone())
                .or_default()
                .clone();
            lock(&gate).restore(w, pace, now, wall);
        }
    }

    /// FLOOD_WAIT_X: no call of `method` for X s plus jitter; shown in readiness until it ends.
    fn pause(&self, method: &'static str, gate: &Arc<Mutex<Gate>>, secs: u32) {
        let wait = Duration::from_secs(u64::from(secs));
        // A little past the deadline, never before it: a call during the wait is what gets
        // accounts banned.
        let extra = Duration::from_millis(rand::rng().random_range(150..=400));
        let until = Instant::now() + wait + extra;
        {
            let mut g = lock(gate);
            g.paused_until = Some(g.paused_until.map_or(until, |u| u.max(until)));
        }
        let s = &self.0.stats;
        s.flood_waits.fetch_add(1, Ordering::Relaxed);
        s.flood_wait_ms
            .fetch_add(wait.as_millis() as u64, Ordering::Relaxed);
        tracing::warn!(
            method,
            secs,
            "FLOOD_WAIT: pausing this method as Telegram asked"
        );
        if let Some(h) = &self.0.health {
            let name = format!("floodWait:{method}");
            h.set_check(
                &name,
                Some(ExtraCheck {
                    component_type: "telegram",
                    status: Status::Warn,
                    observed_value: Some(f64::from(secs)),
                    observed_unit: Some("s"),
                    output: format!("{method} paused for {secs} s by FLOOD_WAIT"),
                }),
            );
            let h = h.clone();
            let gate = gate.clone();
            tokio::spawn(async move {
                tokio::time::sleep_until(until.into()).await;
                // Cleared only if no later FLOOD_WAIT extended the pause.
                let still = lock(&gate).paused_until.is_some_and(|u| u > Instant::now());
                if !still {
                    h.set_check(&name, None);
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaker_opens_after_the_configured_failures_and_a_failed_probe_doubles_the_cooldown() {
        let guard = Guard::new(
            GuardConfig {
                breaker_failures: 3,
                breaker_cooldown: Duration::from_millis(50),
                ..GuardConfig::default()
            },
            None,
        );
        // Failures apart in time (those together are one: see `breaker::TOGETHER`).
        let apart = || std::thread::sleep(Duration::from_millis(510));
        for i in 1..=2 {
            assert_eq!(guard.breaker_failure(2, "io"), i);
            assert!(guard.breaker_admit(2).is_ok());
            apart();
        }
        guard.breaker_failure(2, "io");
        assert!(matches!(
            guard.breaker_admit(2),
            Err(GuardError::Unavailable { dc: 2, .. })
        ));
        assert_eq!(guard.breakers(), vec![(2, BreakerState::Open)]);
        std::thread::sleep(Duration::from_millis(60));
        // One probe, the others keep waiting.
        assert!(guard.breaker_admit(2).is_ok());
        assert!(guard.breaker_admit(2).is_err());
        guard.breaker_failure(2, "io again");
        let cooldown = lock(&guard.0.breakers)[&2].cooldown;
        assert_eq!(cooldown, Duration::from_millis(100));
        assert_eq!(guard.breakers(), vec![(2, BreakerState::Open)]);
        std::thread::sleep(Duration::from_millis(120));
        assert!(guard.breaker_admit(2).is_ok());
        guard.breaker_success(2);
        assert_eq!(guard.breakers(), vec![(2, BreakerState::Closed)]);
        assert!(guard.breaker_admit(2).is_ok());
        assert!(
            guard.breaker_admit(3).is_ok(),
            "DCs have their own breakers"
        );
    }
}
