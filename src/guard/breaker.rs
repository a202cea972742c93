//! A circuit breaker: closed until `threshold` consecutive failures, then open for a cool-down
//! (doubling after each failed probe up to a maximum, ±10% jitter so that many clients do not
//! probe together), then half-open: one probe goes through; its success closes the breaker.
//! Shared by the MTProto guard (one per DC) and the Bot API guard.

use std::time::{Duration, Instant};

use rand::Rng;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct BreakerConfig {
    /// Consecutive failures that open it.
    pub threshold: u32,
    pub cooldown: Duration,
    pub cooldown_max: Duration,
}

#[derive(Debug)]
pub struct Breaker {
    config: BreakerConfig,
    pub failures: u32,
    /// Set while open: when the half-open probe may go.
    pub open_until: Option<Instant>,
    /// The current cool-down (doubles after each failed probe).
    pub cooldown: Duration,
    probing: bool,
    pub last_error: String,
    pub opened_total: u64,
    /// When the last failure was counted.
    last_failure: Option<Instant>,
}

/// Failures this close together are one: the calls in flight on a connection fail together
/// when it drops (parts of a file, pipelined), which is one failure of the DC, not several.
const TOGETHER: Duration = Duration::from_millis(500);

/// Why a call may not go now.
#[derive(Debug, Clone)]
pub struct Refused {
    pub retry_in: Duration,
    pub last: String,
}

pub fn jitter(base: Duration, fraction: f64) -> Duration {
    let f = rand::rng().random_range(1.0 - fraction..=1.0 + fraction);
    base.mul_f64(f)
}

impl Breaker {
    pub fn new(config: BreakerConfig) -> Breaker {
        Breaker {
            config,
            failures: 0,
            open_until: None,
            cooldown: config.cooldown,
            probing: false,
            last_error: String::new(),
            opened_total: 0,
            last_failure: None,
        }
    }

    pub fn state(&self, now: Instant) -> BreakerState {
        match self.open_until {
            None => BreakerState::Closed,
            Some(t) if now < t => BreakerState::Open,
            Some(_) => BreakerState::HalfOpen,
        }
    }

    /// May a call go now? `Ok(true)` means it is the half-open probe (the state changed).
    pub fn admit(&mut self, now: Instant) -> Result<bool, Refused> {
        match self.state(now) {
            BreakerState::Closed => Ok(false),
            BreakerState::Open => Err(Refused {
                retry_in: self
                    .open_until
                    .map_or(Duration::ZERO, |t| t.saturating_duration_since(now)),
                last: self.last_error.clone(),
            }),
            BreakerState::HalfOpen if !self.probing => {
                self.probing = true;
                Ok(true)
            }
            BreakerState::HalfOpen => Err(Refused {
                retry_in: Duration::from_secs(1),
                last: self.last_error.clone(),
            }),
        }
    }

    /// A call succeeded (or was answered at all). Returns whether the breaker was open.
    pub fn success(&mut self) -> bool {
        let was_open = self.open_until.is_some();
        self.failures = 0;
        self.last_failure = None;
        self.open_until = None;
        self.probing = false;
        self.cooldown = self.config.cooldown;
        was_open
    }

    /// A call failed (network, timeout, 5xx). Returns the consecutive count and whether this
    /// failure opened the breaker.
    pub fn failure(&mut self, what: &str, now: Instant) -> (u32, bool) {
        self.last_error = what.to_string();
        let together = self
            .last_failure
            .is_some_and(|t| now.saturating_duration_since(t) < TOGETHER);
        if together && !self.probing {
            return (self.failures, false);
        }
        self.last_failure = Some(now);
        self.failures += 1;
        let mut opened = false;
        if self.probing || (self.open_until.is_none() && self.failures >= self.config.threshold) {
            if self.probing {
                // The probe failed: stay open, twice as long (capped).
                self.cooldown = (self.cooldown * 2).min(self.config.cooldown_max);
            }
            self.probing = false;
            self.open_until = Some(now + jitter(self.cooldown, 0.1));
            self.opened_total += 1;
            opened = true;
        }
        (self.failures, opened)
    }

    /// The refusal an open (or probing) breaker gives, if any.
    pub fn refusal(&self, now: Instant) -> Option<Refused> {
        (self.state(now) != BreakerState::Closed).then(|| Refused {
            retry_in: self
                .open_until
                .map_or(Duration::ZERO, |t| t.saturating_duration_since(now)),
            last: self.last_error.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> Breaker {
        Breaker::new(BreakerConfig {
            threshold: 3,
            cooldown: Duration::from_secs(10),
            cooldown_max: Duration::from_secs(60),
        })
    }

    #[test]
    fn calls_in_flight_on_one_dropped_connection_count_as_one_failure() {
        let mut b = breaker();
        let t = Instant::now();
        for i in 0..8 {
            let (n, opened) = b.failure("broken pipe", t + Duration::from_millis(i));
            assert_eq!((n, opened), (1, false));
        }
        assert_eq!(b.state(t), BreakerState::Closed);
        // Failures apart in time still open it.
        b.failure("broken pipe", t + Duration::from_secs(1));
        let (n, opened) = b.failure("broken pipe", t + Duration::from_secs(2));
        assert_eq!((n, opened), (3, true));
        assert_eq!(b.state(t + Duration::from_secs(2)), BreakerState::Open);
    }
}
