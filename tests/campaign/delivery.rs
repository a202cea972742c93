//! The crash phases of what reaches people: alert delivery, and the login dialog.

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use fake_telegram::botapi::UserMessage;
use fake_telegram::flood::QuotaMode;
use fake_telegram::{FakeTelegram, Options};

use super::archive::produce;
use super::checks::*;
use super::{Rng, Tally, guarded, kill9, wait_for};
use crate::common::*;

/// The word the alert phase's subscribers follow.
const WORD: &str = "alpha";
/// Subscribers in the alert phase (each its own chat, paced at Telegram's one message a
/// second per chat; Telegram's 30 a second overall enforced by the fake).
const SUBSCRIBERS: i64 = 10;

/// Alert delivery: ten chats subscribed to a word; posts (some matching, some behind gaps)
/// arrive and the daemon is killed at a random moment of matching and sending. After the
/// restart every matching post reached every chat, none more often than its outbox row was
/// attempted, and no other post was alerted.
pub async fn alerts(rounds: usize, seed: u64, tally: &mut Tally) -> Result<(), String> {
    let (fake, env) = super::bot_stage(20, "").await?;
    let name = fake.info.channels[0].clone();
    let ch = fake.world.channel_id(&name).ok_or("no channel")?;
    login_and_add(&env, &fake, std::slice::from_ref(&name)).await;
    let mut child = start_with_bot(&env).await;
    let chats: Vec<i64> = (0..SUBSCRIBERS).map(|i| 30_000 + i).collect();
    for c in &chats {
        fake.bot.user_message(&UserMessage {
            user_id: *c,
            text: Some(format!("/subscribe {WORD}")),
            ..Default::default()
        });
    }
    wait_for("every subscription", Duration::from_secs(60), || {
        sql(&env, "SELECT count(*) FROM subscriptions") == SUBSCRIBERS.to_string()
    })
    .await?;
    wait_for("the backfill", Duration::from_secs(60), || {
        exact_posts(&fake, &env, ch).is_ok()
    })
    .await?;
    for round in 0..rounds {
        let mut rng = Rng::new(seed, "alerts", round);
        let r = guarded(async {
            let dur = rng.millis(100, 800);
            let kill_at = rng.millis(0, 3_000);
            let mut producer_rng = rng.clone();
            let only = [ch];
            let produced = produce(&fake, &only, &mut producer_rng, dur, Some(WORD));
            let killer = async {
                tokio::time::sleep(kill_at).await;
                let owed = sql(
                    &env,
                    "SELECT count(*) FROM outbox WHERE state IN ('pending', 'sending')",
                );
                kill9(&mut child);
                owed != "0"
            };
            let ((), mid) = tokio::join!(produced, killer);
            if mid {
                tally.mid_work += 1;
            }
            archive_sound(&env)?;
            child = start_with_bot(&env).await;
            let delivered = wait_for("every alert", Duration::from_secs(120), || {
                exact_posts(&fake, &env, ch).is_ok()
                    && every_alert_once(&fake, &env, ch, &name, &chats, WORD).is_ok()
            })
            .await;
            delivered.map_err(|why| {
                format!(
                    "{why}: {}; {}",
                    exact_posts(&fake, &env, ch).err().unwrap_or_default(),
                    every_alert_once(&fake, &env, ch, &name, &chats, WORD)
                        .err()
                        .unwrap_or_default()
                )
            })
        })
        .await;
        tally.record(round, r);
    }
    stop(&mut child);
    archive_sound(&env)
}

/// `tgparser login` with its answers on standard input, not waited for.
fn spawn_login(env: &Env, fake: &FakeTelegram, password: &str) -> std::process::Child {
    let mut child = env
        .cmd(&["login", "--phone", &fake.info.phone])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("tgparser login");
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(format!("{}\n{password}\n", fake.info.code).as_bytes());
    }
    child
}

/// The login dialog (phone, code, 2FA password, on an account whose home is DC 4, so the
/// login migrates): killed at a random moment of it. The state directory stays sound and free
/// of secrets (checked when each round's directory is dropped), and the next login succeeds
/// and its session opens (a channel is added with it).
pub async fn login(rounds: usize, seed: u64, tally: &mut Tally) -> Result<(), String> {
    let password = "correct horse battery staple";
    let fake = FakeTelegram::start(Options {
        channels: 1,
        posts: 5,
        password: Some(password.into()),
        quotas: QuotaMode::Off,
        home_dc: 4,
        ..Default::default()
    })
    .await
    .map_err(|e| format!("the fake did not start: {e}"))?;
    let name = fake.info.channels[0].clone();
    // How long a whole login takes: the kills are drawn over it.
    let full = {
        let env = telegram_env(&fake);
        let t = Instant::now();
        let mut child = spawn_login(&env, &fake, password);
        let st = child.wait().map_err(|e| e.to_string())?;
        if !st.success() {
            return Err(format!("a login without a kill failed: {st}"));
        }
        t.elapsed()
    };
    for round in 0..rounds {
        let mut rng = Rng::new(seed, "login", round);
        let r = guarded(async {
            let env = telegram_env(&fake);
            let mut child = spawn_login(&env, &fake, password);
            tokio::time::sleep(rng.millis(0, full.as_millis() as u64 * 12 / 10 + 1)).await;
            if matches!(child.try_wait(), Ok(None)) {
                tally.mid_work += 1;
            }
            kill9(&mut child);
            archive_sound(&env)?;
            let out = run_with_input(
                &env,
                &["login", "--phone", &fake.info.phone],
                &format!("{}\n{password}\n", fake.info.code),
            )
            .await;
            if out.status.code() != Some(0) {
                return Err(format!("the login after the kill: {}", text(&out)));
            }
            let out = run_with_input(&env, &["channels", "add", &name], "").await;
            if out.status.code() != Some(0) {
                return Err(format!("the session did not open: {}", text(&out)));
            }
            archive_sound(&env)
        })
        .await;
        tally.record(round, r);
    }
    Ok(())
}
