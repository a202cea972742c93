//! Flood control like Telegram's: per account and method, a quota of calls per window. Past it,
//! `FLOOD_WAIT_X` with the real seconds left. Some methods escalate, as Telegram's
//! `contacts.resolveUsername` does: each breach within a day of the last waits four times as
//! long as the one before (a minute, then 4, 16, 64 minutes... up to a day). In strict mode an account that keeps calling a
//! method while told to wait is banned (its key answers `AUTH_KEY_UNREGISTERED`), as real
//! accounts are.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum QuotaMode {
    Off,
    Default,
    Strict,
}

/// Calls allowed per window for one method.
#[derive(Debug, Clone, Copy)]
pub struct Quota {
    pub calls: usize,
    pub window: Duration,
}

pub fn default_quotas() -> HashMap<String, Quota> {
    let q = |calls, secs| Quota {
        calls,
        window: Duration::from_secs(secs),
    };
    HashMap::from([
        ("messages.getHistory".to_string(), q(30, 30)),
        ("contacts.resolveUsername".to_string(), q(5, 60)),
        ("channels.getMessages".to_string(), q(30, 30)),
        ("channels.getChannels".to_string(), q(30, 30)),
        ("updates.getChannelDifference".to_string(), q(60, 30)),
        ("messages.checkChatInvite".to_string(), q(5, 60)),
        ("upload.getFile".to_string(), q(600, 30)),
        ("auth.sendCode".to_string(), q(5, 3600)),
        ("auth.signIn".to_string(), q(5, 60)),
        ("auth.checkPassword".to_string(), q(5, 60)),
    ])
}

/// How many calls during a wait get an account banned in strict mode.
pub const STRICT_VIOLATIONS: u32 = 3;

/// A call that arrives this soon after a FLOOD_WAIT was told was in flight when it was: a
/// client sending several requests at once (parallel file parts, as TDLib and grammers do)
/// cannot take back those already sent. It gets the wait too, but is not counted as a call
/// made during it. Anything later is.
pub const PIPELINED: Duration = Duration::from_secs(1);

pub enum Verdict {
    Allow,
    /// Over quota: wait this many seconds.
    Wait(u32),
    /// Called again while told to wait (counted apart: a well-behaved client never does this).
    WaitAgain(u32),
    Ban,
}

#[derive(Default)]
struct MethodState {
    calls: VecDeque<Instant>,
    wait_until: Option<Instant>,
    /// When the wait was told: calls arriving within [`PIPELINED`] of it were sent before the
    /// client could know.
    told_at: Option<Instant>,
    violations: u32,
    /// Breaches in a row (each within a day of the last), for escalating methods.
    strikes: u32,
    last_strike: Option<Instant>,
}

/// Methods whose FLOOD_WAITs escalate with repeated breaches.
const ESCALATING: &[&str] = &["contacts.resolveUsername"];
/// Breaches this far apart start the escalation over.
const STRIKES_FORGOTTEN: Duration = Duration::from_secs(86_400);

pub struct Flood {
    mode: Mutex<QuotaMode>,
    quotas: Mutex<HashMap<String, Quota>>,
    state: Mutex<HashMap<(i64, String), MethodState>>,
}

impl Flood {
    pub fn new(mode: QuotaMode) -> Flood {
        Flood {
            mode: Mutex::new(mode),
            quotas: Mutex::new(default_quotas()),
            state: Mutex::new(HashMap::new()),
        }
    }

    pub fn set_mode(&self, mode: QuotaMode) {
        *self.mode.lock().unwrap_or_else(|p| p.into_inner()) = mode;
    }

    pub fn set_quota(&self, method: &str, quota: Quota) {
        self.quotas
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(method.to_string(), quota);
    }

    /// Counts a call of `method` by `account` and says whether it may proceed.
    /// Makes `account` wait `secs` before calling `method` again, as a FLOOD_WAIT Telegram
    /// decided on does (the `flood_wait` fault): calls during the wait count as violations.
    pub fn impose(&self, account: i64, method: &str, secs: u32) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let s = state.entry((account, method.to_string())).or_default();
        s.wait_until = Some(Instant::now() + Duration::from_secs(u64::from(secs)));
        s.told_at = Some(Instant::now());
    }

    pub fn check(&self, account: i64, method: &str) -> Verdict {
        let mode = *self.mode.lock().unwrap_or_else(|p| p.into_inner());
        if mode == QuotaMode::Off {
            // No quotas, but a wait imposed by a fault still holds.
            let now = Instant::now();
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(s) = state.get_mut(&(account, method.to_string()))
                && let Some(until) = s.wait_until
                && now < until
            {
                let left = until.duration_since(now).as_secs_f64().ceil().max(1.0) as u32;
                if s.told_at.is_some_and(|t| now.duration_since(t) < PIPELINED) {
                    return Verdict::Wait(left);
                }
                s.violations += 1;
                return Verdict::WaitAgain(
                    until.duration_since(now).as_secs_f64().ceil().max(1.0) as u32
                );
            }
            return Verdict::Allow;
        }
        let Some(quota) = self
            .quotas
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(method)
            .copied()
        else {
            return Verdict::Allow;
        };
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let s = state.entry((account, method.to_string())).or_default();
        if let Some(until) = s.wait_until {
            if now < until {
                if s.told_at.is_some_and(|t| now.duration_since(t) < PIPELINED) {
                    return Verdict::Wait(
                        until.duration_since(now).as_secs_f64().ceil().max(1.0) as u32
                    );
                }
                s.violations += 1;
                if mode == QuotaMode::Strict && s.violations >= STRICT_VIOLATIONS {
                    return Verdict::Ban;
                }
                return Verdict::WaitAgain(
                    until.duration_since(now).as_secs_f64().ceil().max(1.0) as u32
                );
            }
            s.wait_until = None;
        }
        while s
            .calls
            .front()
            .is_some_and(|t| now.duration_since(*t) >= quota.window)
        {
            s.calls.pop_front();
        }
        if s.calls.len() >= quota.calls {
            let oldest = s.calls.front().copied().unwrap_or(now);
            let mut until = oldest + quota.window;
            if ESCALATING.contains(&method) {
                s.strikes = match s.last_strike {
                    Some(t) if now.duration_since(t) < STRIKES_FORGOTTEN => s.strikes + 1,
                    _ => 1,
                };
                s.last_strike = Some(now);
                let escalated = quota
                    .window
                    .saturating_mul(4u32.saturating_pow(s.strikes - 1))
                    .min(STRIKES_FORGOTTEN);
                until = until.max(now + escalated);
            }
            s.wait_until = Some(until);
            s.told_at = Some(now);
            return Verdict::Wait(until.duration_since(now).as_secs_f64().ceil().max(1.0) as u32);
        }
        s.calls.push_back(now);
        Verdict::Allow
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_in_flight_when_a_wait_was_told_are_not_violations_later_ones_are() {
        let f = Flood::new(QuotaMode::Strict);
        f.impose(1, "upload.getFile", 30);
        assert!(matches!(f.check(1, "upload.getFile"), Verdict::Wait(_)));
        {
            let mut st = f.state.lock().unwrap();
            let s = st.get_mut(&(1, "upload.getFile".to_string())).unwrap();
            s.told_at = Some(Instant::now() - PIPELINED);
        }
        assert!(matches!(
            f.check(1, "upload.getFile"),
            Verdict::WaitAgain(_)
        ));
    }

    #[test]
    fn resolve_waits_escalate_from_a_minute_to_hours() {
        let f = Flood::new(QuotaMode::Default);
        let m = "contacts.resolveUsername";
        let mut waits = Vec::new();
        for _ in 0..4 {
            // Breach, then pretend the wait was sat out (the quota window emptied).
            while let Verdict::Allow = f.check(1, m) {}
            let mut st = f.state.lock().unwrap();
            let s = st.get_mut(&(1, m.to_string())).unwrap();
            let until = s.wait_until.take().unwrap();
            waits.push(until.duration_since(Instant::now()).as_secs());
            s.calls.clear();
        }
        assert!((55..=60).contains(&waits[0]), "{waits:?}");
        assert!((235..=240).contains(&waits[1]), "{waits:?}");
        assert!((955..=960).contains(&waits[2]), "{waits:?}");
        assert!(waits[3] > 3600, "an hour and more: {waits:?}");
    }

    #[test]
    fn over_quota_waits_the_real_remaining_time_and_strict_bans() {
        let f = Flood::new(QuotaMode::Strict);
        f.set_quota(
            "m",
            Quota {
                calls: 2,
                window: Duration::from_secs(10),
            },
        );
        assert!(matches!(f.check(1, "m"), Verdict::Allow));
        assert!(matches!(f.check(1, "m"), Verdict::Allow));
        match f.check(1, "m") {
            Verdict::Wait(s) => assert!((9..=10).contains(&s), "{s}"),
            _ => panic!("expected a wait"),
        }
        assert!(
            matches!(f.check(2, "m"), Verdict::Allow),
            "quotas are per account"
        );
        // In flight when the wait was told: a wait, not held against the account.
        assert!(matches!(f.check(1, "m"), Verdict::Wait(_)));
        f.state
            .lock()
            .unwrap()
            .get_mut(&(1, "m".to_string()))
            .unwrap()
            .told_at = Some(Instant::now() - PIPELINED);
        assert!(matches!(f.check(1, "m"), Verdict::WaitAgain(_)));
        assert!(matches!(f.check(1, "m"), Verdict::WaitAgain(_)));
        assert!(matches!(f.check(1, "m"), Verdict::Ban));
    }
}
