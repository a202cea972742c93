//! `tgparser login` and `tgparser logout`: the parsing account, from a terminal or a script.
//!
//! Answers are read from standard input, so the dialog can be scripted (`printf '12345\n' |
//! tgparser login --phone +…`); on a terminal the 2FA password is read without echo. Every
//! prompt waits at most 5 minutes.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};
use zeroize::Zeroizing;

use crate::config::{Config, ConfigError, TelegramConfig};
use crate::parser::client::{self, Connected};
use grammers_client::client::PasswordToken;

use crate::parser::login::{self, Account, CodeToken, Delivery, LoginError, QrStep, Step};
use crate::store::{StateLock, Store};
use crate::vault::{Vault, VaultKey};

const STEP_TIMEOUT: Duration = Duration::from_secs(300);
const ATTEMPTS: usize = 5;

fn telegram(cfg: &Config) -> Result<&TelegramConfig, ConfigError> {
    cfg.telegram.as_ref().ok_or_else(|| {
        ConfigError::new(
            cfg.path
                .as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            "the parser is not configured: set telegram.api_id and telegram.api_hash_file",
        )
    })
}

pub(super) async fn open(cfg: &Config) -> anyhow::Result<(StateLock, Store, Connected)> {
    let tg = telegram(cfg)?;
    let lock = StateLock::acquire(&cfg.store.dir)?;
    let key = VaultKey::from_file(&cfg.vault.key_file)?;
    let vault = Arc::new(Vault::new(&key));
    drop(key);
    let store = Store::open(&cfg.store).await?;
    store
        .verify_or_init_vault(&vault, &cfg.vault.key_file)
        .await?;
    let conn = client::connect(tg, store.clone(), vault, client::interactive_guard(tg)).await?;
    // The calls the daemon made before it stopped still count against Telegram's windows.
    match store.guard_windows().await {
        Ok(w) => conn.guard.restore(&w),
        Err(e) => tracing::warn!(error = %e, "cannot read the saved pacing windows"),
    }
    Ok((lock, store, conn))
}

/// Reads one answer. `secret`: on a terminal, without echo.
async fn ask(prompt: &str, secret: bool) -> anyhow::Result<Zeroizing<String>> {
    let prompt = prompt.to_string();
    let read =
        tokio::task::spawn_blocking(move || -> std::io::Result<Option<Zeroizing<String>>> {
            if secret && std::io::stdin().is_terminal() {
                return rpassword::prompt_password(&prompt).map(|s| Some(Zeroizing::new(s)));
            }
            eprint!("{prompt}");
            let mut line = Zeroizing::new(String::new());
            match std::io::stdin().read_line(&mut line)? {
                0 => Ok(None),
                _ => Ok(Some(Zeroizing::new(line.trim().to_string()))),
            }
        });
    match tokio::time::timeout(STEP_TIMEOUT, read).await {
        Err(_) => Err(anyhow!(
            "no answer within 5 minutes; run `tgparser login` again"
        )),
        Ok(Err(e)) => Err(anyhow!("reading the answer failed: {e}")),
        Ok(Ok(Err(e))) => Err(anyhow!("reading the answer failed: {e}")),
        Ok(Ok(Ok(None))) => Err(anyhow!("standard input ended before the login finished")),
        Ok(Ok(Ok(Some(s)))) => Ok(s),
    }
}

async fn pause_for(secs: u32) {
    eprintln!("Telegram asks to wait {secs} s; waiting…");
    tokio::time::sleep(Duration::from_secs(u64::from(secs) + 1)).await;
}

pub async fn login(cfg: &Config, phone: Option<String>) -> anyhow::Result<ExitCode> {
    let (_lock, store, conn) = open(cfg).await?;
    if let Some(a) = login::current_account(&conn)
        .await
        .map_err(|e| anyhow!("{e}"))?
    {
        println!(
            "already logged in as {} (id {}); run `tgparser logout` to switch accounts",
            a.name, a.user_id
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mut phone = match phone {
        Some(p) => p,
        None => ask(
            "Phone number of the account (international format, e.g. +44 7700 900123): ",
            false,
        )
        .await?
        .to_string(),
    };
    let mut attempts = 0;
    let mut token = loop {
        attempts += 1;
        match login::request_code(&conn, &phone).await {
            Ok(t) => break t,
            Err(LoginError::FloodWait(s)) if attempts < ATTEMPTS => pause_for(s).await,
            Err(e @ LoginError::PhoneInvalid(_)) if attempts < ATTEMPTS => {
                eprintln!("{e}");
                phone = ask("Phone number: ", false).await?.to_string();
            }
            Err(e) => return Err(anyhow!("{e}")),
        }
    };
    if token.delivery == Delivery::SetupEmail {
        token = setup_email(&conn, &token).await?;
    }
    let mut attempts = 0;
    let step = loop {
        attempts += 1;
        eprintln!("{}", token.delivery.prompt(&token.phone, token.length));
        let code = ask("Login code: ", false).await?;
        match login::submit_code(&conn, &token, &code).await {
            Ok(step) => break step,
            Err(e) if attempts >= ATTEMPTS => {
                return Err(anyhow!("{e}; giving up after {ATTEMPTS} attempts"));
            }
            Err(LoginError::CodeInvalid) => eprintln!("That code is wrong; try again."),
            Err(LoginError::CodeExpired) => {
                eprintln!("That code has expired; asking Telegram for a new one.");
                token = login::request_code(&conn, &phone)
                    .await
                    .map_err(|e| anyhow!("{e}"))?;
                if token.delivery == Delivery::SetupEmail {
                    token = setup_email(&conn, &token).await?;
                }
            }
            Err(LoginError::FloodWait(s)) => pause_for(s).await,
            Err(e) => return Err(anyhow!("{e}")),
        }
    };
    let account = match step {
        Step::Done(a) => a,
        Step::Password(pt) => password(&conn, pt).await?,
    };
    logged_in(store, conn, account, "code").await
}

/// The 2FA step: the password asked for (without echo on a terminal) until it is right.
async fn password(conn: &Connected, mut pt: PasswordToken) -> anyhow::Result<Account> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let hint = pt
            .hint()
            .map(|h| format!(" (hint: {h})"))
            .unwrap_or_default();
        let pw = ask(&format!("Two-step verification password{hint}: "), true).await?;
        match login::submit_password(conn, pt, &pw).await {
            Ok(a) => return Ok(a),
            Err((LoginError::PasswordInvalid, Some(fresh))) if attempts < ATTEMPTS => {
                eprintln!("That password is wrong; try again.");
                pt = fresh;
            }
            Err((e, _)) => return Err(anyhow!("{e}")),
        }
    }
}

async fn logged_in(
    store: Store,
    conn: Connected,
    account: Account,
    how: &str,
) -> anyhow::Result<ExitCode> {
    conn.session.flush().await.context("saving the session")?;
    store
        .audit(
            "cli",
            "login",
            serde_json::json!({"user_id": account.user_id, "with": how}),
        )
        .await?;
    println!("logged in as {} (id {})", account.name, account.user_id);
    drop(conn);
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

/// QR codes shown before giving up (each lives about 30 seconds).
const QR_CODES: usize = 10;

/// `tgparser login --qr`: a QR code in the terminal, renewed as it expires, until Telegram on a
/// phone where the account is logged in scans and accepts it.
pub async fn login_qr(cfg: &Config) -> anyhow::Result<ExitCode> {
    let (_lock, store, mut conn) = open(cfg).await?;
    if let Some(a) = login::current_account(&conn)
        .await
        .map_err(|e| anyhow!("{e}"))?
    {
        println!(
            "already logged in as {} (id {}); run `tgparser logout` to switch accounts",
            a.name, a.user_id
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mut updates = conn
        .updates
        .take()
        .ok_or_else(|| anyhow!("the connection gives no updates to wait on"))?;
    let mut shown = 0;
    let account = loop {
        match login::qr_login_token(&conn).await {
            Ok(QrStep::Show { url, expires }) => {
                if shown == QR_CODES {
                    return Err(anyhow!(
                        "no QR code was scanned in {QR_CODES} tries; run `tgparser login --qr` again"
                    ));
                }
                shown += 1;
                eprintln!(
                    "{}\nScan this with Telegram on a phone where the account is logged in: \
                     Settings → Devices → Link Desktop Device. It is renewed as it expires.\n\
                     On a device where the account is logged in, this link works too: {url}",
                    login::render_terminal(&url).map_err(|e| anyhow!("{e}"))?
                );
                if !login::qr_wait(&mut updates, expires).await {
                    eprintln!("That QR code expired; here is a new one.");
                }
            }
            Ok(QrStep::Done(a)) => break a,
            Ok(QrStep::Password(pt)) => break password(&conn, pt).await?,
            Err(LoginError::CodeExpired) => eprintln!("That QR code expired; here is a new one."),
            Err(LoginError::FloodWait(s)) => pause_for(s).await,
            Err(e) => return Err(anyhow!("{e}")),
        }
    };
    logged_in(store, conn, account, "qr").await
}

/// Telegram sends this account no code until it has a login email: ask for the address, then
/// for the code sent there. Returns the token of the login code Telegram sends after that.
async fn setup_email(conn: &Connected, token: &CodeToken) -> anyhow::Result<CodeToken> {
    eprintln!(
        "Telegram asks this account to set up a login email before it sends a login code; \
         from now on, login codes go to that address."
    );
    let mut attempts = 0;
    loop {
        attempts += 1;
        let email = ask("Login email address: ", false).await?;
        let sent = match login::setup_email(conn, token, &email).await {
            Ok(sent) => sent,
            Err(e @ LoginError::EmailInvalid(_)) if attempts < ATTEMPTS => {
                eprintln!("{e}");
                continue;
            }
            Err(LoginError::FloodWait(s)) if attempts < ATTEMPTS => {
                pause_for(s).await;
                continue;
            }
            Err(e) => return Err(anyhow!("{e}")),
        };
        let mut tries = 0;
        loop {
            tries += 1;
            let code = ask(
                &format!(
                    "Code Telegram sent to {} ({} digits): ",
                    sent.pattern, sent.length
                ),
                false,
            )
            .await?;
            match login::verify_email(conn, token, &sent, &code).await {
                Ok(next) => return Ok(next),
                Err(LoginError::CodeInvalid) if tries < ATTEMPTS => {
                    eprintln!("That code is wrong; try again.")
                }
                Err(LoginError::FloodWait(s)) if tries < ATTEMPTS => pause_for(s).await,
                Err(e) => return Err(anyhow!("{e}")),
            }
        }
    }
}

pub async fn logout(cfg: &Config, forget: bool) -> anyhow::Result<ExitCode> {
    let (_lock, store, conn) = open(cfg).await?;
    match login::current_account(&conn).await {
        Ok(Some(a)) => {
            login::logout(&conn).await.map_err(|e| anyhow!("{e}"))?;
            println!("logged out {} (id {})", a.name, a.user_id);
        }
        Ok(None) => println!("not logged in"),
        Err(e) if forget => {
            eprintln!("cannot reach Telegram ({e}); forgetting the local session anyway")
        }
        Err(e) => return Err(anyhow!("{e}")),
    }
    if forget {
        conn.session.forget_login(true).await?;
        println!("the local session (auth keys included) is forgotten");
    }
    store
        .audit("cli", "logout", serde_json::json!({"forget": forget}))
        .await?;
    drop(conn);
    store.close().await;
    Ok(ExitCode::SUCCESS)
}
