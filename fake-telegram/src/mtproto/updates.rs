//! Updates: the common state (`updates.getState`, `updates.getDifference`), a channel's
//! difference since a pts (`updates.getChannelDifference`: new posts, edits, deletions;
//! `channelDifferenceTooLong` past what the event log keeps), and the pushes a logged-in session
//! on its home DC receives as channels change: members only, and not reliably past a number of
//! joined channels or for a busy channel (`WorldState::push_fate`).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use grammers_tl_types as tl;
use tl::{Identifiable, Serializable, enums, functions, types};
use tokio::sync::mpsc;

use super::Shared;
use super::channels::{accessible, input_channel};
use super::convert;
use super::envelope::{Conn, Out};
use super::rpc::{Ctx, R, err, parse};
use crate::world::{Channel, ChannelEvent, Fate, unix_now};

/// An updates method for account `viewer`.
pub(super) fn call(ctx: &Ctx, c: u32, body: &[u8], viewer: i64) -> R {
    use functions as f;
    let shared = &ctx.shared;
    match c {
        f::updates::GetState::CONSTRUCTOR_ID => {
            let pts = shared.world.lock().pts;
            Ok(enums::updates::State::State(types::updates::State {
                pts,
                qts: 0,
                date: unix_now(),
                seq: 0,
                unread_count: 0,
            })
            .to_bytes())
        }
        f::updates::GetDifference::CONSTRUCTOR_ID => {
            let req: f::updates::GetDifference = parse(body)?;
            Ok(common_difference(&shared.world.lock(), &req, viewer))
        }
        f::updates::GetChannelDifference::CONSTRUCTOR_ID => {
            let req: f::updates::GetChannelDifference = parse(body)?;
            let w = shared.world.lock();
            let ch = accessible(input_channel(&w.channels, &req.channel, viewer)?, viewer)?;
            Ok(channel_difference(
                ch,
                req.pts,
                req.limit,
                shared.too_long_after,
                viewer,
            ))
        }
        _ => Err(err(400, "INPUT_METHOD_INVALID")),
    }
}

/// The common state's changes since `req`'s date. There are no private chats here, so the
/// only news is which joined channels changed: Telegram names them with `updateChannelTooLong`
/// (their pts), for the client to catch each up with `getChannelDifference`
/// (core.telegram.org/api/updates#recovering-gaps); with none, `differenceEmpty`.
fn common_difference(
    w: &crate::world::WorldState,
    req: &functions::updates::GetDifference,
    viewer: i64,
) -> Vec<u8> {
    let now = unix_now();
    let changed: Vec<&Channel> = w
        .channels
        .values()
        .filter(|c| c.is_member(viewer) && c.changed_at >= req.date && !c.deleted)
        .collect();
    if changed.is_empty() {
        return enums::updates::Difference::Empty(types::updates::DifferenceEmpty {
            date: now,
            seq: 0,
        })
        .to_bytes();
    }
    enums::updates::Difference::Difference(types::updates::Difference {
        new_messages: Vec::new(),
        new_encrypted_messages: Vec::new(),
        other_updates: changed
            .iter()
            .map(|c| {
                types::UpdateChannelTooLong {
                    channel_id: c.id,
                    pts: Some(c.pts),
                }
                .into()
            })
            .collect(),
        chats: changed.iter().map(|c| convert::chat(c, viewer)).collect(),
        users: Vec::new(),
        state: types::updates::State {
            pts: w.pts,
            qts: 0,
            date: now,
            seq: 0,
            unread_count: 0,
        }
        .into(),
    })
    .to_bytes()
}

fn channel_difference(
    ch: &Channel,
    pts: i32,
    limit: i32,
    too_long_after: i32,
    viewer: i64,
) -> Vec<u8> {
    use enums::updates::ChannelDifference as CD;
    if pts >= ch.pts {
        return CD::Empty(types::updates::ChannelDifferenceEmpty {
            r#final: true,
            pts: ch.pts,
            timeout: Some(30),
        })
        .to_bytes();
    }
    let first_known = ch.events.first().map(|(p, _)| *p).unwrap_or(i32::MAX);
    if ch.pts - pts > too_long_after || first_known > pts + 1 {
        let top = ch.posts.keys().next_back().copied().unwrap_or(0);
        let messages: Vec<enums::Message> = ch
            .posts
            .values()
            .rev()
            .take(limit.clamp(1, 100) as usize)
            .map(|p| convert::message(ch, p))
            .collect();
        return CD::TooLong(types::updates::ChannelDifferenceTooLong {
            r#final: true,
            timeout: Some(30),
            dialog: types::Dialog {
                pinned: false,
                unread_mark: false,
                view_forum_as_messages: false,
                peer: convert::peer_channel(ch.id),
                top_message: top,
                read_inbox_max_id: top,
                read_outbox_max_id: top,
                unread_count: 0,
                unread_mentions_count: 0,
                unread_reactions_count: 0,
                unread_poll_votes_count: 0,
                notify_settings: types::PeerNotifySettings {
                    show_previews: None,
                    silent: None,
                    mute_until: None,
                    ios_sound: None,
                    android_sound: None,
                    other_sound: None,
                    stories_muted: None,
                    stories_hide_sender: None,
                    stories_ios_sound: None,
                    stories_android_sound: None,
                    stories_other_sound: None,
                }
                .into(),
                pts: Some(ch.pts),
                draft: None,
                folder_id: None,
                ttl_period: None,
            }
            .into(),
            users: convert::senders(ch, &messages),
            messages,
            chats: vec![convert::chat(ch, viewer)],
        })
        .to_bytes();
    }
    let limit = limit.clamp(1, 1000) as usize;
    let events: Vec<&(i32, ChannelEvent)> = ch
        .events
        .iter()
        .filter(|(p, _)| *p > pts)
        .take(limit)
        .collect();
    let new_pts = events.last().map(|(p, _)| *p).unwrap_or(ch.pts);
    let mut new_messages = Vec::new();
    let mut other_updates = Vec::new();
    for (p, e) in events {
        match e {
            ChannelEvent::New(id) => {
                if let Some(post) = ch.posts.get(id) {
                    new_messages.push(convert::message(ch, post));
                }
            }
            ChannelEvent::Edit(id) => {
                if let Some(post) = ch.posts.get(id) {
                    other_updates.push(
                        types::UpdateEditChannelMessage {
                            message: convert::message(ch, post),
                            pts: *p,
                            pts_count: 1,
                        }
                        .into(),
                    );
                }
            }
            ChannelEvent::Delete(ids) => other_updates.push(
                types::UpdateDeleteChannelMessages {
                    channel_id: ch.id,
                    messages: ids.clone(),
                    pts: *p,
                    pts_count: 1,
                }
                .into(),
            ),
        }
    }
    let edited: Vec<enums::Message> = other_updates
        .iter()
        .filter_map(|u| match u {
            enums::Update::EditChannelMessage(e) => Some(e.message.clone()),
            _ => None,
        })
        .collect();
    let mut users = convert::senders(ch, &new_messages);
    users.extend(convert::senders(ch, &edited));
    CD::Difference(types::updates::ChannelDifference {
        r#final: new_pts >= ch.pts,
        pts: new_pts,
        timeout: Some(30),
        new_messages,
        other_updates,
        chats: vec![convert::chat(ch, viewer)],
        users,
    })
    .to_bytes()
}

/// Pushes channel changes to this connection while its key is logged in.
pub async fn push_loop(
    shared: Arc<Shared>,
    conn: Arc<Conn>,
    key_id: [u8; 8],
    tx: mpsc::UnboundedSender<Out>,
) {
    let mut rx = shared.world.subscribe();
    let mut for_key = shared.key_events.subscribe();
    loop {
        let push = tokio::select! {
            p = rx.recv() => p,
            e = for_key.recv() => {
                // An update for this key's sessions whether logged in or not (a QR login).
                if let Ok((k, body)) = e
                    && k == key_id
                    && tx
                        .send(Out::Message {
                            body,
                            response: false,
                            content: true,
                        })
                        .is_err()
                {
                    return;
                }
                continue;
            }
        };
        let push = match push {
            Ok(p) => p,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(_) => return,
        };
        // Updates go to the account's home DC only (an imported authorization elsewhere is
        // for files).
        let viewer = shared
            .with_key(&key_id, |k| (k.user_id, k.revoked))
            .and_then(|(uid, revoked)| uid.filter(|_| !revoked))
            .filter(|uid| {
                shared
                    .world
                    .lock()
                    .accounts
                    .iter()
                    .any(|a| a.user_id == *uid && a.home_dc == conn.dc)
            });
        let Some(viewer) = viewer else { continue };
        // A session the server forgot gets nothing until the client speaks in it again.
        if conn.no_updates.load(Ordering::Relaxed)
            || !shared
                .sessions
                .knows(key_id, conn.session_id.load(Ordering::Relaxed))
        {
            continue;
        }
        let bytes = {
            let w = shared.world.lock();
            let Some(ch) = w.channels.get(&push.channel_id) else {
                continue;
            };
            let update: enums::Update = match (w.push_fate(ch, viewer, push.pts), &push.event) {
                (Fate::Drop, _) => continue,
                (Fate::TooLong, _) => types::UpdateChannelTooLong {
                    channel_id: ch.id,
                    pts: None,
                }
                .into(),
                (Fate::Deliver, event) => match event {
                    ChannelEvent::New(id) => match ch.posts.get(id) {
                        Some(p) => types::UpdateNewChannelMessage {
                            message: convert::message(ch, p),
                            pts: push.pts,
                            pts_count: 1,
                        }
                        .into(),
                        None => continue,
                    },
                    ChannelEvent::Edit(id) => match ch.posts.get(id) {
                        Some(p) => types::UpdateEditChannelMessage {
                            message: convert::message(ch, p),
                            pts: push.pts,
                            pts_count: 1,
                        }
                        .into(),
                        None => continue,
                    },
                    ChannelEvent::Delete(ids) => types::UpdateDeleteChannelMessages {
                        channel_id: ch.id,
                        messages: ids.clone(),
                        pts: push.pts,
                        pts_count: 1,
                    }
                    .into(),
                },
            };
            let users = match &update {
                enums::Update::NewChannelMessage(u) => {
                    convert::senders(ch, std::slice::from_ref(&u.message))
                }
                enums::Update::EditChannelMessage(u) => {
                    convert::senders(ch, std::slice::from_ref(&u.message))
                }
                _ => vec![],
            };
            enums::Updates::Updates(types::Updates {
                updates: vec![update],
                users,
                chats: vec![convert::chat(ch, viewer)],
                date: unix_now(),
                seq: 0,
            })
            .to_bytes()
        };
        if tx
            .send(Out::Message {
                body: bytes,
                response: false,
                content: true,
            })
            .is_err()
        {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::World;
    use tl::{Cursor, Deserializable};

    #[test]
    fn channel_difference_replays_a_small_gap_and_gives_up_on_a_big_one() {
        let w = World::new();
        let ch_id = w.add_channel(Some("diff"), "D", "", 1);
        let start = w.lock().channels[&ch_id].pts;
        let a = w.post(ch_id, "one").unwrap();
        w.edit(ch_id, a, "one, edited").unwrap();
        let b = w.post(ch_id, "two").unwrap();
        w.delete(ch_id, &[b]).unwrap();
        let guard = w.lock();
        let ch = &guard.channels[&ch_id];
        let bytes = channel_difference(ch, start, 100, 500, 1);
        let mut cur = Cursor::from_slice(&bytes);
        match enums::updates::ChannelDifference::deserialize(&mut cur).unwrap() {
            enums::updates::ChannelDifference::Difference(d) => {
                assert!(d.r#final);
                assert_eq!(d.pts, ch.pts);
                assert_eq!(
                    d.new_messages.len(),
                    1,
                    "the deleted post is gone, the edited one current"
                );
                assert_eq!(d.other_updates.len(), 2, "one edit, one deletion");
            }
            other => panic!("{other:?}"),
        }
        let bytes = channel_difference(ch, start, 2, 500, 1);
        let mut cur = Cursor::from_slice(&bytes);
        match enums::updates::ChannelDifference::deserialize(&mut cur).unwrap() {
            enums::updates::ChannelDifference::Difference(d) => {
                assert!(!d.r#final, "limited: more to come");
                assert_eq!(d.pts, start + 2);
            }
            other => panic!("{other:?}"),
        }
        let bytes = channel_difference(ch, start, 100, 2, 1);
        let mut cur = Cursor::from_slice(&bytes);
        assert!(matches!(
            enums::updates::ChannelDifference::deserialize(&mut cur).unwrap(),
            enums::updates::ChannelDifference::TooLong(_)
        ));
        let bytes = channel_difference(ch, ch.pts, 100, 500, 1);
        let mut cur = Cursor::from_slice(&bytes);
        assert!(matches!(
            enums::updates::ChannelDifference::deserialize(&mut cur).unwrap(),
            enums::updates::ChannelDifference::Empty(_)
        ));
    }
}
