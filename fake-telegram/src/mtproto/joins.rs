//! Joining and leaving channels (`channels.joinChannel`, `channels.leaveChannel`), with the
//! refusals Telegram gives (core.telegram.org/method/channels.joinChannel):
//! `CHANNELS_TOO_MUCH`, `CHANNEL_PRIVATE`, `INVITE_REQUEST_SENT` where an admin approves joins,
//! and FLOOD_WAITs that grow with the number of recent joins (`world::membership`).

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
        _ => return Err(err(400, "INPUT_METHOD_INVALID")),
    };
    if join {
        match shared.world.join(viewer, id) {
            Ok(_) => {}
            Err(JoinRefusal::Rpc(code, name)) => return Err(err(code, name)),
            Err(JoinRefusal::Wait(secs)) => {
                shared.flood.impose(viewer, "channels.joinChannel", secs);
                shared.world.lock().stats.flood_waits += 1;
                return Err(err(420, format!("FLOOD_WAIT_{secs}")));
            }
        }
        // Since layer 230 a join answers `messages.chatInviteJoinResultOk` around the updates.
        return Ok(enums::messages::ChatInviteJoinResult::Ok(
            types::messages::ChatInviteJoinResultOk {
                updates: channel_updates(ctx, id, viewer),
            },
        )
        .to_bytes());
    }
    shared.world.leave(viewer, id).map_err(|e| err(400, e))?;
    Ok(channel_updates(ctx, id, viewer).to_bytes())
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
