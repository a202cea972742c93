//! What live following measures, for `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use crate::health::Histogram;

/// Delivery lag buckets, seconds. Telegram dates posts to the second, so the lag is too.
const LAG_BUCKETS: &[f64] = &[1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0];

#[derive(Debug, Default)]
struct ChannelLive {
    name: String,
    last_lag: f64,
    live_posts: u64,
    refilled_posts: u64,
}

/// What live following measured, for `/metrics`: kept across part restarts.
pub struct LiveStats {
    channels: Mutex<BTreeMap<i64, ChannelLive>>,
    lag: Mutex<Histogram>,
}

impl Default for LiveStats {
    fn default() -> Self {
        LiveStats {
            channels: Mutex::new(BTreeMap::new()),
            lag: Mutex::new(Histogram::new(LAG_BUCKETS)),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A label value with `"` and `\` escaped as the exposition format wants.
fn label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl LiveStats {
    pub(super) fn delivered(&self, channel: i64, name: &str, lag: f64) {
        lock(&self.lag).observe(lag);
        let mut chs = lock(&self.channels);
        let c = chs.entry(channel).or_default();
        c.name = name.to_string();
        c.last_lag = lag;
        c.live_posts += 1;
    }

    pub(super) fn refilled(&self, channel: i64, name: &str, n: usize) {
        let mut chs = lock(&self.channels);
        let c = chs.entry(channel).or_default();
        c.name = name.to_string();
        c.refilled_posts += n as u64;
    }

    pub fn write_metrics(&self, out: &mut String) {
        lock(&self.lag).write(
            out,
            "tg_delivery_lag_seconds",
            "From a post's date to it being stored, for posts followed live.",
        );
        let chs = lock(&self.channels);
        let _ = writeln!(
            out,
            "# HELP tg_channel_delivery_lag_seconds Lag of the last post followed live, per channel."
        );
        let _ = writeln!(out, "# TYPE tg_channel_delivery_lag_seconds gauge");
        for (id, c) in chs.iter() {
            let _ = writeln!(
                out,
                "tg_channel_delivery_lag_seconds{{channel_id=\"{id}\",channel=\"{}\"}} {}",
                label(&c.name),
                c.last_lag
            );
        }
        let _ = writeln!(
            out,
            "# HELP tg_channel_live_posts_total Posts stored from live updates, per channel."
        );
        let _ = writeln!(out, "# TYPE tg_channel_live_posts_total counter");
        for (id, c) in chs.iter() {
            let _ = writeln!(
                out,
                "tg_channel_live_posts_total{{channel_id=\"{id}\",channel=\"{}\"}} {}",
                label(&c.name),
                c.live_posts
            );
        }
        let _ = writeln!(
            out,
            "# HELP tg_channel_refilled_posts_total Posts recovered by refilling a gap, per channel."
        );
        let _ = writeln!(out, "# TYPE tg_channel_refilled_posts_total counter");
        for (id, c) in chs.iter() {
            let _ = writeln!(
                out,
                "tg_channel_refilled_posts_total{{channel_id=\"{id}\",channel=\"{}\"}} {}",
                label(&c.name),
                c.refilled_posts
            );
        }
    }
}
