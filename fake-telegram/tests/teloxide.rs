//! The real teloxide 0.17 dispatcher against the fake Bot API.

use std::time::{Duration, Instant};

use fake_telegram::botapi::{SimUser, UserMessage};
use fake_telegram::faults::{Fault, FaultKind};
use fake_telegram::{FakeTelegram, Options};
use teloxide::RequestError;
use teloxide::prelude::*;

fn bot(fake: &FakeTelegram, token: &str) -> Bot {
    let url = format!("http://{}/", fake.info.bot_api);
    Bot::new(token).set_api_url(url.parse().expect("url"))
}

async fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let t = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dispatcher_starts_long_polls_and_replies_are_recorded() {
    let fake = FakeTelegram::start(Options::default()).await.unwrap();
    let b = bot(&fake, &fake.info.bot_token);
    let handle = tokio::spawn(async move {
        let handler = teloxide::types::Update::filter_message().endpoint(
            |bot: Bot, msg: Message| async move {
                let reply = match msg.text() {
                    Some(t) => format!("echo: {t}"),
                    None => "I only read text".to_string(),
                };
                bot.send_message(msg.chat.id, reply).await?;
                respond(())
            },
        );
        Dispatcher::builder(b, handler).build().dispatch().await;
    });
    for (i, text) in ["hello", "/start", "Привет 👋"].iter().enumerate() {
        fake.bot.user_message(&UserMessage {
            user_id: 100 + i as i64,
            text: Some(text.to_string()),
            ..Default::default()
        });
    }
    fake.bot.user_message(&UserMessage {
        user_id: 200,
        kind: Some("sticker".into()),
        ..Default::default()
    });
    let sent = wait_for("4 replies", || {
        let s: Vec<_> = fake
            .bot
            .calls(false)
            .into_iter()
            .filter(|c| c.method == "sendmessage" && c.status == 200)
            .collect();
        (s.len() >= 4).then_some(s)
    })
    .await;
    let mut texts: Vec<String> = sent
        .iter()
        .map(|c| c.params["text"].as_str().unwrap().to_string())
        .collect();
    texts.sort();
    assert_eq!(
        texts,
        vec![
            "I only read text",
            "echo: /start",
            "echo: hello",
            "echo: Привет 👋"
        ]
    );
    let by_user = sent
        .iter()
        .find(|c| c.params["text"] == "echo: hello")
        .unwrap();
    assert_eq!(by_user.params["chat_id"].as_i64(), Some(100));
    let all = fake.bot.calls(true);
    assert!(
        all.iter().any(|c| c.method == "getme"),
        "dispatcher asked getMe"
    );
    let stats = fake.bot.stats();
    assert!(stats["requests"]["getupdates"].as_u64().unwrap_or(0) >= 1);
    handle.abort();
}

#[tokio::test]
async fn over_the_per_chat_limit_answers_429_with_retry_after() {
    let fake = FakeTelegram::start(Options::default()).await.unwrap();
    fake.bot.set_user(SimUser {
        id: 42,
        first_name: "Ann".into(),
        username: None,
        blocked: false,
    });
    let b = bot(&fake, &fake.info.bot_token);
    let mut retry = None;
    for i in 0..10 {
        match b.send_message(ChatId(42), format!("burst {i}")).await {
            Ok(_) => {}
            Err(RequestError::RetryAfter(s)) => {
                retry = Some(s);
                break;
            }
            Err(e) => panic!("{e}"),
        }
    }
    let s = retry.expect("a burst of 10 to one chat meets 429");
    assert!(s.duration() >= Duration::from_secs(1));

    // Injected faults: one 429 and one 5xx, then normal service.
    fake.faults.add(Fault {
        kind: FaultKind::TooMany { retry_after: 7 },
        method: Some("getMe".into()),
        count: 1,
    });
    match b.get_me().await {
        Err(RequestError::RetryAfter(s)) => assert_eq!(s.duration(), Duration::from_secs(7)),
        other => panic!("{other:?}"),
    }
    fake.faults.add(Fault {
        kind: FaultKind::Status { code: 502 },
        method: Some("getMe".into()),
        count: 1,
    });
    assert!(b.get_me().await.is_err());
    fake.faults.add(Fault {
        kind: FaultKind::MalformedJson,
        method: Some("getMe".into()),
        count: 1,
    });
    assert!(b.get_me().await.is_err());
    assert_eq!(b.get_me().await.unwrap().username(), fake.info.bot_username);
}

#[tokio::test]
async fn wrong_token_is_401_and_a_blocked_user_is_403() {
    let fake = FakeTelegram::start(Options::default()).await.unwrap();
    let wrong = bot(&fake, "123:wrong");
    match wrong.get_me().await {
        Err(RequestError::Api(e)) => assert!(
            e.to_string().to_lowercase().contains("unauthorized")
                || format!("{e:?}").contains("InvalidToken"),
            "{e:?}"
        ),
        other => panic!("{other:?}"),
    }
    fake.bot.set_user(SimUser {
        id: 9,
        first_name: "Bo".into(),
        username: None,
        blocked: true,
    });
    let b = bot(&fake, &fake.info.bot_token);
    match b.send_message(ChatId(9), "hi").await {
        Err(RequestError::Api(e)) => assert!(format!("{e:?}").contains("BotBlocked"), "{e:?}"),
        other => panic!("{other:?}"),
    }
}
