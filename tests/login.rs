//! `tgparser login` / `logout` end to end against the fake Telegram (MTProto over loopback).

mod common;

use std::io::Write;
use std::process::{Output, Stdio};
use std::time::Duration;

use common::*;
use fake_telegram::{FakeTelegram, Options};

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_with_code_and_2fa_then_the_session_survives_a_restart() {
    let fake = FakeTelegram::start(Options::default()).await.unwrap();
    let env = telegram_env(&fake);
    let phone = fake.info.phone.clone();
    // A wrong code first, then the code typed with separators, then a wrong and a right password.
    let input = format!(
        "99999\n1 2 3 4 5\nnot the password\n{}\n",
        fake.info.password
    );
    let out = run_with_input(&env, &["login", "--phone", &phone], &input).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        stderr(&out).contains("That code is wrong"),
        "{}",
        text(&out)
    );
    assert!(
        stderr(&out).contains("That password is wrong"),
        "{}",
        text(&out)
    );
    assert!(stdout(&out).contains("logged in as Test"), "{}", text(&out));

    // A new process opens the stored session: still logged in, no code needed.
    let out = run_with_input(&env, &["login"], "").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        stdout(&out).contains("already logged in as Test"),
        "{}",
        text(&out)
    );

    // No file of the state dir holds the auth key, raw or as hex; neither does any output.
    let key = hex::decode(&fake.info.auth_key).unwrap();
    for f in files_under(&env.state_dir()) {
        let data = std::fs::read(&f).unwrap();
        assert!(!contains(&data, &key), "raw auth key in {}", f.display());
        assert!(
            !contains(&data, fake.info.auth_key.as_bytes()),
            "hex auth key in {}",
            f.display()
        );
        assert!(
            !contains(&data, fake.info.password.as_bytes()),
            "2FA password in {}",
            f.display()
        );
    }
    assert!(!stderr(&out).contains(&fake.info.auth_key));

    let out = run_with_input(&env, &["logout"], "").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(stdout(&out).contains("logged out Test"), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_code_asks_for_a_new_one() {
    let fake = FakeTelegram::start(Options {
        password: None,
        ..Default::default()
    })
    .await
    .unwrap();
    *fake.shared.code_ttl.lock().unwrap() = Duration::from_millis(300);
    let env = telegram_env(&fake);
    let phone = fake.info.phone.clone();
    let env_ref = &env;
    let code = fake.info.code.clone();
    // The first code line arrives late (the code has expired by then); the second is in time.
    let mut cmd = env_ref.cmd(&["login", "--phone", &phone]);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = tokio::task::spawn_blocking(move || {
        let mut child = cmd.spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        writeln!(stdin, "{code}").unwrap();
        std::thread::sleep(Duration::from_millis(50));
        writeln!(stdin, "{code}").unwrap();
        drop(stdin);
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(stderr(&out).contains("expired"), "{}", text(&out));
    assert!(stdout(&out).contains("logged in as Test"), "{}", text(&out));
    assert!(fake.world.stats().requests["auth.sendCode"] >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_phone_and_missing_telegram_config_are_clear_errors() {
    let fake = FakeTelegram::start(Options::default()).await.unwrap();
    let env = telegram_env(&fake);
    let out = run_with_input(&env, &["login", "--phone", "+10000000000"], "").await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stderr(&out).contains("does not know the phone number"),
        "{}",
        text(&out)
    );

    let bare = Env::new();
    bare.write_config("");
    bare.keygen();
    let out = run_with_input(&bare, &["login"], "").await;
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    assert!(stderr(&out).contains("telegram.api_id"), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_sealed_auth_key_is_a_clear_error_and_is_not_overwritten() {
    let fake = FakeTelegram::start(Options {
        password: None,
        ..Default::default()
    })
    .await
    .unwrap();
    let env = telegram_env(&fake);
    let out = run_with_input(
        &env,
        &["login", "--phone", &fake.info.phone.clone()],
        &format!("{}\n", fake.info.code),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // Flip one byte of the sealed key in the database.
    let db = env.state_dir().join("tgparser.db");
    let st = std::process::Command::new("sqlite3")
        .arg(&db)
        .arg("UPDATE session_dcs SET auth_key = substr(auth_key, 1, 20) || x'ff' || substr(auth_key, 22) WHERE auth_key IS NOT NULL;")
        .status()
        .unwrap();
    assert!(st.success());
    let before = std::process::Command::new("sqlite3")
        .arg(&db)
        .arg("SELECT hex(auth_key) FROM session_dcs WHERE auth_key IS NOT NULL;")
        .output()
        .unwrap()
        .stdout;
    let out = run_with_input(&env, &["login"], "").await;
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    assert!(stderr(&out).contains("does not open"), "{}", text(&out));
    let after = std::process::Command::new("sqlite3")
        .arg(&db)
        .arg("SELECT hex(auth_key) FROM session_dcs WHERE auth_key IS NOT NULL;")
        .output()
        .unwrap()
        .stdout;
    assert_eq!(before, after, "the damaged row is left for the operator");
    assert!(!before.is_empty());
}
