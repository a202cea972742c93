//! RPCs with Telegram's documented semantics, over the world.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use grammers_tl_types as tl;
use tl::{Cursor, Deserializable, Identifiable, Serializable, enums, functions, types};
use tokio::sync::mpsc;

use super::Shared;
use super::convert;
use super::envelope::{Conn, Out};
use crate::faults::FaultKind;
use crate::flood::Verdict;
use crate::srp::{self, Challenge};
use crate::world::{Channel, ChannelEvent, Post, unix_now};

pub struct Ctx {
    pub shared: Arc<Shared>,
    pub conn: Arc<Conn>,
    pub key_id: [u8; 8],
}

#[derive(Debug)]
pub struct RpcErr {
    pub code: i32,
    pub message: String,
}

fn err(code: i32, message: impl Into<String>) -> RpcErr {
    RpcErr {
        code,
        message: message.into(),
    }
}

type R = Result<Vec<u8>, RpcErr>;

/// The rest of a request, whatever it is: the query inside a wrapper.
struct Rest(Vec<u8>);

impl Deserializable for Rest {
    fn deserialize(buf: &mut Cursor) -> tl::deserialize::Result<Self> {
        let mut v = Vec::new();
        buf.read_to_end(&mut v)?;
        Ok(Rest(v))
    }
}

fn ctor(body: &[u8]) -> u32 {
    body.get(..4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .unwrap_or(0)
}

/// Strips invokeWithLayer / initConnection / invokeWithoutUpdates / invokeAfterMsg.
fn unwrap_query<'a>(
    ctx: &Ctx,
    mut body: &'a [u8],
    owned: &'a mut Vec<u8>,
) -> Result<&'a [u8], RpcErr> {
    for _ in 0..8 {
        let c = ctor(body);
        if c == functions::InvokeWithLayer::<Rest>::CONSTRUCTOR_ID {
            body = body
                .get(8..)
                .ok_or_else(|| err(400, "INPUT_REQUEST_INVALID"))?;
        } else if c == functions::InvokeWithoutUpdates::<Rest>::CONSTRUCTOR_ID {
            ctx.conn.no_updates.store(true, Ordering::Relaxed);
            body = body
                .get(4..)
                .ok_or_else(|| err(400, "INPUT_REQUEST_INVALID"))?;
        } else if c == functions::InvokeAfterMsg::<Rest>::CONSTRUCTOR_ID {
            body = body
                .get(12..)
                .ok_or_else(|| err(400, "INPUT_REQUEST_INVALID"))?;
        } else if c == functions::InitConnection::<Rest>::CONSTRUCTOR_ID {
            let mut cur = Cursor::from_slice(&body[4..]);
            let init = functions::InitConnection::<Rest>::deserialize(&mut cur)
                .map_err(|_| err(400, "CONNECTION_LAYER_INVALID"))?;
            if init.api_id <= 0 {
                return Err(err(400, "API_ID_INVALID"));
            }
            *owned = init.query.0;
            return Ok(&owned[..]);
        } else {
            return Ok(body);
        }
    }
    Err(err(400, "INPUT_REQUEST_INVALID"))
}

/// The TL name of the (unwrapped) method in `body`, e.g. `messages.getHistory`.
pub fn method_name(body: &[u8]) -> String {
    let mut b = body;
    let owned;
    loop {
        let c = ctor(b);
        if c == functions::InvokeWithLayer::<Rest>::CONSTRUCTOR_ID && b.len() >= 8 {
            b = &b[8..];
        } else if c == functions::InvokeWithoutUpdates::<Rest>::CONSTRUCTOR_ID && b.len() >= 4 {
            b = &b[4..];
        } else if c == functions::InitConnection::<Rest>::CONSTRUCTOR_ID {
            let mut cur = Cursor::from_slice(&b[4..]);
            match functions::InitConnection::<Rest>::deserialize(&mut cur) {
                Ok(init) => {
                    owned = init.query.0;
                    b = &owned;
                    return tl::name_for_id(ctor(b)).to_string();
                }
                Err(_) => return "initConnection".into(),
            }
        } else {
            return tl::name_for_id(c).to_string();
        }
    }
}

fn parse<T: Deserializable>(body: &[u8]) -> Result<T, RpcErr> {
    let mut cur = Cursor::from_slice(body.get(4..).unwrap_or_default());
    T::deserialize(&mut cur).map_err(|_| err(400, "INPUT_REQUEST_INVALID"))
}

const NO_AUTH: &[&str] = &[
    "help.getConfig",
    "help.getNearestDc",
    "auth.sendCode",
    "auth.signIn",
    "auth.checkPassword",
    "account.getPassword",
    "auth.logOut",
];

pub async fn call(ctx: &Ctx, body: &[u8]) -> R {
    let mut owned = Vec::new();
    let body = unwrap_query(ctx, body, &mut owned)?;
    let c = ctor(body);
    let name = tl::name_for_id(c);
    let shared = &ctx.shared;
    shared.world.count_request(name);

    let (user_id, revoked) = shared
        .with_key(&ctx.key_id, |k| (k.user_id, k.revoked))
        .unwrap_or((None, true));
    if revoked {
        return Err(err(401, "AUTH_KEY_UNREGISTERED"));
    }
    if let Some(uid) = user_id {
        let banned = shared
            .world
            .lock()
            .accounts
            .iter()
            .any(|a| a.user_id == uid && a.revoked);
        if banned {
            shared.revoke_user(Some(uid));
            return Err(err(401, "AUTH_KEY_UNREGISTERED"));
        }
    } else if !NO_AUTH.contains(&name) {
        return Err(err(401, "AUTH_KEY_UNREGISTERED"));
    }

    if let Some(kind) = shared.faults.take(name, |k| {
        matches!(k, FaultKind::Rpc500 | FaultKind::Timeout503)
    }) {
        return Err(match kind {
            FaultKind::Timeout503 => err(-503, "Timeout"),
            _ => err(500, "INTERNAL_SERVER_ERROR"),
        });
    }
    let account_key = user_id.unwrap_or_else(|| i64::from_le_bytes(ctx.key_id));
    match shared.flood.check(account_key, name) {
        Verdict::Allow => {}
        Verdict::Wait(secs) => {
            shared.world.lock().stats.flood_waits += 1;
            return Err(err(420, format!("FLOOD_WAIT_{secs}")));
        }
        Verdict::WaitAgain(secs) => {
            let mut w = shared.world.lock();
            w.stats.flood_waits += 1;
            w.stats.calls_during_wait += 1;
            return Err(err(420, format!("FLOOD_WAIT_{secs}")));
        }
        Verdict::Ban => {
            shared.revoke_user(user_id);
            shared.with_key(&ctx.key_id, |k| k.revoked = true);
            shared.world.lock().stats.bans += 1;
            return Err(err(401, "AUTH_KEY_UNREGISTERED"));
        }
    }

    dispatch(ctx, c, name, body, user_id)
}

fn dispatch(ctx: &Ctx, c: u32, name: &str, body: &[u8], user_id: Option<i64>) -> R {
    use functions as f;
    let shared = &ctx.shared;
    match c {
        f::help::GetConfig::CONSTRUCTOR_ID => {
            let addr = *shared.public_addr.lock().unwrap_or_else(|p| p.into_inner());
            Ok(convert::config(shared.dc_id, &addr.ip().to_string(), addr.port()).to_bytes())
        }
        f::help::GetNearestDc::CONSTRUCTOR_ID => Ok(enums::NearestDc::Dc(types::NearestDc {
            country: "NL".into(),
            this_dc: shared.dc_id,
            nearest_dc: shared.dc_id,
        })
        .to_bytes()),
        f::auth::SendCode::CONSTRUCTOR_ID => send_code(ctx, parse(body)?),
        f::auth::SignIn::CONSTRUCTOR_ID => sign_in(ctx, parse(body)?),
        f::account::GetPassword::CONSTRUCTOR_ID => get_password(ctx, user_id),
        f::auth::CheckPassword::CONSTRUCTOR_ID => check_password(ctx, parse(body)?),
        f::auth::LogOut::CONSTRUCTOR_ID => {
            shared.with_key(&ctx.key_id, |k| {
                k.user_id = None;
                k.password_for = None;
            });
            Ok(enums::auth::LoggedOut::Out(types::auth::LoggedOut {
                future_auth_token: None,
            })
            .to_bytes())
        }
        f::users::GetUsers::CONSTRUCTOR_ID => {
            let req: f::users::GetUsers = parse(body)?;
            let w = shared.world.lock();
            let users: Vec<enums::User> = req
                .id
                .iter()
                .map(|u| {
                    let found = match u {
                        enums::InputUser::UserSelf => {
                            w.accounts.iter().find(|a| Some(a.user_id) == user_id)
                        }
                        enums::InputUser::User(x) => w
                            .accounts
                            .iter()
                            .find(|a| a.user_id == x.user_id && a.access_hash == x.access_hash),
                        _ => None,
                    };
                    match found {
                        Some(a) => convert::user(a, Some(a.user_id) == user_id),
                        None => enums::User::Empty(types::UserEmpty {
                            id: match u {
                                enums::InputUser::User(x) => x.user_id,
                                _ => 0,
                            },
                        }),
                    }
                })
                .collect();
            Ok(users.to_bytes())
        }
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
                    chats: vec![convert::chat(ch)],
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
                let ch = input_channel(&w.channels, ic)?;
                chats.push(convert::chat(ch));
            }
            Ok(enums::messages::Chats::Chats(types::messages::Chats { chats }).to_bytes())
        }
        f::channels::GetMessages::CONSTRUCTOR_ID => {
            let req: f::channels::GetMessages = parse(body)?;
            let w = shared.world.lock();
            let ch = accessible(input_channel(&w.channels, &req.channel)?)?;
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
            Ok(channel_messages(ch, messages, ch.posts.len() as i32))
        }
        f::messages::GetHistory::CONSTRUCTOR_ID => {
            let req: f::messages::GetHistory = parse(body)?;
            let w = shared.world.lock();
            let ch = match &req.peer {
                enums::InputPeer::Channel(p) => w
                    .channels
                    .get(&p.channel_id)
                    .filter(|c| c.access_hash == p.access_hash)
                    .ok_or_else(|| err(400, "CHANNEL_INVALID"))?,
                _ => return Err(err(400, "PEER_ID_INVALID")),
            };
            let ch = accessible(ch)?;
            Ok(page_bytes(ch, &history(ch, &req)))
        }
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
        f::updates::GetDifference::CONSTRUCTOR_ID => Ok(enums::updates::Difference::Empty(
            types::updates::DifferenceEmpty {
                date: unix_now(),
                seq: 0,
            },
        )
        .to_bytes()),
        f::updates::GetChannelDifference::CONSTRUCTOR_ID => {
            let req: f::updates::GetChannelDifference = parse(body)?;
            let w = shared.world.lock();
            let ch = accessible(input_channel(&w.channels, &req.channel)?)?;
            Ok(channel_difference(
                ch,
                req.pts,
                req.limit,
                shared.too_long_after,
            ))
        }
        _ => Err(err(
            400,
            format!(
                "INPUT_METHOD_INVALID_{}",
                name.replace('.', "_").to_uppercase()
            ),
        )),
    }
}

fn input_channel<'a>(
    channels: &'a std::collections::BTreeMap<i64, Channel>,
    ic: &enums::InputChannel,
) -> Result<&'a Channel, RpcErr> {
    match ic {
        enums::InputChannel::Channel(c) => channels
            .get(&c.channel_id)
            .filter(|ch| ch.access_hash == c.access_hash)
            .ok_or_else(|| err(400, "CHANNEL_INVALID")),
        _ => Err(err(400, "CHANNEL_INVALID")),
    }
}

fn accessible(ch: &Channel) -> Result<&Channel, RpcErr> {
    if ch.private {
        Err(err(400, "CHANNEL_PRIVATE"))
    } else {
        Ok(ch)
    }
}

fn channel_messages(ch: &Channel, messages: Vec<enums::Message>, count: i32) -> Vec<u8> {
    enums::messages::Messages::ChannelMessages(types::messages::ChannelMessages {
        inexact: false,
        pts: ch.pts,
        count,
        offset_id_offset: None,
        messages,
        topics: vec![],
        chats: vec![convert::chat(ch)],
        users: vec![],
    })
    .to_bytes()
}

pub fn page_bytes(ch: &Channel, page: &[&Post]) -> Vec<u8> {
    let messages = page.iter().map(|p| convert::message(ch, p)).collect();
    channel_messages(ch, messages, ch.posts.len() as i32)
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

fn channel_difference(ch: &Channel, pts: i32, limit: i32, too_long_after: i32) -> Vec<u8> {
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
        let messages = ch
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
            messages,
            chats: vec![convert::chat(ch)],
            users: vec![],
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
    CD::Difference(types::updates::ChannelDifference {
        r#final: new_pts >= ch.pts,
        pts: new_pts,
        timeout: Some(30),
        new_messages,
        other_updates,
        chats: vec![convert::chat(ch)],
        users: vec![],
    })
    .to_bytes()
}

fn normalize_phone(p: &str) -> String {
    p.chars().filter(|c| c.is_ascii_digit()).collect()
}

fn send_code(ctx: &Ctx, req: functions::auth::SendCode) -> R {
    if req.api_id <= 0 || req.api_hash.is_empty() {
        return Err(err(400, "API_ID_INVALID"));
    }
    let phone = normalize_phone(&req.phone_number);
    let account = {
        let w = ctx.shared.world.lock();
        w.accounts
            .iter()
            .find(|a| normalize_phone(&a.phone) == phone)
            .cloned()
    }
    .ok_or_else(|| err(400, "PHONE_NUMBER_INVALID"))?;
    let hash = format!("{:016x}", rand::random::<u64>());
    ctx.shared.with_key(&ctx.key_id, |k| {
        k.codes.insert(
            hash.clone(),
            super::SentCode {
                phone,
                at: Instant::now(),
                used: false,
            },
        );
    });
    Ok(enums::auth::SentCode::Code(types::auth::SentCode {
        r#type: types::auth::SentCodeTypeApp {
            length: account.code.len() as i32,
        }
        .into(),
        phone_code_hash: hash,
        next_type: None,
        timeout: None,
    })
    .to_bytes())
}

fn authorization(a: &crate::world::Account) -> Vec<u8> {
    enums::auth::Authorization::Authorization(types::auth::Authorization {
        setup_password_required: false,
        otherwise_relogin_days: None,
        tmp_sessions: None,
        future_auth_token: None,
        user: convert::user(a, true),
    })
    .to_bytes()
}

fn sign_in(ctx: &Ctx, req: functions::auth::SignIn) -> R {
    let phone = normalize_phone(&req.phone_number);
    let ttl = *ctx
        .shared
        .code_ttl
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let sent = ctx
        .shared
        .with_key(&ctx.key_id, |k| {
            k.codes
                .get(&req.phone_code_hash)
                .map(|c| (c.phone.clone(), c.at, c.used))
        })
        .flatten()
        .ok_or_else(|| err(400, "PHONE_CODE_EXPIRED"))?;
    if sent.0 != phone {
        return Err(err(400, "PHONE_NUMBER_INVALID"));
    }
    if sent.2 || sent.1.elapsed() > ttl {
        return Err(err(400, "PHONE_CODE_EXPIRED"));
    }
    let code = req.phone_code.unwrap_or_default();
    if code.is_empty() {
        return Err(err(400, "PHONE_CODE_EMPTY"));
    }
    let account = {
        let w = ctx.shared.world.lock();
        w.accounts
            .iter()
            .find(|a| normalize_phone(&a.phone) == phone)
            .cloned()
    }
    .ok_or_else(|| err(400, "PHONE_NUMBER_INVALID"))?;
    if code != account.code {
        return Err(err(400, "PHONE_CODE_INVALID"));
    }
    ctx.shared.with_key(&ctx.key_id, |k| {
        if let Some(c) = k.codes.get_mut(&req.phone_code_hash) {
            c.used = true;
        }
        if account.password.is_some() {
            k.password_for = Some(account.user_id);
        } else {
            k.user_id = Some(account.user_id);
        }
    });
    if account.password.is_some() {
        return Err(err(401, "SESSION_PASSWORD_NEEDED"));
    }
    Ok(authorization(&account))
}

fn get_password(ctx: &Ctx, user_id: Option<i64>) -> R {
    let who = ctx
        .shared
        .with_key(&ctx.key_id, |k| k.password_for.or(user_id))
        .flatten();
    let password = who.and_then(|uid| {
        let w = ctx.shared.world.lock();
        w.accounts
            .iter()
            .find(|a| a.user_id == uid)
            .and_then(|a| a.password.clone())
    });
    let secure_random: Vec<u8> = (0..256).map(|_| rand::random::<u8>()).collect();
    let new_algo = enums::PasswordKdfAlgo::Sha256Sha256Pbkdf2Hmacsha512iter100000Sha256ModPow(
        types::PasswordKdfAlgoSha256Sha256Pbkdf2Hmacsha512iter100000Sha256ModPow {
            salt1: (0..8).map(|_| rand::random::<u8>()).collect(),
            salt2: (0..16).map(|_| rand::random::<u8>()).collect(),
            g: srp::G,
            p: srp::p_bytes(),
        },
    );
    let new_secure_algo = enums::SecurePasswordKdfAlgo::Pbkdf2Hmacsha512iter100000(
        types::SecurePasswordKdfAlgoPbkdf2Hmacsha512iter100000 {
            salt: (0..8).map(|_| rand::random::<u8>()).collect(),
        },
    );
    let Some(password) = password else {
        return Ok(
            enums::account::Password::Password(types::account::Password {
                has_recovery: false,
                has_secure_values: false,
                has_password: false,
                current_algo: None,
                srp_b: None,
                srp_id: None,
                hint: None,
                email_unconfirmed_pattern: None,
                new_algo,
                new_secure_algo,
                secure_random,
                pending_reset_date: None,
                login_email_pattern: None,
            })
            .to_bytes(),
        );
    };
    let challenge = Challenge::new(&password);
    let current_algo = enums::PasswordKdfAlgo::Sha256Sha256Pbkdf2Hmacsha512iter100000Sha256ModPow(
        types::PasswordKdfAlgoSha256Sha256Pbkdf2Hmacsha512iter100000Sha256ModPow {
            salt1: challenge.salt1.clone(),
            salt2: challenge.salt2.clone(),
            g: srp::G,
            p: srp::p_bytes(),
        },
    );
    let bytes = enums::account::Password::Password(types::account::Password {
        has_recovery: false,
        has_secure_values: false,
        has_password: true,
        current_algo: Some(current_algo),
        srp_b: Some(challenge.srp_b.clone()),
        srp_id: Some(challenge.srp_id),
        hint: Some("the fake's 2FA password".into()),
        email_unconfirmed_pattern: None,
        new_algo,
        new_secure_algo,
        secure_random,
        pending_reset_date: None,
        login_email_pattern: None,
    })
    .to_bytes();
    ctx.shared
        .with_key(&ctx.key_id, |k| k.challenge = Some(challenge));
    Ok(bytes)
}

fn check_password(ctx: &Ctx, req: functions::auth::CheckPassword) -> R {
    let enums::InputCheckPasswordSrp::Srp(srp) = req.password else {
        return Err(err(400, "PASSWORD_HASH_INVALID"));
    };
    let outcome = ctx
        .shared
        .with_key(&ctx.key_id, |k| {
            let ok = match &k.challenge {
                Some(c) if c.srp_id == srp.srp_id => c.verify(&srp.a, &srp.m1),
                Some(_) => return Err(err(400, "SRP_ID_INVALID")),
                None => return Err(err(400, "SRP_ID_INVALID")),
            };
            if !ok {
                return Err(err(400, "PASSWORD_HASH_INVALID"));
            }
            let uid = k
                .password_for
                .take()
                .ok_or_else(|| err(400, "PASSWORD_HASH_INVALID"))?;
            k.challenge = None;
            k.user_id = Some(uid);
            Ok(uid)
        })
        .unwrap_or_else(|| Err(err(401, "AUTH_KEY_UNREGISTERED")))?;
    let w = ctx.shared.world.lock();
    let a = w
        .accounts
        .iter()
        .find(|a| a.user_id == outcome)
        .ok_or_else(|| err(400, "USER_ID_INVALID"))?;
    Ok(authorization(a))
}

/// Pushes channel changes to this connection while its key is logged in.
pub async fn push_loop(
    shared: Arc<Shared>,
    conn: Arc<Conn>,
    key_id: [u8; 8],
    tx: mpsc::UnboundedSender<Out>,
) {
    let mut rx = shared.world.subscribe();
    loop {
        let push = match rx.recv().await {
            Ok(p) => p,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(_) => return,
        };
        let logged_in = shared
            .with_key(&key_id, |k| k.user_id.is_some() && !k.revoked)
            .unwrap_or(false);
        if !logged_in || conn.no_updates.load(Ordering::Relaxed) {
            continue;
        }
        let bytes = {
            let w = shared.world.lock();
            let Some(ch) = w.channels.get(&push.channel_id) else {
                continue;
            };
            if ch.private {
                continue;
            }
            let update: enums::Update = match &push.event {
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
            };
            enums::Updates::Updates(types::Updates {
                updates: vec![update],
                users: vec![],
                chats: vec![convert::chat(ch)],
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
        let bytes = channel_difference(ch, start, 100, 500);
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
        let bytes = channel_difference(ch, start, 2, 500);
        let mut cur = Cursor::from_slice(&bytes);
        match enums::updates::ChannelDifference::deserialize(&mut cur).unwrap() {
            enums::updates::ChannelDifference::Difference(d) => {
                assert!(!d.r#final, "limited: more to come");
                assert_eq!(d.pts, start + 2);
            }
            other => panic!("{other:?}"),
        }
        let bytes = channel_difference(ch, start, 100, 2);
        let mut cur = Cursor::from_slice(&bytes);
        assert!(matches!(
            enums::updates::ChannelDifference::deserialize(&mut cur).unwrap(),
            enums::updates::ChannelDifference::TooLong(_)
        ));
        let bytes = channel_difference(ch, ch.pts, 100, 500);
        let mut cur = Cursor::from_slice(&bytes);
        assert!(matches!(
            enums::updates::ChannelDifference::deserialize(&mut cur).unwrap(),
            enums::updates::ChannelDifference::Empty(_)
        ));
    }
}
