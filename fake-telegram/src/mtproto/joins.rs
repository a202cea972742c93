//! Joining and leaving channels (`channels.joinChannel`, `channels.leaveChannel`), and invite
//! links (`messages.checkChatInvite`, `messages.importChatInvite`: core.telegram.org/api/invites),
//! with the refusals Telegram gives (core.telegram.org/method/channels.joinChannel,
//! /method/messages.importChatInvite): `CHANNELS_TOO_MUCH`, `CHANNEL_PRIVATE`,
//! `INVITE_REQUEST_SENT` where an admin approves joins, `INVITE_HASH_INVALID`,
//! `INVITE_HASH_EXPIRED`, `USER_ALREADY_PARTICIPANT`, and FLOOD_WAITs that grow with the number
//! of recent joins (`world::membership`).

use grammers_tl_types as tl;
use tl::{Identifiable, Serializable, enums, functions, types};

use super::channels::input_channel;
use super::convert;
use super::rpc::{Ctx, R, err, parse};
use crate::world::{JoinRefusal, unix_now};

/// A join or leave for account `viewer`.
pub(super) fn call(ctx: &Ctx, c: u32, body: &[u8], viewer: i64) -> R {
    use functions as f;
    let shared = &ctx.shared;
    let (id, join) = match c {
        f::channels::JoinChannel::CONSTRUCTOR_ID => {
            let req: f::channels::JoinChannel = parse(body)?;
            (channel_of(ctx, &req.channel, viewer)?, true)
        }
        f::channels::LeaveChannel::CONSTRUCTOR_ID => {
            let req: f::channels::LeaveChannel = parse(body)?;
            (channel_of(ctx, &req.channel, viewer)?, false)
        }
        f::messages::CheckChatInvite::CONSTRUCTOR_ID => {
            let req: f::messages::CheckChatInvite = parse(body)?;
            return check_invite(ctx, &req.hash, viewer);
        }
        f::messages::ImportChatInvite::CONSTRUCTOR_ID => {
            let req: f::messages::ImportChatInvite = parse(body)?;
            let id = shared
                .world
                .join_by_invite(viewer, &req.hash)
                .map_err(|r| refusal(ctx, "messages.importChatInvite", viewer, r))?
                .0;
            return Ok(joined(ctx, id, viewer));
        }
        _ => return Err(err(400, "INPUT_METHOD_INVALID")),
    };
    if join {
        shared
            .world
            .join(viewer, id)
            .map_err(|r| refusal(ctx, "channels.joinChannel", viewer, r))?;
        return Ok(joined(ctx, id, viewer));
    }
    shared.world.leave(viewer, id).map_err(|e| err(400, e))?;
    Ok(channel_updates(ctx, id, viewer).to_bytes())
}

/// A join refused: the RPC error, or a FLOOD_WAIT the account must now sit out.
fn refusal(ctx: &Ctx, method: &str, viewer: i64, r: JoinRefusal) -> super::rpc::RpcErr {
    match r {
        JoinRefusal::Rpc(code, name) => err(code, name),
        JoinRefusal::Wait(secs) => {
            ctx.shared.flood.impose(viewer, method, secs);
            ctx.shared.world.lock().stats.flood_waits += 1;
            err(420, format!("FLOOD_WAIT_{secs}"))
        }
    }
}

/// Since layer 230 a join answers `messages.chatInviteJoinResultOk` around the updates.
fn joined(ctx: &Ctx, id: i64, viewer: i64) -> Vec<u8> {
    enums::messages::ChatInviteJoinResult::Ok(types::messages::ChatInviteJoinResultOk {
        updates: channel_updates(ctx, id, viewer),
    })
    .to_bytes()
}

/// `messages.checkChatInvite`: the channel, if the account is in it; otherwise what the link
/// shows before joining (title, size, whether an admin approves), but not the channel's id.
fn check_invite(ctx: &Ctx, hash: &str, viewer: i64) -> super::rpc::R {
    let (id, inv) = ctx
        .shared
        .world
        .invite_target(hash)
        .map_err(|r| err(400, r.rpc_name()))?;
    let w = ctx.shared.world.lock();
    let ch = w
        .channels
        .get(&id)
        .ok_or_else(|| err(400, "INVITE_HASH_INVALID"))?;
    if ch.banned.contains(&viewer) {
        return Err(err(400, "CHANNEL_PRIVATE"));
    }
    let answer = if ch.is_member(viewer) {
        enums::ChatInvite::Already(types::ChatInviteAlready {
            chat: convert::chat(ch, viewer),
        })
    } else {
        enums::ChatInvite::Invite(types::ChatInvite {
            channel: true,
            broadcast: !ch.megagroup,
            public: ch.username.is_some(),
            megagroup: ch.megagroup,
            request_needed: inv.request_needed,
            verified: false,
            scam: false,
            fake: false,
            can_refulfill_subscription: false,
            title: ch.title.clone(),
            about: (!ch.about.is_empty()).then(|| ch.about.clone()),
            photo: enums::Photo::Empty(types::PhotoEmpty { id: 0 }),
            participants_count: ch.participants,
            participants: None,
            color: 0,
            subscription_pricing: None,
            subscription_form_id: None,
            bot_verification: None,
        })
    };
    Ok(answer.to_bytes())
}

fn channel_of(ctx: &Ctx, ic: &enums::InputChannel, viewer: i64) -> Result<i64, super::rpc::RpcErr> {
    let w = ctx.shared.world.lock();
    Ok(input_channel(&w.channels, ic, viewer)?.id)
}

/// What Telegram answers a join or leave with: `updateChannel` and the channel as it now is.
pub(super) fn channel_updates(ctx: &Ctx, id: i64, viewer: i64) -> enums::Updates {
    let w = ctx.shared.world.lock();
    let chats = w
        .channels
        .get(&id)
        .map(|ch| vec![convert::chat(ch, viewer)])
        .unwrap_or_default();
    enums::Updates::Updates(types::Updates {
        updates: vec![types::UpdateChannel { channel_id: id }.into()],
        users: vec![],
        chats,
        date: unix_now(),
        seq: 0,
    })
}
