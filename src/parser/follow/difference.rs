//! Catching one channel up with `updates.getChannelDifference`, from the pts saved for it,
//! until Telegram says `final` (core.telegram.org/api/updates#recovering-gaps). Every call goes
//! through the guard: pacing, FLOOD_WAIT pauses (no call during one) and the breaker.
//!
//! - `channelDifferenceEmpty`: nothing happened since; the pts is saved as Telegram gives it.
//! - `channelDifference`: new posts, edits and deletions, stored in order, then the pts saved;
//!   again until `final`.
//! - `channelDifferenceTooLong`: too much happened; Telegram gives the newest posts and the
//!   channel's current pts. The posts are stored, the ids between the newest stored post and
//!   them are refilled from history (as for any id jump), a recheck of the stored posts is
//!   queued (`parser::recheck`: the stretch's edits and deletions are no longer events, only
//!   history shows them), and the pts saved.
//!
//! The pts is saved only after what it covers is stored, so a crash between the two replays
//! the same events, which store idempotently.

use grammers_client::tl;

use super::{Ctx, apply};
use crate::guard::GuardError;

/// At most this many events per answer: what Telegram advises ordinary users to ask.
const LIMIT: i32 = 100;
/// Answers per catch-up before the channel yields to the others (it is caught up on the next
/// round): a very busy channel must not starve the rest.
const MAX_ROUNDS: usize = 50;

/// Why a channel could not be caught up.
#[derive(Debug)]
pub(super) enum CatchUpError {
    /// The session or the account is gone: the parser stops.
    Fatal(GuardError),
    /// Telegram refused this channel (private, banned, a stale access hash): it is skipped
    /// until its state changes.
    Refused(String),
    /// Worth trying again later (network, breaker, a store write that failed).
    Later(String),
}

/// What one catch-up brought.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Caught {
    /// New posts stored.
    pub posts: usize,
    /// The server's `timeout`: poll this channel again no sooner than this.
    pub timeout: Option<i32>,
}

/// Catches `ch` up from `pts`.
pub(super) async fn catch_up(ctx: &mut Ctx, ch: i64, mut pts: i32) -> Result<Caught, CatchUpError> {
    let Some(record) = ctx.channels.get(&ch).cloned() else {
        return Ok(Caught::default());
    };
    let channel: tl::enums::InputChannel = tl::types::InputChannel {
        channel_id: ch,
        access_hash: record.access_hash.unwrap_or(0),
    }
    .into();
    let mut recovered = 0;
    let mut timeout = None;
    for _ in 0..MAX_ROUNDS {
        let req = tl::functions::updates::GetChannelDifference {
            force: false,
            channel: channel.clone(),
            filter: tl::enums::ChannelMessagesFilter::Empty,
            pts,
            limit: LIMIT,
        };
        let answer = match ctx.conn.invoke(&req).await {
            Ok(a) => a,
            Err(e @ (GuardError::Revoked(_) | GuardError::Frozen(_))) => {
                return Err(CatchUpError::Fatal(e));
            }
            Err(GuardError::Rpc {
                code: 400, name, ..
            }) => {
                if name == "CHANNEL_INVALID"
                    && crate::parser::resolve::refresh_access_hash(
                        &ctx.conn,
                        &ctx.store,
                        ch,
                        record.username.as_deref(),
                    )
                    .await
                {
                    // The follower reads the new hash with the channels (within seconds).
                    return Err(CatchUpError::Later(
                        "a new access hash was looked up".into(),
                    ));
                }
                if name == "CHANNEL_PRIVATE" || name == "CHANNEL_INVALID" {
                    // As the backfill does: left alone until someone resumes it.
                    ctx.store
                        .set_channel_state(ch, "private", Some(&name))
                        .await
                        .map_err(|e| CatchUpError::Later(e.to_string()))?;
                }
                return Err(CatchUpError::Refused(name));
            }
            Err(e) => return Err(CatchUpError::Later(e.to_string())),
        };
        let later = |e: crate::store::StoreError| CatchUpError::Later(e.to_string());
        use tl::enums::updates::ChannelDifference as CD;
        match answer {
            CD::Empty(d) => {
                ctx.save_pts(ch, d.pts).await;
                return Ok(Caught {
                    posts: recovered,
                    timeout: d.timeout,
                });
            }
            CD::Difference(d) => {
                timeout = d.timeout;
                apply::note_chats(ctx, &d.chats).await;
                apply::note_users(ctx, &d.users).await;
                // Posts found by a poll are delivered now: their lag counts like a push's.
                apply::new_posts(ctx, ch, &d.new_messages, true, true)
                    .await
                    .map_err(later)?;
                recovered += d.new_messages.len();
                for u in &d.other_updates {
                    apply::apply(ctx, ch, u, false, true).await.map_err(later)?;
                }
                ctx.save_pts(ch, d.pts).await;
                pts = d.pts;
                if d.r#final {
                    return Ok(Caught {
                        posts: recovered,
                        timeout,
                    });
                }
            }
            CD::TooLong(d) => {
                apply::note_chats(ctx, &d.chats).await;
                apply::note_users(ctx, &d.users).await;
                let tl::enums::Dialog::Dialog(dialog) = &d.dialog else {
                    return Err(CatchUpError::Later(
                        "channelDifferenceTooLong without a channel dialog".into(),
                    ));
                };
                let Some(new_pts) = dialog.pts else {
                    return Err(CatchUpError::Later(
                        "channelDifferenceTooLong without the channel's pts".into(),
                    ));
                };
                // The ids between the newest stored post and these are refilled by new_posts.
                apply::new_posts(ctx, ch, &d.messages, false, false)
                    .await
                    .map_err(later)?;
                recovered += d.messages.len();
                // The stretch's edits and deletions are history's alone now: every stored post
                // is read again (from the top: a deleted post among the newest is found only by
                // its absence). Queued before the new pts is saved, so a crash between the two
                // answers "too long" again and queues it again.
                ctx.store
                    .queue_recheck(ch, 0, "too_long")
                    .await
                    .map_err(later)?;
                tracing::info!(channel = %ctx.name(ch), "too much happened since the last look; refilling from history and reading stored posts again");
                ctx.save_pts(ch, new_pts).await;
                return Ok(Caught {
                    posts: recovered,
                    timeout: d.timeout,
                });
            }
        }
    }
    Ok(Caught {
        posts: recovered,
        timeout,
    })
}
