//! Rechecks: a channel's stored posts read again from history, newest first, a page at a time,
//! to find the edits and deletions no update will bring (`store::rechecks` says how a page is
//! read). Queued when a catch-up answers `channelDifferenceTooLong` (the follower) or by an
//! operator (`tgparser channels recheck`); run by the work loop one page per turn between
//! refills and backfill pages, so a long recheck delays neither.

use std::collections::HashMap;

use grammers_client::tl;

use super::backfill::{self, BackfillError};
use super::client::Connected;
use super::convert;
use crate::store::{Recheck, Store};

/// A recheck whose page Telegram refuses (not a passing failure) this many times in a row is
/// dropped, with a warning saying how to queue it again.
const REFUSALS: u32 = 3;

/// Reads one page of the oldest queued recheck of an active channel. Returns whether there was
/// one (the loop then comes back without waiting).
pub async fn step(
    conn: &Connected,
    store: &Store,
    refused: &mut HashMap<i64, u32>,
) -> Result<bool, BackfillError> {
    let Some(r) = store.rechecks().await?.first().copied() else {
        return Ok(false);
    };
    let Some(ch) = store.find_channel(&r.channel.to_string()).await? else {
        return Ok(false);
    };
    match page(conn, store, &ch, r).await {
        Ok(()) => {
            refused.remove(&r.channel);
            Ok(true)
        }
        Err(e) => {
            let give_up = match &e {
                BackfillError::Private(_) => true,
                BackfillError::Telegram { .. } => {
                    let n = refused.entry(r.channel).or_insert(0);
                    *n += 1;
                    *n >= REFUSALS
                }
                _ => false,
            };
            if give_up {
                refused.remove(&r.channel);
                store.recheck_dropped(r.channel).await?;
                tracing::warn!(
                    channel = %ch.display_name(),
                    error = %e,
                    "recheck given up: edits and deletions of its older posts may be missing; \
                     `tgparser channels recheck` queues it again"
                );
            }
            Err(e)
        }
    }
}

/// One page of `r`: history below `r.before`, stored with what it shows of edits and deletions.
async fn page(
    conn: &Connected,
    store: &Store,
    ch: &crate::store::ChannelRecord,
    r: Recheck,
) -> Result<(), BackfillError> {
    let req = backfill::history(ch, r.before, 0);
    let answer = match conn.invoke(&req).await {
        Ok(a) => a,
        Err(e) => return Err(backfill::refused(conn, store, ch, e).await),
    };
    if let tl::enums::messages::Messages::NotModified(_) = answer {
        // Asked without a hash, "not modified" says nothing of the page; taken as empty, it
        // would mark every stored post below as deleted.
        return Err(BackfillError::Telegram {
            channel: ch.display_name(),
            error: "messages.messagesNotModified for a history page asked without a hash".into(),
        });
    }
    let messages = backfill::page_messages(conn, store, ch, answer).await;
    let present: Vec<i32> = messages
        .iter()
        .filter(|m| !matches!(m, tl::enums::Message::Empty(_)))
        .map(backfill::message_id)
        .collect();
    // Outside data: ids at or above where the page was asked from are not of this page.
    if r.before != 0 && present.iter().any(|id| *id >= r.before) {
        return Err(BackfillError::Telegram {
            channel: ch.display_name(),
            error: format!(
                "a history page below id {} held a message at or above it",
                r.before
            ),
        });
    }
    if r.before == 0 && present.is_empty() {
        // An empty history from the top would mark every stored post deleted; a channel keeps
        // at least its creation, so this is taken as an answer not to trust.
        return Err(BackfillError::Telegram {
            channel: ch.display_name(),
            error: "the channel's history came back empty".into(),
        });
    }
    // The page covers its lowest id up to `before`; an empty page, everything below `before`.
    let low = present.iter().copied().min().unwrap_or(0);
    let rows: Vec<_> = messages.iter().filter_map(convert::message_row).collect();
    let done = store.recheck_page(r, &rows, &present, low).await?;
    if r.before == 0 {
        tracing::info!(
            channel = %ch.display_name(),
            "re-reading the channel's stored posts from history for edits and deletions no update will bring"
        );
    }
    // (A recheck dropped or purged meanwhile, or with nothing stored, reads nothing: no line.)
    if done.next.is_none() && done != crate::store::RecheckPage::default() {
        let t = done.total;
        tracing::info!(
            channel = %ch.display_name(),
            checked = t.checked,
            edited = t.edited,
            deleted = t.deleted,
            found = t.found,
            "recheck complete"
        );
    }
    Ok(())
}
