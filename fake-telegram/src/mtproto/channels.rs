//! Channels: resolving a username, channels and their messages by id, history pages with
//! Telegram's documented offsets and bounds (`messages.getHistory`), and the refusals a channel
//! gives (`CHANNEL_INVALID` for a wrong access hash, `CHANNEL_PRIVATE`).

use grammers_tl_types as tl;
use tl::{Identifiable, Serializable, enums, functions, types};

use super::convert;
use super::rpc::{Ctx, R, RpcErr, err, parse};
use crate::world::{Channel, Post};

/// A channel method for account `viewer`.
pub(super) fn call(ctx: &Ctx, c: u32, body: &[u8], viewer: i64) -> R {
    use functions as f;
    let shared = &ctx.shared;
    match c {
        f::contacts::ResolveUsername::CONSTRUCTOR_ID => {
            let req: f::contacts::ResolveUsername = parse(body)?;
            let u = req.username.trim_start_matches('@');
            let valid = u.len() >= 4
                && u.len() <= 32
                && u.starts_with(|c: char| c.is_ascii_alphabetic())
                && u.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(err(400, "USERNAME_INVALID"));
            }
            let w = shared.world.lock();
            let ch = w
                .by_username
                .get(&u.to_ascii_lowercase())
                .and_then(|id| w.channels.get(id))
                .ok_or_else(|| err(400, "USERNAME_NOT_OCCUPIED"))?;
            Ok(
                enums::contacts::ResolvedPeer::Peer(types::contacts::ResolvedPeer {
                    peer: convert::peer_channel(ch.id),
                    chats: vec![convert::chat(ch, viewer)],
                    users: vec![],
                })
                .to_bytes(),
            )
        }
        f::channels::GetChannels::CONSTRUCTOR_ID => {
            let req: f::channels::GetChannels = parse(body)?;
            let w = shared.world.lock();
            let mut chats = Vec::new();
            for ic in &req.id {
                let ch = input_channel(&w.channels, ic, viewer)?;
                chats.push(convert::chat(ch, viewer));
            }
            Ok(enums::messages::Chats::Chats(types::messages::Chats { chats }).to_bytes())
        }
        f::channels::GetMessages::CONSTRUCTOR_ID => {
            let req: f::channels::GetMessages = parse(body)?;
            let w = shared.world.lock();
            let ch = accessible(input_channel(&w.channels, &req.channel, viewer)?, viewer)?;
            let messages = req
                .id
                .iter()
                .map(|m| {
                    let id = match m {
                        enums::InputMessage::Id(x) => x.id,
                        _ => 0,
                    };
                    match ch.posts.get(&id) {
                        Some(p) => convert::message(ch, p),
                        None => enums::Message::Empty(types::MessageEmpty { id, peer_id: None }),
                    }
                })
                .collect();
            Ok(channel_messages(
                ch,
                messages,
                ch.posts.len() as i32,
                viewer,
            ))
        }
        f::messages::GetHistory::CONSTRUCTOR_ID => {
            let req: f::messages::GetHistory = parse(body)?;
            let w = shared.world.lock();
            let ch = accessible(peer_channel(&w.channels, &req.peer, viewer)?, viewer)?;
            Ok(page_bytes(ch, &history(ch, &req), viewer))
        }
        f::messages::GetReplies::CONSTRUCTOR_ID => {
            let req: f::messages::GetReplies = parse(body)?;
            let w = shared.world.lock();
            let ch = accessible(peer_channel(&w.channels, &req.peer, viewer)?, viewer)?;
            if !ch.posts.contains_key(&req.msg_id) {
                return Err(err(400, "MSG_ID_INVALID"));
            }
            let group = ch
                .discussion
                .and_then(|g| w.channels.get(&g))
                .ok_or_else(|| err(400, "MSG_ID_INVALID"))?;
            // Newest first, with getHistory's exclusive bounds (add_offset is not modelled).
            let all = ch.comments_in(group, req.msg_id);
            let page: Vec<&Post> = all
                .iter()
                .copied()
                .filter(|p| req.offset_id == 0 || p.id < req.offset_id)
                .filter(|p| req.max_id == 0 || p.id < req.max_id)
                .filter(|p| p.id > req.min_id)
                .take(req.limit.clamp(1, 100) as usize)
                .collect();
            let messages: Vec<enums::Message> =
                page.iter().map(|p| convert::message(group, p)).collect();
            Ok(
                enums::messages::Messages::ChannelMessages(types::messages::ChannelMessages {
                    inexact: false,
                    pts: group.pts,
                    count: all.len() as i32,
                    offset_id_offset: None,
                    users: convert::senders(group, &messages),
                    messages,
                    topics: vec![],
                    chats: vec![convert::chat(group, viewer), convert::chat(ch, viewer)],
                })
                .to_bytes(),
            )
        }
        _ => Err(err(400, "INPUT_METHOD_INVALID")),
    }
}

/// The channel an `InputPeer` names, if its access hash is the one `viewer` was given.
fn peer_channel<'a>(
    channels: &'a std::collections::BTreeMap<i64, Channel>,
    peer: &enums::InputPeer,
    viewer: i64,
) -> Result<&'a Channel, RpcErr> {
    match peer {
        enums::InputPeer::Channel(p) => channels
            .get(&p.channel_id)
            .filter(|c| c.hash_for(viewer) == p.access_hash)
            .ok_or_else(|| err(400, "CHANNEL_INVALID")),
        _ => Err(err(400, "PEER_ID_INVALID")),
    }
}

/// The channel `ic` names, if its access hash is the one account `viewer` was given.
pub(super) fn input_channel<'a>(
    channels: &'a std::collections::BTreeMap<i64, Channel>,
    ic: &enums::InputChannel,
    viewer: i64,
) -> Result<&'a Channel, RpcErr> {
    match ic {
        enums::InputChannel::Channel(c) => channels
            .get(&c.channel_id)
            .filter(|ch| ch.hash_for(viewer) == c.access_hash)
            .ok_or_else(|| err(400, "CHANNEL_INVALID")),
        _ => Err(err(400, "CHANNEL_INVALID")),
    }
}

/// The channel, if `viewer` may read it (a member, for a private channel; not banned; not
/// deleted). Telegram answers `CHANNEL_PRIVATE` with code 406 on some methods and 400 on
/// others; 400 is what history and differences give.
pub(super) fn accessible(ch: &Channel, viewer: i64) -> Result<&Channel, RpcErr> {
    match ch.refusal(viewer) {
        Some(why) => Err(err(400, why)),
        None => Ok(ch),
    }
}

fn channel_messages(
    ch: &Channel,
    messages: Vec<enums::Message>,
    count: i32,
    viewer: i64,
) -> Vec<u8> {
    enums::messages::Messages::ChannelMessages(types::messages::ChannelMessages {
        inexact: false,
        pts: ch.pts,
        count,
        offset_id_offset: None,
        users: convert::senders(ch, &messages),
        messages,
        topics: vec![],
        chats: vec![convert::chat(ch, viewer)],
    })
    .to_bytes()
}

pub fn page_bytes(ch: &Channel, page: &[&Post], viewer: i64) -> Vec<u8> {
    let messages = page.iter().map(|p| convert::message(ch, p)).collect();
    channel_messages(ch, messages, ch.posts.len() as i32, viewer)
}

/// `messages.getHistory` as documented: newest first; `offset_id` / `offset_date` pick where
/// the page starts (exclusive), `add_offset` shifts it (negative: newer messages), `limit` ≤ 100,
/// and `max_id` / `min_id` bound the ids returned (exclusive).
///
/// Works on ranges of the id-ordered map, so a page costs O(limit + |add_offset|), not a scan
/// of the channel: deep paging through a large channel stays fast.
pub fn history<'a>(ch: &'a Channel, req: &functions::messages::GetHistory) -> Vec<&'a Post> {
    let lo = if req.min_id > 0 {
        req.min_id.saturating_add(1)
    } else {
        i32::MIN
    };
    let hi = if req.max_id > 0 { req.max_id } else { i32::MAX };
    if lo >= hi {
        return Vec::new();
    }
    // Posts with id < anchor are at and after the offset position, newest first.
    let anchor = if req.offset_id > 0 {
        req.offset_id
    } else if req.offset_date > 0 {
        ch.posts
            .values()
            .rev()
            .find(|p| p.date < req.offset_date)
            .map(|p| p.id.saturating_add(1))
            .unwrap_or(i32::MIN)
    } else {
        i32::MAX
    };
    let limit = req.limit.clamp(0, 100) as usize;
    let older = ch
        .posts
        .range(lo..anchor.clamp(lo, hi))
        .rev()
        .map(|(_, p)| p);
    if req.add_offset >= 0 {
        return older.skip(req.add_offset as usize).take(limit).collect();
    }
    // Negative add_offset: the page starts |add_offset| positions above the anchor.
    let k = req.add_offset.unsigned_abs() as usize;
    let newer: Vec<&Post> = ch
        .posts
        .range(anchor.clamp(lo, hi)..hi)
        .map(|(_, p)| p)
        .take(k)
        .collect();
    // newer[j] sits at index -(j+1) relative to the anchor position; the page spans
    // [-k, -k + limit).
    let end = limit as i64 - k as i64;
    let mut page = Vec::with_capacity(limit);
    for idx in (-(newer.len() as i64)).max(-(k as i64))..end.min(0) {
        page.push(newer[(-idx - 1) as usize]);
    }
    if end > 0 {
        page.extend(older.take(end as usize));
    }
    page
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::World;

    fn req(
        offset_id: i32,
        offset_date: i32,
        add_offset: i32,
        limit: i32,
        max_id: i32,
        min_id: i32,
    ) -> functions::messages::GetHistory {
        functions::messages::GetHistory {
            peer: enums::InputPeer::Empty,
            offset_id,
            offset_date,
            add_offset,
            limit,
            max_id,
            min_id,
            hash: 0,
        }
    }

    fn ids(ch: &Channel, r: functions::messages::GetHistory) -> Vec<i32> {
        history(ch, &r).iter().map(|p| p.id).collect()
    }

    #[test]
    fn get_history_follows_the_documented_offsets_and_bounds() {
        let w = World::new();
        let ch = w.add_channel(Some("hist"), "H", "", 1);
        for i in 0..250 {
            w.post_with(ch, true, |id| Post::text(id, 1_000 + id, format!("p{i}")))
                .unwrap();
        }
        let w = w.lock();
        let ch = &w.channels[&ch];
        assert_eq!(ids(ch, req(0, 0, 0, 3, 0, 0)), vec![250, 249, 248]);
        assert_eq!(
            ids(ch, req(100, 0, 0, 3, 0, 0)),
            vec![99, 98, 97],
            "offset_id is exclusive"
        );
        assert_eq!(
            ids(ch, req(100, 0, -2, 3, 0, 0)),
            vec![101, 100, 99],
            "negative add_offset reaches newer posts"
        );
        assert_eq!(ids(ch, req(100, 0, -5, 3, 0, 0)), vec![104, 103, 102]);
        assert_eq!(
            ids(ch, req(0, 1_000 + 50, 0, 2, 0, 0)),
            vec![49, 48],
            "offset_date is exclusive"
        );
        assert_eq!(
            ids(ch, req(0, 0, 0, 500, 0, 0)).len(),
            100,
            "limit is capped at 100"
        );
        assert_eq!(
            ids(ch, req(0, 0, 0, 10, 20, 15)),
            vec![19, 18, 17, 16],
            "max_id and min_id are exclusive bounds"
        );
        assert_eq!(ids(ch, req(3, 0, 0, 10, 0, 0)), vec![2, 1]);
        assert!(ids(ch, req(1, 0, 0, 10, 0, 0)).is_empty());
        assert!(
            ids(ch, req(0, 0, -20, 10, 0, 0)).is_empty(),
            "a page entirely above the newest post is empty"
        );
    }

    /// The documented algorithm, spelled out over the whole list: the reference the range-based
    /// `history` must agree with.
    fn naive(ch: &Channel, r: &functions::messages::GetHistory) -> Vec<i32> {
        let all: Vec<&Post> = ch
            .posts
            .values()
            .rev()
            .filter(|p| (r.max_id <= 0 || p.id < r.max_id) && (r.min_id <= 0 || p.id > r.min_id))
            .collect();
        let pos = if r.offset_id > 0 {
            all.iter()
                .position(|p| p.id < r.offset_id)
                .unwrap_or(all.len())
        } else if r.offset_date > 0 {
            all.iter()
                .position(|p| p.date < r.offset_date)
                .unwrap_or(all.len())
        } else {
            0
        } as i64;
        let start = pos + r.add_offset as i64;
        let end = (start + r.limit.clamp(0, 100) as i64).min(all.len() as i64);
        let start = start.max(0);
        if end <= start {
            return Vec::new();
        }
        all[start as usize..end as usize]
            .iter()
            .map(|p| p.id)
            .collect()
    }

    #[test]
    fn range_based_history_agrees_with_the_documented_algorithm() {
        let w = World::new();
        let ch = w.add_channel(Some("agree"), "A", "", 1);
        for i in 0..300 {
            w.post_with(ch, true, |id| Post::text(id, 10 * id, format!("p{i}")))
                .unwrap();
        }
        // Holes, as deletions leave.
        let gone: Vec<i32> = (1..300).filter(|i| i % 7 == 0).collect();
        w.delete(ch, &gone).unwrap();
        let w = w.lock();
        let ch = &w.channels[&ch];
        let mut seed = 7u64;
        let mut rnd = |m: i64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % m as u64) as i64
        };
        for _ in 0..5_000 {
            let r = req(
                if rnd(3) == 0 { 0 } else { rnd(320) as i32 },
                if rnd(5) == 0 { rnd(3_200) as i32 } else { 0 },
                rnd(240) as i32 - 120,
                rnd(130) as i32,
                if rnd(4) == 0 { rnd(320) as i32 } else { 0 },
                if rnd(4) == 0 { rnd(320) as i32 } else { 0 },
            );
            assert_eq!(ids(ch, r.clone()), naive(ch, &r), "{r:?}");
        }
    }
}
