//! `/login` and `/logout` in the chat: an admin logs the parsing account in without a terminal.
//!
//! Telegram cancels a login code that is sent inside any Telegram chat, so the dialog asks for
//! it with spaces between the digits (`1 2 3 4 5`); a code that arrives without them has been
//! cancelled already, so a new one is requested and the reason explained. The messages carrying
//! the code and the 2FA password are deleted as soon as they are read, and neither is logged or
//! stored (the password is checked by SRP; it never leaves this process). Every step waits at
//! most `bot.login_step_timeout_secs` (5 minutes); `/cancel` ends the dialog at any point.
//!
//! While the dialog runs it holds the session gate, so the parser does not reopen the session
//! under it; a finished login wakes the parser at once.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use grammers_client::client::PasswordToken;
use teloxide::prelude::*;
use teloxide::types::MessageId;
use tokio::sync::OwnedMutexGuard;
use zeroize::Zeroizing;

use super::{App, BotError};

mod email;
mod qr;

use crate::parser::client::{self, Connected};
use crate::parser::login::{
    self, Account, CodeToken, Delivery, EmailCodeSent, LoginError, QrStep, Step,
};
use email::{on_email, on_email_code};
use qr::qr_task;

/// Wrong answers tolerated per step before the dialog ends.
const ATTEMPTS: u32 = 5;

enum Waiting {
    Phone,
    Code(CodeToken),
    /// The login email to set up (Telegram sends no code before).
    Email(CodeToken),
    /// The code sent to that email.
    EmailCode(CodeToken, EmailCodeSent),
    /// A QR code to scan; a task shows and renews it (`qr_task`).
    Qr,
    Password(PasswordToken),
}

pub struct Dialog {
    user: i64,
    waiting: Waiting,
    /// Changes at every step: a step's timer only ends the dialog if it is still at that step.
    generation: u64,
    attempts: u32,
    phone: String,
    conn: Arc<Connected>,
    /// Stops the QR task when the dialog ends, however it ends.
    stop: tokio_util::sync::CancellationToken,
    _gate: OwnedMutexGuard<()>,
}

impl Drop for Dialog {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Open dialogs, by chat.
#[derive(Default)]
pub struct Dialogs {
    open: std::sync::Mutex<HashMap<i64, Dialog>>,
    generation: AtomicU64,
}

impl Dialogs {
    fn take(&self, chat: i64) -> Option<Dialog> {
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&chat)
    }

    fn contains(&self, chat: i64) -> bool {
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&chat)
    }

    /// Puts the dialog back at a new step and arms that step's timer.
    fn park(&self, app: &Arc<App>, bot: &Bot, chat: i64, mut d: Dialog, step: &'static str) {
        d.generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        let generation = d.generation;
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(chat, d);
        let (app, bot) = (app.clone(), bot.clone());
        tokio::spawn(async move {
            tokio::time::sleep(app.login_step_timeout).await;
            let expired = {
                let mut open = app.logins.open.lock().unwrap_or_else(|p| p.into_inner());
                match open.get(&chat) {
                    Some(d) if d.generation == generation => open.remove(&chat),
                    _ => None,
                }
            };
            if expired.is_some() {
                drop(expired); // lets go of the session
                let _ = super::handlers::send(
                    &bot,
                    &app,
                    ChatId(chat),
                    format!(
                        "The login timed out: no {step} came within {} minutes. Send /login to start again.",
                        app.login_step_timeout.as_secs().div_ceil(60)
                    ),
                )
                .await;
            }
        });
    }
}

const SPACED: &str = "Send it here with spaces between the digits, like 1 2 3 4 5: Telegram cancels a code that is sent in a chat as it is. I delete your message as soon as I have read it. /cancel stops.";

fn code_prompt(token: &CodeToken) -> String {
    if token.delivery == Delivery::SetupEmail {
        return "Telegram asks this account to set up a login email before it sends a login code; from now on login codes go to that address. Send the email address to use. /cancel stops.".into();
    }
    format!(
        "{} {SPACED}",
        token.delivery.prompt(&token.phone, token.length)
    )
}

/// The step a code token waits at: the code, or first a login email.
fn waiting_for(token: CodeToken) -> (Waiting, &'static str) {
    if token.delivery == Delivery::SetupEmail {
        (Waiting::Email(token), "email address")
    } else {
        (Waiting::Code(token), "code")
    }
}

/// `/login [phone]` (admins, private chat).
pub async fn start(
    bot: &Bot,
    app: &Arc<App>,
    msg: &Message,
    user_id: i64,
    args: &str,
) -> Result<(), BotError> {
    let chat = msg.chat.id;
    let say = |text: String| super::handlers::send(bot, app, chat, text);
    if !msg.chat.is_private() {
        return say(
            "Log in from a private chat with me: the login code must not be seen by others.".into(),
        )
        .await;
    }
    let Some(tg) = app.account.telegram.as_ref() else {
        return say("The parser is not configured: set telegram.api_id and telegram.api_hash_file in the configuration first.".into()).await;
    };
    if app.logins.contains(chat.0) {
        return say("A login is already in progress here; send /cancel to start over.".into())
            .await;
    }
    // The parser holds the gate for a moment each time it opens the session; a login dialog
    // holds it for minutes.
    let held = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        app.account.control.hold(),
    )
    .await;
    let Ok(gate) = held else {
        return say("Another login is in progress; try again in a few minutes.".into()).await;
    };
    let (conn, updates) = match client::connect(
        tg,
        app.store.clone(),
        app.account.vault.clone(),
        client::interactive_guard(tg),
    )
    .await
    {
        Ok(mut c) => {
            let updates = c.updates.take();
            (Arc::new(c), updates)
        }
        Err(e) => return say(format!("Cannot open the session: {e}")).await,
    };
    match login::current_account(&conn).await {
        Ok(Some(a)) => {
            return say(format!(
                "The parser is already logged in as {} (id {}). /logout first to switch accounts.",
                a.name, a.user_id
            ))
            .await;
        }
        Ok(None) => {}
        Err(e) => return say(format!("Cannot reach Telegram: {e}")).await,
    }
    let stop = tokio_util::sync::CancellationToken::new();
    let d = Dialog {
        user: user_id,
        waiting: Waiting::Phone,
        generation: 0,
        attempts: 0,
        phone: String::new(),
        conn: conn.clone(),
        stop: stop.clone(),
        _gate: gate,
    };
    if args.trim().eq_ignore_ascii_case("qr") {
        let Some(updates) = updates else {
            return say(
                "The session gives no updates to wait on; log in with a code instead.".into(),
            )
            .await;
        };
        let mut d = d;
        d.waiting = Waiting::Qr;
        app.logins.park(app, bot, chat.0, d, "QR code scan");
        tokio::spawn(qr_task(bot.clone(), app.clone(), chat, conn, updates, stop));
        return Ok(());
    }
    let phone = args.trim();
    if phone.is_empty() {
        app.logins.park(app, bot, chat.0, d, "phone number");
        return say("Send the phone number of the account to log in, in international format (e.g. +44 7700 900123). /cancel stops.".into()).await;
    }
    on_phone(bot, app, chat, d, phone).await
}

/// `/cancel`.
pub async fn cancel(bot: &Bot, app: &Arc<App>, chat: ChatId) -> Result<(), BotError> {
    let text = match app.logins.take(chat.0) {
        Some(_) => "Login cancelled; nothing was changed.",
        None => "Nothing to cancel.",
    };
    super::handlers::send(bot, app, chat, text).await
}

/// A message in a chat with an open dialog. Returns false when there is none (or it belongs
/// to someone else), so the message is handled as usual.
pub async fn on_message(
    bot: &Bot,
    app: &Arc<App>,
    msg: &Message,
    user_id: i64,
) -> Result<bool, BotError> {
    let chat = msg.chat.id;
    let Some(d) = app.logins.take(chat.0) else {
        return Ok(false);
    };
    if d.user != user_id {
        app.logins.park(app, bot, chat.0, d, "answer");
        return Ok(false);
    }
    let text = Zeroizing::new(msg.text().unwrap_or_default().trim().to_string());
    let secret_step = matches!(
        d.waiting,
        Waiting::Code(_) | Waiting::EmailCode(..) | Waiting::Password(_)
    );
    if secret_step {
        // Read; now gone from the chat, whatever it holds.
        delete(bot, app, chat, msg.id).await;
    }
    if text.starts_with('/') {
        let what = match d.waiting {
            Waiting::Phone => "the phone number",
            Waiting::Code(_) | Waiting::EmailCode(..) => "the code (with spaces)",
            Waiting::Email(_) => "the email address",
            Waiting::Qr => "nothing: scan the QR code,",
            Waiting::Password(_) => "the password",
        };
        if text.split(['@', ' ']).next() == Some("/cancel") {
            drop(d);
            return super::handlers::send(bot, app, chat, "Login cancelled; nothing was changed.")
                .await
                .map(|()| true);
        }
        app.logins.park(app, bot, chat.0, d, "answer");
        super::handlers::send(
            bot,
            app,
            chat,
            format!("A login is in progress: send {what}, or /cancel."),
        )
        .await?;
        return Ok(true);
    }
    match d.waiting {
        Waiting::Phone => on_phone(bot, app, chat, d, &text).await?,
        Waiting::Code(_) => on_code(bot, app, chat, d, &text).await?,
        Waiting::Email(_) => on_email(bot, app, chat, d, &text).await?,
        Waiting::EmailCode(..) => on_email_code(bot, app, chat, d, &text).await?,
        Waiting::Qr => {
            app.logins.park(app, bot, chat.0, d, "QR code scan");
            super::handlers::send(bot, app, chat, "Scan the QR code I sent with Telegram on a phone where the parsing account is logged in (it is renewed as it expires), or /cancel.").await?;
        }
        Waiting::Password(_) => on_password(bot, app, chat, d, &text).await?,
    }
    Ok(true)
}

async fn delete(bot: &Bot, app: &App, chat: ChatId, id: MessageId) {
    if let Err(e) = app.call(Some(chat), bot.delete_message(chat, id)).await {
        tracing::warn!(error = %e, "could not delete a login message; ask the admin to delete it");
    }
}

/// Ends the dialog because of `e`, saying how to start again.
async fn stopped(
    bot: &Bot,
    app: &App,
    chat: ChatId,
    d: Dialog,
    e: impl std::fmt::Display,
) -> Result<(), BotError> {
    end(
        bot,
        app,
        chat,
        d,
        format!("The login stopped: {e}. /login starts again."),
    )
    .await
}

/// Ends the dialog with `text`.
async fn end(bot: &Bot, app: &App, chat: ChatId, d: Dialog, text: String) -> Result<(), BotError> {
    drop(d);
    super::handlers::send(bot, app, chat, text).await
}

async fn on_phone(
    bot: &Bot,
    app: &Arc<App>,
    chat: ChatId,
    mut d: Dialog,
    phone: &str,
) -> Result<(), BotError> {
    let phone: String = phone
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')'))
        .collect();
    match login::request_code(&d.conn, &phone).await {
        Ok(token) => {
            d.phone = phone;
            d.attempts = 0;
            let prompt = code_prompt(&token);
            let (waiting, step) = waiting_for(token);
            d.waiting = waiting;
            app.logins.park(app, bot, chat.0, d, step);
            super::handlers::send(bot, app, chat, prompt).await
        }
        Err(e @ LoginError::PhoneInvalid(_)) if d.attempts + 1 < ATTEMPTS => {
            d.attempts += 1;
            app.logins.park(app, bot, chat.0, d, "phone number");
            super::handlers::send(bot, app, chat, format!("{e}. Send it again, or /cancel.")).await
        }
        Err(e) => stopped(bot, app, chat, d, e).await,
    }
}

/// The digits of a code, and whether they were separated as asked.
fn read_code(text: &str) -> (String, bool) {
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    let separated = text.trim().chars().any(|c| !c.is_ascii_digit());
    (digits, separated)
}

async fn on_code(
    bot: &Bot,
    app: &Arc<App>,
    chat: ChatId,
    mut d: Dialog,
    text: &str,
) -> Result<(), BotError> {
    let Waiting::Code(token) = &d.waiting else {
        return Ok(());
    };
    let token = token.clone();
    let (digits, separated) = read_code(text);
    if digits.len() < 4 {
        app.logins.park(app, bot, chat.0, d, "code");
        return super::handlers::send(
            bot,
            app,
            chat,
            "Send the code's digits with spaces between them, like 1 2 3 4 5, or /cancel.",
        )
        .await;
    }
    if !separated {
        // Telegram has seen the code in a chat and cancelled it: a new one is needed.
        return match login::request_code(&d.conn, &d.phone).await {
            Ok(fresh) => {
                d.waiting = Waiting::Code(fresh);
                app.logins.park(app, bot, chat.0, d, "code");
                super::handlers::send(bot, app, chat, "That code came without spaces, so Telegram has cancelled it: it cancels a login code that is sent in any chat as it is. I asked for a new one; send it like 1 2 3 4 5.").await
            }
            Err(e) => end(bot, app, chat, d, format!("That code came without spaces, so Telegram has cancelled it, and a new one could not be requested: {e}. /login starts again.")).await,
        };
    }
    match login::submit_code(&d.conn, &token, &digits).await {
        Ok(Step::Done(account)) => finish(bot, app, chat, d, account).await,
        Ok(Step::Password(pt)) => {
            let hint = pt
                .hint()
                .map(|h| format!(" (hint: {h})"))
                .unwrap_or_default();
            d.waiting = Waiting::Password(pt);
            d.attempts = 0;
            app.logins.park(app, bot, chat.0, d, "password");
            super::handlers::send(bot, app, chat, format!("The account has two-step verification. Send its password{hint}; I delete your message as soon as I have read it. /cancel stops.")).await
        }
        Err(LoginError::CodeInvalid) if d.attempts + 1 < ATTEMPTS => {
            d.attempts += 1;
            app.logins.park(app, bot, chat.0, d, "code");
            super::handlers::send(bot, app, chat, "That code is wrong. Send it again with spaces between the digits, or /cancel.").await
        }
        Err(LoginError::CodeExpired) => match login::request_code(&d.conn, &d.phone).await {
            Ok(fresh) => {
                let prompt = format!("That code has expired; a new one was requested. {}", code_prompt(&fresh));
                let (waiting, step) = waiting_for(fresh);
                d.waiting = waiting;
                app.logins.park(app, bot, chat.0, d, step);
                super::handlers::send(bot, app, chat, prompt).await
            }
            Err(e) => end(bot, app, chat, d, format!("The code expired and a new one could not be requested: {e}. /login starts again.")).await,
        },
        Err(e) => stopped(bot, app, chat, d, e).await,
    }
}

async fn on_password(
    bot: &Bot,
    app: &Arc<App>,
    chat: ChatId,
    mut d: Dialog,
    password: &str,
) -> Result<(), BotError> {
    let Waiting::Password(pt) = std::mem::replace(&mut d.waiting, Waiting::Phone) else {
        return Ok(());
    };
    match login::submit_password(&d.conn, pt, password).await {
        Ok(account) => finish(bot, app, chat, d, account).await,
        Err((LoginError::PasswordInvalid, Some(fresh))) if d.attempts + 1 < ATTEMPTS => {
            d.attempts += 1;
            d.waiting = Waiting::Password(fresh);
            app.logins.park(app, bot, chat.0, d, "password");
            super::handlers::send(
                bot,
                app,
                chat,
                "That password is wrong. Send it again, or /cancel.",
            )
            .await
        }
        Err((e, _)) => stopped(bot, app, chat, d, e).await,
    }
}

async fn finish(
    bot: &Bot,
    app: &Arc<App>,
    chat: ChatId,
    d: Dialog,
    account: Account,
) -> Result<(), BotError> {
    let flushed = d.conn.session.flush().await;
    let user = d.user;
    drop(d); // lets go of the session and the gate before the parser is woken
    if let Err(e) = flushed {
        return super::handlers::send(
            bot,
            app,
            chat,
            format!("Telegram accepted the login, but the session could not be saved: {e}"),
        )
        .await;
    }
    app.store
        .audit(
            &format!("bot:{user}"),
            "login",
            serde_json::json!({"user_id": account.user_id}),
        )
        .await?;
    app.account.control.login_finished();
    super::handlers::send(
        bot,
        app,
        chat,
        format!(
            "Logged in as {} (id {}). The parser starts on its own in a moment; /status shows it.",
            account.name, account.user_id
        ),
    )
    .await
}

/// `/logout` (admins): the running parser logs its account out.
pub async fn logout(app: &App, user_id: i64) -> Result<String, BotError> {
    if app.account.telegram.is_none() {
        return Ok("The parser is not configured, so no account is logged in.".into());
    }
    if app.registry.get("parser").map(|p| p.state.name()) != Some("running") {
        return Ok("No account is logged in (or the parser is not running; see /status).".into());
    }
    match app
        .account
        .control
        .request_logout(std::time::Duration::from_secs(60))
        .await
    {
        Ok(who) => {
            app.store
                .audit(&format!("bot:{user_id}"), "logout", serde_json::json!({}))
                .await?;
            Ok(format!(
                "Logged out {who}. The parser waits for a new login: /login."
            ))
        }
        Err(e) => Ok(format!("Logging out failed: {e}.")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_read_with_or_without_separators() {
        assert_eq!(read_code("1 2 3 4 5"), ("12345".into(), true));
        assert_eq!(read_code("1-2-3-4-5"), ("12345".into(), true));
        assert_eq!(read_code(" 12345 "), ("12345".into(), false));
        assert_eq!(read_code("abc"), (String::new(), true));
    }
}
