//! QR login (core.telegram.org/api/qr-login): a logged-out client exports a login token and
//! shows it as `tg://login?token=<base64url>`; a phone where the account is logged in scans it
//! and accepts it (`auth.acceptLoginToken`; here the control API's `POST /qr/accept`); the
//! server pushes `updateLoginToken` to the exporting session, which exports again and gets
//! `auth.loginTokenSuccess`, or `auth.loginTokenMigrateTo` when the account lives on another
//! DC, where `auth.importLoginToken` completes it. A token expires after `qr_ttl` (30 s, as
//! Telegram's "usually 30 seconds"); with 2FA the login goes on with the password.

use std::time::{Duration, Instant};

use grammers_tl_types as tl;
use tl::{Serializable, enums, functions, types};

use super::Shared;
use super::rpc::{Ctx, R, err};
use crate::world::unix_now;

/// A token exported by a session.
pub struct LoginToken {
    pub key_id: [u8; 8],
    pub expires: Instant,
    pub accepted_by: Option<i64>,
    /// Logged in with already (the next import is AUTH_TOKEN_ALREADY_ACCEPTED).
    pub used: bool,
}

/// How long an accepted token may still be imported.
const ACCEPTED_TTL: Duration = Duration::from_secs(60);

fn ttl(shared: &Shared) -> Duration {
    *shared.qr_ttl.lock().unwrap_or_else(|p| p.into_inner())
}

pub(super) fn export(ctx: &Ctx, req: functions::auth::ExportLoginToken) -> R {
    if req.api_id <= 0 || req.api_hash.is_empty() {
        return Err(err(400, "API_ID_INVALID"));
    }
    let accepted = {
        let tokens = ctx
            .shared
            .login_tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        tokens
            .iter()
            .find(|(_, t)| t.key_id == ctx.key_id && t.accepted_by.is_some() && !t.used)
            .map(|(token, t)| (token.clone(), t.accepted_by))
    };
    if let Some((token, Some(user))) = accepted {
        return finish(ctx, &token, user);
    }
    let token: Vec<u8> = (0..32).map(|_| rand::random::<u8>()).collect();
    let ttl = ttl(&ctx.shared);
    {
        let mut tokens = ctx
            .shared
            .login_tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        // A session has one token waiting at a time: exporting again replaces it.
        tokens.retain(|_, t| t.key_id != ctx.key_id && t.expires + ACCEPTED_TTL > Instant::now());
        tokens.insert(
            token.clone(),
            LoginToken {
                key_id: ctx.key_id,
                expires: Instant::now() + ttl,
                accepted_by: None,
                used: false,
            },
        );
    }
    Ok(enums::auth::LoginToken::Token(types::auth::LoginToken {
        expires: unix_now() + ttl.as_secs() as i32,
        token,
    })
    .to_bytes())
}

pub(super) fn import(ctx: &Ctx, req: functions::auth::ImportLoginToken) -> R {
    let state = {
        let tokens = ctx
            .shared
            .login_tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        tokens
            .get(&req.token)
            .map(|t| (t.expires, t.accepted_by, t.used))
    };
    match state {
        None => Err(err(400, "AUTH_TOKEN_INVALID")),
        Some((_, _, true)) => Err(err(400, "AUTH_TOKEN_ALREADY_ACCEPTED")),
        Some((expires, Some(user), false)) if expires + ACCEPTED_TTL > Instant::now() => {
            finish(ctx, &req.token, user)
        }
        Some((expires, None, false)) if expires > Instant::now() => {
            Err(err(400, "AUTH_TOKEN_INVALID"))
        }
        Some(_) => Err(err(400, "AUTH_TOKEN_EXPIRED")),
    }
}

/// An accepted token, on the DC asking: logs the session in there if the account lives there
/// (the 2FA password still to come if it has one), else sends it to the account's DC.
fn finish(ctx: &Ctx, token: &[u8], user: i64) -> R {
    let account = ctx
        .shared
        .world
        .lock()
        .accounts
        .iter()
        .find(|a| a.user_id == user)
        .cloned()
        .ok_or_else(|| err(400, "AUTH_TOKEN_INVALID"))?;
    if account.home_dc != ctx.conn.dc {
        return Ok(
            enums::auth::LoginToken::MigrateTo(types::auth::LoginTokenMigrateTo {
                dc_id: account.home_dc,
                token: token.to_vec(),
            })
            .to_bytes(),
        );
    }
    if let Some(t) = ctx
        .shared
        .login_tokens
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_mut(token)
    {
        t.used = true;
    }
    super::auth::log_key_in(ctx, &account)?;
    Ok(
        enums::auth::LoginToken::Success(types::auth::LoginTokenSuccess {
            authorization: super::auth::authorization_tl(&account),
        })
        .to_bytes(),
    )
}

/// The phone accepts `token` for the account `phone` (`auth.acceptLoginToken`), and the
/// exporting session is told with `updateLoginToken`.
pub fn accept(shared: &Shared, token: &[u8], phone: &str) -> Result<(), String> {
    let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
    let account = shared
        .world
        .lock()
        .accounts
        .iter()
        .find(|a| {
            a.phone
                .chars()
                .filter(char::is_ascii_digit)
                .eq(digits.chars())
        })
        .cloned()
        .ok_or_else(|| format!("no account with phone {phone:?}"))?;
    if account.revoked || account.unoccupied {
        return Err(format!(
            "{phone} cannot accept logins (banned or without an account)"
        ));
    }
    let key_id = {
        let mut tokens = shared
            .login_tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let t = tokens.get_mut(token).ok_or("AUTH_TOKEN_INVALID")?;
        if t.expires <= Instant::now() {
            return Err("AUTH_TOKEN_EXPIRED".into());
        }
        if t.accepted_by.is_some() {
            return Err("AUTH_TOKEN_ALREADY_ACCEPTED".into());
        }
        t.accepted_by = Some(account.user_id);
        t.key_id
    };
    let update = enums::Updates::UpdateShort(types::UpdateShort {
        update: enums::Update::LoginToken,
        date: unix_now(),
    });
    let _ = shared.key_events.send((key_id, update.to_bytes()));
    Ok(())
}
