//! Setting up a login email when Telegram asks for one before it sends a code
//! (`auth.sentCodeTypeSetUpEmailRequired`; core.telegram.org/api/auth#email-verification):
//! `account.sendVerifyEmailCode` with the login-setup purpose, then `account.verifyEmail`,
//! whose `account.emailVerifiedLogin` carries the login code's own `auth.sentCode` (a new
//! `phone_code_hash`).

use grammers_client::InvocationError;
use grammers_client::tl;

use super::{CodeToken, EmailCodeSent, LoginError, classify, token_of};
use crate::parser::client::Connected;

/// The login email to set up when the code's delivery is [`Delivery::SetupEmail`]: Telegram
/// sends a code to `email` (`account.sendVerifyEmailCode`, purpose login setup).
pub async fn setup_email(
    c: &Connected,
    token: &CodeToken,
    email: &str,
) -> Result<EmailCodeSent, LoginError> {
    let email = email.trim();
    if email.is_empty() || !email.contains('@') || email.contains(char::is_whitespace) {
        return Err(LoginError::EmailInvalid(email.to_string()));
    }
    let res = c
        .client
        .invoke(&tl::functions::account::SendVerifyEmailCode {
            purpose: setup_purpose(token),
            email: email.to_string(),
        })
        .await;
    match res {
        Ok(tl::enums::account::SentEmailCode::Code(sent)) => Ok(EmailCodeSent {
            pattern: sent.email_pattern,
            length: sent.length,
            email: email.to_string(),
        }),
        Err(InvocationError::Rpc(r))
            if r.name == "EMAIL_INVALID" || r.name == "EMAIL_NOT_ALLOWED" =>
        {
            Err(LoginError::EmailInvalid(email.to_string()))
        }
        Err(e) => Err(classify(e)),
    }
}

fn setup_purpose(token: &CodeToken) -> tl::enums::EmailVerifyPurpose {
    tl::types::EmailVerifyPurposeLoginSetup {
        phone_number: token.phone.clone(),
        phone_code_hash: token.phone_code_hash.clone(),
    }
    .into()
}

/// Checks the code sent to the new login email (`account.verifyEmail`). Telegram then sends
/// the login code itself: the token returned replaces the one given.
pub async fn verify_email(
    c: &Connected,
    token: &CodeToken,
    sent: &EmailCodeSent,
    code: &str,
) -> Result<CodeToken, LoginError> {
    let code: String = code.chars().filter(char::is_ascii_digit).collect();
    if code.is_empty() {
        return Err(LoginError::CodeInvalid);
    }
    let res = c
        .client
        .invoke(&tl::functions::account::VerifyEmail {
            purpose: setup_purpose(token),
            verification: tl::types::EmailVerificationCode { code }.into(),
        })
        .await;
    match res {
        Ok(tl::enums::account::EmailVerified::Login(v)) => match v.sent_code {
            tl::enums::auth::SentCode::Code(code) => Ok(token_of(&token.phone, code)),
            tl::enums::auth::SentCode::PaymentRequired(_) => {
                Err(LoginError::PaymentRequired(token.phone.clone()))
            }
            tl::enums::auth::SentCode::Success(_) => Err(LoginError::Telegram(
                "Telegram logged in without a code, which this client never asks for".into(),
            )),
        },
        Ok(tl::enums::account::EmailVerified::Verified(_)) => Err(LoginError::Telegram(
            "Telegram verified the email but sent no login code; start the login again".into(),
        )),
        Err(InvocationError::Rpc(r))
            if r.name == "EMAIL_INVALID" || r.name == "EMAIL_NOT_ALLOWED" =>
        {
            Err(LoginError::EmailInvalid(sent.email.clone()))
        }
        Err(e) => Err(classify(e)),
    }
}
