//! Backfill: a channel's history, newest to oldest, in pages of 100. Each page is stored in the
//! same transaction that moves the channel's cursor, so a crash (even `kill -9`) resumes exactly
//! after the last stored page, and the cursor never moves backwards. Channels take turns, one
//! page each, so a big channel does not starve the others.

use std::time::Duration;

use grammers_client::tl;

use super::client::Connected;
use super::convert;
use crate::guard::GuardError;
use crate::store::{ChannelRecord, CursorAdvance, Store, StoreError};

pub const PAGE: i32 = 100;

#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    #[error("{0} is private now: the account must join it to read it")]
    Private(String),
    #[error("{channel}: Telegram refused the history request: {error}")]
    Telegram { channel: String, error: String },
    /// The session is gone (Telegram's error name): the parser must stop until someone logs in
    /// again.
    #[error("Telegram revoked the session ({0}); log in again with `tgparser login`")]
    Revoked(String),
    /// Telegram is unreachable for now (the guard's breaker is open).
    #[error("{message}")]
    Unavailable { retry_in: Duration, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl BackfillError {
    pub fn from_guard(ch: &ChannelRecord, e: GuardError) -> BackfillError {
        match e {
            GuardError::Revoked(name) => BackfillError::Revoked(name),
            GuardError::Unavailable { retry_in, .. } => BackfillError::Unavailable {
                retry_in,
                message: e.to_string(),
            },
            GuardError::Flood { secs, .. } => BackfillError::Unavailable {
                retry_in: Duration::from_secs(u64::from(secs)),
                message: e.to_string(),
            },
            other => BackfillError::Telegram {
                channel: ch.display_name(),
                error: other.to_string(),
            },
        }
    }
}

/// What one page did.
#[derive(Debug, Clone, Copy)]
pub struct PageOutcome {
    pub stored: usize,
    pub done: bool,
}

fn input_peer(ch: &ChannelRecord) -> tl::enums::InputPeer {
    tl::types::InputPeerChannel {
        channel_id: ch.id,
        access_hash: ch.access_hash.unwrap_or(0),
    }
    .into()
}

/// Fetches and stores the next page of `ch`. Pacing and FLOOD_WAIT are waited out in the guard;
/// nothing is skipped.
pub async fn next_page(
    conn: &Connected,
    store: &Store,
    ch: &ChannelRecord,
) -> Result<PageOutcome, BackfillError> {
    let offset_id = ch.backfill_cursor.unwrap_or(0) as i32;
    let req = tl::functions::messages::GetHistory {
        peer: input_peer(ch),
        offset_id,
        offset_date: 0,
        add_offset: 0,
        limit: PAGE,
        max_id: 0,
        min_id: 0,
        hash: 0,
    };
    let answer = match conn.invoke(&req).await {
        Ok(a) => a,
        Err(GuardError::Rpc { name, .. })
            if name == "CHANNEL_PRIVATE" || name == "CHANNEL_INVALID" =>
        {
            store
                .set_channel_state(ch.id, "private", Some(&name))
                .await?;
            return Err(BackfillError::Private(ch.display_name()));
        }
        Err(e) => return Err(BackfillError::from_guard(ch, e)),
    };
    let messages = match answer {
        tl::enums::messages::Messages::Messages(m) => m.messages,
        tl::enums::messages::Messages::Slice(m) => m.messages,
        tl::enums::messages::Messages::ChannelMessages(m) => m.messages,
        tl::enums::messages::Messages::NotModified(_) => Vec::new(),
    };
    let page_min = messages.iter().map(message_id).min();
    let mut rows: Vec<_> = messages.iter().filter_map(convert::message_row).collect();
    let mut done = messages.is_empty() || page_min.is_some_and(|m| m <= 1);
    if let Some(since) = ch.backfill_since {
        let before = rows.len();
        rows.retain(|r| r.date >= since);
        done |= rows.len() < before;
    }
    if let Some(limit) = ch.backfill_limit {
        let left = (limit - ch.backfill_done_count).max(0) as usize;
        if rows.len() >= left {
            rows.sort_by_key(|r| std::cmp::Reverse(r.id));
            rows.truncate(left);
            done = true;
        }
    }
    let cursor = page_min.unwrap_or(offset_id);
    store
        .ingest(
            ch.id,
            &rows,
            Some(CursorAdvance {
                channel_id: ch.id,
                cursor,
                done,
            }),
        )
        .await?;
    Ok(PageOutcome {
        stored: rows.len(),
        done,
    })
}

/// Fetches the posts of `ch` with ids strictly between `after` and `before` (`before` = 0: up to
/// the newest) in pages of 100, newest first, and stores them, leaving the backfill cursor alone:
/// the refill for a gap the update stream could not fill (a too-long gap, posts made while the
/// connection was down or the daemon stopped). Bounded by the range; returns the posts stored.
pub async fn refill(
    conn: &Connected,
    store: &Store,
    ch: &ChannelRecord,
    after: i32,
    before: i32,
) -> Result<usize, BackfillError> {
    let mut offset_id = before;
    let mut stored = 0;
    while offset_id == 0 || offset_id > after + 1 {
        let req = tl::functions::messages::GetHistory {
            peer: input_peer(ch),
            offset_id,
            offset_date: 0,
            add_offset: 0,
            limit: PAGE,
            max_id: 0,
            min_id: after,
            hash: 0,
        };
        let answer = conn
            .invoke(&req)
            .await
            .map_err(|e| BackfillError::from_guard(ch, e))?;
        let messages = match answer {
            tl::enums::messages::Messages::Messages(m) => m.messages,
            tl::enums::messages::Messages::Slice(m) => m.messages,
            tl::enums::messages::Messages::ChannelMessages(m) => m.messages,
            tl::enums::messages::Messages::NotModified(_) => Vec::new(),
        };
        let Some(page_min) = messages.iter().map(message_id).min() else {
            break;
        };
        let rows: Vec<_> = messages
            .iter()
            .filter_map(convert::message_row)
            .filter(|r| r.id > after && (before == 0 || r.id < before))
            .collect();
        store.ingest(ch.id, &rows, None).await?;
        stored += rows.len();
        if offset_id != 0 && page_min >= offset_id {
            break; // no progress: never loop on a server that ignores offset_id
        }
        offset_id = page_min;
    }
    Ok(stored)
}

fn message_id(m: &tl::enums::Message) -> i32 {
    match m {
        tl::enums::Message::Message(x) => x.id,
        tl::enums::Message::Service(x) => x.id,
        tl::enums::Message::Empty(x) => x.id,
    }
}

/// Backfills every active channel that is not done, a page at a time in turn, calling
/// `progress` after each page. Returns the number of posts stored.
pub async fn run_all(
    conn: &Connected,
    store: &Store,
    only: Option<i64>,
    mut progress: impl FnMut(&ChannelRecord, PageOutcome),
) -> Result<u64, BackfillError> {
    let mut total = 0u64;
    loop {
        let pending: Vec<ChannelRecord> = store
            .channels()
            .await?
            .into_iter()
            .filter(|c| c.state == "active" && c.backfill_state != "done")
            .filter(|c| only.is_none_or(|id| id == c.id))
            .collect();
        if pending.is_empty() {
            return Ok(total);
        }
        for ch in pending {
            match next_page(conn, store, &ch).await {
                Ok(o) => {
                    total += o.stored as u64;
                    let fresh = store.find_channel(&ch.id.to_string()).await?.unwrap_or(ch);
                    progress(&fresh, o);
                }
                Err(BackfillError::Private(name)) => {
                    tracing::warn!(channel = %name, "channel became private; skipping it");
                }
                Err(e) => return Err(e),
            }
        }
    }
}
