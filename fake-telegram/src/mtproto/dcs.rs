//! Telegram's data centres as the fake serves them: five DCs, each its own listener with its
//! own pre-shared auth key (a key is made with one DC and only that DC knows it), `help.getConfig`
//! listing them, accounts that live on one DC, and the 303 errors that send a client home.
//!
//! core.telegram.org/api/datacenter: a phone number belongs to one DC; `auth.sendCode` on
//! another answers `PHONE_MIGRATE_X`, a logged-in user's call on another `USER_MIGRATE_X`; to act
//! on another DC (files), a client copies its login there with `auth.exportAuthorization` on
//! its home DC and `auth.importAuthorization` on the other.

use std::time::{Duration, Instant};

use grammers_tl_types as tl;
use tl::{Serializable, enums, functions, types};

use super::convert;
use super::rpc::{Ctx, R, RpcErr, err};

/// The DCs the fake serves (Telegram's production DCs are 1 to 5).
pub const DC_IDS: [i32; 5] = [1, 2, 3, 4, 5];
/// The DC a new client is pointed at, as Telegram's clients start on DC 2.
pub const ENTRY_DC: i32 = 2;
/// The generated test account lives here, so every login in the suite goes through
/// `PHONE_MIGRATE_4`.
pub const TEST_ACCOUNT_DC: i32 = 4;
/// An exported authorization must be imported within this long.
const EXPORT_TTL: Duration = Duration::from_secs(60);

/// Methods a logged-in key may call on a DC that is not its account's home: the ones a client
/// uses an imported authorization for (files), what every connection sends, and
/// `auth.exportAuthorization`, with which a client whose account moved to another DC copies
/// its login there. Anything else answers `USER_MIGRATE_X`. Telegram does not publish this list;
/// where unsure, refused.
const OFF_HOME: &[&str] = &[
    "auth.exportAuthorization",
    "help.getConfig",
    "help.getNearestDc",
    "upload.getFile",
    "upload.getFileHashes",
    "upload.getCdnFile",
    "auth.importAuthorization",
    "auth.logOut",
];

/// `help.getConfig` on the connection's DC.
pub(super) fn config(ctx: &Ctx) -> R {
    let dcs: Vec<_> = ctx
        .shared
        .dcs
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|(id, addr)| (*id, *addr))
        .collect();
    Ok(convert::config(ctx.conn.dc, &dcs).to_bytes())
}

pub(super) fn nearest_dc(ctx: &Ctx) -> R {
    Ok(enums::NearestDc::Dc(types::NearestDc {
        country: "NL".into(),
        this_dc: ctx.conn.dc,
        nearest_dc: ENTRY_DC,
    })
    .to_bytes())
}

/// The home DC of the account `user_id`.
pub(super) fn home_of(ctx: &Ctx, user_id: i64) -> Option<i32> {
    ctx.shared
        .world
        .lock()
        .accounts
        .iter()
        .find(|a| a.user_id == user_id)
        .map(|a| a.home_dc)
}

/// A logged-in key off its account's home DC may only call [`OFF_HOME`] methods.
pub(super) fn check_home(ctx: &Ctx, name: &str, user_id: i64) -> Result<(), RpcErr> {
    match home_of(ctx, user_id) {
        Some(home) if home != ctx.conn.dc && !OFF_HOME.contains(&name) => {
            Err(err(303, format!("USER_MIGRATE_{home}")))
        }
        _ => Ok(()),
    }
}

pub(super) fn export_authorization(
    ctx: &Ctx,
    req: functions::auth::ExportAuthorization,
    user_id: i64,
) -> R {
    if !DC_IDS.contains(&req.dc_id) || req.dc_id == ctx.conn.dc {
        return Err(err(400, "DC_ID_INVALID"));
    }
    let bytes: Vec<u8> = (0..128).map(|_| rand::random::<u8>()).collect();
    let mut exports = ctx.shared.exports.lock().unwrap_or_else(|p| p.into_inner());
    exports.retain(|_, (_, _, at)| at.elapsed() < EXPORT_TTL);
    exports.insert(bytes.clone(), (user_id, req.dc_id, Instant::now()));
    Ok(
        enums::auth::ExportedAuthorization::Authorization(types::auth::ExportedAuthorization {
            id: user_id,
            bytes,
        })
        .to_bytes(),
    )
}

/// Logs this DC's key in as the exported user. The bytes are good once, on the DC they were
/// exported for, within [`EXPORT_TTL`].
pub(super) fn import_authorization(ctx: &Ctx, req: functions::auth::ImportAuthorization) -> R {
    let found = ctx
        .shared
        .exports
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&req.bytes);
    let user = match found {
        Some((user, dc, at))
            if user == req.id && dc == ctx.conn.dc && at.elapsed() < EXPORT_TTL =>
        {
            user
        }
        _ => return Err(err(400, "AUTH_BYTES_INVALID")),
    };
    ctx.shared.with_key(&ctx.key_id, |k| {
        k.user_id = Some(user);
        k.password_for = None;
    });
    let w = ctx.shared.world.lock();
    let a = w
        .accounts
        .iter()
        .find(|a| a.user_id == user)
        .ok_or_else(|| err(400, "USER_ID_INVALID"))?;
    Ok(super::auth::authorization(a))
}
