//! The parser's work loop: refills first (the freshest posts a gap hid), then a page of a
//! recheck (`parser::recheck`), then a page of each channel's backfill in turn; idle, it waits
//! for a refill or two seconds.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::super::backfill::{self, BackfillError};
use super::super::client::Connected;
use super::super::recheck;
use super::{Refill, frozen, revoked};
use crate::parser::part::LiveStats;
use crate::store::{ChannelRecord, Store};
use crate::supervisor::PartError;

const IDLE: Duration = Duration::from_secs(2);

/// A refill Telegram refuses (a 400) this many times is dropped.
const REFILL_REFUSALS: u32 = 3;

/// What to do with a failed page or refill: go on, wait, or stop the part.
async fn handle(
    err: BackfillError,
    store: &Store,
    cancel: &CancellationToken,
) -> Result<(), PartError> {
    match err {
        BackfillError::Private(name) => {
            tracing::warn!(channel = %name, "channel is private; skipped until resumed");
            Ok(())
        }
        BackfillError::Revoked(e) => Err(revoked(store, &e).await),
        BackfillError::Frozen(e) => Err(frozen(store, &e).await),
        BackfillError::Unavailable { retry_in, message } => {
            tracing::warn!(retry_in_s = retry_in.as_secs(), "{message}");
            tokio::select! {
                _ = tokio::time::sleep(retry_in.max(Duration::from_millis(100))) => Ok(()),
                _ = cancel.cancelled() => Ok(()),
            }
        }
        // One channel's trouble (a 400 for its history) must not stop the others.
        BackfillError::Telegram { channel, error } => {
            tracing::warn!(%channel, %error, "history request refused; will try again later");
            Ok(())
        }
        // A full disk or another program's lock: wait for writes to work again; the posts
        // not stored are fetched again (the cursor did not move; a refill is queued).
        BackfillError::Store(e) if crate::store::writes::failing().is_some() => {
            tracing::warn!("{e}; waiting for the database to take writes");
            store.wait_writable(cancel).await;
            Ok(())
        }
        BackfillError::Store(e) => Err(PartError::Retry(e.to_string())),
    }
}

async fn log_page(store: &Store, stored: Vec<(i64, backfill::PageOutcome)>) {
    for (id, _) in stored.into_iter().filter(|(_, o)| o.done) {
        let name = match store.find_channel(&id.to_string()).await {
            Ok(Some(c)) => c.display_name(),
            _ => id.to_string(),
        };
        tracing::info!(channel = %name, "backfill complete");
    }
}

pub(super) async fn work_loop(
    conn: &Connected,
    store: &Store,
    cancel: &CancellationToken,
    mut refills: mpsc::UnboundedReceiver<Refill>,
    stats: &LiveStats,
) -> Result<(), PartError> {
    let mut last_flush = Instant::now();
    let mut queued: Vec<Refill> = Vec::new();
    let mut refused: HashMap<Refill, u32> = HashMap::new();
    let mut recheck_refused: HashMap<i64, u32> = HashMap::new();
    let mut pipe = backfill::Pipeline::new(store.clone());
    loop {
        if cancel.is_cancelled() {
            let _ = pipe.finish().await;
            return Ok(());
        }
        while let Ok(r) = refills.try_recv() {
            if !queued.contains(&r) {
                queued.push(r);
            }
        }
        // Refills first: they are the freshest posts. Those in memory (a start's top-up, a
        // range the database could not take), then those in the database (of active
        // channels: a paused channel's wait for it to resume).
        let next = match queued.first().copied() {
            Some(r) => {
                queued.remove(0);
                Some((r, false))
            }
            None => store
                .refills()
                .await
                .map_err(|e| PartError::Retry(e.to_string()))?
                .first()
                .map(|r| (*r, true)),
        };
        if let Some((r, stored)) = next {
            let ch = store
                .find_channel(&r.channel.to_string())
                .await
                .map_err(|e| PartError::Retry(e.to_string()))?;
            let Some(ch) = ch.filter(|c| c.state == "active") else {
                continue;
            };
            let res = tokio::select! {
                r = backfill::refill(conn, store, &ch, r.after, r.before) => r,
                _ = cancel.cancelled() => return Ok(()),
            };
            match res {
                Ok(n) => {
                    refused.remove(&r);
                    // Also the database's copy of a range taken from memory.
                    store
                        .refill_done(r)
                        .await
                        .map_err(|e| PartError::Retry(e.to_string()))?;
                    if n > 0 {
                        tracing::info!(channel = %ch.display_name(), posts = n, after = r.after, "gap refilled from history");
                    }
                    stats.refilled(ch.id, &ch.display_name(), n);
                }
                Err(e) => {
                    // Try again later; a refusal (a 400) only a few times, or a refill
                    // Telegram keeps refusing would run before every backfill page forever.
                    let again = match &e {
                        BackfillError::Private(_) => false,
                        BackfillError::Telegram { .. } if stored => !store
                            .refill_refused(r, REFILL_REFUSALS)
                            .await
                            .map_err(|e| PartError::Retry(e.to_string()))?,
                        BackfillError::Telegram { .. } => {
                            let tries = refused.entry(r).or_insert(0);
                            *tries += 1;
                            *tries < REFILL_REFUSALS
                        }
                        _ => true,
                    };
                    if !again {
                        refused.remove(&r);
                        store
                            .refill_done(r)
                            .await
                            .map_err(|e| PartError::Retry(e.to_string()))?;
                    } else if !stored {
                        queued.push(r);
                    }
                    handle(e, store, cancel).await?;
                }
            }
            continue;
        }
        let step = tokio::select! {
            r = recheck::step(conn, store, &mut recheck_refused) => r,
            _ = cancel.cancelled() => {
                let _ = pipe.finish().await;
                return Ok(());
            }
        };
        let rechecking = match step {
            Ok(did) => did,
            Err(e) => {
                handle(e, store, cancel).await?;
                true
            }
        };
        let pending: Vec<ChannelRecord> = store
            .channels()
            .await
            .map_err(|e| PartError::Retry(e.to_string()))?
            .into_iter()
            .filter(|c| c.state == "active" && c.backfill_state != "done")
            .filter_map(|c| pipe.view(c))
            .collect();
        if pending.is_empty() {
            match pipe.finish().await {
                Ok(prev) => log_page(store, prev).await,
                Err(e) => handle(e, store, cancel).await?,
            }
            if !rechecking {
                tokio::select! {
                    _ = tokio::time::sleep(IDLE) => {}
                    r = refills.recv() => if let Some(r) = r { queued.push(r) },
                    _ = cancel.cancelled() => return Ok(()),
                }
            }
        }
        for ch in pending {
            let res = tokio::select! {
                r = pipe.step(conn, &ch) => r,
                _ = cancel.cancelled() => {
                    let _ = pipe.finish().await;
                    return Ok(());
                }
            };
            match res {
                Ok(prev) => log_page(store, prev).await,
                Err(e) => handle(e, store, cancel).await?,
            }
            if !refills.is_empty() {
                break;
            }
        }
        if last_flush.elapsed() > Duration::from_secs(5) {
            let _ = conn.session.flush().await;
            last_flush = Instant::now();
        }
    }
}
