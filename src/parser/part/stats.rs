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
    polls: u64,
    pushes: u64,
}

/// A per-channel metric: name, type, help, and its value for one channel.
type Family = (
    &'static str,
    &'static str,
    &'static str,
    fn(&ChannelLive) -> String,
);

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
    pub(crate) fn delivered(&self, channel: i64, name: &str, lag: f64) {
        lock(&self.lag).observe(lag);
        let mut chs = lock(&self.channels);
        let c = chs.entry(channel).or_default();
        c.name = name.to_string();
        c.last_lag = lag;
        c.live_posts += 1;
    }

    pub(crate) fn refilled(&self, channel: i64, name: &str, n: usize) {
        let mut chs = lock(&self.channels);
        let c = chs.entry(channel).or_default();
        c.name = name.to_string();
        c.refilled_posts += n as u64;
    }

    /// A scheduled poll or a catch-up of `channel` (one `getChannelDifference` run).
    pub(crate) fn polled(&self, channel: i64, name: &str) {
        let mut chs = lock(&self.channels);
        let c = chs.entry(channel).or_default();
        c.name = name.to_string();
        c.polls += 1;
    }

    /// A pushed update of `channel` applied in order.
    pub(crate) fn pushed(&self, channel: i64, name: &str) {
        let mut chs = lock(&self.channels);
        let c = chs.entry(channel).or_default();
        c.name = name.to_string();
        c.pushes += 1;
    }

    pub fn write_metrics(&self, out: &mut String) {
        lock(&self.lag).write(
            out,
            "tg_delivery_lag_seconds",
            "From a post's date to it being stored, for posts followed live.",
        );
        let chs = lock(&self.channels);
        let families: [Family; 5] = [
            (
                "tg_channel_delivery_lag_seconds",
                "gauge",
                "Lag of the last post followed live, per channel.",
                |c| c.last_lag.to_string(),
            ),
            (
                "tg_channel_live_posts_total",
                "counter",
                "Posts stored as they came (pushed, or found by a poll), per channel.",
                |c| c.live_posts.to_string(),
            ),
            (
                "tg_channel_refilled_posts_total",
                "counter",
                "Posts recovered from history after a gap (refilled, or a too-long difference), per channel.",
                |c| c.refilled_posts.to_string(),
            ),
            (
                "tg_channel_polls_total",
                "counter",
                "Polls of the channel (updates.getChannelDifference runs), per channel.",
                |c| c.polls.to_string(),
            ),
            (
                "tg_channel_pushed_updates_total",
                "counter",
                "Pushed updates applied in order, per channel.",
                |c| c.pushes.to_string(),
            ),
        ];
        for (name, kind, help, value) in families {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (id, c) in chs.iter() {
                let _ = writeln!(
                    out,
                    "{name}{{channel_id=\"{id}\",channel=\"{}\"}} {}",
                    label(&c.name),
                    value(c)
                );
            }
        }
    }
}
