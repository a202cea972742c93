//! QR login, from the CLI and the bot: the fake plays the phone that scans the code
//! (`qr::accept`, as the control API's `POST /qr/accept`), the account lives on DC 4 so every
//! QR login follows `auth.loginTokenMigrateTo`, and an expired code is renewed.

mod common;

use std::io::{BufRead, Write};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use common::*;
use fake_telegram::botapi::UserMessage;
use fake_telegram::{FakeTelegram, Options};

const ADMIN: i64 = 1;

fn token_of(url: &str) -> Vec<u8> {
    let b64 = url
        .split("tg://login?token=")
        .nth(1)
        .unwrap()
        .split(|c: char| c.is_whitespace())
        .next()
        .unwrap();
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(b64)
        .unwrap()
}

/// `tgparser login --qr` with `password` on stdin; accepts the `accept_nth` code it shows (the
/// earlier ones are left to expire). Returns its output.
async fn cli_qr(env: &Env, fake: &FakeTelegram, accept_nth: usize, password: &str) -> String {
    let mut cmd = env.cmd(&["login", "--qr"]);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{password}").unwrap();
    let stderr = child.stderr.take().unwrap();
    let shared = fake.shared.clone();
    let phone = fake.info.phone.clone();
    let (seen_tx, seen_rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        let mut codes = 0;
        for line in std::io::BufReader::new(stderr).lines() {
            let line = line.unwrap();
            if line.contains("tg://login?token=") {
                codes += 1;
                if codes == accept_nth {
                    fake_telegram::mtproto::qr::accept(&shared, &token_of(&line), &phone).unwrap();
                    let _ = seen_tx.send(());
                }
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let out = tokio::task::spawn_blocking(move || {
        let status = child.wait().unwrap();
        drop(stdin);
        let mut stdout = String::new();
        use std::io::Read;
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut stdout)
            .unwrap();
        (status, stdout)
    })
    .await
    .unwrap();
    let err = reader.join().unwrap();
    assert!(
        seen_rx.try_recv().is_ok(),
        "no QR code #{accept_nth} shown:\n{err}"
    );
    assert_eq!(out.0.code(), Some(0), "stdout:\n{}\nstderr:\n{err}", out.1);
    format!("{}{err}", out.1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_qr_login_with_and_without_2fa_follows_the_account_to_its_dc() {
    for password in [false, true] {
        let fake = FakeTelegram::start(Options {
            password: password.then(|| "correct horse battery staple".to_string()),
            ..Default::default()
        })
        .await
        .unwrap();
        let env = telegram_env(&fake);
        let out = cli_qr(&env, &fake, 1, &fake.info.password).await;
        assert!(out.contains("Link Desktop Device"), "{out}");
        assert!(out.contains("logged in as Test"), "{out}");
        assert_eq!(
            out.contains("Two-step verification password"),
            password,
            "{out}"
        );
        assert_eq!(sql(&env, "SELECT home_dc FROM session_state"), "4");
        let requests = fake.world.stats().requests;
        assert_eq!(requests["auth.importLoginToken"], 1, "migrated to DC 4");
        assert!(
            !requests.contains_key("auth.sendCode"),
            "no code was asked for"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_qr_code_is_renewed() {
    let fake = FakeTelegram::start(Options {
        password: None,
        ..Default::default()
    })
    .await
    .unwrap();
    *fake.shared.qr_ttl.lock().unwrap() = Duration::from_secs(2);
    let env = telegram_env(&fake);
    let out = cli_qr(&env, &fake, 2, "").await;
    assert!(out.contains("expired; here is a new one"), "{out}");
    assert!(out.contains("logged in as Test"), "{out}");
    assert!(fake.world.stats().requests["auth.exportLoginToken"] >= 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bot_qr_login_sends_the_code_as_a_photo_and_asks_for_the_password() {
    let fake = FakeTelegram::start(Options::default()).await.unwrap();
    let env = bot_env_for(&fake, &[ADMIN], "info");
    let mut child = start_with_bot(&env).await;
    let say = |text: &str| {
        fake.bot.user_message(&UserMessage {
            user_id: ADMIN,
            text: Some(text.into()),
            ..Default::default()
        })
    };
    say("/login qr");
    let mut caption = String::new();
    let t = std::time::Instant::now();
    while fake
        .bot
        .calls(false)
        .iter()
        .all(|c| c.method != "sendphoto")
    {
        if t.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!(
                "no photo; the bot sent: {:?}\nlog:\n{}",
                fake.bot
                    .calls(false)
                    .iter()
                    .map(|c| (
                        c.method.clone(),
                        c.status,
                        c.params.to_string().chars().take(200).collect::<String>()
                    ))
                    .collect::<Vec<_>>(),
                stderr_of(&mut child)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_until("the QR code as a photo", Duration::from_secs(20), || {
        let photos: Vec<_> = fake
            .bot
            .calls(false)
            .into_iter()
            .filter(|c| c.method == "sendphoto" && c.status == 200)
            .collect();
        if let Some(p) = photos.last() {
            caption = p.params["caption"].as_str().unwrap_or_default().to_string();
        }
        !photos.is_empty()
    })
    .await;
    assert!(caption.contains("Link Desktop Device"), "{caption}");
    fake_telegram::mtproto::qr::accept(&fake.shared, &token_of(&caption), &fake.info.phone)
        .unwrap();
    wait_until("the password prompt", Duration::from_secs(20), || {
        fake.bot.calls(false).iter().any(|c| {
            c.method == "sendmessage"
                && c.params["text"]
                    .as_str()
                    .is_some_and(|t| t.contains("QR code was accepted"))
        })
    })
    .await;
    say(&fake.info.password.clone());
    wait_until("the login", Duration::from_secs(20), || {
        fake.bot.calls(false).iter().any(|c| {
            c.method == "sendmessage"
                && c.params["text"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("Logged in as Test"))
        })
    })
    .await;
    assert!(audited(&env, "login"));
    sigterm(&child);
    let (code, _) = wait_exit(&mut child, Duration::from_secs(10));
    assert_eq!(code, Some(0), "{}", stderr_of(&mut child));
}
