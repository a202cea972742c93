//! Pacing: calls allowed per window for a method, and the gate that holds each method to its
//! window and its FLOOD_WAIT pause.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// Calls allowed per window for one method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    pub calls: u32,
    pub window: Duration,
}

impl std::str::FromStr for Pace {
    type Err = String;

    /// `"30/30s"`, `"5/1m"`, `"5/1h"`.
    fn from_str(s: &str) -> Result<Pace, String> {
        let bad = || {
            format!(
                "found {s:?}; expected calls per window such as \"30/30s\", \"5/1m\" or \"off\""
            )
        };
        let (calls, window) = s.trim().split_once('/').ok_or_else(bad)?;
        let calls: u32 = calls.trim().parse().map_err(|_| bad())?;
        let window = window.trim();
        let (num, unit) = window.split_at(
            window
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(window.len()),
        );
        let num: u64 = if num.is_empty() {
            1
        } else {
            num.parse().map_err(|_| bad())?
        };
        let secs = match unit {
            "s" | "" => num,
            "m" => num * 60,
            "h" => num * 3600,
            _ => return Err(bad()),
        };
        if calls == 0 || secs == 0 {
            return Err(bad());
        }
        Ok(Pace {
            calls,
            window: Duration::from_secs(secs),
        })
    }
}

/// Pacing that keeps a healthy account clear of FLOOD_WAIT: the limits Telegram is known to
/// enforce on a user account for the methods the parser uses.
pub fn default_pacing() -> BTreeMap<String, Pace> {
    let p = |calls, secs| Pace {
        calls,
        window: Duration::from_secs(secs),
    };
    BTreeMap::from([
        ("messages.getHistory".to_string(), p(30, 30)),
        ("contacts.resolveUsername".to_string(), p(5, 60)),
        ("channels.getMessages".to_string(), p(30, 30)),
        ("channels.getChannels".to_string(), p(30, 30)),
        ("updates.getChannelDifference".to_string(), p(60, 30)),
        ("messages.checkChatInvite".to_string(), p(5, 60)),
        ("auth.sendCode".to_string(), p(5, 3600)),
        ("auth.signIn".to_string(), p(5, 60)),
        ("auth.checkPassword".to_string(), p(5, 60)),
    ])
}

#[derive(Debug, Default)]
pub(super) struct Gate {
    /// When recent calls were answered (within the window).
    pub(super) done: VecDeque<Instant>,
    pub(super) in_flight: u32,
    pub(super) paused_until: Option<Instant>,
}

impl Gate {
    /// When the next call may go, or `None` if now.
    pub(super) fn next_slot(&mut self, now: Instant, pace: Option<Pace>) -> Option<Instant> {
        if let Some(until) = self.paused_until {
            if now < until {
                return Some(until);
            }
            self.paused_until = None;
        }
        let pace = pace?;
        while self
            .done
            .front()
            .is_some_and(|t| now.duration_since(*t) >= pace.window)
        {
            self.done.pop_front();
        }
        let used = self.done.len() + self.in_flight as usize;
        if used < pace.calls as usize {
            return None;
        }
        // Full. The oldest answered call frees a slot when it leaves the window; with only calls
        // in flight, check again shortly after they are answered.
        Some(match self.done.front() {
            Some(t) => *t + pace.window,
            None => now + Duration::from_millis(20),
        })
    }
}

/// One method's window as saved between processes, in Unix milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub method: String,
    /// When its recent calls were answered, oldest first.
    pub calls: Vec<i64>,
    /// The end of its FLOOD_WAIT pause, if one is on.
    pub paused_until: Option<i64>,
}

fn to_wall(t: Instant, now: Instant, wall: i64) -> i64 {
    wall - now.saturating_duration_since(t).as_millis() as i64
        + t.saturating_duration_since(now).as_millis() as i64
}

fn from_wall(ms: i64, now: Instant, wall: i64) -> Option<Instant> {
    if ms >= wall {
        now.checked_add(Duration::from_millis((ms - wall) as u64))
    } else {
        now.checked_sub(Duration::from_millis((wall - ms) as u64))
    }
}

impl Gate {
    /// This gate as a [`Window`] (`None` when there is nothing worth saving).
    pub(super) fn window(
        &self,
        method: &str,
        pace: Option<Pace>,
        now: Instant,
        wall: i64,
    ) -> Option<Window> {
        let calls: Vec<i64> = match pace {
            Some(p) => self
                .done
                .iter()
                .filter(|t| now.saturating_duration_since(**t) < p.window)
                .map(|t| to_wall(*t, now, wall))
                .collect(),
            None => Vec::new(),
        };
        let paused_until = self
            .paused_until
            .filter(|u| *u > now)
            .map(|u| to_wall(u, now, wall));
        (!calls.is_empty() || paused_until.is_some()).then(|| Window {
            method: method.to_string(),
            calls,
            paused_until,
        })
    }

    /// Takes up a saved window. A clock that moved back makes calls look newer (the safe way).
    pub(super) fn restore(&mut self, w: &Window, pace: Option<Pace>, now: Instant, wall: i64) {
        if let Some(p) = pace {
            let mut calls: Vec<Instant> = w
                .calls
                .iter()
                .filter_map(|ms| from_wall((*ms).min(wall), now, wall))
                .filter(|t| now.saturating_duration_since(*t) < p.window)
                .collect();
            calls.sort();
            calls.truncate(p.calls as usize * 2);
            let mut merged: Vec<Instant> = self.done.drain(..).chain(calls).collect();
            merged.sort();
            self.done = merged.into();
        }
        if let Some(until) = w.paused_until.filter(|u| *u > wall)
            && let Some(until) = from_wall(until, now, wall)
        {
            self.paused_until = Some(self.paused_until.map_or(until, |u| u.max(until)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A new process started with empty windows and spent a budget the one before had used:
    /// FLOOD_WAITs right after every restart.
    #[test]
    fn a_restart_keeps_the_calls_of_the_window_and_the_pause() {
        let pace = Some(Pace {
            calls: 3,
            window: Duration::from_secs(30),
        });
        let (now, wall) = (Instant::now(), 1_000_000_000_000i64);
        let mut before = Gate::default();
        for ago in [40, 20, 10, 5] {
            before.done.push_back(now - Duration::from_secs(ago));
        }
        before.paused_until = Some(now + Duration::from_secs(7));
        let saved = before.window("m", pace, now, wall).unwrap();
        assert_eq!(
            saved.calls.len(),
            3,
            "the call out of the window is not kept"
        );
        // The new process starts two seconds later, its own clock elsewhere.
        let later = Instant::now() + Duration::from_secs(50);
        let mut after = Gate::default();
        after.restore(&saved, pace, later, wall + 2_000);
        assert_eq!(after.done.len(), 3);
        let next = after.next_slot(later, pace).expect("the window is full");
        assert!(
            next > later,
            "no call before the pause and the window allow"
        );
        assert!(next <= later + Duration::from_secs(11));
        // Nothing older than the window, nor a pause already over, comes back.
        let mut stale = Gate::default();
        stale.restore(&saved, pace, later, wall + 60_000);
        assert!(stale.done.is_empty() && stale.paused_until.is_none());
    }

    #[test]
    fn paces_parse_and_nonsense_is_refused() {
        assert_eq!(
            "30/30s".parse::<Pace>().unwrap(),
            Pace {
                calls: 30,
                window: Duration::from_secs(30)
            }
        );
        assert_eq!(
            "5/1h".parse::<Pace>().unwrap().window,
            Duration::from_secs(3600)
        );
        assert_eq!(
            "5/m".parse::<Pace>().unwrap().window,
            Duration::from_secs(60)
        );
        for bad in ["", "30", "0/30s", "30/0s", "x/30s", "30/30d", "30/-1s"] {
            let e = bad.parse::<Pace>().unwrap_err();
            assert!(e.contains("expected calls per window"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_full_window_waits_for_its_oldest_call_to_leave() {
        let pace = Pace {
            calls: 2,
            window: Duration::from_secs(10),
        };
        let mut g = Gate::default();
        let t0 = Instant::now();
        assert_eq!(g.next_slot(t0, Some(pace)), None);
        g.done.push_back(t0);
        assert_eq!(g.next_slot(t0, Some(pace)), None);
        g.in_flight = 1;
        // One answered, one in flight: full until the answered one leaves the window.
        assert_eq!(
            g.next_slot(t0, Some(pace)),
            Some(t0 + Duration::from_secs(10))
        );
        g.in_flight = 0;
        g.done.push_back(t0 + Duration::from_secs(1));
        assert_eq!(
            g.next_slot(t0 + Duration::from_secs(5), Some(pace)),
            Some(t0 + Duration::from_secs(10))
        );
        assert_eq!(g.next_slot(t0 + Duration::from_secs(10), Some(pace)), None);
        // A pause outranks the window.
        g.paused_until = Some(t0 + Duration::from_secs(60));
        assert_eq!(
            g.next_slot(t0 + Duration::from_secs(20), None),
            Some(t0 + Duration::from_secs(60))
        );
        assert_eq!(g.next_slot(t0 + Duration::from_secs(61), None), None);
        assert_eq!(g.paused_until, None);
    }
}
