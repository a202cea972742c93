//! The login-email steps of the `/login` dialog: the address Telegram asks for before it sends
//! a code, then the code sent to it.

use std::sync::Arc;

use teloxide::prelude::*;

use super::{
    ATTEMPTS, App, BotError, Dialog, LoginError, SPACED, Waiting, code_prompt, login, read_code,
    stopped, waiting_for,
};

pub(super) async fn on_email(
    bot: &Bot,
    app: &Arc<App>,
    chat: ChatId,
    mut d: Dialog,
    email: &str,
) -> Result<(), BotError> {
    let Waiting::Email(token) = std::mem::replace(&mut d.waiting, Waiting::Phone) else {
        return Ok(());
    };
    match login::setup_email(&d.conn, &token, email).await {
        Ok(sent) => {
            let prompt = format!(
                "Telegram sent a code ({} digits) to {}. {SPACED}",
                sent.length, sent.pattern
            );
            d.waiting = Waiting::EmailCode(token, sent);
            d.attempts = 0;
            app.logins.park(app, bot, chat.0, d, "email code");
            super::super::handlers::send(bot, app, chat, prompt).await
        }
        Err(e @ LoginError::EmailInvalid(_)) if d.attempts + 1 < ATTEMPTS => {
            d.attempts += 1;
            d.waiting = Waiting::Email(token);
            app.logins.park(app, bot, chat.0, d, "email address");
            super::super::handlers::send(bot, app, chat, format!("{e}, or /cancel.")).await
        }
        Err(e) => stopped(bot, app, chat, d, e).await,
    }
}

pub(super) async fn on_email_code(
    bot: &Bot,
    app: &Arc<App>,
    chat: ChatId,
    mut d: Dialog,
    text: &str,
) -> Result<(), BotError> {
    let Waiting::EmailCode(token, sent) = std::mem::replace(&mut d.waiting, Waiting::Phone) else {
        return Ok(());
    };
    let (digits, _) = read_code(text);
    match login::verify_email(&d.conn, &token, &sent, &digits).await {
        Ok(next) => {
            let prompt = format!("The login email is set up. {}", code_prompt(&next));
            let (waiting, step) = waiting_for(next);
            d.waiting = waiting;
            d.attempts = 0;
            app.logins.park(app, bot, chat.0, d, step);
            super::super::handlers::send(bot, app, chat, prompt).await
        }
        Err(LoginError::CodeInvalid) if d.attempts + 1 < ATTEMPTS => {
            d.attempts += 1;
            d.waiting = Waiting::EmailCode(token, sent);
            app.logins.park(app, bot, chat.0, d, "email code");
            super::super::handlers::send(
                bot,
                app,
                chat,
                "That code is wrong. Send it again with spaces between the digits, or /cancel.",
            )
            .await
        }
        Err(LoginError::CodeExpired) => {
            d.waiting = Waiting::Email(token);
            app.logins.park(app, bot, chat.0, d, "email address");
            super::super::handlers::send(
                bot,
                app,
                chat,
                "That code has expired. Send the email address again to get a new one, or /cancel.",
            )
            .await
        }
        Err(e) => stopped(bot, app, chat, d, e).await,
    }
}
