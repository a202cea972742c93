//! Wall-clock helpers. Stored times are Unix seconds, UTC; shown times are RFC 3339, UTC.

use std::time::{SystemTime, UNIX_EPOCH};

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch (0 before it).
pub fn unix_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A jump of the wall clock smaller than this is ordinary drift (or a slow tick).
const JUMP_MIN_SECS: i64 = 5;

/// Watches the wall clock against the monotonic one. A jump of the wall clock (NTP setting a
/// wrong clock right, `date -s`, a virtual machine's clock corrected after a resume) shows as
/// the two disagreeing; retries scheduled in wall-clock time must then move with it, or a
/// clock set back an hour holds every retry scheduled meanwhile for an hour.
pub struct ClockWatch {
    mono: std::time::Instant,
    wall_ms: i64,
}

impl Default for ClockWatch {
    fn default() -> Self {
        ClockWatch {
            mono: std::time::Instant::now(),
            wall_ms: unix_millis(),
        }
    }
}

impl ClockWatch {
    /// Seconds the wall clock jumped since the last look (negative: back), if it jumped.
    pub fn jumped(&mut self) -> Option<i64> {
        self.jumped_at(std::time::Instant::now(), unix_millis())
    }

    fn jumped_at(&mut self, mono: std::time::Instant, wall_ms: i64) -> Option<i64> {
        let elapsed = i64::try_from(mono.duration_since(self.mono).as_millis()).unwrap_or(i64::MAX);
        let jump = (wall_ms - self.wall_ms.saturating_add(elapsed)) / 1000;
        self.mono = mono;
        self.wall_ms = wall_ms;
        (jump.abs() >= JUMP_MIN_SECS).then_some(jump)
    }
}

/// `2026-11-23T07:03:06Z` (millisecond precision when `millis`).
pub fn rfc3339(t: SystemTime, millis: bool) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (y, m, day) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    let (hh, mm, ss) = (rem / 3600, rem % 3600 / 60, rem % 60);
    if millis {
        format!(
            "{y:04}-{m:02}-{day:02}T{hh:02}:{mm:02}:{ss:02}.{:03}Z",
            d.subsec_millis()
        )
    } else {
        format!("{y:04}-{m:02}-{day:02}T{hh:02}:{mm:02}:{ss:02}Z")
    }
}

/// `YYYY-MM-DD` (UTC midnight) to Unix seconds.
pub fn parse_date(s: &str) -> Option<i64> {
    let mut it = s.trim().splitn(3, '-');
    let y: i64 = it.next()?.parse().ok()?;
    let m: u32 = it.next()?.parse().ok()?;
    let d: u32 = it.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || !(1970..=9999).contains(&y) {
        return None;
    }
    let days = days_from_civil(y, m, d);
    // Reject 2026-02-31 and the like: the round trip must land on the same date.
    (civil_from_days(days) == (y, m, d)).then_some(days * 86_400)
}

/// `YYYY-MM-DD` (UTC midnight) or `YYYY-MM-DDTHH:MM[:SS]Z` (UTC) to Unix seconds.
pub fn parse_date_time(s: &str) -> Option<i64> {
    let s = s.trim();
    let Some((date, time)) = s.split_once(['T', ' ']) else {
        return parse_date(s);
    };
    let day = parse_date(date)?;
    let time = time.strip_suffix(['Z', 'z'])?;
    let mut parts = time.split(':');
    let h: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let sec: i64 = match parts.next() {
        Some(x) => x.parse().ok()?,
        None => 0,
    };
    if parts.next().is_some()
        || !(0..24).contains(&h)
        || !(0..60).contains(&m)
        || !(0..61).contains(&sec)
    {
        return None;
    }
    Some(day + h * 3600 + m * 60 + sec)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 } as i64;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A span of seconds in words: "45 s", "4 min", "2 h 10 min".
pub fn duration_words(secs: u32) -> String {
    match secs {
        0..=119 => format!("{secs} s"),
        120..=7_199 => format!("{} min", secs.div_ceil(60)),
        _ => format!("{} h {} min", secs / 3600, (secs % 3600).div_ceil(60)),
    }
}

/// How long ago a Unix time was, shortly: "12 s", "5 min", "3 h", "2 d"; "-" for none.
pub fn ago(ts: Option<i64>) -> String {
    match ts {
        None => "-".into(),
        Some(t) => {
            let s = (unix_now() - t).max(0);
            match s {
                0..=119 => format!("{s} s"),
                120..=7_199 => format!("{} min", s / 60),
                7_200..=172_799 => format!("{} h", s / 3600),
                _ => format!("{} d", s / 86_400),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clock_set_back_or_ahead_is_seen_and_drift_is_not() {
        let t0 = std::time::Instant::now();
        let mut w = ClockWatch {
            mono: t0,
            wall_ms: 1_000_000,
        };
        let later = t0 + std::time::Duration::from_secs(1);
        assert_eq!(w.jumped_at(later, 1_001_300), None, "300 ms of drift");
        let later = later + std::time::Duration::from_secs(1);
        assert_eq!(w.jumped_at(later, 1_002_300 - 7_200_000), Some(-7200));
        let later = later + std::time::Duration::from_secs(1);
        assert_eq!(w.jumped_at(later, 1_003_300 - 7_200_000 + 60_000), Some(60));
    }

    #[test]
    fn dates_and_utc_times_are_read_and_nonsense_is_not() {
        assert_eq!(parse_date_time("1970-01-02"), Some(86_400));
        assert_eq!(parse_date_time("1970-01-02T01:00Z"), Some(90_000));
        assert_eq!(parse_date_time("1970-01-02T01:00:30Z"), Some(90_030));
        assert_eq!(
            parse_date_time("1970-01-02T01:00"),
            None,
            "UTC must be said"
        );
        assert_eq!(parse_date_time("1970-01-02T25:00Z"), None);
        assert_eq!(parse_date_time("yesterday"), None);
    }
    use std::time::Duration;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(UNIX_EPOCH, false), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_795_417_386_123);
        assert_eq!(rfc3339(t, true), "2026-11-23T07:03:06.123Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(leap, false), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn parses_dates_and_rejects_impossible_ones() {
        assert_eq!(parse_date("2000-02-29"), Some(951_782_400));
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(parse_date("2026-02-31"), None);
        assert_eq!(parse_date("2026-13-01"), None);
        assert_eq!(parse_date("yesterday"), None);
    }
}
