//! The guard around every Bot API call the bot makes (replies and alerts alike): governor
//! quotas overall, per private chat and per group, `429 retry_after` honoured per chat, a
//! circuit breaker for the Bot API, call timeouts. Errors are classified for the caller, and no
//! error text leaves here with the token in it (it is part of every request URL).
//!
//! Quotas are GCRA with small bursts (governor lets a whole burst through at once): the defaults
//! stay under Telegram's documented limits of ~30 messages/s overall, 1/s per chat and 20/min
//! per group, so steady delivery meets no 429 at all.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::future::Future;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota};
use teloxide::{ApiError, RequestError};

use super::Pace;
use super::breaker::{Breaker, BreakerConfig, BreakerState, jitter};
use crate::health::{ExtraCheck, Health, Status};

/// `[bot]` delivery settings.
#[derive(Debug, Clone)]
pub struct BotGuardConfig {
    /// Messages overall; `None`: not paced.
    pub overall: Option<Pace>,
    /// Messages per private chat.
    pub per_chat: Option<Pace>,
    /// Messages per group chat.
    pub per_group: Option<Pace>,
    pub call_timeout: Duration,
    pub breaker: BreakerConfig,
    /// The longest `retry_after` a call waits out itself; a longer one is returned to the
    /// caller (the outbox reschedules the message instead of holding a sender).
    pub longest_wait: Duration,
}

impl Default for BotGuardConfig {
    fn default() -> Self {
        BotGuardConfig {
            overall: Some(Pace {
                calls: 30,
                window: Duration::from_secs(1),
            }),
            per_chat: Some(Pace {
                calls: 1,
                window: Duration::from_secs(1),
            }),
            per_group: Some(Pace {
                calls: 20,
                window: Duration::from_secs(60),
            }),
            call_timeout: Duration::from_secs(30),
            breaker: BreakerConfig {
                threshold: 5,
                cooldown: Duration::from_secs(30),
                cooldown_max: Duration::from_secs(300),
            },
            longest_wait: Duration::from_secs(30),
        }
    }
}

/// How a Bot API call failed, as the caller needs to act on it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BotCallError {
    /// The chat cannot be written to any more: the user blocked the bot, was deactivated, or
    /// the bot was removed from the group.
    #[error("the chat is unreachable: {0}")]
    Unreachable(String),
    /// The group was upgraded to a supergroup with this id: send there instead
    /// (`parameters.migrate_to_chat_id`).
    #[error("the group moved to the supergroup {to}: {text}")]
    Moved { to: i64, text: String },
    /// Telegram refused this request (a 400 and the like): sending it again will not help.
    #[error("Telegram refused the request: {0}")]
    Refused(String),
    /// An edit that changes nothing ("message is not modified": the same page pressed twice):
    /// the message already says it; no failure for the caller.
    #[error("the message is not modified")]
    NotModified,
    /// Network error, timeout or 5xx; counted by the breaker. Worth retrying later.
    #[error("the Bot API failed: {0}")]
    Transient(String),
    /// The breaker is open: nothing was sent.
    #[error("the Bot API is unreachable ({last}); next attempt in {} s", retry_in.as_secs())]
    Unavailable { retry_in: Duration, last: String },
    /// Telegram asked to wait longer than this caller waits.
    #[error("Telegram asks to wait {} s before writing to this chat again", .0.as_secs())]
    RetryAfter(Duration),
}

impl BotCallError {
    /// When trying again makes sense, and after how long at the least.
    pub fn retry_in(&self) -> Option<Duration> {
        match self {
            BotCallError::Unreachable(_)
            | BotCallError::Refused(_)
            | BotCallError::NotModified
            | BotCallError::Moved { .. } => None,
            BotCallError::Transient(_) => Some(Duration::ZERO),
            BotCallError::Unavailable { retry_in, .. } | BotCallError::RetryAfter(retry_in) => {
                Some(*retry_in)
            }
        }
    }
}

enum Outcome {
    RetryAfter(u32),
    Error(BotCallError),
}

/// Telegram's 5xx answers reach teloxide as a JSON body whose description it does not know.
fn is_server_error(description: &str) -> bool {
    let d = description.to_ascii_lowercase();
    [
        "internal server error",
        "bad gateway",
        "service unavailable",
        "gateway timeout",
    ]
    .iter()
    .any(|s| d.contains(s))
}

fn classify(e: RequestError, redact: &dyn Fn(&str) -> String) -> Outcome {
    let text = redact(&e.to_string());
    match e {
        RequestError::RetryAfter(s) => Outcome::RetryAfter(s.seconds()),
        RequestError::Api(
            ApiError::BotBlocked
            | ApiError::UserDeactivated
            | ApiError::CantInitiateConversation
            | ApiError::CantTalkWithBots
            | ApiError::BotKicked
            | ApiError::BotKickedFromSupergroup
            | ApiError::BotKickedFromChannel
            | ApiError::ChatNotFound,
        ) => Outcome::Error(BotCallError::Unreachable(text)),
        RequestError::Api(ApiError::Unknown(d)) if is_server_error(&d) => {
            Outcome::Error(BotCallError::Transient(text))
        }
        RequestError::MigrateToChatId(to) => Outcome::Error(BotCallError::Moved { to: to.0, text }),
        RequestError::Api(ApiError::MessageNotModified) => {
            Outcome::Error(BotCallError::NotModified)
        }
        RequestError::Api(_) => Outcome::Error(BotCallError::Refused(text)),
        // A body that is not JSON (a proxy's error page), a network or I/O error.
        RequestError::Network(_) | RequestError::InvalidJson { .. } | RequestError::Io(_) => {
            Outcome::Error(BotCallError::Transient(text))
        }
    }
}

#[derive(Default)]
struct Stats {
    calls: AtomicU64,
    failures: AtomicU64,
    timeouts: AtomicU64,
    retry_afters: AtomicU64,
    retry_after_ms: AtomicU64,
    paced_ms: AtomicU64,
}

struct Inner {
    config: BotGuardConfig,
    overall: Option<DefaultDirectRateLimiter>,
    chats: Option<DefaultKeyedRateLimiter<i64>>,
    groups: Option<DefaultKeyedRateLimiter<i64>>,
    /// Chats Telegram asked us to leave alone (429), until when.
    paused: Mutex<HashMap<i64, Instant>>,
    breaker: Mutex<Breaker>,
    health: Option<Arc<Health>>,
    stats: Stats,
    token: Vec<String>,
    /// Requests on the wire at once. Every concurrent request is one more HTTP connection in the
    /// client's pool (buffers, a socket, kept idle for 90 s after): a burst of answers to 500
    /// chats opened over a hundred. Telegram's quotas (30 messages/s) are far below what this
    /// many carry even at 100 ms a request.
    in_flight: tokio::sync::Semaphore,
    /// When each outbox request on the wire was sent, by a number of its own: the oldest shows
    /// a Bot API that takes requests and never answers.
    on_wire: Mutex<std::collections::BTreeMap<u64, Instant>>,
    next_call: AtomicU64,
}

/// A request on the wire, forgotten when its call ends however it ends (cancelled included).
struct OnWire<'a>(&'a Inner, u64);

impl Drop for OnWire<'_> {
    fn drop(&mut self) {
        lock(&self.0.on_wire).remove(&self.1);
    }
}

/// See `Inner::in_flight`.
pub const MAX_IN_FLIGHT: usize = 32;

/// Cheap to clone; one per daemon.
#[derive(Clone)]
pub struct BotGuard(Arc<Inner>);

/// A GCRA quota that never lets more than `p.calls` through in any window of `p.window`:
/// after a burst of `burst`, one call every `window / (calls - burst + 1)`.
fn quota(p: Pace, burst: u32) -> Option<Quota> {
    let burst = burst.clamp(1, p.calls.max(1));
    let calls = NonZeroU32::new(p.calls)?;
    let period = p.window / (calls.get() - burst + 1);
    Some(Quota::with_period(period)?.allow_burst(NonZeroU32::new(burst)?))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl BotGuard {
    /// `secrets`: strings to remove from every error text (the token and its secret half).
    pub fn new(config: BotGuardConfig, health: Option<Arc<Health>>, secrets: &[&str]) -> BotGuard {
        let g = BotGuard(Arc::new(Inner {
            overall: config
                .overall
                // A small burst for the overall quota (a tenth), none per chat.
                .and_then(|p| quota(p, p.calls / 10))
                .map(DefaultDirectRateLimiter::direct),
            chats: config
                .per_chat
                .and_then(|p| quota(p, 1))
                .map(DefaultKeyedRateLimiter::keyed),
            groups: config
                .per_group
                .and_then(|p| quota(p, 1))
                .map(DefaultKeyedRateLimiter::keyed),
            paused: Mutex::new(HashMap::new()),
            breaker: Mutex::new(Breaker::new(config.breaker)),
            health,
            stats: Stats::default(),
            in_flight: tokio::sync::Semaphore::new(MAX_IN_FLIGHT),
            on_wire: Mutex::default(),
            next_call: AtomicU64::new(0),
            token: secrets
                .iter()
                .filter(|s| s.len() >= 8)
                .map(|s| s.to_string())
                .collect(),
            config,
        }));
        if let Some(h) = &g.0.health {
            let me = g.clone();
            h.add_metrics(Arc::new(move |out: &mut String| me.write_metrics(out)));
        }
        g
    }

    fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.0.token {
            out = out.replace(s.as_str(), "<token>");
        }
        out
    }

    /// How long the oldest outbox request on the wire (`call_claimed`) has waited for its
    /// answer. Replies and uploads (`call`) are not counted: a large export may take a while.
    pub fn oldest_unanswered(&self) -> Option<Duration> {
        lock(&self.0.on_wire).values().min().map(|t| t.elapsed())
    }

    /// Chats Telegram holds back right now (a `429 retry_after` not yet over).
    pub fn held_chats(&self) -> usize {
        let now = Instant::now();
        lock(&self.0.paused).values().filter(|t| **t > now).count()
    }

    /// Waits until a message to `chat` may go: its 429 pause, its chat's quota, the overall
    /// quota (in that order, so a chat over its own quota does not hold an overall slot).
    async fn pace(&self, chat: Option<i64>) {
        let started = Instant::now();
        if let Some(chat) = chat {
            loop {
                let until = lock(&self.0.paused).get(&chat).copied();
                match until {
                    Some(t) if t > Instant::now() => tokio::time::sleep_until(t.into()).await,
                    Some(_) => {
                        lock(&self.0.paused).remove(&chat);
                        break;
                    }
                    None => break,
                }
            }
            let keyed = if chat < 0 {
                &self.0.groups
            } else {
                &self.0.chats
            };
            if let Some(l) = keyed {
                while let Err(not_until) = l.check_key(&chat) {
                    let wait = not_until.wait_time_from(DefaultClock::default().now());
                    tokio::time::sleep(wait).await;
                }
            }
        }
        if let Some(l) = &self.0.overall {
            while let Err(not_until) = l.check() {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                tokio::time::sleep(wait).await;
            }
        }
        let waited = started.elapsed();
        if waited > Duration::from_millis(1) {
            self.0
                .stats
                .paced_ms
                .fetch_add(waited.as_millis() as u64, Ordering::Relaxed);
        }
    }

    /// Makes the call `f` builds (to `chat`, if it writes to one) through the guard: breaker,
    /// pacing, timeout. A 429 pauses the chat and the call is made again after the wait (up to
    /// `longest_wait`); other failures are classified and returned, never retried here — the
    /// caller knows whether a repeat is safe.
    pub async fn call<T, F, Fut>(&self, chat: Option<i64>, f: F) -> Result<T, BotCallError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, RequestError>>,
    {
        match self.call_tracked(chat, || async { true }, f, false).await {
            Ok(Some(v)) => Ok(v),
            // The claim above always succeeds.
            Ok(None) => Err(BotCallError::Refused("not sent".into())),
            Err(e) => Err(e),
        }
    }

    /// As [`BotGuard::call`], with `claim` run once the quotas let the call go and just before
    /// it is made: the outbox marks its row `sending` there, so a row waiting for its chat's
    /// quota is not counted as possibly delivered. `claim` returning false skips the call
    /// (`Ok(None)`). The outbox's calls: a request of theirs without an answer shows in
    /// [`BotGuard::oldest_unanswered`].
    pub async fn call_claimed<T, F, Fut, C, CFut>(
        &self,
        chat: Option<i64>,
        claim: C,
        f: F,
    ) -> Result<Option<T>, BotCallError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, RequestError>>,
        C: FnOnce() -> CFut,
        CFut: Future<Output = bool>,
    {
        self.call_tracked(chat, claim, f, true).await
    }

    async fn call_tracked<T, F, Fut, C, CFut>(
        &self,
        chat: Option<i64>,
        claim: C,
        f: F,
        track: bool,
    ) -> Result<Option<T>, BotCallError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, RequestError>>,
        C: FnOnce() -> CFut,
        CFut: Future<Output = bool>,
    {
        let mut claim = Some(claim);
        loop {
            self.admit()?;
            self.pace(chat).await;
            if let Some(claim) = claim.take()
                && !claim().await
            {
                return Ok(None);
            }
            self.0.stats.calls.fetch_add(1, Ordering::Relaxed);
            // Never closed; the slot is held only while the request is on the wire.
            let slot = self.0.in_flight.acquire().await.ok();
            let wire = track.then(|| {
                let id = self.0.next_call.fetch_add(1, Ordering::Relaxed);
                lock(&self.0.on_wire).insert(id, Instant::now());
                OnWire(&self.0, id)
            });
            let answer = tokio::time::timeout(self.0.config.call_timeout, f()).await;
            drop(wire);
            drop(slot);
            let outcome = match answer {
                Ok(Ok(v)) => {
                    self.success();
                    return Ok(Some(v));
                }
                Ok(Err(e)) => classify(e, &|t| self.redact(t)),
                Err(_) => {
                    self.0.stats.timeouts.fetch_add(1, Ordering::Relaxed);
                    Outcome::Error(BotCallError::Transient(format!(
                        "no answer in {} s",
                        self.0.config.call_timeout.as_secs()
                    )))
                }
            };
            match outcome {
                Outcome::RetryAfter(secs) => {
                    // An answer: the API is up.
                    self.success();
                    let wait = Duration::from_secs(u64::from(secs.max(1)));
                    self.0.stats.retry_afters.fetch_add(1, Ordering::Relaxed);
                    self.0
                        .stats
                        .retry_after_ms
                        .fetch_add(wait.as_millis() as u64, Ordering::Relaxed);
                    let until = Instant::now() + wait + jitter(Duration::from_millis(250), 0.5);
                    if let Some(chat) = chat {
                        lock(&self.0.paused).insert(chat, until);
                    }
                    tracing::warn!(
                        chat,
                        retry_after = secs,
                        "Bot API: too many requests; this chat waits"
                    );
                    if wait > self.0.config.longest_wait {
                        return Err(BotCallError::RetryAfter(wait));
                    }
                    if chat.is_none() {
                        tokio::time::sleep_until(until.into()).await;
                    }
                }
                Outcome::Error(e @ BotCallError::Transient(_)) => {
                    self.0.stats.failures.fetch_add(1, Ordering::Relaxed);
                    self.failure(&e.to_string());
                    return Err(e);
                }
                Outcome::Error(e) => {
                    self.success();
                    return Err(e);
                }
            }
        }
    }

    fn admit(&self) -> Result<(), BotCallError> {
        let r = lock(&self.0.breaker).admit(Instant::now());
        match r {
            Ok(probe) => {
                if probe {
                    self.report();
                }
                Ok(())
            }
            Err(r) => Err(BotCallError::Unavailable {
                retry_in: r.retry_in,
                last: r.last,
            }),
        }
    }

    fn success(&self) {
        if lock(&self.0.breaker).success() {
            tracing::info!("Bot API reachable again; breaker closed");
            self.report();
        }
    }

    fn failure(&self, what: &str) {
        let (failures, opened) = lock(&self.0.breaker).failure(what, Instant::now());
        if opened {
            tracing::warn!(failures, error = %what, "Bot API unreachable; breaker open");
            self.report();
        }
    }

    pub fn breaker_state(&self) -> BreakerState {
        lock(&self.0.breaker).state(Instant::now())
    }

    fn report(&self) {
        let Some(h) = &self.0.health else { return };
        let now = Instant::now();
        let check = {
            let b = lock(&self.0.breaker);
            match b.state(now) {
                BreakerState::Closed => None,
                BreakerState::Open => Some(ExtraCheck {
                    component_type: "telegram",
                    status: Status::Fail,
                    observed_value: Some(f64::from(b.failures)),
                    observed_unit: Some("failures"),
                    output: format!(
                        "open after {} failures in a row (last: {}); next attempt in {} s",
                        b.failures,
                        b.last_error,
                        b.open_until
                            .map_or(0, |t| t.saturating_duration_since(now).as_secs())
                    ),
                }),
                BreakerState::HalfOpen => Some(ExtraCheck {
                    component_type: "telegram",
                    status: Status::Warn,
                    observed_value: Some(f64::from(b.failures)),
                    observed_unit: Some("failures"),
                    output: format!("half-open: probing after {}", b.last_error),
                }),
            }
        };
        h.set_check("breaker:botapi", check);
    }

    /// Prometheus text for `/metrics`.
    pub fn write_metrics(&self, out: &mut String) {
        let s = &self.0.stats;
        let mut counter =
            |name: &str, help: &str, v: String| crate::health::counter(out, name, help, v);
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        counter(
            "tg_bot_requests_total",
            "Bot API calls made through the guard.",
            load(&s.calls).to_string(),
        );
        counter(
            "tg_bot_request_failures_total",
            "Bot API calls that failed with a network error, a timeout or a 5xx.",
            load(&s.failures).to_string(),
        );
        counter(
            "tg_bot_request_timeouts_total",
            "Bot API calls that got no answer in time.",
            load(&s.timeouts).to_string(),
        );
        counter(
            "tg_bot_retry_after_total",
            "429 answers received from the Bot API.",
            load(&s.retry_afters).to_string(),
        );
        counter(
            "tg_bot_retry_after_seconds_total",
            "Seconds of waiting the Bot API asked for with 429.",
            format!("{:.3}", load(&s.retry_after_ms) as f64 / 1000.0),
        );
        counter(
            "tg_bot_paced_seconds_total",
            "Seconds Bot API calls waited for the guard's quotas.",
            format!("{:.3}", load(&s.paced_ms) as f64 / 1000.0),
        );
        let b = lock(&self.0.breaker);
        let _ = writeln!(
            out,
            "# HELP tg_bot_breaker_open Whether the Bot API breaker is open (1) or half-open (0.5).\n# TYPE tg_bot_breaker_open gauge\ntg_bot_breaker_open {}",
            match b.state(Instant::now()) {
                BreakerState::Closed => "0",
                BreakerState::Open => "1",
                BreakerState::HalfOpen => "0.5",
            }
        );
    }
}

#[cfg(test)]
#[path = "botapi_tests.rs"]
mod tests;
