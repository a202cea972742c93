//! Each Telegram DC's breaker, as the guard keeps it: admitting a call, counting its outcome,
//! reporting the state to readiness (`breaker:mtproto-dcN`); and calls grammers makes by
//! itself, counted against the same breaker (`Guard::outside`).

use std::time::Instant;

use grammers_client::InvocationError;

use super::breaker::{Breaker, BreakerConfig, BreakerState};
use super::{Guard, GuardError, lock};
use crate::health::{ExtraCheck, Status};

/// What a failure that counts against a breaker (network, timeout, 5xx) was; `None` for an
/// answer (a 4xx, a revocation, our session store).
fn transient(e: &InvocationError) -> Option<String> {
    match e {
        InvocationError::Rpc(r) => (r.code >= 500 || r.code == -503 || r.name == "Timeout")
            .then(|| format!("{} {}", r.code, r.name)),
        InvocationError::Session(_) => None,
        other => Some(other.to_string()),
    }
}

impl Guard {
    fn breaker_config(&self) -> BreakerConfig {
        BreakerConfig {
            threshold: self.0.config.breaker_failures,
            cooldown: self.0.config.breaker_cooldown,
            cooldown_max: self.0.config.breaker_cooldown_max,
        }
    }

    pub(super) fn breaker_admit(&self, dc: i32) -> Result<(), GuardError> {
        let config = self.breaker_config();
        let mut bs = lock(&self.0.breakers);
        let b = bs.entry(dc).or_insert_with(|| Breaker::new(config));
        match b.admit(Instant::now()) {
            Ok(probe) => {
                drop(bs);
                if probe {
                    self.report_breaker(dc);
                }
                Ok(())
            }
            Err(r) => Err(GuardError::Unavailable {
                dc,
                retry_in: r.retry_in,
                last: r.last,
            }),
        }
    }

    pub(super) fn breaker_success(&self, dc: i32) {
        let changed = lock(&self.0.breakers)
            .get_mut(&dc)
            .is_some_and(|b| b.success());
        if changed {
            tracing::info!(dc, "Telegram DC reachable again; breaker closed");
            self.report_breaker(dc);
        }
    }

    /// Counts a failure; returns the consecutive count.
    pub(super) fn breaker_failure(&self, dc: i32, what: &str) -> u32 {
        let config = self.breaker_config();
        let (failures, opened) = lock(&self.0.breakers)
            .entry(dc)
            .or_insert_with(|| Breaker::new(config))
            .failure(what, Instant::now());
        if opened {
            tracing::warn!(dc, failures, error = %what, "Telegram DC unreachable; breaker open");
            self.report_breaker(dc);
        }
        failures
    }

    pub(super) fn open_error(&self, dc: i32) -> Option<GuardError> {
        let bs = lock(&self.0.breakers);
        let r = bs.get(&dc)?.refusal(Instant::now())?;
        Some(GuardError::Unavailable {
            dc,
            retry_in: r.retry_in,
            last: r.last,
        })
    }

    pub(super) fn report_breaker(&self, dc: i32) {
        let Some(h) = &self.0.health else { return };
        let now = Instant::now();
        let check = {
            let bs = lock(&self.0.breakers);
            bs.get(&dc).and_then(|b| match b.state(now) {
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
            })
        };
        h.set_check(&format!("breaker:mtproto-dc{dc}"), check);
    }

    /// A call grammers makes by itself, outside [`Guard::invoke`] (the connect step's
    /// `is_authorized`): admitted by the DC's breaker and counted against it, so that failures
    /// there open it as failures of our own calls do (they did not, and the parser restarted in
    /// a loop while readiness never showed the breaker). `Err`: the breaker is open, nothing
    /// was called; wait `retry_in`.
    pub async fn outside<T>(
        &self,
        dc: i32,
        call: impl std::future::Future<Output = Result<T, InvocationError>>,
    ) -> Result<Result<T, InvocationError>, GuardError> {
        self.breaker_admit(dc)?;
        let r = call.await;
        match r.as_ref().err().and_then(transient) {
            Some(what) => {
                self.breaker_failure(dc, &what);
            }
            None => self.breaker_success(dc),
        }
        Ok(r)
    }

    /// Each DC's breaker state, for `/status` and the CLI.
    pub fn breakers(&self) -> Vec<(i32, BreakerState)> {
        let now = Instant::now();
        lock(&self.0.breakers)
            .iter()
            .map(|(dc, b)| (*dc, b.state(now)))
            .collect()
    }
}
