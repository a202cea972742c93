//! A fake Telegram with the account logged in and channels added, and the two views of a
//! channel the follower tests compare: what the fake holds, and what the store shows.

use super::*;

/// Message ids the fake holds for `channel`, ascending.
pub fn world_ids(fake: &fake_telegram::FakeTelegram, channel: i64) -> Vec<i32> {
    fake.world.lock().channels[&channel]
        .posts
        .keys()
        .copied()
        .collect()
}

/// A fake Telegram of one channel with `posts` posts, no 2FA password, quotas off; the
/// account logged in and the channel added (`login_and_add`), against `env`'s configuration
/// (`telegram_env`).
pub async fn one_channel(posts: usize) -> (fake_telegram::FakeTelegram, Env, i64) {
    let (fake, env, ids) = logged_in_world(1, posts).await;
    (fake, env, ids[0])
}

/// A fake Telegram of `channels` channels of `posts` posts each (no 2FA, quotas off), its
/// account logged in and every channel added; the channels' ids.
pub async fn logged_in_world(
    channels: usize,
    posts: usize,
) -> (fake_telegram::FakeTelegram, Env, Vec<i64>) {
    let fake = fake_telegram::FakeTelegram::start(fake_telegram::Options {
        channels,
        posts,
        password: None,
        quotas: fake_telegram::flood::QuotaMode::Off,
        ..Default::default()
    })
    .await
    .unwrap();
    let env = telegram_env(&fake);
    login_and_add(&env, &fake, &fake.info.channels.clone()).await;
    let ids: Vec<i64> = fake
        .info
        .channels
        .iter()
        .map(|n| fake.world.channel_id(n).unwrap())
        .collect();
    (fake, env, ids)
}

/// Logs the fake's account (started with `password: None`) in with `tgparser login` and adds
/// `channels` with `channels add`.
pub async fn login_and_add(env: &Env, fake: &fake_telegram::FakeTelegram, channels: &[String]) {
    let input = format!("{}\n", fake.info.code);
    let out = run_with_input(env, &["login", "--phone", &fake.info.phone.clone()], &input).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    for name in channels {
        let out = run_with_input(env, &["channels", "add", name], "").await;
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }
}

/// Every change the fake holds for `ch`, as the store must show it: (id, text, deleted).
pub fn world_view(fake: &fake_telegram::FakeTelegram, ch: i64) -> Vec<(i32, String)> {
    fake.world.lock().channels[&ch]
        .posts
        .values()
        .map(|p| (p.id, p.text.clone()))
        .collect()
}

pub fn stored_view(env: &Env, ch: i64) -> Vec<(i32, String)> {
    sql(
        env,
        &format!(
            "SELECT id, hex(text) FROM messages WHERE channel_id = {ch} AND deleted_at IS NULL ORDER BY id"
        ),
    )
    .lines()
    .filter(|l| !l.is_empty())
    .map(|l| {
        let (id, hex_text) = l.split_once('|').unwrap();
        let text = String::from_utf8(hex::decode(hex_text).unwrap()).unwrap();
        (id.parse().unwrap(), text)
    })
    .collect()
}
