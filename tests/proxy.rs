//! SOCKS5: MTProto and the Bot API through a real SOCKS5 server with a user and password
//! (microsocks, from Debian's packages; `.ci/run` installs it). The proxy going down is a
//! network fault the breakers and readiness show; service resumes when it is back, without a
//! restart. The password is a file and reaches no log, no file of the state and no error.

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use fake_telegram::botapi::UserMessage;
use fake_telegram::flood::QuotaMode;
use fake_telegram::{FakeTelegram, Options};

const ADMIN: i64 = 1;
const USER: &str = "parser";
const PASSWORD: &str = "s0cks-Pa55word.for_tests";

/// microsocks on `addr` with `USER` / `PASSWORD`, accepting connections.
async fn socks(addr: SocketAddr) -> Child {
    let child = Command::new("microsocks")
        .args(["-i", "127.0.0.1", "-p", &addr.port().to_string()])
        .args(["-u", USER, "-P", PASSWORD])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("microsocks (Debian package `microsocks`; .ci/run installs it)");
    wait_until("the proxy to listen", Duration::from_secs(10), || {
        std::net::TcpStream::connect(addr).is_ok()
    })
    .await;
    child
}

fn stop_socks(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn with_proxy(env: &Env, proxy: SocketAddr, password_file: &str) {
    let cfg = std::fs::read_to_string(env.path("config.toml")).unwrap();
    let line =
        format!("proxy = \"socks5://{USER}@{proxy}\"\nproxy_password_file = \"{password_file}\"\n");
    let cfg = cfg
        .replacen("[telegram]\n", &format!("[telegram]\n{line}"), 1)
        .replacen("[bot]\n", &format!("[bot]\n{line}"), 1);
    std::fs::write(
        env.path("config.toml"),
        format!(
            "{cfg}[telegram.guard]\nheartbeat_secs = 0.5\nbreaker_failures = 3\nbreaker_cooldown_secs = 1\nbreaker_cooldown_max_secs = 2\nretry_delay_secs = 0.05\nretry_delay_max_secs = 0.2\ncall_timeout_secs = 2\n"
        ),
    )
    .unwrap();
}

fn write_secret(env: &Env, name: &str, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(env.path(name), text).unwrap();
    std::fs::set_permissions(env.path(name), std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn answered(fake: &FakeTelegram, before: usize) -> bool {
    fake.bot
        .calls(false)
        .iter()
        .filter(|c| c.method == "sendmessage" && c.params["chat_id"].as_i64() == Some(ADMIN))
        .count()
        > before
}

fn sent_to_admin(fake: &FakeTelegram) -> usize {
    fake.bot
        .calls(false)
        .iter()
        .filter(|c| c.method == "sendmessage" && c.params["chat_id"].as_i64() == Some(ADMIN))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_and_the_bot_work_through_socks5_and_a_dead_proxy_opens_the_breakers_until_it_is_back()
 {
    let fake = FakeTelegram::start(Options {
        channels: 1,
        posts: 300,
        password: None,
        quotas: QuotaMode::Off,
        ..Default::default()
    })
    .await
    .unwrap();
    let proxy = free_port();
    let mut socks_child = socks(proxy).await;
    let env = bot_env_for(&fake, &[ADMIN], "debug");
    write_secret(&env, "proxy_password", &format!("{PASSWORD}\n"));
    with_proxy(&env, proxy, "proxy_password");
    let out = run_with_input(&env, &["check-config"], "").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    login_and_add(&env, &fake, &fake.info.channels.clone()).await;
    let ch = fake.world.channel_id(&fake.info.channels[0]).unwrap();
    let notify = NotifySocket::new(env.dir.path());
    let mut child = spawn_daemon(&env, Some(&notify));
    notify
        .wait_for("READY=1", Duration::from_secs(20))
        .expect("READY=1");
    let health = env.health_addr();
    wait_until("the backfill", Duration::from_secs(30), || {
        sql(&env, "SELECT backfill_state FROM channels") == "done"
    })
    .await;
    assert_eq!(stored_ids(&env, ch), world_ids(&fake, ch));
    let before = sent_to_admin(&fake);
    fake.bot.user_message(&UserMessage {
        user_id: ADMIN,
        text: Some("/status".into()),
        ..Default::default()
    });
    wait_until("the bot's answer", Duration::from_secs(20), || {
        answered(&fake, before)
    })
    .await;

    // The proxy goes down: both breakers open and readiness fails, saying which.
    stop_socks(socks_child);
    let mut last;
    let t = std::time::Instant::now();
    loop {
        if let Ok((code, body)) = tgparser::cli::http_get(health, "/readyz", Duration::from_secs(5))
        {
            last = body;
            if code == 503
                && last.contains("breaker:mtproto-dc4")
                && last.contains("breaker:botapi")
            {
                break;
            }
        } else {
            last = "(no answer within 5 s)".into();
        }
        if t.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!(
                "the breakers did not open; last /readyz: {last}\nlog:\n{}",
                stderr_of(&mut child)
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let id = fake
        .world
        .post(ch, "posted while the proxy was down")
        .unwrap();

    // Back on the same address: everything resumes without a restart.
    socks_child = socks(proxy).await;
    wait_until("readiness to pass again", Duration::from_secs(60), || {
        let (code, body) = get(health, "/readyz");
        last = body;
        code == 200 && !last.contains("breaker:")
    })
    .await;
    wait_until(
        "the post made while the proxy was down",
        Duration::from_secs(30),
        || stored_ids(&env, ch).contains(&id),
    )
    .await;
    let before = sent_to_admin(&fake);
    fake.bot.user_message(&UserMessage {
        user_id: ADMIN,
        text: Some("/status".into()),
        ..Default::default()
    });
    wait_until(
        "the bot's answer after the outage",
        Duration::from_secs(30),
        || answered(&fake, before),
    )
    .await;

    sigterm(&child);
    let (code, _) = wait_exit(&mut child, Duration::from_secs(10));
    let log = stderr_of(&mut child);
    assert_eq!(code, Some(0), "{log}");
    stop_socks(socks_child);
    // The password is in no log line (at debug level) and no file of the state.
    assert!(!log.contains(PASSWORD), "the proxy password was logged");
    for f in files_under(&env.state_dir()) {
        let data = std::fs::read(&f).unwrap();
        assert!(!contains(&data, PASSWORD.as_bytes()), "{}", f.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_proxy_password_or_a_password_in_the_url_is_a_clear_error_that_shows_no_password() {
    let fake = FakeTelegram::start(Options {
        password: None,
        ..Default::default()
    })
    .await
    .unwrap();
    let proxy = free_port();
    let socks_child = socks(proxy).await;
    let env = telegram_env(&fake);
    write_secret(&env, "proxy_password", "not-the-password\n");
    let cfg = std::fs::read_to_string(env.path("config.toml")).unwrap();
    std::fs::write(
        env.path("config.toml"),
        cfg.replacen(
            "[telegram]\n",
            &format!("[telegram]\nproxy = \"socks5://{USER}@{proxy}\"\nproxy_password_file = \"proxy_password\"\n"),
            1,
        ),
    )
    .unwrap();
    let out = run_with_input(
        &env,
        &["login", "--phone", &fake.info.phone.clone()],
        "12345\n",
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(!text(&out).contains("not-the-password"), "{}", text(&out));

    // A password written into the URL is refused before anything connects.
    std::fs::write(
        env.path("config.toml"),
        cfg.replacen(
            "[telegram]\n",
            &format!("[telegram]\nproxy = \"socks5://{USER}:{PASSWORD}@{proxy}\"\n"),
            1,
        ),
    )
    .unwrap();
    let out = run_with_input(&env, &["check-config"], "").await;
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    assert!(text(&out).contains("proxy_password_file"), "{}", text(&out));
    assert!(!text(&out).contains(PASSWORD), "{}", text(&out));
    stop_socks(socks_child);
}
