//! `channels add` and `/add` while the daemon runs: the requests queued in `channel_requests`,
//! resolved (or joined, for an invite link) through the daemon's session and guard.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{frozen, revoked};
use crate::parser::client::Connected;
use crate::parser::resolve::{
    ResolveError, added_line, known_line, membership_line, resolve_within,
};
use crate::store::Store;
use crate::supervisor::PartError;

const REQUESTS_POLL: Duration = Duration::from_secs(1);
/// How often a join request waiting for an admin is looked at again.
const JOIN_REQUEST_RECHECK: Duration = Duration::from_secs(600);
/// A FLOOD_WAIT longer than this is not waited out inside a request: the requester is told the
/// wait at once and the request is tried again when it is over (Telegram's resolve waits grow
/// to hours).
const LONGEST_WAIT: Duration = Duration::from_secs(30);

/// `channels add` from the CLI while the daemon runs (and, later, the bot): resolve the channel
/// through the guard, add it, and write the outcome back for the requester. A request that fails
/// for a temporary reason stays pending and is tried again.
pub(super) async fn requests_loop(
    conn: Arc<Connected>,
    store: Store,
    join: bool,
    media: crate::store::MediaPolicy,
    cancel: CancellationToken,
) -> Result<(), PartError> {
    // Requests waiting for an admin to approve a join, and when each is looked at again.
    let mut waiting: std::collections::HashMap<i64, std::time::Instant> = Default::default();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(REQUESTS_POLL) => {}
            _ = cancel.cancelled() => return Ok(()),
        }
        let pending = store
            .pending_channel_requests()
            .await
            .map_err(|e| PartError::Retry(e.to_string()))?;
        let now = std::time::Instant::now();
        waiting.retain(|id, _| pending.iter().any(|r| r.id == *id));
        for r in pending {
            if waiting.get(&r.id).is_some_and(|t| *t > now) {
                continue;
            }
            // A channel followed already is never resolved again (resolving is the scarcest
            // call Telegram allows).
            if let Ok(Some(known)) = store.find_channel(&r.reference).await
                && (known.state == "active" || known.state == "paused")
            {
                if r.no_join && known.membership == "join" {
                    let _ = store.set_membership(known.id, "no_join").await;
                }
                if r.with_comments && !known.with_comments {
                    let _ = store.set_with_comments(known.id).await;
                }
                store
                    .finish_channel_request(r.id, Some(known.id), &known_line(&known))
                    .await
                    .map_err(|e| PartError::Retry(e.to_string()))?;
                continue;
            }
            let resolved = if r.no_join && crate::store::invite_hash(&r.reference).is_some() {
                Err(ResolveError::InviteNoJoin(r.reference.clone()))
            } else {
                tokio::select! {
                    c = resolve_within(&conn, &r.reference, Some(LONGEST_WAIT)) => c,
                    _ = cancel.cancelled() => return Ok(()),
                }
            };
            let (channel, outcome) = match resolved {
                Ok(c) => {
                    let mut row = crate::store::NewChannel::from_tl(&c, r.since, r.last);
                    if r.no_join || !join {
                        row = row.without_joining();
                    }
                    row.with_comments = r.with_comments;
                    let added = store
                        .add_channel(&row)
                        .await
                        .map_err(|e| PartError::Retry(e.to_string()))?;
                    if added {
                        store
                            .set_media_policy(c.id, &media)
                            .await
                            .map_err(|e| PartError::Retry(e.to_string()))?;
                    }
                    let _ = store
                        .audit(
                            &r.requested_by,
                            "channel_add",
                            serde_json::json!({"channel_id": c.id, "username": c.username}),
                        )
                        .await;
                    tracing::info!(
                        channel = c.username.as_deref().unwrap_or("-"),
                        id = c.id,
                        "channel added on request"
                    );
                    (
                        Some(c.id),
                        format!(
                            "{}; {}; the daemon is reading its history",
                            added_line(&c, added),
                            membership_line(row.membership)
                        ),
                    )
                }
                Err(ResolveError::Telegram {
                    error: crate::guard::GuardError::Revoked(e),
                    ..
                }) => return Err(revoked(&store, &e).await),
                Err(ResolveError::Telegram {
                    error: crate::guard::GuardError::Frozen(e),
                    ..
                }) => return Err(frozen(&store, &e).await),
                Err(ResolveError::Flood(secs)) => {
                    // Tried again when the wait is over; the requester is told now.
                    waiting.insert(r.id, now + Duration::from_secs(u64::from(secs)));
                    let outcome = format!(
                        "Telegram asks to wait {} before resolving more names; the request stays queued and the channel is added then (see `channels list` or /channels)",
                        crate::time::duration_words(secs)
                    );
                    tracing::warn!(reference = %r.reference, secs, "resolving waits for a FLOOD_WAIT; the request stays queued");
                    store
                        .note_channel_request(r.id, &outcome)
                        .await
                        .map_err(|e| PartError::Retry(e.to_string()))?;
                    continue;
                }
                Err(e @ ResolveError::JoinRequested(_)) => {
                    // Looked at again every few minutes: checkChatInvite names the channel
                    // once an admin approved.
                    waiting.insert(r.id, now + JOIN_REQUEST_RECHECK);
                    if r.outcome.is_none() {
                        tracing::info!(reference = %r.reference, "join requested; waiting for an admin's approval");
                        store
                            .note_channel_request(r.id, &e.to_string())
                            .await
                            .map_err(|e| PartError::Retry(e.to_string()))?;
                    }
                    continue;
                }
                Err(e) if e.is_temporary() => {
                    tracing::warn!(reference = %r.reference, error = %e, "channel request postponed");
                    continue;
                }
                Err(e) => (None, e.to_string()),
            };
            store
                .finish_channel_request(r.id, channel, &outcome)
                .await
                .map_err(|e| PartError::Retry(e.to_string()))?;
        }
    }
}
