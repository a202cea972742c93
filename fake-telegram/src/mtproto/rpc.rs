//! RPCs with Telegram's documented semantics, over the world.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use grammers_tl_types as tl;
use tl::{Cursor, Deserializable, Identifiable, Serializable, enums, functions, types};

use super::Shared;
use super::envelope::Conn;
use super::{auth, channels, convert, dcs, files, joins, updates};
use crate::faults::FaultKind;
use crate::flood::Verdict;

pub struct Ctx {
    pub shared: Arc<Shared>,
    pub conn: Arc<Conn>,
    pub key_id: [u8; 8],
}

#[derive(Debug)]
pub(super) struct RpcErr {
    pub code: i32,
    pub message: String,
}

pub(super) fn err(code: i32, message: impl Into<String>) -> RpcErr {
    RpcErr {
        code,
        message: message.into(),
    }
}

pub(super) type R = Result<Vec<u8>, RpcErr>;

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

pub(super) fn parse<T: Deserializable>(body: &[u8]) -> Result<T, RpcErr> {
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
    "account.sendVerifyEmailCode",
    "account.verifyEmail",
    "auth.importAuthorization",
    "auth.exportLoginToken",
    "auth.importLoginToken",
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
    if let Some(uid) = user_id {
        dcs::check_home(ctx, name, uid)?;
        auth::check_frozen(ctx, name, uid)?;
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
    if let Some(FaultKind::FloodWait { secs }) = shared
        .faults
        .take(name, |k| matches!(k, FaultKind::FloodWait { .. }))
    {
        shared.flood.impose(account_key, name, secs);
        shared.world.lock().stats.flood_waits += 1;
        return Err(err(420, format!("FLOOD_WAIT_{secs}")));
    }
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
        f::help::GetConfig::CONSTRUCTOR_ID => dcs::config(ctx),
        f::help::GetNearestDc::CONSTRUCTOR_ID => dcs::nearest_dc(ctx),
        f::auth::SendCode::CONSTRUCTOR_ID => auth::send_code(ctx, parse(body)?),
        f::auth::SignIn::CONSTRUCTOR_ID => auth::sign_in(ctx, parse(body)?),
        f::account::SendVerifyEmailCode::CONSTRUCTOR_ID => {
            auth::send_verify_email_code(ctx, parse(body)?)
        }
        f::account::VerifyEmail::CONSTRUCTOR_ID => auth::verify_email(ctx, parse(body)?),
        f::account::GetPassword::CONSTRUCTOR_ID => auth::get_password(ctx, user_id),
        f::auth::CheckPassword::CONSTRUCTOR_ID => auth::check_password(ctx, parse(body)?),
        f::auth::ExportAuthorization::CONSTRUCTOR_ID => match user_id {
            Some(uid) => dcs::export_authorization(ctx, parse(body)?, uid),
            None => Err(err(401, "AUTH_KEY_UNREGISTERED")),
        },
        f::auth::ImportAuthorization::CONSTRUCTOR_ID => {
            dcs::import_authorization(ctx, parse(body)?)
        }
        f::auth::ExportLoginToken::CONSTRUCTOR_ID => super::qr::export(ctx, parse(body)?),
        f::auth::ImportLoginToken::CONSTRUCTOR_ID => super::qr::import(ctx, parse(body)?),
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
        f::contacts::ResolveUsername::CONSTRUCTOR_ID
        | f::channels::GetChannels::CONSTRUCTOR_ID
        | f::channels::GetMessages::CONSTRUCTOR_ID
        | f::messages::GetHistory::CONSTRUCTOR_ID
        | f::messages::GetReplies::CONSTRUCTOR_ID => {
            channels::call(ctx, c, body, user_id.unwrap_or(0))
        }
        f::channels::JoinChannel::CONSTRUCTOR_ID
        | f::channels::LeaveChannel::CONSTRUCTOR_ID
        | f::messages::CheckChatInvite::CONSTRUCTOR_ID
        | f::messages::ImportChatInvite::CONSTRUCTOR_ID => {
            joins::call(ctx, c, body, user_id.unwrap_or(0))
        }
        f::upload::GetFile::CONSTRUCTOR_ID => files::get_file(ctx, parse(body)?),
        f::updates::GetState::CONSTRUCTOR_ID
        | f::updates::GetDifference::CONSTRUCTOR_ID
        | f::updates::GetChannelDifference::CONSTRUCTOR_ID => {
            updates::call(ctx, c, body, user_id.unwrap_or(0))
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
