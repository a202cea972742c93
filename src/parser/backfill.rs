//! Backfill: a channel's history, newest to oldest, in pages of 100. Each page is stored in the
//! same transaction that moves the channel's cursor, so a crash (even `kill -9`) resumes exactly
//! after the last stored page, and the cursor never moves backwards. Channels take turns, one
//! page each, so a big channel does not starve the others.

use std::time::Duration;

use grammers_client::tl;
use grammers_client::{Client, InvocationError};

use super::convert;
use crate::store::{ChannelRecord, CursorAdvance, Store, StoreError};

pub const PAGE: i32 = 100;

#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    #[error("{0} is private now: the account must join it to read it")]
    Private(String),
    #[error("{channel}: Telegram refused the history request: {error}")]
    Telegram { channel: String, error: String },
    #[error(transparent)]
    Store(#[from] StoreError),
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

/// Fetches and stores the next page of `ch`. FLOOD_WAIT is waited out as told, never skipped.
pub async fn next_page(
    client: &Client,
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
    let answer = loop {
        match client.invoke(&req).await {
            Ok(a) => break a,
            Err(InvocationError::Rpc(e)) if e.name == "FLOOD_WAIT" => {
                let secs = e.value.unwrap_or(1);
                tracing::warn!(channel = %ch.display_name(), secs, "FLOOD_WAIT on messages.getHistory; waiting as told");
                tokio::time::sleep(
                    Duration::from_secs(u64::from(secs)) + Duration::from_millis(250),
                )
                .await;
            }
            Err(InvocationError::Rpc(e))
                if e.name == "CHANNEL_PRIVATE" || e.name == "CHANNEL_INVALID" =>
            {
                store
                    .set_channel_state(ch.id, "private", Some(&e.name))
                    .await?;
                return Err(BackfillError::Private(ch.display_name()));
            }
            Err(e) => {
                return Err(BackfillError::Telegram {
                    channel: ch.display_name(),
                    error: e.to_string(),
                });
            }
        }
    };
    let messages = match answer {
        tl::enums::messages::Messages::Messages(m) => m.messages,
        tl::enums::messages::Messages::Slice(m) => m.messages,
        tl::enums::messages::Messages::ChannelMessages(m) => m.messages,
        tl::enums::messages::Messages::NotModified(_) => Vec::new(),
    };
    let page_min = messages
        .iter()
        .map(|m| match m {
            tl::enums::Message::Message(x) => x.id,
            tl::enums::Message::Service(x) => x.id,
            tl::enums::Message::Empty(x) => x.id,
        })
        .min();
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

/// Backfills every active channel that is not done, a page at a time in turn, calling
/// `progress` after each page. Returns the number of posts stored.
pub async fn run_all(
    client: &Client,
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
            match next_page(client, store, &ch).await {
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
