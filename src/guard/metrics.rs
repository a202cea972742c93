//! The guard's Prometheus metrics.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::{BreakerState, Guard, lock};

impl Guard {
    /// Prometheus text for `/metrics`.
    pub fn write_metrics(&self, out: &mut String) {
        let s = &self.0.stats;
        let seconds = |ms: &std::sync::atomic::AtomicU64| {
            format!("{:.3}", ms.load(Ordering::Relaxed) as f64 / 1000.0)
        };
        for (name, help, value) in [
            (
                "tg_requests_total",
                "MTProto calls made through the guard.",
                s.calls.load(Ordering::Relaxed).to_string(),
            ),
            (
                "tg_request_failures_total",
                "MTProto calls that failed with a network error, a timeout or a 5xx.",
                s.failures.load(Ordering::Relaxed).to_string(),
            ),
            (
                "tg_request_timeouts_total",
                "MTProto calls that got no answer in time.",
                s.timeouts.load(Ordering::Relaxed).to_string(),
            ),
            (
                "tg_flood_waits_total",
                "FLOOD_WAIT answers received.",
                s.flood_waits.load(Ordering::Relaxed).to_string(),
            ),
            (
                "tg_flood_wait_seconds_total",
                "Seconds of waiting Telegram asked for with FLOOD_WAIT.",
                seconds(&s.flood_wait_ms),
            ),
            (
                "tg_paced_seconds_total",
                "Seconds calls waited for their method's pacing window.",
                seconds(&s.paced_ms),
            ),
        ] {
            crate::health::counter(out, name, help, value);
        }
        let now = Instant::now();
        let bs = lock(&self.0.breakers);
        let _ = writeln!(
            out,
            "# HELP tg_breaker_state Circuit breaker per DC (1 for the state it is in)."
        );
        let _ = writeln!(out, "# TYPE tg_breaker_state gauge");
        for (dc, b) in bs.iter() {
            let cur = b.state(now);
            for st in [
                BreakerState::Closed,
                BreakerState::Open,
                BreakerState::HalfOpen,
            ] {
                let _ = writeln!(
                    out,
                    "tg_breaker_state{{dc=\"{dc}\",state=\"{}\"}} {}",
                    st.as_str(),
                    u8::from(cur == st)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP tg_breaker_opened_total Times each DC's breaker opened."
        );
        let _ = writeln!(out, "# TYPE tg_breaker_opened_total counter");
        for (dc, b) in bs.iter() {
            let _ = writeln!(
                out,
                "tg_breaker_opened_total{{dc=\"{dc}\"}} {}",
                b.opened_total
            );
        }
    }
}
