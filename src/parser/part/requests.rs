//! `channels add` and `/add` while the daemon runs: the requests queued in `channel_requests`,
//! resolved (or joined, for an invite link) through the daemon's session and guard.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{frozen, revoked};
use crate::parser::client::Connected;
use crate::store::Store;
use crate::supervisor::PartError;

const REQUESTS_POLL: Duration = Duration::from_secs(1);
/// How often a join request waiting for an admin is looked at again.
const JOIN_REQUEST_RECHECK: Duration = Duration::from_secs(600);

/// `channels add` from the CLI while the daemon runs (and, later, the bot): resolve the channel
/// through the guard, add it, and write the outcome back for the requester. A request that fails
/// for a temporary reason stays pending and is tried again.
pub(super) async fn requests_loop(
    conn: Arc<Connected>,
    store: Store,
    join: bool,
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
            let resolved = if r.no_join && crate::store::invite_hash(&r.reference).is_some() {
                Err(crate::parser::resolve::ResolveError::InviteNoJoin(
                    r.reference.clone(),
                ))
            } else {
                tokio::select! {
                    c = crate::parser::resolve::resolve(&conn, &r.reference) => c,
                    _ = cancel.cancelled() => return Ok(()),
                }
            };
            let (channel, outcome) = match resolved {
                Ok(c) => {
                    let mut row = crate::store::NewChannel::from_tl(&c, r.since, r.last);
                    if r.no_join || !join {
                        row = row.without_joining();
                    }
                    let added = store
                        .add_channel(&row)
                        .await
                        .map_err(|e| PartError::Retry(e.to_string()))?;
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
                            crate::parser::resolve::added_line(&c, added),
                            crate::parser::resolve::membership_line(row.membership)
                        ),
                    )
                }
                Err(crate::parser::resolve::ResolveError::Telegram {
                    error: crate::guard::GuardError::Revoked(e),
                    ..
                }) => return Err(revoked(&store, &e).await),
                Err(crate::parser::resolve::ResolveError::Telegram {
                    error: crate::guard::GuardError::Frozen(e),
                    ..
                }) => return Err(frozen(&store, &e).await),
                Err(e @ crate::parser::resolve::ResolveError::JoinRequested(_)) => {
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
