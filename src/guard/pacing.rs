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

#[cfg(test)]
mod tests {
    use super::*;

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
