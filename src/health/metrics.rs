//! Prometheus text exposition, written by hand: a few gauges and one histogram do not need a
//! metrics framework.

use std::fmt::Write;
use std::time::Duration;

use crate::supervisor::{PartState, PartStatus};

/// Database ping latency buckets, seconds.
pub const DB_BUCKETS: &[f64] = &[
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

#[derive(Debug, Clone)]
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    pub fn observe(&mut self, v: f64) {
        for (i, b) in self.bounds.iter().enumerate() {
            if v <= *b {
                self.counts[i] += 1;
            }
        }
        self.sum += v;
        self.count += 1;
    }

    pub fn write(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {c}");
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum {}", self.sum);
        let _ = writeln!(out, "{name}_count {}", self.count);
    }
}

pub struct Inputs<'a> {
    pub uptime: Duration,
    pub ready: bool,
    pub parts: Vec<(String, PartStatus)>,
    pub db_latency: &'a Histogram,
    pub db_up: bool,
}

/// Resident set size from /proc (Linux), in bytes.
pub fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn gauge(out: &mut String, name: &str, help: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
    let _ = writeln!(out, "{name} {value}");
}

/// One counter in Prometheus text, for every part that exports its own.
pub fn counter(out: &mut String, name: &str, help: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} counter");
    let _ = writeln!(out, "{name} {value}");
}

pub fn render(i: &Inputs<'_>) -> String {
    let mut out = String::with_capacity(2048);
    let _ = writeln!(out, "# HELP tgparser_build_info Build information.");
    let _ = writeln!(out, "# TYPE tgparser_build_info gauge");
    let _ = writeln!(
        out,
        "tgparser_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    if let Some(rss) = rss_bytes() {
        gauge(
            &mut out,
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            rss,
        );
    }
    gauge(
        &mut out,
        "tgparser_uptime_seconds",
        "Seconds since the daemon started.",
        format!("{:.3}", i.uptime.as_secs_f64()),
    );
    gauge(
        &mut out,
        "tgparser_ready",
        "1 when /readyz passes or warns, 0 when it fails.",
        u8::from(i.ready),
    );
    gauge(
        &mut out,
        "tgparser_db_up",
        "1 when the last database ping succeeded.",
        u8::from(i.db_up),
    );
    let _ = writeln!(
        out,
        "# HELP tgparser_part_state Current state of each part (1 for the state it is in)."
    );
    let _ = writeln!(out, "# TYPE tgparser_part_state gauge");
    for (name, p) in &i.parts {
        for s in PartState::ALL_NAMES {
            let v = u8::from(p.state.name() == s);
            let _ = writeln!(
                out,
                "tgparser_part_state{{part=\"{name}\",state=\"{s}\"}} {v}"
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP tgparser_part_restarts_total Restarts of each part after a failure."
    );
    let _ = writeln!(out, "# TYPE tgparser_part_restarts_total counter");
    for (name, p) in &i.parts {
        let _ = writeln!(
            out,
            "tgparser_part_restarts_total{{part=\"{name}\"}} {}",
            p.restarts
        );
    }
    i.db_latency.write(
        &mut out,
        "tgparser_db_ping_seconds",
        "Latency of the database health ping.",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let mut h = Histogram::new(&[0.001, 0.01]);
        h.observe(0.0005);
        h.observe(0.005);
        h.observe(5.0);
        let mut s = String::new();
        h.write(&mut s, "x", "help");
        assert!(s.contains("x_bucket{le=\"0.001\"} 1\n"), "{s}");
        assert!(s.contains("x_bucket{le=\"0.01\"} 2\n"), "{s}");
        assert!(s.contains("x_bucket{le=\"+Inf\"} 3\n"), "{s}");
        assert!(s.contains("x_count 3\n"), "{s}");
    }
}
