//! Comments (core.telegram.org/api/threads#channel-comments): a channel followed
//! `--with-comments` has its discussion group found and followed as a channel of its own, so
//! its comments are backfilled from the group's history (a page of 100 comments a call, where
//! `messages.getReplies` would cost a call per post) and followed live like any channel.
//! `v_comments` links each comment to its post through the group's automatic copy of the post.
//!
//! The group is found from the channel's newest stored post: `messages.getReplies` on it names
//! the discussion group among its `chats` (with the account's access hash for it), whether or
//! not the post has comments yet. A channel without comments answers `MSG_ID_INVALID`; it is
//! asked again hourly (comments can be turned on later).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use grammers_client::tl;

use crate::guard::GuardError;
use crate::parser::client::Connected;
use crate::store::{ChannelRecord, NewChannel, Store};
use crate::supervisor::PartError;

/// A channel whose group could not be found is asked again after this long.
const RETRY_AFTER: Duration = Duration::from_secs(60);
/// A channel without comments is asked again after this long.
const NONE_RETRY: Duration = Duration::from_secs(3600);

/// Finds the discussion groups of channels followed with comments that have none yet.
pub(super) async fn find_groups(
    conn: &Connected,
    store: &Store,
    chs: &[ChannelRecord],
    not_before: &mut HashMap<i64, Instant>,
) -> Result<(), PartError> {
    let now = Instant::now();
    for c in chs
        .iter()
        .filter(|c| c.state == "active" && c.with_comments)
    {
        if chs.iter().any(|g| g.discussion_of == Some(c.id))
            || not_before.get(&c.id).is_some_and(|t| *t > now)
        {
            continue;
        }
        let Ok(Some(post)) = store.newest_post(c.id).await else {
            // Nothing stored yet: the backfill's first page comes first.
            continue;
        };
        let req = tl::functions::messages::GetReplies {
            peer: tl::types::InputPeerChannel {
                channel_id: c.id,
                access_hash: c.access_hash.unwrap_or(0),
            }
            .into(),
            msg_id: post as i32,
            offset_id: 0,
            offset_date: 0,
            add_offset: 0,
            limit: 1,
            max_id: 0,
            min_id: 0,
            hash: 0,
        };
        let chats = match conn.invoke(&req).await {
            Ok(tl::enums::messages::Messages::ChannelMessages(m)) => m.chats,
            Ok(tl::enums::messages::Messages::Messages(m)) => m.chats,
            Ok(tl::enums::messages::Messages::Slice(m)) => m.chats,
            Ok(tl::enums::messages::Messages::NotModified(_)) => Vec::new(),
            Err(e @ (GuardError::Revoked(_) | GuardError::Frozen(_))) => {
                return Err(crate::parser::part::fatal(store, e).await);
            }
            Err(e) if e.is_rpc("MSG_ID_INVALID") => {
                tracing::info!(channel = %c.display_name(), "the channel has no comments (no discussion group); asking again in an hour");
                not_before.insert(c.id, now + NONE_RETRY);
                continue;
            }
            Err(e) => {
                tracing::debug!(channel = %c.display_name(), error = %e, "looking for the discussion group failed");
                not_before.insert(c.id, now + RETRY_AFTER);
                continue;
            }
        };
        let group = chats.into_iter().find_map(|chat| match chat {
            tl::enums::Chat::Channel(g) if g.id != c.id && g.megagroup => Some(g),
            _ => None,
        });
        let Some(g) = group else {
            not_before.insert(c.id, now + NONE_RETRY);
            continue;
        };
        let mut row = NewChannel::from_tl(&g, None, None);
        if c.membership == "no_join" {
            row = row.without_joining();
        }
        row.discussion_of = Some(c.id);
        match store.add_channel(&row).await {
            Ok(_) => tracing::info!(
                channel = %c.display_name(),
                group = %g.title,
                "following the channel's comments in its discussion group"
            ),
            Err(e) => {
                tracing::warn!(channel = %c.display_name(), error = %e, "cannot add the discussion group");
                not_before.insert(c.id, now + RETRY_AFTER);
            }
        }
    }
    Ok(())
}
