//! `/login qr`: the QR code as a photo, renewed as it expires, until the phone accepts one.

use std::sync::Arc;

use teloxide::prelude::*;

use super::{App, Connected, LoginError, QrStep, Waiting, end, finish, login};

/// QR codes shown before the dialog gives up (each lives about 30 seconds).
const QR_CODES: usize = 10;

/// Shows the QR code as a photo, a new one as each expires, until the phone accepts one; then
/// the login ends (or asks for the 2FA password). Stops when the dialog ends.
pub(super) async fn qr_task(
    bot: Bot,
    app: Arc<App>,
    chat: ChatId,
    conn: Arc<Connected>,
    mut updates: tokio::sync::mpsc::Receiver<grammers_session::updates::UpdatesLike>,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut shown = 0;
    let outcome = loop {
        let step = tokio::select! {
            s = login::qr_login_token(&conn) => s,
            _ = stop.cancelled() => return,
        };
        match step {
            Ok(QrStep::Show { url, expires }) => {
                if shown == QR_CODES {
                    break Err(format!(
                        "no QR code was scanned in {QR_CODES} tries. /login qr starts again"
                    ));
                }
                shown += 1;
                if let Err(e) = send_qr(&bot, &app, chat, &url).await {
                    break Err(format!(
                        "the QR code could not be sent ({e}). /login starts again"
                    ));
                }
                tokio::select! {
                    _ = login::qr_wait(&mut updates, expires) => {}
                    _ = stop.cancelled() => return,
                }
            }
            Ok(QrStep::Done(account)) => break Ok(Ok(account)),
            Ok(QrStep::Password(pt)) => break Ok(Err(pt)),
            Err(LoginError::CodeExpired) => {}
            Err(e) => break Err(format!("{e}. /login starts again")),
        }
    };
    // The dialog is in the map unless a message of the admin is being answered right now.
    let mut d = None;
    for _ in 0..50 {
        if stop.is_cancelled() {
            return;
        }
        d = app.logins.take(chat.0);
        if d.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let Some(mut d) = d else { return };
    let _ = match outcome {
        Ok(Ok(account)) => finish(&bot, &app, chat, d, account).await,
        Ok(Err(pt)) => {
            let hint = pt
                .hint()
                .map(|h| format!(" (hint: {h})"))
                .unwrap_or_default();
            d.waiting = Waiting::Password(pt);
            d.attempts = 0;
            app.logins.park(&app, &bot, chat.0, d, "password");
            super::super::handlers::send(&bot, &app, chat, format!("The QR code was accepted. The account has two-step verification: send its password{hint}; I delete your message as soon as I have read it. /cancel stops.")).await
        }
        Err(e) => end(&bot, &app, chat, d, format!("The login stopped: {e}")).await,
    };
}

async fn send_qr(bot: &Bot, app: &App, chat: ChatId, url: &str) -> Result<(), String> {
    let png = login::render_png(url).map_err(|e| e.to_string())?;
    let caption = format!(
        "Scan this with Telegram on a phone where the parsing account is logged in: Settings → Devices → Link Desktop Device. No code is typed. On a device where the account is logged in, this link does the same: {url}\nA new code follows when this one expires; /cancel stops."
    );
    app.call(
        Some(chat),
        bot.send_photo(
            chat,
            teloxide::types::InputFile::memory(png).file_name("login-qr.png"),
        )
        .caption(caption),
    )
    .await
    .map(|_| ())
    .map_err(|e| e.to_string())
}
