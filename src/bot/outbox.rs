//! The outbox worker: delivers alerts and digests through the Bot API guard, at least once.
//!
//! One sender per chat, so a chat's messages go in order and a slow or paused chat holds only
//! itself; chats run concurrently under the guard's overall quota. A row is claimed (`sending`,
//! committed) before its call and marked `sent` right after, so a crash leaves at most the rows
//! in flight ambiguous; the next start sends those again and counts them
//! (`tg_bot_outbox_resent_total`). When a chat has more than `digest_after` alerts waiting, they
//! are folded into one digest message instead of being sent one a second for minutes.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use teloxide::prelude::*;
use teloxide::types::{LinkPreviewOptions, ParseMode};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::search::escape_html;
use crate::guard::botapi::{BotCallError, BotGuard};
use crate::health::Health;
use crate::store::{OutboxRow, Store, post_link};

/// Most chats sending at once; the rest wait for a free sender.
const MAX_SENDERS: usize = 256;
/// How often the outbox is read even without a wake-up (retries coming due, other writers).
const POLL: Duration = Duration::from_secs(1);
/// Characters of a post's text quoted in an alert.
const QUOTE_MAX: usize = 700;

/// Delivery latency buckets (ms), from the alert's enqueue to the Bot API's answer.
const LATENCY_BUCKETS_MS: [u64; 10] = [10, 25, 50, 100, 250, 500, 1000, 5000, 30000, 300000];

#[derive(Default)]
pub struct OutboxStats {
    sent: AtomicU64,
    failed: AtomicU64,
    retried: AtomicU64,
    folded: AtomicU64,
    resent: AtomicU64,
    unreachable_chats: AtomicU64,
    /// Deliveries that failed since the last one that went out (any chat), and the last error.
    pub(super) failing_streak: AtomicU64,
    pub(super) last_failure: Mutex<String>,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS_MS.len()],
    latency_count: AtomicU64,
    latency_sum_ms: AtomicU64,
}

impl OutboxStats {
    /// Sent, folded and failed since the daemon started.
    pub fn totals(&self) -> (u64, u64, u64) {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        (load(&self.sent), load(&self.folded), load(&self.failed))
    }

    fn observe_latency(&self, ms: u64) {
        for (i, b) in LATENCY_BUCKETS_MS.iter().enumerate() {
            if ms <= *b {
                self.latency_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_ms.fetch_add(ms, Ordering::Relaxed);
    }

    pub fn write_metrics(&self, out: &mut String) {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        for (name, help, v) in [
            (
                "tg_bot_outbox_sent_total",
                "Outbox messages delivered.",
                &self.sent,
            ),
            (
                "tg_bot_outbox_failed_total",
                "Outbox messages given up on (refused, or the chat is unreachable).",
                &self.failed,
            ),
            (
                "tg_bot_outbox_retries_total",
                "Outbox deliveries rescheduled after a transient failure or a 429.",
                &self.retried,
            ),
            (
                "tg_bot_outbox_folded_total",
                "Alerts folded into a digest because their chat's queue was long.",
                &self.folded,
            ),
            (
                "tg_bot_outbox_resent_total",
                "Messages in flight at a crash, sent again at the next start (at-least-once).",
                &self.resent,
            ),
            (
                "tg_bot_unreachable_chats_total",
                "Chats found unreachable (blocked the bot, deactivated, left).",
                &self.unreachable_chats,
            ),
        ] {
            crate::health::counter(out, name, help, load(v));
        }
        let name = "tg_bot_alert_delivery_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} From the alert's enqueue (in the ingest transaction) to the Bot API's answer.\n# TYPE {name} histogram"
        );
        for (i, b) in LATENCY_BUCKETS_MS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{}\"}} {}",
                *b as f64 / 1000.0,
                load(&self.latency_buckets[i])
            );
        }
        let count = load(&self.latency_count);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum {:.3}",
            load(&self.latency_sum_ms) as f64 / 1000.0
        );
        let _ = writeln!(out, "{name}_count {count}");
    }
}

pub struct Outbox {
    pub bot: Bot,
    pub guard: BotGuard,
    pub store: Store,
    pub digest_after: u32,
    pub stats: Arc<OutboxStats>,
}

/// Retry delay after `attempts` failures: 1 s doubling to 5 minutes.
fn backoff(attempts: i64) -> Duration {
    let exp = u32::try_from(attempts.clamp(1, 20) - 1).unwrap_or(0);
    Duration::from_secs(1u64.checked_shl(exp).unwrap_or(u64::MAX).min(300))
}

fn cut(s: &str, max: usize) -> String {
    let mut out: String = s.chars().take(max).collect();
    if s.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}

fn channel_label(title: &str, username: Option<&str>) -> String {
    match username {
        Some(u) => format!("{} (@{})", escape_html(title), escape_html(u)),
        None => escape_html(title),
    }
}

impl Outbox {
    /// The worker: runs until `cancel`. Store errors end it (the part restarts it).
    pub async fn run(
        self: Arc<Self>,
        cancel: CancellationToken,
        health: Option<Arc<Health>>,
    ) -> Result<(), crate::store::StoreError> {
        let resent = self.store.outbox_recover().await?;
        if resent > 0 {
            self.stats.resent.fetch_add(resent, Ordering::Relaxed);
            tracing::warn!(
                messages = resent,
                "messages were in flight when the daemon stopped; sending them again (at-least-once)"
            );
        }
        if let Some(h) = &health {
            let stats = self.stats.clone();
            h.add_metrics(Arc::new(move |out: &mut String| stats.write_metrics(out)));
        }
        let busy: Arc<Mutex<HashSet<i64>>> = Arc::default();
        let mut senders: JoinSet<()> = JoinSet::new();
        let mut failing = super::delivery_check::DeliveryCheck::default();
        loop {
            let now = crate::time::unix_now();
            if let Some(h) = &health {
                failing
                    .check(&self.store, h, &self.guard, &self.stats, now)
                    .await;
            }
            let sending = busy.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let due = self.store.outbox_due(now, 2000, &sending).await?;
            let mut by_chat: HashMap<i64, Vec<OutboxRow>> = HashMap::new();
            let mut order = Vec::new();
            // Only this loop starts senders, so no chat read here has one.
            for row in due {
                let e = by_chat.entry(row.chat_id).or_default();
                if e.is_empty() {
                    order.push(row.chat_id);
                }
                e.push(row);
            }
            for chat in order {
                if senders.len() >= MAX_SENDERS {
                    break;
                }
                let Some(rows) = by_chat.remove(&chat) else {
                    continue;
                };
                busy.lock().unwrap_or_else(|p| p.into_inner()).insert(chat);
                let me = self.clone();
                let busy = busy.clone();
                let cancel = cancel.clone();
                senders.spawn(async move {
                    // On shutdown a sender finishes the call it is in and takes no new row: a
                    // call cut off mid-flight would leave its row's delivery unknown.
                    if let Err(e) = me.send_chat(chat, rows, &cancel).await {
                        tracing::warn!(chat, error = %e, "outbox: the database failed while delivering; will retry");
                    }
                    busy.lock().unwrap_or_else(|p| p.into_inner()).remove(&chat);
                });
            }
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = self.store.outbox_woken() => {}
                Some(_) = senders.join_next(), if !senders.is_empty() => {}
                _ = tokio::time::sleep(POLL) => {}
            }
        }
        while senders.join_next().await.is_some() {}
        Ok(())
    }

    /// Sends one chat's due rows in order; stops at the first that must wait.
    async fn send_chat(
        &self,
        chat: i64,
        rows: Vec<OutboxRow>,
        cancel: &CancellationToken,
    ) -> Result<(), crate::store::StoreError> {
        let mut rows = rows;
        let long_queue = self.digest_after > 0
            && rows.iter().any(|r| r.kind == "alert")
            && self.store.outbox_pending_alerts(chat).await? > i64::from(self.digest_after);
        if long_queue
            && let Some(digest) = self
                .store
                .outbox_fold(chat, crate::time::unix_now())
                .await?
        {
            let folded = digest.payload["alerts"].as_u64().unwrap_or(0);
            self.stats.folded.fetch_add(folded, Ordering::Relaxed);
            tracing::info!(
                chat,
                alerts = folded,
                "outbox: a long queue folded into a digest"
            );
            rows.retain(|r| r.kind != "alert");
            rows.push(digest);
        }
        for row in rows {
            if cancel.is_cancelled() {
                return Ok(());
            }
            let text = match self.render(&row).await {
                Ok(t) => t,
                Err(why) => {
                    self.stats.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(id = row.id, error = %why, "outbox: a row cannot be rendered; marked failed");
                    self.store.outbox_failed(row.id, &why).await?;
                    continue;
                }
            };
            let req = self
                .bot
                .send_message(ChatId(chat), text)
                .parse_mode(ParseMode::Html)
                .link_preview_options(LinkPreviewOptions {
                    is_disabled: true,
                    url: None,
                    prefer_small_media: false,
                    prefer_large_media: false,
                    show_above_text: false,
                });
            // Claimed once the quotas let it go, right before the call: after a crash only the
            // rows whose call may have been made are left `sending`.
            let claim_error = Mutex::new(None);
            let claimed = std::sync::atomic::AtomicBool::new(false);
            let claim = || async {
                match self.store.outbox_claim(row.id).await {
                    Ok(c) => {
                        claimed.store(c, Ordering::Relaxed);
                        c && !cancel.is_cancelled()
                    }
                    Err(e) => {
                        *claim_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                        false
                    }
                }
            };
            let result = self
                .guard
                .call_claimed(Some(chat), claim, || req.send_ref())
                .await;
            if let Some(e) = claim_error.lock().unwrap_or_else(|p| p.into_inner()).take() {
                return Err(e);
            }
            let result = match result {
                Ok(Some(msg)) => Ok(msg),
                // Folded or handled meanwhile, or the daemon is stopping (then the claimed
                // row is put back: its call was not made).
                Ok(None) => {
                    if claimed.load(Ordering::Relaxed) {
                        self.store
                            .outbox_retry(
                                row.id,
                                crate::time::unix_now(),
                                "not sent: the daemon stopped",
                            )
                            .await?;
                        return Ok(());
                    }
                    continue;
                }
                Err(e) => Err(e),
            };
            let now = crate::time::unix_now();
            match result {
                Ok(msg) => {
                    self.store
                        .outbox_sent(row.id, i64::from(msg.id.0), now)
                        .await?;
                    self.stats.sent.fetch_add(1, Ordering::Relaxed);
                    self.stats.failing_streak.store(0, Ordering::Relaxed);
                    if let Some(c) = row.created_ms {
                        let ms = crate::time::unix_millis().saturating_sub(c).max(0) as u64;
                        self.stats.observe_latency(ms);
                    }
                }
                Err(e @ BotCallError::Unreachable(_)) => {
                    let n = self
                        .store
                        .outbox_chat_unreachable(chat, &e.to_string())
                        .await?;
                    self.stats.unreachable_chats.fetch_add(1, Ordering::Relaxed);
                    self.stats.failed.fetch_add(n, Ordering::Relaxed);
                    tracing::warn!(chat, messages = n, error = %e, "outbox: chat unreachable; its alerts are off until the user writes to the bot again");
                    return Ok(());
                }
                // A group upgraded to a supergroup: every alert to the old id would be
                // refused, one by one, forever. Its subscriptions and queue move to the new id,
                // and the next round sends there.
                Err(BotCallError::Moved { to, .. }) => {
                    let n = self.store.outbox_chat_moved(chat, to).await?;
                    tracing::info!(
                        chat,
                        to,
                        messages = n,
                        "outbox: the group became a supergroup; its alerts go there now"
                    );
                    return Ok(());
                }
                Err(e @ BotCallError::Refused(_)) => {
                    self.stats.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(chat, id = row.id, error = %e, "outbox: message refused; marked failed");
                    self.store.outbox_failed(row.id, &e.to_string()).await?;
                }
                Err(e) => {
                    let wait = e
                        .retry_in()
                        .unwrap_or_default()
                        .max(backoff(row.attempts + 1));
                    let next = now + i64::try_from(wait.as_secs()).unwrap_or(300).max(1);
                    self.stats.retried.fetch_add(1, Ordering::Relaxed);
                    self.stats.failing_streak.fetch_add(1, Ordering::Relaxed);
                    *self
                        .stats
                        .last_failure
                        .lock()
                        .unwrap_or_else(|p| p.into_inner()) = e.to_string();
                    tracing::info!(chat, id = row.id, retry_in_s = next - now, error = %e, "outbox: delivery postponed");
                    self.store
                        .outbox_retry(row.id, next, &e.to_string())
                        .await?;
                    // The chat's later messages wait too, so they stay in order.
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// The message text (Telegram HTML) for a row. `Err`: the row cannot be sent.
    async fn render(&self, row: &OutboxRow) -> Result<String, String> {
        match row.kind.as_str() {
            "alert" => {
                let p = &row.payload;
                let (Some(channel_id), Some(message_id)) =
                    (p["channel_id"].as_i64(), p["message_id"].as_i64())
                else {
                    return Err("the alert's payload lacks channel_id or message_id".into());
                };
                let pattern = p["pattern"].as_str().unwrap_or("");
                let post = self
                    .store
                    .alert_post(channel_id, message_id)
                    .await
                    .map_err(|e| e.to_string())?;
                let mut out = format!("🔔 <b>{}</b>", escape_html(pattern));
                match post {
                    Some(post) => {
                        let _ = write!(
                            out,
                            " in {}\n\n{}",
                            channel_label(&post.channel_title, post.channel_username.as_deref()),
                            escape_html(&cut(&post.text, QUOTE_MAX))
                        );
                        if post.deleted {
                            out.push_str("\n\n(deleted from the channel since)");
                        }
                        let _ = write!(
                            out,
                            "\n\n{}",
                            post_link(channel_id, post.channel_username.as_deref(), message_id)
                        );
                    }
                    None => {
                        let _ = write!(
                            out,
                            "\n\nA post matched, but it is no longer in the archive (its channel was purged).\n{}",
                            post_link(channel_id, None, message_id)
                        );
                    }
                }
                Ok(out)
            }
            "digest" => {
                let p = &row.payload;
                let total = p["alerts"].as_u64().unwrap_or(0);
                let posts = p["posts"].as_array().cloned().unwrap_or_default();
                let mut per_channel: Vec<(i64, usize)> = Vec::new();
                for post in &posts {
                    let Some(c) = post["channel_id"].as_i64() else {
                        continue;
                    };
                    match per_channel.iter_mut().find(|(id, _)| *id == c) {
                        Some((_, n)) => *n += 1,
                        None => per_channel.push((c, 1)),
                    }
                }
                per_channel.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                let ids: Vec<i64> = per_channel.iter().map(|(c, _)| *c).collect();
                let names = self
                    .store
                    .channel_names(&ids)
                    .await
                    .map_err(|e| e.to_string())?;
                let name = |c: i64| -> String {
                    match names.get(&c) {
                        Some((_, Some(u))) => format!("@{}", escape_html(u)),
                        Some((t, None)) => escape_html(t),
                        None => format!("channel {c}"),
                    }
                };
                let mut out = match per_channel.as_slice() {
                    [(c, _)] => format!("📬 {total} new matches in {}", name(*c)),
                    _ => format!("📬 {total} new matches"),
                };
                if per_channel.len() > 1 {
                    out.push(':');
                    for (c, n) in per_channel.iter().take(10) {
                        let _ = write!(out, "\n• {n} in {}", name(*c));
                    }
                    if per_channel.len() > 10 {
                        let _ = write!(out, "\n• and {} more channels", per_channel.len() - 10);
                    }
                }
                out.push_str("\n\nNewest:");
                for post in posts.iter().rev().take(5) {
                    if let (Some(c), Some(m)) =
                        (post["channel_id"].as_i64(), post["message_id"].as_i64())
                    {
                        let username = names.get(&c).and_then(|(_, u)| u.as_deref());
                        let _ = write!(out, "\n{}", post_link(c, username, m));
                    }
                }
                out.push_str("\n\nFolded into one message because they came faster than Telegram lets a bot write to one chat. /search finds them all.");
                Ok(out)
            }
            "notice" => row
                .payload
                .get("text")
                .and_then(|t| t.as_str())
                .map(escape_html)
                .ok_or_else(|| "the notice's payload lacks its text".to_string()),
            other => Err(format!("unknown outbox kind {other:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_from_one_second_to_five_minutes() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(5), Duration::from_secs(16));
        assert_eq!(backoff(12), Duration::from_secs(300));
        assert_eq!(backoff(i64::MAX), Duration::from_secs(300));
        assert_eq!(backoff(-3), Duration::from_secs(1));
    }

    #[test]
    fn long_texts_are_cut_on_characters() {
        assert_eq!(cut("ёжик", 2), "ёж…");
        assert_eq!(cut("ёж", 2), "ёж");
    }
}
