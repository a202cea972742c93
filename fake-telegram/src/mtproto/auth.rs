//! Logging in, as core.telegram.org/api/auth describes it: `auth.sendCode` on the number's home
//! DC (`PHONE_MIGRATE_X` elsewhere), the code delivered the way the account is set up (app, SMS,
//! email, a login email to set up first, Fragment, or a payment first), `auth.signIn` with the
//! phone code or the email code, the 2FA password by real SRP, and the refusals Telegram gives:
//! invalid, banned and unoccupied numbers, frozen accounts.

use std::time::Instant;

use grammers_tl_types as tl;
use tl::{Serializable, enums, functions, types};

use super::convert;
use super::rpc::{Ctx, R, RpcErr, err};
use crate::srp::{self, Challenge};
use crate::world::{Account, CodeDelivery};

/// Methods a frozen account may still call; every other answers 420 `FROZEN_METHOD_INVALID`
/// (core.telegram.org/api/auth#frozen-accounts lists the few an app needs to show the account's
/// state and let the user appeal or log out).
const FROZEN_ALLOWED: &[&str] = &[
    "help.getConfig",
    "help.getNearestDc",
    "help.getAppConfig",
    "help.getTermsOfServiceUpdate",
    "updates.getState",
    "updates.getDifference",
    "users.getUsers",
    "users.getFullUser",
    "account.getPassword",
    "account.deleteAccount",
    "auth.logOut",
    "auth.exportAuthorization",
    "auth.importAuthorization",
];

pub(super) fn check_frozen(ctx: &Ctx, name: &str, user_id: i64) -> Result<(), RpcErr> {
    let frozen = ctx
        .shared
        .world
        .lock()
        .accounts
        .iter()
        .any(|a| a.user_id == user_id && a.frozen);
    if frozen && !FROZEN_ALLOWED.contains(&name) {
        return Err(err(420, "FROZEN_METHOD_INVALID"));
    }
    Ok(())
}

/// How long a login code (or an email code) stays valid.
fn code_ttl(ctx: &Ctx) -> std::time::Duration {
    *ctx.shared
        .code_ttl
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

fn normalize_phone(p: &str) -> String {
    p.chars().filter(|c| c.is_ascii_digit()).collect()
}

fn account_for(ctx: &Ctx, phone: &str) -> Option<Account> {
    let w = ctx.shared.world.lock();
    w.accounts
        .iter()
        .find(|a| normalize_phone(&a.phone) == phone)
        .cloned()
}

/// `a***@example.com`, as Telegram shows a login email.
pub(super) fn email_pattern(email: &str) -> String {
    match email.split_once('@') {
        Some((user, domain)) => {
            let first: String = user.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".into(),
    }
}

/// Remembers a code sent to `phone` on this key; returns its `phone_code_hash`.
fn remember_code(ctx: &Ctx, phone: &str, delivery: CodeDelivery) -> String {
    let hash = format!("{:016x}", rand::random::<u64>());
    ctx.shared.with_key(&ctx.key_id, |k| {
        k.codes.insert(
            hash.clone(),
            super::SentCode {
                phone: phone.to_string(),
                at: Instant::now(),
                used: false,
                delivery,
            },
        );
    });
    hash
}

/// The `auth.sentCode` for a code delivered as `delivery` (not `Payment`, not `SetupEmail`).
fn sent_code(account: &Account, delivery: CodeDelivery, hash: String) -> enums::auth::SentCode {
    let length = account.code.len() as i32;
    let r#type: enums::auth::SentCodeType = match delivery {
        CodeDelivery::Sms => types::auth::SentCodeTypeSms { length }.into(),
        CodeDelivery::Email => types::auth::SentCodeTypeEmailCode {
            apple_signin_allowed: false,
            google_signin_allowed: false,
            email_pattern: email_pattern(account.email.as_deref().unwrap_or("")),
            length,
            reset_available_period: None,
            reset_pending_date: None,
        }
        .into(),
        CodeDelivery::SetupEmail => types::auth::SentCodeTypeSetUpEmailRequired {
            apple_signin_allowed: false,
            google_signin_allowed: false,
        }
        .into(),
        CodeDelivery::Fragment => types::auth::SentCodeTypeFragmentSms {
            url: format!(
                "https://fragment.com/number/{}/code",
                normalize_phone(&account.phone)
            ),
            length,
        }
        .into(),
        CodeDelivery::App | CodeDelivery::Payment => types::auth::SentCodeTypeApp { length }.into(),
    };
    enums::auth::SentCode::Code(types::auth::SentCode {
        r#type,
        phone_code_hash: hash,
        next_type: None,
        timeout: None,
    })
}

pub(super) fn send_code(ctx: &Ctx, req: functions::auth::SendCode) -> R {
    if req.api_id <= 0 || req.api_hash.is_empty() {
        return Err(err(400, "API_ID_INVALID"));
    }
    let phone = normalize_phone(&req.phone_number);
    let account = account_for(ctx, &phone).ok_or_else(|| err(400, "PHONE_NUMBER_INVALID"))?;
    if account.revoked {
        return Err(err(400, "PHONE_NUMBER_BANNED"));
    }
    if account.home_dc != ctx.conn.dc {
        // A registered number is sent to its DC; an unregistered one to the DC its sign-up
        // would use (core.telegram.org/api/datacenter).
        let kind = if account.unoccupied {
            "NETWORK"
        } else {
            "PHONE"
        };
        return Err(err(303, format!("{kind}_MIGRATE_{}", account.home_dc)));
    }
    // A number without an account gets its code by SMS, for the sign-up an official app does.
    let delivery = if account.unoccupied {
        CodeDelivery::Sms
    } else {
        account.delivery
    };
    let hash = remember_code(ctx, &phone, delivery);
    if delivery == CodeDelivery::Payment {
        return Ok(
            enums::auth::SentCode::PaymentRequired(types::auth::SentCodePaymentRequired {
                store_product: "org.telegram.telegramPremium.loginCode".into(),
                phone_code_hash: hash,
                support_email_address: "sms@telegram.org".into(),
                support_email_subject: format!("Login code for {phone}"),
                premium_days: 7,
                currency: "USD".into(),
                amount: 199,
            })
            .to_bytes(),
        );
    }
    Ok(sent_code(&account, delivery, hash).to_bytes())
}

pub(super) fn authorization_tl(a: &Account) -> enums::auth::Authorization {
    enums::auth::Authorization::Authorization(types::auth::Authorization {
        setup_password_required: false,
        otherwise_relogin_days: None,
        tmp_sessions: None,
        future_auth_token: None,
        user: convert::user(a, true),
    })
}

pub(super) fn authorization(a: &Account) -> Vec<u8> {
    authorization_tl(a).to_bytes()
}

/// The code `auth.signIn` carries: the phone code, or for email delivery the email code.
fn given_code(req: &functions::auth::SignIn, delivery: CodeDelivery) -> Result<String, RpcErr> {
    match delivery {
        CodeDelivery::Email => match &req.email_verification {
            Some(enums::EmailVerification::Code(c)) if !c.code.is_empty() => Ok(c.code.clone()),
            Some(enums::EmailVerification::Code(_)) => Err(err(400, "CODE_EMPTY")),
            Some(_) => Err(err(400, "EMAIL_NOT_ALLOWED")),
            // The code went to the email; a phone code cannot match it.
            None if req.phone_code.is_some() => Err(err(400, "PHONE_CODE_INVALID")),
            None => Err(err(400, "PHONE_CODE_EMPTY")),
        },
        _ => match (&req.phone_code, &req.email_verification) {
            (Some(c), _) if !c.is_empty() => Ok(c.clone()),
            (_, Some(_)) => Err(err(400, "EMAIL_NOT_ALLOWED")),
            _ => Err(err(400, "PHONE_CODE_EMPTY")),
        },
    }
}

pub(super) fn sign_in(ctx: &Ctx, req: functions::auth::SignIn) -> R {
    let phone = normalize_phone(&req.phone_number);
    let account = account_for(ctx, &phone).ok_or_else(|| err(400, "PHONE_NUMBER_INVALID"))?;
    if account.revoked {
        return Err(err(400, "PHONE_NUMBER_BANNED"));
    }
    if account.home_dc != ctx.conn.dc {
        return Err(err(303, format!("PHONE_MIGRATE_{}", account.home_dc)));
    }
    let ttl = code_ttl(ctx);
    let sent = ctx
        .shared
        .with_key(&ctx.key_id, |k| {
            k.codes
                .get(&req.phone_code_hash)
                .map(|c| (c.phone.clone(), c.at, c.used, c.delivery))
        })
        .flatten()
        .ok_or_else(|| err(400, "PHONE_CODE_EXPIRED"))?;
    if sent.0 != phone {
        return Err(err(400, "PHONE_NUMBER_INVALID"));
    }
    if sent.2 || sent.1.elapsed() > ttl {
        return Err(err(400, "PHONE_CODE_EXPIRED"));
    }
    match sent.3 {
        // No code was sent: the login email must be set up first, or the user must pay.
        CodeDelivery::SetupEmail => return Err(err(400, "PHONE_CODE_INVALID")),
        CodeDelivery::Payment => return Err(err(400, "PHONE_CODE_INVALID")),
        _ => {}
    }
    let code = given_code(&req, sent.3)?;
    if code != account.code {
        return Err(err(
            400,
            // Telegram's name for a wrong email code (Telethon's errors.csv: "from email").
            if sent.3 == CodeDelivery::Email {
                "CODE_INVALID"
            } else {
                "PHONE_CODE_INVALID"
            },
        ));
    }
    ctx.shared.with_key(&ctx.key_id, |k| {
        if let Some(c) = k.codes.get_mut(&req.phone_code_hash) {
            c.used = true;
        }
    });
    if account.unoccupied {
        return Ok(enums::auth::Authorization::SignUpRequired(
            types::auth::AuthorizationSignUpRequired {
                terms_of_service: None,
            },
        )
        .to_bytes());
    }
    log_key_in(ctx, &account)?;
    Ok(authorization(&account))
}

/// A login proven (a code, a QR code): the key is logged in as `account`, or, when the account
/// has a 2FA password, waits for it (`SESSION_PASSWORD_NEEDED`).
pub(super) fn log_key_in(ctx: &Ctx, account: &Account) -> Result<(), RpcErr> {
    ctx.shared.with_key(&ctx.key_id, |k| {
        if account.password.is_some() {
            k.password_for = Some(account.user_id);
        } else {
            k.user_id = Some(account.user_id);
        }
    });
    if account.password.is_some() {
        return Err(err(401, "SESSION_PASSWORD_NEEDED"));
    }
    Ok(())
}

/// The login-setup purpose's phone and hash, checked against a code this key was sent.
fn login_setup(ctx: &Ctx, purpose: &enums::EmailVerifyPurpose) -> Result<String, RpcErr> {
    let enums::EmailVerifyPurpose::LoginSetup(p) = purpose else {
        return Err(err(400, "EMAIL_VERIFY_PURPOSE_INVALID"));
    };
    let phone = normalize_phone(&p.phone_number);
    let known = ctx
        .shared
        .with_key(&ctx.key_id, |k| {
            k.codes
                .get(&p.phone_code_hash)
                .is_some_and(|c| c.phone == phone && c.delivery == CodeDelivery::SetupEmail)
        })
        .unwrap_or(false);
    if !known {
        return Err(err(400, "PHONE_CODE_EXPIRED"));
    }
    Ok(phone)
}

/// `account.sendVerifyEmailCode` for a login email: the code goes to `email`.
pub(super) fn send_verify_email_code(ctx: &Ctx, req: functions::account::SendVerifyEmailCode) -> R {
    let phone = login_setup(ctx, &req.purpose)?;
    let email = req.email.trim().to_string();
    let valid = email
        .split_once('@')
        .is_some_and(|(u, d)| !u.is_empty() && d.contains('.') && !d.starts_with('.'));
    if !valid || email.chars().any(char::is_whitespace) {
        return Err(err(400, "EMAIL_INVALID"));
    }
    let account = account_for(ctx, &phone).ok_or_else(|| err(400, "PHONE_NUMBER_INVALID"))?;
    ctx.shared.with_key(&ctx.key_id, |k| {
        k.email_setup = Some((phone.clone(), email.clone(), Instant::now()));
    });
    Ok(
        enums::account::SentEmailCode::Code(types::account::SentEmailCode {
            email_pattern: email_pattern(&email),
            length: account.code.len() as i32,
        })
        .to_bytes(),
    )
}

/// `account.verifyEmail` for a login email: the email becomes the account's login email and the
/// login code is sent to it (`account.emailVerifiedLogin` carries the new `auth.sentCode`).
pub(super) fn verify_email(ctx: &Ctx, req: functions::account::VerifyEmail) -> R {
    let phone = login_setup(ctx, &req.purpose)?;
    let enums::EmailVerification::Code(code) = &req.verification else {
        return Err(err(400, "EMAIL_NOT_ALLOWED"));
    };
    let ttl = code_ttl(ctx);
    let setup = ctx
        .shared
        .with_key(&ctx.key_id, |k| k.email_setup.clone())
        .flatten();
    let email = match setup {
        Some((p, email, at)) if p == phone && at.elapsed() <= ttl => email,
        _ => return Err(err(400, "EMAIL_VERIFY_EXPIRED")),
    };
    let mut account = account_for(ctx, &phone).ok_or_else(|| err(400, "PHONE_NUMBER_INVALID"))?;
    if code.code != account.code {
        return Err(err(400, "CODE_INVALID"));
    }
    {
        let mut w = ctx.shared.world.lock();
        if let Some(a) = w.accounts.iter_mut().find(|a| a.user_id == account.user_id) {
            a.email = Some(email.clone());
            a.delivery = CodeDelivery::Email;
        }
    }
    ctx.shared.with_key(&ctx.key_id, |k| k.email_setup = None);
    account.email = Some(email.clone());
    let hash = remember_code(ctx, &phone, CodeDelivery::Email);
    Ok(
        enums::account::EmailVerified::Login(types::account::EmailVerifiedLogin {
            email,
            sent_code: sent_code(&account, CodeDelivery::Email, hash),
        })
        .to_bytes(),
    )
}

pub(super) fn get_password(ctx: &Ctx, user_id: Option<i64>) -> R {
    let who = ctx
        .shared
        .with_key(&ctx.key_id, |k| k.password_for.or(user_id))
        .flatten();
    let password = who.and_then(|uid| {
        let w = ctx.shared.world.lock();
        w.accounts
            .iter()
            .find(|a| a.user_id == uid)
            .and_then(|a| a.password.clone())
    });
    let secure_random: Vec<u8> = (0..256).map(|_| rand::random::<u8>()).collect();
    let new_algo = enums::PasswordKdfAlgo::Sha256Sha256Pbkdf2Hmacsha512iter100000Sha256ModPow(
        types::PasswordKdfAlgoSha256Sha256Pbkdf2Hmacsha512iter100000Sha256ModPow {
            salt1: (0..8).map(|_| rand::random::<u8>()).collect(),
            salt2: (0..16).map(|_| rand::random::<u8>()).collect(),
            g: srp::G,
            p: srp::p_bytes(),
        },
    );
    let new_secure_algo = enums::SecurePasswordKdfAlgo::Pbkdf2Hmacsha512iter100000(
        types::SecurePasswordKdfAlgoPbkdf2Hmacsha512iter100000 {
            salt: (0..8).map(|_| rand::random::<u8>()).collect(),
        },
    );
    let Some(password) = password else {
        return Ok(
            enums::account::Password::Password(types::account::Password {
                has_recovery: false,
                has_secure_values: false,
                has_password: false,
                current_algo: None,
                srp_b: None,
                srp_id: None,
                hint: None,
                email_unconfirmed_pattern: None,
                new_algo,
                new_secure_algo,
                secure_random,
                pending_reset_date: None,
                login_email_pattern: None,
            })
            .to_bytes(),
        );
    };
    let challenge = Challenge::new(&password);
    let current_algo = enums::PasswordKdfAlgo::Sha256Sha256Pbkdf2Hmacsha512iter100000Sha256ModPow(
        types::PasswordKdfAlgoSha256Sha256Pbkdf2Hmacsha512iter100000Sha256ModPow {
            salt1: challenge.salt1.clone(),
            salt2: challenge.salt2.clone(),
            g: srp::G,
            p: srp::p_bytes(),
        },
    );
    let bytes = enums::account::Password::Password(types::account::Password {
        has_recovery: false,
        has_secure_values: false,
        has_password: true,
        current_algo: Some(current_algo),
        srp_b: Some(challenge.srp_b.clone()),
        srp_id: Some(challenge.srp_id),
        hint: Some("the fake's 2FA password".into()),
        email_unconfirmed_pattern: None,
        new_algo,
        new_secure_algo,
        secure_random,
        pending_reset_date: None,
        login_email_pattern: None,
    })
    .to_bytes();
    ctx.shared
        .with_key(&ctx.key_id, |k| k.challenge = Some(challenge));
    Ok(bytes)
}

pub(super) fn check_password(ctx: &Ctx, req: functions::auth::CheckPassword) -> R {
    let enums::InputCheckPasswordSrp::Srp(srp) = req.password else {
        return Err(err(400, "PASSWORD_HASH_INVALID"));
    };
    let outcome = ctx
        .shared
        .with_key(&ctx.key_id, |k| {
            let ok = match &k.challenge {
                Some(c) if c.srp_id == srp.srp_id => c.verify(&srp.a, &srp.m1),
                Some(_) => return Err(err(400, "SRP_ID_INVALID")),
                None => return Err(err(400, "SRP_ID_INVALID")),
            };
            if !ok {
                return Err(err(400, "PASSWORD_HASH_INVALID"));
            }
            let uid = k
                .password_for
                .take()
                .ok_or_else(|| err(400, "PASSWORD_HASH_INVALID"))?;
            k.challenge = None;
            k.user_id = Some(uid);
            Ok(uid)
        })
        .unwrap_or_else(|| Err(err(401, "AUTH_KEY_UNREGISTERED")))?;
    let w = ctx.shared.world.lock();
    let a = w
        .accounts
        .iter()
        .find(|a| a.user_id == outcome)
        .ok_or_else(|| err(400, "USER_ID_INVALID"))?;
    Ok(authorization(a))
}
