//! Channel updates into the store: new posts (through `ingest_live`, which queues alerts), edits
//! (the old text kept as a version) and deletions (soft). Shared by pushed updates and by
//! `updates.getChannelDifference` answers, so both store the same way.

use grammers_client::tl::enums::{Message, Update};

use super::Ctx;
use crate::parser::convert;
use crate::parser::part::Refill;
use crate::store::StoreError;

/// The channel, pts and pts_count of an update that moves a channel's pts
/// (core.telegram.org/api/updates#event-sequences).
pub(super) fn channel_pts(u: &Update) -> Option<(i64, i32, i32)> {
    let channel_of = |m: &Message| match m {
        Message::Message(x) => peer_channel(&x.peer_id),
        Message::Service(x) => peer_channel(&x.peer_id),
        Message::Empty(x) => x.peer_id.as_ref().and_then(peer_channel),
    };
    match u {
        Update::NewChannelMessage(x) => Some((channel_of(&x.message)?, x.pts, x.pts_count)),
        Update::EditChannelMessage(x) => Some((channel_of(&x.message)?, x.pts, x.pts_count)),
        Update::DeleteChannelMessages(x) => Some((x.channel_id, x.pts, x.pts_count)),
        Update::ChannelWebPage(x) => Some((x.channel_id, x.pts, x.pts_count)),
        Update::PinnedChannelMessages(x) => Some((x.channel_id, x.pts, x.pts_count)),
        _ => None,
    }
}

fn peer_channel(p: &grammers_client::tl::enums::Peer) -> Option<i64> {
    match p {
        grammers_client::tl::enums::Peer::Channel(c) => Some(c.channel_id),
        _ => None,
    }
}

/// The channel as Telegram describes it in an answer's or an update's `chats`: a new username
/// or title is stored (the old ones kept in `channel_names`), so links in alerts, search and
/// exports follow a renamed channel. A `min` object is partial and says nothing.
pub(super) async fn note_chats(ctx: &mut Ctx, chats: &[grammers_client::tl::enums::Chat]) {
    for chat in chats {
        let grammers_client::tl::enums::Chat::Channel(c) = chat else {
            continue;
        };
        let Some(known) = ctx.channels.get(&c.id) else {
            continue;
        };
        if c.min || (known.username == c.username && known.title == c.title) {
            continue;
        }
        let from = known.display_name();
        if note_rename(&ctx.store, &from, c).await
            && let Some(k) = ctx.channels.get_mut(&c.id)
        {
            k.username = c.username.clone();
            k.title = c.title.clone();
        }
    }
}

/// Stores a channel's new username or title (the old ones kept in `channel_names`); whether it
/// changed. Shared by the follower and the hourly look at every channel.
pub(super) async fn note_rename(
    store: &crate::store::Store,
    from: &str,
    c: &grammers_client::tl::types::Channel,
) -> bool {
    match store
        .note_channel_names(c.id, c.username.as_deref(), &c.title)
        .await
    {
        Ok(true) => {
            tracing::info!(
                channel = c.id,
                %from,
                username = c.username.as_deref().unwrap_or("-"),
                title = %c.title,
                "the channel was renamed"
            );
            true
        }
        Ok(false) => false,
        Err(e) => {
            tracing::warn!(channel = c.id, error = %e, "cannot record the channel's new name");
            false
        }
    }
}

/// The senders an answer or update names (supergroups), into `users`.
pub(super) async fn note_users(ctx: &Ctx, users: &[grammers_client::tl::enums::User]) {
    let rows = convert::user_rows(users);
    if let Err(e) = ctx.store.upsert_users(&rows).await {
        tracing::warn!(error = %e, "cannot record the senders' names");
    }
}

/// Stores what one update says about channel `ch`. `live`: pushed now (its delivery lag is
/// measured) rather than recovered from a difference. `gapless`: it follows the saved pts (see
/// [`new_posts`]).
pub(super) async fn apply(
    ctx: &mut Ctx,
    ch: i64,
    u: &Update,
    live: bool,
    gapless: bool,
) -> Result<(), StoreError> {
    match u {
        Update::NewChannelMessage(x) => {
            new_posts(ctx, ch, std::slice::from_ref(&x.message), live, gapless).await
        }
        Update::EditChannelMessage(x) => {
            if let Some(row) = convert::message_row(&x.message) {
                let id = row.id;
                if let Err(e) = ctx.store.ingest(ch, &[row], None).await {
                    // Not lost: fetched again from history once the store recovers.
                    ctx.refill(Refill {
                        channel: ch,
                        after: id - 1,
                        before: id + 1,
                    })
                    .await;
                    return Err(e);
                }
            }
            Ok(())
        }
        Update::DeleteChannelMessages(x) => {
            ctx.store.mark_deleted(ch, &x.messages).await.map(|_| ())
        }
        _ => Ok(()),
    }
}

/// New posts of `ch`, oldest first. A post whose id jumps past the newest stored one queues a
/// refill of the ids between (posts Telegram never sent us, or deleted before we saw them) —
/// unless `gapless`: the posts follow the saved pts, so every change since is accounted for
/// and the ids between were deleted (a refill would spend a `getHistory` on nothing).
pub(super) async fn new_posts(
    ctx: &mut Ctx,
    ch: i64,
    messages: &[Message],
    live: bool,
    gapless: bool,
) -> Result<(), StoreError> {
    let mut rows: Vec<_> = messages.iter().filter_map(convert::message_row).collect();
    if rows.is_empty() {
        return Ok(());
    }
    rows.sort_by_key(|r| r.id);
    let name = ctx.name(ch);
    let known = match ctx.newest.get(&ch) {
        Some(n) => Some(*n),
        None => ctx
            .store
            .newest_id(ch)
            .await
            .ok()
            .flatten()
            .and_then(|n| i32::try_from(n).ok()),
    };
    // Queued with the posts, in their transaction (`ingest_live`).
    let mut gap = None;
    if let (Some(k), Some(first)) = (known, rows.first())
        && first.id > k + 1
        && !gapless
    {
        gap = Some(Refill {
            channel: ch,
            after: k,
            before: first.id,
        });
        tracing::info!(channel = %name, after = k, before = first.id, "posts missing before a new post; refilling");
    }
    let top = rows.iter().map(|r| r.id).max().unwrap_or(0);
    ctx.newest.insert(ch, known.map_or(top, |k| k.max(top)));
    if live {
        for r in &rows {
            let lag = (crate::time::unix_now() - r.date).max(0) as f64;
            ctx.stats.delivered(ch, &name, lag);
        }
    } else {
        ctx.stats.refilled(ch, &name, rows.len());
    }
    let (low, high) = (rows[0].id, top);
    match ctx.store.ingest_live(ch, &rows, gap).await {
        // Stored and queued; the refill loop woken.
        Ok(_) => {
            if let Some(gap) = gap {
                ctx.wake_refills(gap);
            }
            Ok(())
        }
        Err(e) => {
            // Not lost: these posts and the range before them, from history, once the store
            // recovers.
            let after = gap.map_or(low - 1, |g| g.after);
            ctx.refill(Refill {
                channel: ch,
                after,
                before: high + 1,
            })
            .await;
            Err(e)
        }
    }
}
