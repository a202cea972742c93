//! Accounts: who can log in, where they live, how their codes come, and what the control API
//! can change about them.

use serde::Serialize;

use super::World;

#[derive(Debug, Clone, Serialize)]
pub struct Account {
    pub user_id: i64,
    pub access_hash: i64,
    pub phone: String,
    pub first_name: String,
    pub username: Option<String>,
    pub code: String,
    /// 2FA password, if the account has one.
    pub password: Option<String>,
    pub revoked: bool,
    /// The DC the account lives on: login and every call but a few belong there.
    pub home_dc: i32,
    /// How `auth.sendCode` delivers the code.
    pub delivery: CodeDelivery,
    /// The login email (codes by email; set up by `account.verifyEmail`).
    pub email: Option<String>,
    /// Frozen by Telegram's moderation: most methods answer 420 `FROZEN_METHOD_INVALID`.
    pub frozen: bool,
    /// A number that has no Telegram account: a code can be sent, signing in needs a sign-up.
    pub unoccupied: bool,
}

/// How Telegram delivers a login code (`auth.SentCodeType`), chosen per account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CodeDelivery {
    /// `auth.sentCodeTypeApp`: to the account's other Telegram sessions.
    #[default]
    App,
    /// `auth.sentCodeTypeSms`.
    Sms,
    /// `auth.sentCodeTypeEmailCode`: to the login email; `auth.signIn` takes `email_verification`.
    Email,
    /// `auth.sentCodeTypeSetUpEmailRequired`: a login email must be set up first
    /// (`account.sendVerifyEmailCode` / `account.verifyEmail` with `emailVerifyPurposeLoginSetup`).
    SetupEmail,
    /// `auth.sentCodeTypeFragmentSms`: an anonymous number; the code is read on fragment.com.
    Fragment,
    /// `auth.sentCodePaymentRequired`: no code until the user pays, which only official apps do.
    Payment,
}

/// What the control API can set on an account (`POST /accounts`).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountSpec {
    pub phone: String,
    pub first_name: Option<String>,
    pub code: Option<String>,
    /// `Some("")` removes the 2FA password.
    pub password: Option<String>,
    pub dc: Option<i32>,
    pub delivery: Option<CodeDelivery>,
    pub email: Option<String>,
    pub frozen: Option<bool>,
    pub unoccupied: Option<bool>,
    pub banned: Option<bool>,
}

impl World {
    pub fn add_account(
        &self,
        phone: &str,
        first_name: &str,
        code: &str,
        password: Option<&str>,
    ) -> i64 {
        let mut w = self.lock();
        let user_id = 5_000_000_000 + w.accounts.len() as i64 + 1;
        w.accounts.push(Account {
            user_id,
            access_hash: 0x5eed_0000_0000 + user_id,
            phone: phone.to_string(),
            first_name: first_name.to_string(),
            username: None,
            code: code.to_string(),
            password: password.map(str::to_string),
            revoked: false,
            home_dc: crate::mtproto::dcs::TEST_ACCOUNT_DC,
            delivery: CodeDelivery::App,
            email: None,
            frozen: false,
            unoccupied: false,
        });
        user_id
    }

    /// Creates the account `spec.phone` names, or changes it. Returns its user id.
    pub fn upsert_account(&self, spec: &AccountSpec) -> Result<i64, String> {
        let digits: String = spec.phone.chars().filter(char::is_ascii_digit).collect();
        if digits.len() < 7 || digits.len() > 15 {
            return Err(format!("{:?} is not a phone number", spec.phone));
        }
        if let Some(dc) = spec.dc
            && !crate::mtproto::dcs::DC_IDS.contains(&dc)
        {
            return Err(format!("dc {dc}: the fake has DCs 1 to 5"));
        }
        let exists = self.lock().accounts.iter().any(|a| {
            a.phone
                .chars()
                .filter(char::is_ascii_digit)
                .eq(digits.chars())
        });
        if !exists {
            self.add_account(
                &spec.phone,
                spec.first_name.as_deref().unwrap_or("Test"),
                spec.code.as_deref().unwrap_or("12345"),
                None,
            );
        }
        let mut w = self.lock();
        let a = w
            .accounts
            .iter_mut()
            .find(|a| {
                a.phone
                    .chars()
                    .filter(char::is_ascii_digit)
                    .eq(digits.chars())
            })
            .ok_or("the account vanished")?;
        if let Some(v) = &spec.first_name {
            a.first_name = v.clone();
        }
        if let Some(v) = &spec.code {
            a.code = v.clone();
        }
        if let Some(v) = &spec.password {
            a.password = (!v.is_empty()).then(|| v.clone());
        }
        if let Some(v) = spec.dc {
            a.home_dc = v;
        }
        if let Some(v) = spec.delivery {
            a.delivery = v;
        }
        if let Some(v) = &spec.email {
            a.email = Some(v.clone());
        }
        if let Some(v) = spec.frozen {
            a.frozen = v;
        }
        if let Some(v) = spec.unoccupied {
            a.unoccupied = v;
        }
        if let Some(v) = spec.banned {
            a.revoked = v;
        }
        Ok(a.user_id)
    }
}
