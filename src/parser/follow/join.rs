//! Joining followed channels, finding the discussion groups of those followed with comments
//! (`comments.rs`), and looking at them now and then (`channels.getChannels`, an answer per 100
//! channels, every hour): a username or title changed without a post saying so
//! is stored (the old ones kept in `channel_names`), and a join request an admin approved
//! becomes membership.
//!
//! Joining (`channels.joinChannel`, through the guard): Telegram pushes a
//! channel's updates only to its members (core.telegram.org/api/updates), so a joined channel's
//! posts come sooner; every channel is polled anyway, so nothing depends on it.
//!
//! Channels whose `membership` is `join` are joined one at a time. The guard waits out the
//! FLOOD_WAITs Telegram gives joins (they grow with the number of recent joins) inside this
//! task, so polling and pushes go on meanwhile. `CHANNELS_TOO_MUCH` leaves the channel
//! `too_many` (followed by polling; said in the log and the audit log, shown by `channels list`
//! and `/channels`); `INVITE_REQUEST_SENT` leaves it `requested`, checked now and then
//! (`channels.getChannels`: `left` clears when an admin approves).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use grammers_client::tl;
use tokio_util::sync::CancellationToken;

use crate::guard::GuardError;
use crate::parser::client::Connected;
use crate::store::Store;
use crate::supervisor::PartError;

/// How often the channels to join are looked for.
const LOOK_EVERY: Duration = Duration::from_secs(2);
/// A join that failed for a passing reason is tried again after this long.
const RETRY_AFTER: Duration = Duration::from_secs(60);
/// A refused one (private, invalid) after this long: its state may change.
const REFUSED_RETRY: Duration = Duration::from_secs(3600);
/// How often pending join requests are checked.
const REQUESTS_EVERY: Duration = Duration::from_secs(600);
/// How often every followed channel's name is looked at.
const NAMES_EVERY: Duration = Duration::from_secs(3600);

/// Joins what is to be joined (with `join`) and looks at the channels now and then, until
/// cancelled. Returns a fatal error for a session that is gone.
pub(crate) async fn run(
    conn: Arc<Connected>,
    store: Store,
    cancel: CancellationToken,
    join: bool,
) -> Result<(), PartError> {
    let mut not_before: HashMap<i64, Instant> = HashMap::new();
    let mut requests_checked: Option<Instant> = None;
    let mut names_checked = Instant::now();
    let mut groups_asked: HashMap<i64, Instant> = HashMap::new();
    let mut first = true;
    loop {
        if !std::mem::take(&mut first) {
            tokio::select! {
                _ = tokio::time::sleep(LOOK_EVERY) => {}
                _ = cancel.cancelled() => return Ok(()),
            }
        }
        let Ok(chs) = store.channels().await else {
            continue;
        };
        let now = Instant::now();
        for c in chs
            .iter()
            .filter(|c| join && c.state == "active" && c.membership == "join")
        {
            if not_before.get(&c.id).is_some_and(|t| *t > now) {
                continue;
            }
            let req = tl::functions::channels::JoinChannel {
                channel: input(c.id, c.access_hash),
            };
            let outcome = tokio::select! {
                r = conn.invoke(&req) => r,
                _ = cancel.cancelled() => return Ok(()),
            };
            let name = c.display_name();
            let (membership, wait) = match outcome {
                Ok(_) => {
                    tracing::info!(channel = %name, "joined the channel: Telegram pushes its updates now");
                    (Some("joined"), None)
                }
                Err(e @ (GuardError::Revoked(_) | GuardError::Frozen(_))) => {
                    return Err(crate::parser::part::fatal(&store, e).await);
                }
                Err(e) if e.is_rpc("CHANNELS_TOO_MUCH") => {
                    tracing::warn!(channel = %name, "the account is in as many channels as Telegram allows; this one is followed by polling only (leave some channels to have it pushed)");
                    let _ = store
                        .audit(
                            "parser",
                            "join_too_many",
                            serde_json::json!({"channel_id": c.id}),
                        )
                        .await;
                    (Some("too_many"), None)
                }
                Err(e) if e.is_rpc("INVITE_REQUEST_SENT") => {
                    tracing::info!(channel = %name, "asked to join; an admin of the channel must approve (it is polled meanwhile)");
                    (Some("requested"), None)
                }
                Err(e) if e.is_rpc("USER_ALREADY_PARTICIPANT") => (Some("joined"), None),
                Err(e @ GuardError::Rpc { .. }) => {
                    // Private, invalid: the follower marks the channel when it is refused.
                    tracing::warn!(channel = %name, error = %e, "Telegram refused to let the account join; it is polled meanwhile");
                    (None, Some(REFUSED_RETRY))
                }
                Err(e) => {
                    tracing::debug!(channel = %name, error = %e, "joining failed; trying again later");
                    (None, Some(RETRY_AFTER))
                }
            };
            if let Some(m) = membership
                && let Err(e) = store.set_membership(c.id, m).await
            {
                tracing::warn!(channel = %name, error = %e, "cannot record the channel's membership");
                not_before.insert(c.id, now + RETRY_AFTER);
            }
            if let Some(w) = wait {
                not_before.insert(c.id, now + w);
            }
            // One join per look: the others' turn comes, and `channels list` stays fresh.
            break;
        }
        super::comments::find_groups(&conn, &store, &chs, &mut groups_asked).await?;
        if requests_checked.is_none_or(|t| t.elapsed() >= REQUESTS_EVERY) {
            requests_checked = Some(Instant::now());
            let waiting: Vec<_> = chs.iter().filter(|c| c.membership == "requested").collect();
            look_at(&conn, &store, &waiting).await?;
        }
        if names_checked.elapsed() >= NAMES_EVERY {
            names_checked = Instant::now();
            let active: Vec<_> = chs.iter().filter(|c| c.state == "active").collect();
            look_at(&conn, &store, &active).await?;
        }
    }
}

/// Looks at `chs` as Telegram describes them now: a join request approved (`left` cleared)
/// becomes `joined`; a new username or title is stored.
async fn look_at(
    conn: &Connected,
    store: &Store,
    chs: &[&crate::store::ChannelRecord],
) -> Result<(), PartError> {
    for batch in chs.chunks(100) {
        let req = tl::functions::channels::GetChannels {
            id: batch.iter().map(|c| input(c.id, c.access_hash)).collect(),
        };
        let chats = match conn.invoke(&req).await {
            Ok(tl::enums::messages::Chats::Chats(c)) => c.chats,
            Ok(tl::enums::messages::Chats::Slice(c)) => c.chats,
            Err(e @ (GuardError::Revoked(_) | GuardError::Frozen(_))) => {
                return Err(crate::parser::part::fatal(store, e).await);
            }
            Err(e) => {
                tracing::debug!(error = %e, "checking join requests failed");
                return Ok(());
            }
        };
        for chat in chats {
            let tl::enums::Chat::Channel(ch) = chat else {
                continue;
            };
            let Some(known) = batch.iter().find(|c| c.id == ch.id) else {
                continue;
            };
            if known.membership == "requested" && !ch.left {
                tracing::info!(channel = %known.display_name(), "the join request was approved");
                let _ = store.set_membership(ch.id, "joined").await;
            }
            if !ch.min && (known.username != ch.username || known.title != ch.title) {
                super::apply::note_rename(store, &known.display_name(), &ch).await;
            }
        }
    }
    Ok(())
}

fn input(id: i64, access_hash: Option<i64>) -> tl::enums::InputChannel {
    tl::types::InputChannel {
        channel_id: id,
        access_hash: access_hash.unwrap_or(0),
    }
    .into()
}
