//! QR login (core.telegram.org/api/qr-login): no code is typed anywhere. The session exports a
//! login token (`auth.exportLoginToken`), shown as `tg://login?token=<base64url>`; someone
//! scans it in Telegram on a phone where the account is logged in (Settings → Devices → Link
//! Desktop Device), Telegram pushes `updateLoginToken`, and the next export logs the session in
//! — on the account's DC: `auth.loginTokenMigrateTo` moves the session there, where
//! `auth.importLoginToken` completes it. A token expires after about 30 seconds; a new one is
//! exported then. With 2FA the password follows, as after a code.

use base64::Engine as _;
use grammers_client::client::PasswordToken;
use grammers_client::tl;
use grammers_client::{InvocationError, session::updates::UpdatesLike};
use tokio::sync::mpsc;

use super::{Account, LoginError, Step, classify, complete, password_step};
use crate::parser::client::Connected;

/// Where a QR login is.
pub enum QrStep {
    /// Show `url` as a QR code until `expires` (unix time, Telegram's clock), then export again.
    Show {
        url: String,
        expires: i32,
    },
    Done(Account),
    /// The account has a 2FA password; ask for it.
    Password(PasswordToken),
}

/// Exports a login token; once the phone has accepted the last one, logs the session in
/// (following the account to its DC).
pub async fn qr_login_token(c: &Connected) -> Result<QrStep, LoginError> {
    let req = tl::functions::auth::ExportLoginToken {
        api_id: c.api_id,
        api_hash: c.api_hash.to_string(),
        except_ids: Vec::new(),
    };
    let answer = c.client.invoke(&req).await;
    match answer {
        Ok(tl::enums::auth::LoginToken::MigrateTo(m)) => {
            c.move_home(m.dc_id, false)
                .await
                .map_err(|e| LoginError::Session(e.to_string()))?;
            let imported = c
                .client
                .invoke(&tl::functions::auth::ImportLoginToken { token: m.token })
                .await;
            match imported {
                Ok(tl::enums::auth::LoginToken::MigrateTo(_)) => Err(LoginError::Telegram(
                    "Telegram sent the QR login to another DC twice; start the login again".into(),
                )),
                other => outcome(c, other).await,
            }
        }
        other => outcome(c, other).await,
    }
}

async fn outcome(
    c: &Connected,
    answer: Result<tl::enums::auth::LoginToken, InvocationError>,
) -> Result<QrStep, LoginError> {
    match answer {
        Ok(tl::enums::auth::LoginToken::Token(t)) => Ok(QrStep::Show {
            url: format!(
                "tg://login?token={}",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&t.token)
            ),
            expires: t.expires,
        }),
        Ok(tl::enums::auth::LoginToken::Success(s)) => match s.authorization {
            tl::enums::auth::Authorization::Authorization(a) => {
                complete(c, &a.user).await.map(QrStep::Done)
            }
            tl::enums::auth::Authorization::SignUpRequired(_) => Err(LoginError::Telegram(
                "Telegram says the account that accepted the QR code does not exist".into(),
            )),
        },
        Ok(tl::enums::auth::LoginToken::MigrateTo(_)) => Err(LoginError::Telegram(
            "Telegram sent the QR login to another DC twice; start the login again".into(),
        )),
        Err(InvocationError::Rpc(r)) if r.name == "SESSION_PASSWORD_NEEDED" => {
            match password_step(c).await? {
                Step::Password(p) => Ok(QrStep::Password(p)),
                Step::Done(a) => Ok(QrStep::Done(a)),
            }
        }
        Err(InvocationError::Rpc(r)) if r.name.starts_with("AUTH_TOKEN_") => {
            Err(LoginError::CodeExpired)
        }
        Err(e) => Err(classify(e)),
    }
}

/// Waits until Telegram says the token was accepted (`updateLoginToken`: true), or until it
/// expires (false).
pub async fn qr_wait(updates: &mut mpsc::Receiver<UpdatesLike>, expires: i32) -> bool {
    let left = i64::from(expires) - crate::time::unix_now();
    let deadline =
        tokio::time::Instant::now() + std::time::Duration::from_secs(left.clamp(1, 120) as u64);
    loop {
        let u = tokio::select! {
            u = updates.recv() => u,
            _ = tokio::time::sleep_until(deadline) => return false,
        };
        let Some(UpdatesLike::Updates(u)) = u else {
            if u.is_none() {
                // The connection's updates are gone: wait out the token instead.
                tokio::time::sleep_until(deadline).await;
                return false;
            }
            continue;
        };
        use tl::enums::{Update, Updates};
        let accepted = match &u {
            Updates::UpdateShort(x) => matches!(x.update, Update::LoginToken),
            Updates::Updates(x) => x.updates.iter().any(|u| matches!(u, Update::LoginToken)),
            Updates::Combined(x) => x.updates.iter().any(|u| matches!(u, Update::LoginToken)),
            _ => false,
        };
        if accepted {
            return true;
        }
    }
}

/// `url` as a QR code for a terminal (two rows of modules per line, dark on light, with the
/// quiet zone scanners need).
pub fn render_terminal(url: &str) -> Result<String, LoginError> {
    use qrcode::render::unicode::Dense1x2;
    let code = qrcode::QrCode::new(url.as_bytes())
        .map_err(|e| LoginError::Telegram(format!("cannot draw the QR code: {e}")))?;
    Ok(code
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .quiet_zone(true)
        .build())
}

/// `url` as a QR code in a PNG image (8 pixels a module, a 4-module quiet zone), to send as a
/// photo.
pub fn render_png(url: &str) -> Result<Vec<u8>, LoginError> {
    const SCALE: usize = 8;
    const QUIET: usize = 4;
    let code = qrcode::QrCode::new(url.as_bytes())
        .map_err(|e| LoginError::Telegram(format!("cannot draw the QR code: {e}")))?;
    let width = code.width();
    let colors = code.to_colors();
    let side = (width + 2 * QUIET) * SCALE;
    let mut pixels = vec![255u8; side * side];
    for (i, c) in colors.iter().enumerate() {
        if *c != qrcode::Color::Dark {
            continue;
        }
        let (mx, my) = (i % width + QUIET, i / width + QUIET);
        for y in my * SCALE..(my + 1) * SCALE {
            pixels[y * side + mx * SCALE..y * side + (mx + 1) * SCALE].fill(0);
        }
    }
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, side as u32, side as u32);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::Eight);
        let err =
            |e: png::EncodingError| LoginError::Telegram(format!("cannot draw the QR code: {e}"));
        let mut w = enc.write_header().map_err(err)?;
        w.write_image_data(&pixels).map_err(err)?;
    }
    Ok(out)
}
