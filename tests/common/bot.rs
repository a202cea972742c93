//! The bot's chat as a person sees it: send a message as a user, read the bot's answer.

use std::time::{Duration, Instant};

use fake_telegram::botapi::UserMessage;
use fake_telegram::flood::QuotaMode;
use fake_telegram::{FakeTelegram, Options};

use super::*;

pub const ADMIN: i64 = 1;
pub const USER: i64 = 2;
pub const GROUP: i64 = -100_777;

pub async fn bot_env(fake: &FakeTelegram, log_level: &str) -> Env {
    bot_env_for(fake, &[ADMIN], log_level)
}

pub fn sent_to(fake: &FakeTelegram, chat: i64) -> Vec<String> {
    fake.bot
        .calls(false)
        .into_iter()
        .filter(|c| c.method == "sendmessage" && c.params["chat_id"].as_i64() == Some(chat))
        .map(|c| c.params["text"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Sends `text` as `user` (in `chat`, default their private chat) and returns the bot's answer.
pub async fn ask_in(fake: &FakeTelegram, user: i64, chat: Option<i64>, text: &str) -> String {
    let to = chat.unwrap_or(user);
    let before = sent_to(fake, to).len();
    fake.bot.user_message(&UserMessage {
        user_id: user,
        chat_id: chat,
        text: Some(text.to_string()),
        ..Default::default()
    });
    let t = Instant::now();
    loop {
        let sent = sent_to(fake, to);
        if sent.len() > before {
            return sent[before].clone();
        }
        assert!(
            t.elapsed() < Duration::from_secs(70),
            "no answer to {text:?} from user {user}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn ask(fake: &FakeTelegram, user: i64, text: &str) -> String {
    ask_in(fake, user, None, text).await
}

/// Sends and asserts that nothing comes back within a second.
pub async fn silence(fake: &FakeTelegram, user: i64, chat: Option<i64>, text: &str) {
    let to = chat.unwrap_or(user);
    let before = sent_to(fake, to).len();
    fake.bot.user_message(&UserMessage {
        user_id: user,
        chat_id: chat,
        text: Some(text.to_string()),
        ..Default::default()
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        sent_to(fake, to)[before..].to_vec(),
        Vec::<String>::new(),
        "{text:?} from {user} must get no answer"
    );
}

pub fn has(answer: &str, needle: &str) {
    assert!(answer.contains(needle), "expected {needle:?} in {answer:?}");
}

pub async fn start(fake: &FakeTelegram, env: &Env) -> std::process::Child {
    login_and_add(env, fake, &fake.info.channels[..1]).await;
    start_with_bot(env).await
}

pub fn fake_opts() -> Options {
    Options {
        channels: 2,
        posts: 200,
        password: None,
        quotas: QuotaMode::Off,
        // The fake's limits are tested on their own; these tests check answers.
        bot_limits: false,
        ..Default::default()
    }
}

pub fn last_call_to(fake: &FakeTelegram, chat: i64, method: &str) -> serde_json::Value {
    fake.bot
        .calls(false)
        .into_iter()
        .rev()
        .find(|c| c.method == method && c.params["chat_id"].as_i64() == Some(chat))
        .map(|c| c.params)
        .unwrap_or_default()
}

/// Alerts as the subscribed chats saw them: (chat, post link) → messages received (delivered
/// `sendMessage` calls whose text starts with the bell; the link is the text's last line).
pub fn delivered_alerts(fake: &FakeTelegram) -> std::collections::BTreeMap<(i64, String), usize> {
    let mut out = std::collections::BTreeMap::new();
    for c in fake.bot.calls(false) {
        let text = c.params["text"].as_str().unwrap_or_default();
        if c.method != "sendmessage"
            || c.status != 200
            || c.params.get("malformed_answer").is_some()
            || !text.starts_with("🔔")
        {
            continue;
        }
        let link = text
            .lines()
            .rev()
            .find(|l| l.starts_with("https://t.me/"))
            .unwrap_or_default()
            .to_string();
        let chat = c.params["chat_id"].as_i64().unwrap_or(0);
        *out.entry((chat, link)).or_insert(0) += 1;
    }
    out
}
