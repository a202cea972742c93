//! The `outbox:delivery` readiness check: a warning while messages to users are not getting
//! through. The Bot API breaker cannot show it when only `sendMessage` is in trouble:
//! `getUpdates` keeps succeeding and resets it, and a 429 is an answer, not a failure. So alerts
//! could fall behind for minutes with readiness passing and only `/metrics` knowing. Three
//! signs, any of which warns:
//! - deliveries failing in a row, across chats, since the last one that went out;
//! - chats Telegram holds back with `429 retry_after` right now;
//! - a request on the wire without an answer for 10 s (a Bot API that takes requests and hangs);
//! - messages whose deliveries failed three times or more, still waiting (from the database:
//!   what a restart does not reset).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::outbox::OutboxStats;
use crate::guard::botapi::BotGuard;
use crate::health::{ExtraCheck, Health, Status};
use crate::store::Store;

/// Failed deliveries in a row, or failed attempts of one message, that make a warning.
const FAILING_AFTER: u64 = 3;
/// A Bot API request without an answer this long (Telegram answers in well under a second;
/// the call gives up at `bot.call_timeout`) is a sign too.
const UNANSWERED: Duration = Duration::from_secs(10);
/// How often the outbox is looked at.
const EVERY: Duration = Duration::from_secs(2);

#[derive(Default)]
pub(super) struct DeliveryCheck {
    last: Option<Instant>,
    shown: bool,
}

impl DeliveryCheck {
    pub(super) async fn check(
        &mut self,
        store: &Store,
        health: &Health,
        guard: &BotGuard,
        stats: &OutboxStats,
        now: i64,
    ) {
        if self.last.is_some_and(|t| t.elapsed() < EVERY) {
            return;
        }
        self.last = Some(Instant::now());
        let mut why = Vec::new();
        let streak = stats.failing_streak.load(Ordering::Relaxed);
        if streak >= FAILING_AFTER {
            let last = stats
                .last_failure
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            why.push(format!(
                "the last {streak} deliveries failed (last error: {last})"
            ));
        }
        if let Some(waited) = guard.oldest_unanswered().filter(|w| *w >= UNANSWERED) {
            why.push(format!(
                "a request has had no answer for {} s",
                waited.as_secs()
            ));
        }
        let held = guard.held_chats();
        if held > 0 {
            why.push(format!(
                "{held} chat(s) held back by Telegram (429 Too Many Requests: waiting out retry_after)"
            ));
        }
        let mut oldest = None;
        match store.outbox_failing(FAILING_AFTER as i64).await {
            Ok(Some((n, created, error))) => {
                let waited = (now - created).max(0);
                oldest = Some(waited);
                why.push(format!(
                    "{n} message(s) failed {FAILING_AFTER} or more deliveries and wait to be retried, \
                     the oldest for {waited} s (last error: {error})"
                ));
            }
            Ok(None) => {}
            // The database's own check says why; this one keeps what it showed.
            Err(_) => return,
        }
        let check = (!why.is_empty()).then(|| ExtraCheck {
            component_type: "telegram",
            status: Status::Warn,
            observed_value: oldest.map(|s| s as f64),
            observed_unit: oldest.map(|_| "s"),
            output: format!("alerts are not getting through: {}", why.join("; ")),
        });
        if check.is_some() || self.shown {
            self.shown = check.is_some();
            health.set_check("outbox:delivery", check);
        }
    }
}
