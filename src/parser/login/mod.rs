//! Logging the parsing account in: phone → code → 2FA password, with every refusal Telegram can
//! give told apart, so the user gets the right re-prompt. Used by `tgparser login` and the bot.
//!
//! The number's home DC answers: `auth.sendCode` elsewhere is a 303 `PHONE_MIGRATE_X` (or
//! `NETWORK_MIGRATE_X` for a number without an account), and the session moves there for good
//! before asking again (core.telegram.org/api/datacenter). The code arrives the way Telegram
//! chooses for the account (`Delivery`): in the app, by SMS or call, by email (then `auth.signIn`
//! carries it as `email_verification`), on Fragment, or only after a login email is set up
//! (`setup_email`, `verify_email`; core.telegram.org/api/auth#email-verification).
//!
//! The code step calls `auth.signIn` itself (grammers folds "wrong" and "expired" into one
//! error, and knows nothing of email codes); the 2FA step uses grammers' SRP implementation.

use grammers_client::client::PasswordToken;
use grammers_client::tl;
use grammers_client::{InvocationError, SignInError};
use grammers_session::Session;
use grammers_session::types::{PeerAuth, PeerInfo, UpdateState, UpdatesState};

use super::client::Connected;

mod email;
mod qr;

pub use email::{setup_email, verify_email};
pub use qr::{QrStep, qr_login_token, qr_wait, render_png, render_terminal};

/// What `auth.sendCode` gave back; needed to sign in with the code.
#[derive(Clone)]
pub struct CodeToken {
    pub phone: String,
    phone_code_hash: String,
    /// How many digits the code has.
    pub length: Option<i32>,
    pub delivery: Delivery,
}

/// How Telegram sent the login code (`auth.SentCodeType`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// A message from "Telegram" in the account's other sessions.
    App,
    Sms,
    /// A voice call reads the code out.
    Call,
    /// The code is the last digits of a number that calls (and hangs up).
    MissedCall {
        prefix: String,
    },
    /// To the account's login email; `pattern` is how Telegram shows it (`a***@example.com`).
    Email {
        pattern: String,
    },
    /// No code yet: a login email must be set up first ([`setup_email`]).
    SetupEmail,
    /// An anonymous number bought on Fragment: the code is read at `url`.
    Fragment {
        url: String,
    },
    /// The SMS holds a word or a phrase, which is the code.
    SmsWord,
    /// Something this version does not know; the code is asked for all the same.
    Other(String),
}

impl Delivery {
    fn from_tl(t: &tl::enums::auth::SentCodeType) -> (Delivery, Option<i32>) {
        use tl::enums::auth::SentCodeType as T;
        match t {
            T::App(t) => (Delivery::App, Some(t.length)),
            T::Sms(t) => (Delivery::Sms, Some(t.length)),
            T::Call(t) => (Delivery::Call, Some(t.length)),
            T::MissedCall(t) => (
                Delivery::MissedCall {
                    prefix: t.prefix.clone(),
                },
                Some(t.length),
            ),
            T::EmailCode(t) => (
                Delivery::Email {
                    pattern: t.email_pattern.clone(),
                },
                Some(t.length),
            ),
            T::SetUpEmailRequired(_) => (Delivery::SetupEmail, None),
            T::FragmentSms(t) => (Delivery::Fragment { url: t.url.clone() }, Some(t.length)),
            T::FirebaseSms(t) => (Delivery::Sms, Some(t.length)),
            T::SmsWord(_) | T::SmsPhrase(_) => (Delivery::SmsWord, None),
            T::FlashCall(_) => (Delivery::Other("flash call".into()), None),
        }
    }

    /// Where the code went, in a sentence that ends with what to type.
    pub fn prompt(&self, phone: &str, length: Option<i32>) -> String {
        let digits = length.map(|n| format!(" ({n} digits)")).unwrap_or_default();
        match self {
            Delivery::App => format!(
                "Telegram sent the login code{digits} to the account's Telegram app: a message from \"Telegram\" on another device where it is logged in."
            ),
            Delivery::Sms => format!("Telegram sent the login code{digits} by SMS to {phone}."),
            Delivery::Call => {
                format!("Telegram is calling {phone} to read out the login code{digits}.")
            }
            Delivery::MissedCall { prefix } => format!(
                "Telegram will call {phone} from a number starting {prefix}; the login code is its last digits{digits}."
            ),
            Delivery::Email { pattern } => {
                format!(
                    "Telegram sent the login code{digits} to the account's login email {pattern}."
                )
            }
            Delivery::SetupEmail => {
                "Telegram asks this account to set up a login email first.".into()
            }
            Delivery::Fragment { url } => format!(
                "{phone} is a Fragment number: open {url} (signed in with the wallet that owns the number) to read the login code{digits}."
            ),
            Delivery::SmsWord => {
                format!("Telegram sent a word or phrase by SMS to {phone}; it is the login code.")
            }
            Delivery::Other(how) => format!("Telegram sent the login code by {how}."),
        }
    }
}

/// `account.sendVerifyEmailCode`'s answer: the code went to this address.
#[derive(Debug, Clone)]
pub struct EmailCodeSent {
    pub pattern: String,
    pub length: i32,
    email: String,
}

/// A logged-in account.
#[derive(Debug, Clone)]
pub struct Account {
    pub user_id: i64,
    pub name: String,
}

pub enum Step {
    Done(Account),
    /// The account has a 2FA password; ask for it.
    Password(PasswordToken),
}

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error(
        "Telegram does not know the phone number {0}; type it in international format, e.g. +44 7700 900123"
    )]
    PhoneInvalid(String),
    #[error("that code is wrong; type the code Telegram sent again")]
    CodeInvalid,
    #[error("that code has expired; a new one is needed")]
    CodeExpired,
    #[error("the password is wrong; try again")]
    PasswordInvalid,
    #[error("Telegram asks to wait {0} seconds before trying again")]
    FloodWait(u32),
    #[error(
        "the api_id / api_hash pair was refused by Telegram; check telegram.api_id and telegram.api_hash_file"
    )]
    ApiInvalid,
    #[error(
        "Telegram has banned the phone number {0}; it cannot log in. Contact recover@telegram.org \
         from the official app's help if you think this is a mistake"
    )]
    PhoneBanned(String),
    #[error(
        "{0} has no Telegram account. Signing up is not done here: create the account with an \
         official Telegram app, then log in"
    )]
    PhoneUnoccupied(String),
    #[error(
        "Telegram asks for a payment before it sends a login code to {0} (it does so for some \
         numbers to fight spam), and only official apps can pay. Log in once with an official \
         Telegram app on this number, then try again here: the code will then come to that app"
    )]
    PaymentRequired(String),
    #[error("Telegram does not take {0:?} as a login email; type another address")]
    EmailInvalid(String),
    #[error(
        "Telegram froze this account; it cannot be used for parsing. Open Telegram with it to \
         see why and to appeal"
    )]
    Frozen,
    #[error("Telegram refused: {0}")]
    Telegram(String),
    #[error("cannot store the session: {0}")]
    Session(String),
}

fn classify(e: InvocationError) -> LoginError {
    match &e {
        InvocationError::Rpc(r) if r.name.starts_with("FROZEN_") => LoginError::Frozen,
        InvocationError::Rpc(r) if r.name == "FLOOD_WAIT" => {
            LoginError::FloodWait(r.value.unwrap_or(0))
        }
        InvocationError::Rpc(r)
            if r.name == "PHONE_CODE_INVALID" || r.name == "PHONE_CODE_EMPTY" =>
        {
            LoginError::CodeInvalid
        }
        // A wrong email code (Telethon's errors.csv: CODE_INVALID, "from email").
        InvocationError::Rpc(r) if r.name == "CODE_INVALID" || r.name == "CODE_EMPTY" => {
            LoginError::CodeInvalid
        }
        InvocationError::Rpc(r)
            if r.name == "PHONE_CODE_EXPIRED"
                || r.name == "EMAIL_VERIFY_EXPIRED"
                || r.name == "PHONE_HASH_EXPIRED" =>
        {
            LoginError::CodeExpired
        }
        InvocationError::Rpc(r) if r.name.starts_with("API_ID") => LoginError::ApiInvalid,
        InvocationError::Rpc(r) if r.name == "PASSWORD_HASH_INVALID" => LoginError::PasswordInvalid,
        _ => LoginError::Telegram(e.to_string()),
    }
}

fn display_name(u: &tl::enums::User) -> (i64, Option<i64>, String) {
    match u {
        tl::enums::User::User(u) => {
            let name = [u.first_name.as_deref(), u.last_name.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ");
            (u.id, u.access_hash, name)
        }
        tl::enums::User::Empty(u) => (u.id, None, String::new()),
    }
}

/// Whether the session is logged in, and as whom (asks Telegram when the cache has no answer).
pub async fn current_account(c: &Connected) -> Result<Option<Account>, LoginError> {
    match c.client.is_authorized().await {
        Ok(false) => Ok(None),
        Ok(true) => {
            let me = c.client.get_me().await.map_err(classify)?;
            Ok(Some(Account {
                user_id: me.id().bare_id_unchecked(),
                name: me.full_name(),
            }))
        }
        Err(e) => Err(classify(e)),
    }
}

/// The DC a 303 answer sends the login to, if it is one of the migrations a login follows.
fn migrate_to(e: &InvocationError) -> Option<i32> {
    match e {
        InvocationError::Rpc(r)
            if r.code == 303
                && matches!(
                    r.name.as_str(),
                    "PHONE_MIGRATE" | "NETWORK_MIGRATE" | "USER_MIGRATE"
                ) =>
        {
            r.value.and_then(|v| i32::try_from(v).ok())
        }
        _ => None,
    }
}

/// Asks Telegram to send a login code, following the number to its home DC.
pub async fn request_code(c: &Connected, phone: &str) -> Result<CodeToken, LoginError> {
    let phone: String = phone
        .chars()
        .filter(|ch| ch.is_ascii_digit() || *ch == '+')
        .collect();
    if phone.trim_start_matches('+').len() < 5 {
        return Err(LoginError::PhoneInvalid(phone));
    }
    let req = tl::functions::auth::SendCode {
        phone_number: phone.clone(),
        api_id: c.api_id,
        api_hash: c.api_hash.to_string(),
        settings: tl::types::CodeSettings {
            allow_flashcall: false,
            current_number: false,
            allow_app_hash: false,
            allow_missed_call: false,
            allow_firebase: false,
            unknown_number: false,
            logout_tokens: None,
            token: None,
            app_sandbox: None,
        }
        .into(),
    };
    let mut moves = 0;
    let sent = loop {
        match c.client.invoke(&req).await {
            Err(e) if moves < 2 && migrate_to(&e).is_some() => {
                moves += 1;
                let dc = migrate_to(&e).unwrap_or_default();
                tracing::info!(dc, "the phone number lives on another DC; moving there");
                c.move_home(dc, false)
                    .await
                    .map_err(|e| LoginError::Session(e.to_string()))?;
            }
            other => break other,
        }
    };
    match sent {
        Ok(tl::enums::auth::SentCode::Code(code)) => Ok(token_of(&phone, code)),
        Ok(tl::enums::auth::SentCode::PaymentRequired(_)) => {
            Err(LoginError::PaymentRequired(phone))
        }
        Ok(tl::enums::auth::SentCode::Success(_)) => Err(LoginError::Telegram(
            "Telegram logged in without a code, which this client never asks for".into(),
        )),
        Err(InvocationError::Rpc(r)) if r.name == "PHONE_NUMBER_INVALID" => {
            Err(LoginError::PhoneInvalid(phone))
        }
        Err(InvocationError::Rpc(r)) if r.name == "PHONE_NUMBER_BANNED" => {
            Err(LoginError::PhoneBanned(phone))
        }
        Err(InvocationError::Rpc(r)) if r.name == "PHONE_NUMBER_UNOCCUPIED" => {
            Err(LoginError::PhoneUnoccupied(phone))
        }
        Err(e) => Err(classify(e)),
    }
}

fn token_of(phone: &str, code: tl::types::auth::SentCode) -> CodeToken {
    let (delivery, length) = Delivery::from_tl(&code.r#type);
    CodeToken {
        phone: phone.to_string(),
        phone_code_hash: code.phone_code_hash,
        length,
        delivery,
    }
}

/// Sends the code. Separators people type (`1 2 3 4 5`, `12-345`) are ignored.
pub async fn submit_code(c: &Connected, token: &CodeToken, code: &str) -> Result<Step, LoginError> {
    let code: String = match token.delivery {
        // A word or phrase is the code itself.
        Delivery::SmsWord => code.trim().to_string(),
        _ => code.chars().filter(char::is_ascii_digit).collect(),
    };
    if code.is_empty() {
        return Err(LoginError::CodeInvalid);
    }
    if token.delivery == Delivery::SetupEmail {
        return Err(LoginError::Telegram(
            "no code was sent yet: set up the login email first".into(),
        ));
    }
    // Telegram takes one or the other, never both.
    let (phone_code, email_verification) = match token.delivery {
        Delivery::Email { .. } => (None, Some(tl::types::EmailVerificationCode { code }.into())),
        _ => (Some(code), None),
    };
    let res = c
        .client
        .invoke(&tl::functions::auth::SignIn {
            phone_number: token.phone.clone(),
            phone_code_hash: token.phone_code_hash.clone(),
            phone_code,
            email_verification,
        })
        .await;
    if let Err(e) = &res
        && let Some(dc) = migrate_to(e)
    {
        // The code belongs to the DC that sent it; the account lives elsewhere. Move there
        // and ask for a new code.
        c.move_home(dc, false)
            .await
            .map_err(|e| LoginError::Session(e.to_string()))?;
        return Err(LoginError::CodeExpired);
    }
    match res {
        Ok(tl::enums::auth::Authorization::Authorization(auth)) => {
            complete(c, &auth.user).await.map(Step::Done)
        }
        Ok(tl::enums::auth::Authorization::SignUpRequired(_)) => {
            Err(LoginError::PhoneUnoccupied(token.phone.clone()))
        }
        Err(InvocationError::Rpc(r)) if r.name == "PHONE_NUMBER_UNOCCUPIED" => {
            Err(LoginError::PhoneUnoccupied(token.phone.clone()))
        }
        Err(InvocationError::Rpc(r)) if r.name == "PHONE_NUMBER_BANNED" => {
            Err(LoginError::PhoneBanned(token.phone.clone()))
        }
        Err(InvocationError::Rpc(r)) if r.name == "SESSION_PASSWORD_NEEDED" => {
            password_step(c).await
        }
        Err(e) => Err(classify(e)),
    }
}

/// The account has a 2FA password: what the password step needs (`account.getPassword`).
async fn password_step(c: &Connected) -> Result<Step, LoginError> {
    let pw = c
        .client
        .invoke(&tl::functions::account::GetPassword {})
        .await
        .map_err(classify)?;
    let tl::enums::account::Password::Password(pw) = pw;
    Ok(Step::Password(PasswordToken::new(pw)))
}

/// Checks the 2FA password (SRP: the password itself never leaves this process).
/// On a wrong password, a fresh token is fetched so the caller can simply ask again.
pub async fn submit_password(
    c: &Connected,
    token: PasswordToken,
    password: &str,
) -> Result<Account, (LoginError, Option<PasswordToken>)> {
    match c.client.check_password(token, password.as_bytes()).await {
        Ok(user) => {
            let account = Account {
                user_id: user.id().bare_id_unchecked(),
                name: user.full_name(),
            };
            c.session
                .flush()
                .await
                .map_err(|e| (LoginError::Session(e.to_string()), None))?;
            Ok(account)
        }
        Err(SignInError::InvalidPassword(_)) => {
            let fresh = c
                .client
                .invoke(&tl::functions::account::GetPassword {})
                .await
                .ok()
                .map(|tl::enums::account::Password::Password(p)| PasswordToken::new(p));
            Err((LoginError::PasswordInvalid, fresh))
        }
        Err(SignInError::Other(e)) => Err((classify(e), None)),
        Err(e) => Err((LoginError::Telegram(e.to_string()), None)),
    }
}

/// What grammers does after a successful sign-in, done here for the code path: remember who we
/// are and where the update state starts.
async fn complete(c: &Connected, user: &tl::enums::User) -> Result<Account, LoginError> {
    let (id, access_hash, name) = display_name(user);
    let state = c
        .client
        .invoke(&tl::functions::updates::GetState {})
        .await
        .ok();
    let session = &c.session;
    let err = |e: super::session::SessionError| LoginError::Session(e.to_string());
    session
        .cache_peer(PeerInfo::User {
            id,
            auth: access_hash.map(PeerAuth::from_hash),
            bot: Some(false),
            is_self: Some(true),
        })
        .await
        .map_err(err)?;
    if let Some(tl::enums::updates::State::State(s)) = state {
        session
            .set_update_state(UpdateState::All(UpdatesState {
                pts: s.pts,
                qts: s.qts,
                date: s.date,
                seq: s.seq,
                channels: Vec::new(),
            }))
            .await
            .map_err(err)?;
    }
    session.flush().await.map_err(err)?;
    Ok(Account { user_id: id, name })
}

pub async fn logout(c: &Connected) -> Result<(), LoginError> {
    c.client.sign_out().await.map_err(classify)?;
    c.session
        .forget_login(false)
        .await
        .map_err(|e| LoginError::Session(e.to_string()))
}
