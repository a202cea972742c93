//! Logging the parsing account in: phone → code → 2FA password, with every refusal Telegram can
//! give told apart, so the user gets the right re-prompt. Used by `tgparser login` and the bot.
//!
//! The code step calls `auth.signIn` itself (grammers folds "wrong" and "expired" into one
//! error); the 2FA step uses grammers' SRP implementation.

use grammers_client::client::PasswordToken;
use grammers_client::tl;
use grammers_client::{InvocationError, SignInError};
use grammers_session::Session;
use grammers_session::types::{PeerAuth, PeerInfo, UpdateState, UpdatesState};

use super::client::Connected;

/// What `auth.sendCode` gave back; needed to sign in with the code.
#[derive(Clone)]
pub struct CodeToken {
    pub phone: String,
    phone_code_hash: String,
    /// How many digits the code has.
    pub length: Option<i32>,
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
    #[error("Telegram refused: {0}")]
    Telegram(String),
    #[error("cannot store the session: {0}")]
    Session(String),
}

fn classify(e: InvocationError) -> LoginError {
    match &e {
        InvocationError::Rpc(r) if r.name == "FLOOD_WAIT" => {
            LoginError::FloodWait(r.value.unwrap_or(0))
        }
        InvocationError::Rpc(r)
            if r.name == "PHONE_CODE_INVALID" || r.name == "PHONE_CODE_EMPTY" =>
        {
            LoginError::CodeInvalid
        }
        InvocationError::Rpc(r) if r.name == "PHONE_CODE_EXPIRED" => LoginError::CodeExpired,
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
    match c.client.invoke(&req).await {
        Ok(tl::enums::auth::SentCode::Code(code)) => Ok(CodeToken {
            phone,
            phone_code_hash: code.phone_code_hash,
            length: match code.r#type {
                tl::enums::auth::SentCodeType::App(t) => Some(t.length),
                tl::enums::auth::SentCodeType::Sms(t) => Some(t.length),
                _ => None,
            },
        }),
        Ok(_) => Err(LoginError::Telegram(
            "unexpected answer to auth.sendCode".into(),
        )),
        Err(InvocationError::Rpc(r)) if r.name == "PHONE_NUMBER_INVALID" => {
            Err(LoginError::PhoneInvalid(phone))
        }
        Err(e) => Err(classify(e)),
    }
}

/// Sends the code. Separators people type (`1 2 3 4 5`, `12-345`) are ignored.
pub async fn submit_code(c: &Connected, token: &CodeToken, code: &str) -> Result<Step, LoginError> {
    let code: String = code.chars().filter(char::is_ascii_digit).collect();
    if code.is_empty() {
        return Err(LoginError::CodeInvalid);
    }
    let res = c
        .client
        .invoke(&tl::functions::auth::SignIn {
            phone_number: token.phone.clone(),
            phone_code_hash: token.phone_code_hash.clone(),
            phone_code: Some(code),
            email_verification: None,
        })
        .await;
    match res {
        Ok(tl::enums::auth::Authorization::Authorization(auth)) => {
            complete(c, &auth.user).await.map(Step::Done)
        }
        Ok(tl::enums::auth::Authorization::SignUpRequired(_)) => Err(LoginError::Telegram(
            "this phone number has no Telegram account; sign up with an official app first".into(),
        )),
        Err(InvocationError::Rpc(r)) if r.name == "SESSION_PASSWORD_NEEDED" => {
            let pw = c
                .client
                .invoke(&tl::functions::account::GetPassword {})
                .await
                .map_err(classify)?;
            let tl::enums::account::Password::Password(pw) = pw;
            Ok(Step::Password(PasswordToken::new(pw)))
        }
        Err(e) => Err(classify(e)),
    }
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
