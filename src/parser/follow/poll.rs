//! The poll schedule: when each followed channel is polled (`updates.getChannelDifference` from
//! its pts), so that every channel's posts, edits and deletions arrive within a bounded lag even
//! when Telegram pushes nothing (it pushes only to members, and not reliably even then:
//! core.telegram.org/api/updates), all within the pace of `updates.getChannelDifference`.
//!
//! How often each channel is polled comes from the posting rates, the budget and the bounds
//! (`allocate.rs`: the busiest channels, which carry 95% of the posts, at least every `L`
//! seconds, the rest shared by the square root of the rate, `L` chosen to keep both the mean
//! and the p95 lag low), clamped: never sooner than the `timeout` Telegram gave in its last
//! answer for the channel ("refetch after timeout seconds"), never later than
//! `telegram.follow_sweep_secs`. The budget is [`POLL_SHARE`] of the method's pace; the rest
//! is for catching up after gaps, which the guard paces with the polls.
//!
//! A channel's posting rate is a count of the posts seen (pushed or polled) that decays with a
//! time constant of an hour, over the time watched (so a new daemon learns within minutes, not
//! an hour), seeded at start from the posts stored in the last day (over the span the archive
//! covers, if shorter). It is shrunk towards the mean of all channels by [`PRIOR_SECS`] of it:
//! a channel not watched yet is taken for an average one. (Taken for a silent one, it was
//! polled least, its posts were never seen and its rate never learned: a new daemon's p95 lag
//! was 2.5× round-robin's.) One watched an hour is hardly moved: a stronger pull made the many
//! quiet channels look busier than they are.
//!
//! The schedule is work-conserving: the budget is spent every second on the channels whose
//! intervals are most elapsed (a quarter of it at least), not only on those past due, so a
//! change in rates never leaves polls unspent while channels wait; a channel the sweep has
//! come round to goes first.
//! A pushed update applied in order counts as a poll: the channel is current, so its next poll
//! moves out. A channel whose pushes arrive costs no polls; the budget goes to those that need it.
//!
//! `round_robin` (the reference the follow benchmark compares with) polls every channel at the
//! same cadence, the budget shared equally.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::config::FollowSchedule;

/// The share of the `getChannelDifference` pace spent on scheduled polls.
pub(super) const POLL_SHARE: f64 = 0.75;
/// The time constant of the posting rate.
const RATE_TAU: f64 = 3600.0;
/// The least rate a channel is given: one post a day.
const PRIOR_RATE: f64 = 1.0 / 86_400.0;
/// A channel is polled again no sooner than this share of its interval.
const MIN_ELAPSED: f64 = 0.25;
/// A channel's own count is weighed against this many seconds of the pooled rate: until it has
/// been watched about this long, its rate is mostly the mean of all channels.
const PRIOR_SECS: f64 = 30.0;
/// How often the intervals are worked out again as rates change.
const REALLOCATE: Duration = Duration::from_secs(2);

#[derive(Debug)]
struct Entry {
    /// Posts seen, decayed to `at`.
    count: f64,
    at: Instant,
    /// Since when posts are counted (up to an hour back for a seeded rate).
    since: Instant,
    /// Until when every post is counted: the last poll answered, or push applied in order.
    covered: Instant,
    /// The server's `timeout` from the last answer.
    floor: Duration,
    /// When the channel was last known current, or its poll last put off.
    last: Instant,
    interval: Duration,
}

impl Entry {
    /// The decayed count of posts, as of `now`.
    fn count_now(&self, now: Instant) -> f64 {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.count * (-dt / RATE_TAU).exp()
    }

    /// The seconds over which the count was taken (posts since the last poll are not seen yet,
    /// so the time after it does not count).
    fn watched(&self) -> f64 {
        self.covered
            .saturating_duration_since(self.since)
            .as_secs_f64()
            .min(RATE_TAU)
    }

    /// Posts a second: the channel's own count, shrunk towards the pooled rate `prior` the less
    /// it has been watched. A channel not yet polled is taken for an average one, not a silent
    /// one: otherwise it would be polled least, and its rate never learned.
    fn rate(&self, now: Instant, prior: f64) -> f64 {
        (self.count_now(now) + prior * PRIOR_SECS) / (self.watched() + PRIOR_SECS)
    }
}

/// What is known of a channel's posting when it joins the schedule.
#[derive(Debug, Clone, Copy)]
pub(super) struct Seed {
    pub posts: f64,
    pub secs: f64,
}

#[derive(Debug)]
pub(super) struct Schedule {
    mode: FollowSchedule,
    /// Polls a second.
    budget: f64,
    longest: Duration,
    chans: HashMap<i64, Entry>,
    tokens: f64,
    refilled: Instant,
    /// When the intervals were last worked out.
    allocated: Option<Instant>,
}

impl Schedule {
    pub(super) fn new(mode: FollowSchedule, budget: f64, longest: Duration) -> Schedule {
        Schedule {
            mode,
            budget: budget.max(0.01),
            longest,
            chans: HashMap::new(),
            tokens: 1.0,
            refilled: Instant::now(),
            allocated: None,
        }
    }

    /// Makes the schedule hold exactly `ids`. A new channel starts with its `seed` (posts
    /// seen over so many seconds; none: not known yet) and a first poll spread over its
    /// interval (so a start does not poll everything at once).
    pub(super) fn set_channels(&mut self, ids: &[(i64, Option<Seed>)], now: Instant) {
        let keep: std::collections::HashSet<i64> = ids.iter().map(|(id, _)| *id).collect();
        self.chans.retain(|id, _| keep.contains(id));
        let mut added = false;
        for (id, seed) in ids {
            self.chans.entry(*id).or_insert_with(|| {
                added = true;
                // A seed counts as watched for as long as it covers, an hour at most.
                let (count, secs) = match seed {
                    Some(s) if s.secs > 0.0 => {
                        let secs = s.secs.min(RATE_TAU);
                        (s.posts / s.secs * secs, secs)
                    }
                    _ => (0.0, 0.0),
                };
                Entry {
                    count,
                    at: now,
                    since: now
                        .checked_sub(Duration::from_secs_f64(secs))
                        .unwrap_or(now),
                    covered: now,
                    floor: Duration::ZERO,
                    last: now,
                    interval: Duration::ZERO,
                }
            });
        }
        if added {
            self.allocate(now);
            // Spread the first polls: a channel's first comes somewhere within its interval.
            for (id, e) in self.chans.iter_mut() {
                if e.last == now {
                    let frac = ((*id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) as f64
                        / (1u64 << 53) as f64;
                    e.last = now.checked_sub(e.interval.mul_f64(frac)).unwrap_or(now);
                }
            }
        }
    }

    /// `n` posts of `ch` were seen.
    pub(super) fn saw_posts(&mut self, ch: i64, n: usize, now: Instant) {
        if let Some(e) = self.chans.get_mut(&ch) {
            e.count = e.count_now(now) + n as f64;
            e.at = now;
        }
    }

    /// A pushed update of `ch` was applied in order (a new post if `post`): the channel is
    /// current, so its next poll moves out.
    pub(super) fn pushed(&mut self, ch: i64, post: bool, now: Instant) {
        if post {
            self.saw_posts(ch, 1, now);
        }
        if let Some(e) = self.chans.get_mut(&ch) {
            e.last = now;
            e.covered = now;
        }
    }

    /// `ch` is not polled now (being caught up, not current yet, or failed for a passing
    /// reason): its next turn comes on the schedule.
    pub(super) fn put_off(&mut self, ch: i64, now: Instant) {
        if let Some(e) = self.chans.get_mut(&ch) {
            e.last = now;
        }
    }

    /// Telegram answered a poll of `ch` with this `timeout`: every post until now is seen.
    pub(super) fn answered(&mut self, ch: i64, timeout: Option<i32>, now: Instant) {
        if let Some(e) = self.chans.get_mut(&ch) {
            e.last = now;
            e.covered = now;
            e.floor = Duration::from_secs(timeout.unwrap_or(0).clamp(0, 86_400) as u64);
        }
    }

    /// The channels to poll now, as many as the budget allows (at most `max`): those whose
    /// intervals are most elapsed first, past due or not (the budget is never left unspent),
    /// but none sooner than Telegram's `timeout` for it (or the sweep, if shorter) or a quarter
    /// of its interval.
    /// Intervals are worked out again first, as rates change.
    pub(super) fn due(&mut self, now: Instant, max: usize) -> Vec<i64> {
        let dt = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.refilled = now;
        self.tokens = (self.tokens + dt * self.budget).min(self.budget.max(1.0) * 2.0);
        // Rates move slowly: the intervals are worked out again every few seconds.
        if self
            .allocated
            .is_none_or(|t| now.saturating_duration_since(t) >= REALLOCATE)
        {
            self.allocate(now);
        }
        let mut due: Vec<(f64, i64)> = self
            .chans
            .iter()
            .filter_map(|(id, e)| {
                let elapsed = now.saturating_duration_since(e.last);
                let mut share = elapsed.as_secs_f64() / e.interval.as_secs_f64().max(1e-3);
                // The sweep bound wins over Telegram's timeout, as in `allocate`.
                let floor = e.floor.min(self.longest);
                // A channel the sweep has come round to goes before any other.
                if elapsed >= self.longest {
                    share += 1e6;
                }
                (elapsed >= floor && share >= MIN_ELAPSED).then_some((share, *id))
            })
            .collect();
        due.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let n = (self.tokens.floor().max(0.0) as usize)
            .min(max)
            .min(due.len());
        self.tokens -= n as f64;
        due.into_iter().take(n).map(|(_, id)| id).collect()
    }

    /// How often `ch` is polled (polls a second; 0 for a channel not in the schedule).
    pub(super) fn urgency(&self, ch: i64) -> f64 {
        self.chans
            .get(&ch)
            .map_or(0.0, |e| 1.0 / e.interval.as_secs_f64().max(1e-3))
    }

    /// Each channel's interval, from the rates, the budget and the bounds.
    fn allocate(&mut self, now: Instant) {
        self.allocated = Some(now);
        if self.chans.is_empty() {
            return;
        }
        let lo = 1.0 / self.longest.as_secs_f64().max(1.0);
        let hi = |e: &Entry| {
            let f = e.floor.as_secs_f64();
            if f > 0.0 {
                (1.0 / f).max(lo)
            } else {
                self.budget.max(lo)
            }
        };
        let freq: Vec<(i64, f64)> = match self.mode {
            FollowSchedule::RoundRobin => {
                let each = self.budget / self.chans.len() as f64;
                self.chans
                    .iter()
                    .map(|(id, e)| (*id, each.clamp(lo, hi(e))))
                    .collect()
            }
            FollowSchedule::Adaptive => {
                // The pooled rate: all posts seen over all the time watched.
                let (posts, secs) = self.chans.values().fold((0.0, 0.0), |(p, s), e| {
                    (p + e.count_now(now), s + e.watched())
                });
                let prior = if secs > 0.0 { posts / secs } else { 0.0 }.max(PRIOR_RATE);
                let ids: Vec<i64> = self.chans.keys().copied().collect();
                let rates: Vec<f64> = ids
                    .iter()
                    .map(|id| self.chans[id].rate(now, prior).max(PRIOR_RATE))
                    .collect();
                let his: Vec<f64> = ids.iter().map(|id| hi(&self.chans[id])).collect();
                let f = super::allocate::frequencies(&rates, &his, lo, self.budget);
                ids.into_iter().zip(f).collect()
            }
        };
        for (id, f) in freq {
            if let Some(e) = self.chans.get_mut(&id) {
                e.interval = Duration::from_secs_f64(1.0 / f);
            }
        }
    }

    /// A channel's interval now (for tests and the status line).
    #[cfg(test)]
    fn interval(&self, ch: i64) -> Duration {
        self.chans[&ch].interval
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(mode: FollowSchedule, rates_per_day: &[f64]) -> (Schedule, Instant) {
        let now = Instant::now();
        let mut s = Schedule::new(mode, 1.5, Duration::from_secs(900));
        let ids: Vec<(i64, Option<Seed>)> = rates_per_day
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let seed = (*r > 0.0).then_some(Seed {
                    posts: *r,
                    secs: 86_400.0,
                });
                (i as i64 + 1, seed)
            })
            .collect();
        s.set_channels(&ids, now);
        (s, now)
    }

    #[test]
    fn busy_channels_are_polled_more_often_and_the_sum_meets_the_budget() {
        let rates: Vec<f64> = (1..=200).map(|k| 20_000.0 / k as f64).collect();
        let (s, _) = schedule(FollowSchedule::Adaptive, &rates);
        // Never a busier channel less often than a quieter one; the busiest far more often.
        for i in 1..200 {
            assert!(s.interval(i) <= s.interval(i + 1), "{i}");
        }
        assert!(s.interval(1) * 3 < s.interval(200));
        let per_sec: f64 = (1..=200).map(|i| 1.0 / s.interval(i).as_secs_f64()).sum();
        assert!((per_sec - 1.5).abs() < 0.01, "{per_sec}");
    }

    #[test]
    fn the_server_timeout_and_the_sweep_bound_every_interval() {
        let (mut s, now) = schedule(FollowSchedule::Adaptive, &[1e6, 0.0, 0.0]);
        s.answered(1, Some(30), now);
        s.allocate(now);
        assert!(
            s.interval(1) >= Duration::from_secs(30),
            "never sooner than the timeout"
        );
        assert!(
            s.interval(2) <= Duration::from_secs(900),
            "never later than the sweep"
        );
    }

    /// A sweep shorter than Telegram's timeout wins: a channel is polled within the sweep
    /// (a test of lost pushes failed when the timeout held it back 30 s).
    #[test]
    fn a_sweep_shorter_than_the_timeout_still_bounds_the_wait() {
        let now = Instant::now();
        let mut s = Schedule::new(FollowSchedule::Adaptive, 1.5, Duration::from_secs(3));
        s.set_channels(&[(1, None)], now);
        s.answered(1, Some(30), now);
        let t = now + Duration::from_secs(4);
        assert_eq!(s.due(t, 16), vec![1]);
    }

    #[test]
    fn round_robin_shares_the_budget_equally() {
        let (s, _) = schedule(FollowSchedule::RoundRobin, &[1000.0, 1.0, 0.0]);
        assert_eq!(s.interval(1), s.interval(3));
        assert!((s.interval(1).as_secs_f64() - 2.0).abs() < 0.01);
    }

    #[test]
    fn the_budget_is_spent_even_when_no_channel_is_past_due() {
        let (mut s, now) = schedule(FollowSchedule::Adaptive, &[1.0; 10]);
        // Ten channels at 1.5 polls a second: intervals of ~6.7 s; after a full round nobody
        // is past due, yet the polls keep coming at the budget's pace.
        let mut polled = 0;
        for step in 1..=80 {
            let t = now + Duration::from_millis(250 * step);
            for id in s.due(t, 16) {
                s.answered(id, None, t);
                polled += 1;
            }
        }
        assert!((28..=33).contains(&polled), "{polled} polls in 20 s");
    }

    #[test]
    fn a_new_daemon_learns_a_busy_channel_within_minutes() {
        let (mut s, now) = schedule(FollowSchedule::Adaptive, &[0.0; 100]);
        let t = now + Duration::from_secs(120);
        s.saw_posts(1, 60, t);
        s.allocate(t);
        assert!(
            s.interval(1) < s.interval(2) / 10,
            "{:?} against {:?}",
            s.interval(1),
            s.interval(2)
        );
    }

    #[test]
    fn due_polls_never_outrun_the_budget() {
        let (mut s, now) = schedule(FollowSchedule::RoundRobin, &[1.0; 500]);
        let mut polled = 0;
        for step in 1..=100 {
            let t = now + Duration::from_millis(500 * step);
            for id in s.due(t, 16) {
                s.answered(id, None, t);
                polled += 1;
            }
        }
        // 50 s at 1.5 a second, plus the bucket's start.
        assert!(polled <= 78, "{polled}");
        assert!(polled >= 70, "{polled}");
    }

    #[test]
    fn posts_seen_raise_the_rate_and_pushes_count_as_polls() {
        let (mut s, now) = schedule(FollowSchedule::Adaptive, &[1.0, 1.0]);
        let before = s.interval(1);
        s.saw_posts(1, 500, now);
        s.allocate(now);
        assert!(s.interval(1) < before);
        let t = now + s.interval(1) + Duration::from_secs(1);
        s.pushed(1, true, t);
        assert!(!s.due(t, 16).contains(&1), "just current: not due");
    }
}

/// The schedule against Zipf posting in virtual time: a poll delivers every post pending.
#[cfg(test)]
mod sim {
    use super::*;

    struct Lags(Vec<f64>);

    impl Lags {
        fn p(&self, q: f64) -> f64 {
            self.0[((self.0.len() - 1) as f64 * q) as usize]
        }
        fn mean(&self) -> f64 {
            self.0.iter().sum::<f64>() / self.0.len() as f64
        }
    }

    /// 500 channels posting 5 posts/s in all at Zipf rates (exponent `zipf`) for 300 s, polled
    /// at 1.5 a second with Telegram's timeout of 30 s; `seeded`: rates known at start.
    fn run(mode: FollowSchedule, zipf: f64, seeded: bool) -> Lags {
        let (n, secs, step) = (500usize, 300.0, 0.25);
        let start = Instant::now();
        let mut s = Schedule::new(mode, 1.5, Duration::from_secs(900));
        let h: f64 = (1..=n).map(|k| (k as f64).powf(-zipf)).sum();
        let rates: Vec<f64> = (1..=n).map(|k| 5.0 * (k as f64).powf(-zipf) / h).collect();
        let ids: Vec<(i64, Option<Seed>)> = (0..n)
            .map(|k| {
                let seed = seeded.then_some(Seed {
                    posts: rates[k] * 3600.0,
                    secs: 3600.0,
                });
                (k as i64 + 1, seed)
            })
            .collect();
        s.set_channels(&ids, start);
        // Each channel at its own phase: a quiet one posts within the 300 s with the right odds.
        let mut acc: Vec<f64> = (0..n)
            .map(|k| {
                ((k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) as f64 / (1u64 << 53) as f64
            })
            .collect();
        let mut pending: Vec<Vec<f64>> = vec![Vec::new(); n];
        let mut lags = Vec::new();
        let mut t = 0.0;
        while t < secs + 900.0 {
            t += step;
            let now = start + Duration::from_secs_f64(t);
            for k in 0..n {
                acc[k] += rates[k] * step;
                if acc[k] >= 1.0 && t < secs {
                    acc[k] -= 1.0;
                    pending[k].push(t);
                }
            }
            for id in s.due(now, 16) {
                let got = std::mem::take(&mut pending[(id - 1) as usize]);
                s.answered(id, Some(30), now);
                if !got.is_empty() {
                    s.saw_posts(id, got.len(), now);
                }
                lags.extend(got.iter().map(|p| t - p));
            }
        }
        lags.sort_by(f64::total_cmp);
        Lags(lags)
    }

    /// A new daemon knows no rate: channels not yet polled were taken for silent ones, polled
    /// least and never learned, and the adaptive schedule's p95 was 2.5× round-robin's.
    #[test]
    fn a_new_daemon_polls_unknown_channels_as_average_ones_not_silent_ones() {
        let a = run(FollowSchedule::Adaptive, 1.0, false);
        let r = run(FollowSchedule::RoundRobin, 1.0, false);
        assert!(
            a.p(0.95) <= r.p(0.95),
            "p95 {} against {}",
            a.p(0.95),
            r.p(0.95)
        );
        assert!(
            a.mean() < 0.8 * r.mean(),
            "mean {} against {}",
            a.mean(),
            r.mean()
        );
        assert!(
            a.p(1.0) < 900.0,
            "the sweep bounds every wait: {}",
            a.p(1.0)
        );
    }

    /// With the rates known (seeded from the archive at start), busy channels wait least.
    #[test]
    fn known_rates_cut_the_tail_to_a_third_of_round_robin() {
        let a = run(FollowSchedule::Adaptive, 1.5, true);
        let r = run(FollowSchedule::RoundRobin, 1.5, true);
        assert!(
            a.p(0.95) <= r.p(0.95) / 3.0,
            "p95 {} against {}",
            a.p(0.95),
            r.p(0.95)
        );
        assert!(
            a.mean() < r.mean() / 3.0,
            "mean {} against {}",
            a.mean(),
            r.mean()
        );
    }
}
