//! The real grammers-client 0.11 against the fake, over real sockets.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;

use fake_telegram::Options;
use fake_telegram::flood::QuotaMode;
use grammers_client::update::Update;
use grammers_client::{InvocationError, SignInError};

#[tokio::test]
async fn sign_in_with_code() {
    let fake = start(Options {
        password: None,
        ..Default::default()
    })
    .await;
    let c = connect(&fake).client;
    assert!(!c.is_authorized().await.unwrap());
    let token = c
        .request_login_code(&fake.info.phone, API_HASH)
        .await
        .unwrap();
    let me = c.sign_in(&token, &fake.info.code).await.unwrap();
    assert_eq!(me.first_name(), Some("Test"));
    assert!(c.is_authorized().await.unwrap());
}

#[tokio::test]
async fn sign_in_with_2fa_checks_the_password_for_real() {
    let fake = start(Options::default()).await;
    let c = connect(&fake).client;
    let token = c
        .request_login_code(&fake.info.phone, API_HASH)
        .await
        .unwrap();
    let Err(SignInError::PasswordRequired(t)) = c.sign_in(&token, &fake.info.code).await else {
        panic!("expected PasswordRequired");
    };
    let Err(SignInError::InvalidPassword(t)) = c.check_password(t, "wrong password").await else {
        panic!("a wrong password must fail");
    };
    assert!(!c.is_authorized().await.unwrap());
    // The token from the failed attempt carries a spent challenge; ask for a fresh one the way
    // an application would after PASSWORD_HASH_INVALID: sign in again.
    drop(t);
    let token = c
        .request_login_code(&fake.info.phone, API_HASH)
        .await
        .unwrap();
    let Err(SignInError::PasswordRequired(t)) = c.sign_in(&token, &fake.info.code).await else {
        panic!("expected PasswordRequired");
    };
    c.check_password(t, fake.info.password.as_bytes())
        .await
        .unwrap();
    assert!(c.is_authorized().await.unwrap());
}

#[tokio::test]
async fn wrong_and_expired_codes_are_refused() {
    let fake = start(Options {
        password: None,
        ..Default::default()
    })
    .await;
    let c = connect(&fake).client;
    let token = c
        .request_login_code(&fake.info.phone, API_HASH)
        .await
        .unwrap();
    assert!(matches!(
        c.sign_in(&token, "99999").await,
        Err(SignInError::InvalidCode)
    ));
    *fake.shared.code_ttl.lock().unwrap() = Duration::from_millis(1);
    tokio::time::sleep(Duration::from_millis(20)).await;
    match c.sign_in(&token, &fake.info.code).await {
        Err(SignInError::InvalidCode) => {}
        other => panic!("expired code accepted: {:?}", other.map(|u| u.id())),
    }
    let Err(err) = c.request_login_code("+10000000000", API_HASH).await else {
        panic!("unknown phone accepted");
    };
    assert!(err.is("PHONE_NUMBER_INVALID"), "{err}");
}

#[tokio::test]
async fn resolve_and_page_through_10000_posts_getting_every_id_once() {
    let fake = start(Options {
        channels: 1,
        posts: 10_000,
        quotas: QuotaMode::Off,
        ..Default::default()
    })
    .await;
    let c = connect(&fake).client;
    login(&fake, &c).await;
    let username = &fake.info.channels[0];
    let peer = c
        .resolve_username(username)
        .await
        .unwrap()
        .expect("resolves");
    let peer_ref = peer.to_ref().await.unwrap().expect("cached");
    let mut it = c.iter_messages(peer_ref);
    let mut seen = Vec::new();
    while let Some(m) = it.next().await.unwrap() {
        seen.push(m.id());
    }
    let expected: BTreeSet<i32> = {
        let w = fake.world.lock();
        w.channels
            .values()
            .next()
            .unwrap()
            .posts
            .keys()
            .copied()
            .collect()
    };
    let got: BTreeSet<i32> = seen.iter().copied().collect();
    assert_eq!(seen.len(), got.len(), "no id twice");
    assert_eq!(got, expected, "every id exactly once");
    assert!(seen.len() > 10_000);
    assert!(seen.windows(2).all(|w| w[0] > w[1]), "newest first");

    assert!(
        c.resolve_username("no_such_channel")
            .await
            .unwrap()
            .is_none()
    );
    let err = c.resolve_username("x!").await.unwrap_err();
    assert!(err.is("USERNAME_INVALID"), "{err}");
}

/// The next update about messages (a join's `updateChannel` comes through as a raw update).
async fn next(stream: &mut grammers_client::client::UpdateStream) -> Update {
    loop {
        let u = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("update in time")
            .unwrap();
        if !matches!(u, Update::Raw(_)) {
            return u;
        }
    }
}

#[tokio::test]
async fn pushed_updates_and_a_gap_recovered_with_get_channel_difference() {
    let fake = start(Options {
        channels: 1,
        posts: 50,
        quotas: QuotaMode::Off,
        ..Default::default()
    })
    .await;
    let mut conn = connect(&fake);
    let c = conn.client.clone();
    login(&fake, &c).await;
    let peer = c
        .resolve_username(&fake.info.channels[0])
        .await
        .unwrap()
        .unwrap();
    let channel_id = fake.world.channel_id(&fake.info.channels[0]).unwrap();
    let mut stream = c
        .stream_updates(conn.updates.take().unwrap(), Default::default())
        .await
        .unwrap();
    // Telegram pushes a channel's updates to its members only.
    c.join_chat(peer.to_ref().await.unwrap().unwrap())
        .await
        .unwrap();

    let id = fake.world.post(channel_id, "Live post 🚀").unwrap();
    match next(&mut stream).await {
        Update::NewMessage(m) => {
            assert_eq!(m.id(), id);
            assert_eq!(m.text(), "Live post 🚀");
        }
        other => panic!("unexpected {other:?}"),
    }
    fake.world
        .edit(channel_id, id, "Live post, edited")
        .unwrap();
    match next(&mut stream).await {
        Update::MessageEdited(m) => assert_eq!(m.text(), "Live post, edited"),
        other => panic!("unexpected {other:?}"),
    }
    fake.world.delete(channel_id, &[id]).unwrap();
    match next(&mut stream).await {
        Update::MessageDeleted(d) => assert_eq!(d.messages(), &[id]),
        other => panic!("unexpected {other:?}"),
    }

    // Five posts the client never hears of, then one it does: it must notice the pts gap and
    // fetch the five with updates.getChannelDifference.
    let missed = fake.world.open_gap(channel_id, 5).unwrap();
    let last = fake.world.post(channel_id, "After the gap").unwrap();
    let mut got = Vec::new();
    while got.len() < 6 {
        if let Update::NewMessage(m) = next(&mut stream).await {
            got.push(m.id());
        }
    }
    let mut want = missed.clone();
    want.push(last);
    got.sort();
    assert_eq!(got, want);
    let stats = fake.world.stats();
    assert!(
        stats
            .requests
            .get("updates.getChannelDifference")
            .copied()
            .unwrap_or(0)
            >= 1
    );
}

#[tokio::test]
async fn over_quota_answers_flood_wait_with_the_real_remaining_time() {
    let fake = start(Options {
        quotas: QuotaMode::Default,
        password: None,
        ..Default::default()
    })
    .await;
    let c = connect(&fake).client;
    login(&fake, &c).await;
    let mut errors = Vec::new();
    for _ in 0..7 {
        match c.resolve_username(&fake.info.channels[0]).await {
            Ok(_) => {}
            Err(InvocationError::Rpc(e)) => errors.push(e),
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(
        errors.len(),
        2,
        "5 per minute allowed, then FLOOD_WAIT: {errors:?}"
    );
    let e = &errors[0];
    assert_eq!(e.code, 420);
    assert_eq!(e.name, "FLOOD_WAIT");
    let secs = e.value.expect("seconds");
    assert!((55..=60).contains(&secs), "{secs}");
    assert!(fake.world.stats().flood_waits >= 2);
}

#[tokio::test]
async fn unknown_method_is_a_400_naming_it() {
    let (_fake, c) = logged_in_client().await;
    let err = c
        .invoke(&grammers_client::tl::functions::help::GetAppConfig { hash: 0 })
        .await
        .unwrap_err();
    match err {
        InvocationError::Rpc(e) => {
            assert_eq!(e.code, 400);
            assert!(e.name.contains("HELP_GETAPPCONFIG"), "{}", e.name);
        }
        other => panic!("{other}"),
    }
}

#[tokio::test]
async fn strict_mode_bans_an_account_that_keeps_calling_during_its_wait() {
    let fake = start(Options {
        quotas: QuotaMode::Strict,
        password: None,
        ..Default::default()
    })
    .await;
    let c = connect(&fake).client;
    login(&fake, &c).await;
    let mut last = None;
    let mut told = false;
    for _ in 0..12 {
        if let Err(e) = c.resolve_username(&fake.info.channels[0]).await {
            let banned = e.is("AUTH_KEY_UNREGISTERED");
            // Calls already in flight when the wait was told are not held against it: call
            // again once it surely knew.
            if e.is("FLOOD_WAIT") && !told {
                told = true;
                tokio::time::sleep(fake_telegram::flood::PIPELINED).await;
            }
            last = Some(e);
            if banned {
                break;
            }
        }
    }
    let e = last.expect("errors");
    assert!(e.is("AUTH_KEY_UNREGISTERED"), "{e}");
    assert!(!c.is_authorized().await.unwrap(), "the key stays revoked");
    assert_eq!(fake.world.stats().bans, 1);
}

#[tokio::test]
async fn pushes_reach_members_only_and_joins_meet_telegrams_limits() {
    let fake = start(Options {
        channels: 3,
        posts: 5,
        quotas: QuotaMode::Strict,
        ..Default::default()
    })
    .await;
    let mut conn = connect(&fake);
    let c = conn.client.clone();
    login(&fake, &c).await;
    let mut stream = c
        .stream_updates(conn.updates.take().unwrap(), Default::default())
        .await
        .unwrap();
    let ids: Vec<i64> = fake
        .info
        .channels
        .iter()
        .map(|u| fake.world.channel_id(u).unwrap())
        .collect();
    let mut refs = Vec::new();
    for u in &fake.info.channels {
        let p = c.resolve_username(u).await.unwrap().unwrap();
        refs.push(p.to_ref().await.unwrap().unwrap());
    }
    // Not a member: nothing is pushed.
    fake.world.post(ids[0], "nobody hears this").unwrap();
    assert!(
        tokio::time::timeout(Duration::from_secs(2), stream.next())
            .await
            .is_err(),
        "a channel the account never joined pushes nothing"
    );
    // Joins: the second asks an admin; the account's list says so.
    c.join_chat(refs[0]).await.unwrap();
    let phone = fake.info.phone.clone();
    fake.world
        .change_channel(&fake_telegram::world::ChannelChange {
            channel: ids[1].to_string(),
            join_requests: Some(true),
            ..Default::default()
        })
        .unwrap();
    let err = c.join_chat(refs[1]).await.unwrap_err();
    assert!(err.is("INVITE_REQUEST_SENT"), "{err}");
    let user = fake.world.account_id(&phone).unwrap();
    let joined = fake.world.joined(user);
    let states: Vec<(i64, &str)> = joined.iter().map(|(id, _, _, s)| (*id, *s)).collect();
    assert_eq!(states, vec![(ids[0], "member"), (ids[1], "requested")]);
    // A member hears the post.
    let id = fake.world.post(ids[0], "members hear this").unwrap();
    match next(&mut stream).await {
        Update::NewMessage(m) => assert_eq!(m.id(), id),
        other => panic!("unexpected {other:?}"),
    }
    // The channel limit: CHANNELS_TOO_MUCH past it.
    fake.world.lock().join_limits.max_channels = 1;
    let err = c.join_chat(refs[2]).await.unwrap_err();
    assert!(err.is("CHANNELS_TOO_MUCH"), "{err}");
    // Joins past the free ones wait, longer each time; a call during the wait is a violation.
    {
        let mut w = fake.world.lock();
        w.join_limits.max_channels = 500;
        w.join_limits.free_joins = 1;
    }
    let err = c.join_chat(refs[2]).await.unwrap_err();
    assert!(err.is("FLOOD_WAIT"), "{err}");
    assert_eq!(fake.world.stats().calls_during_wait, 0);
    // Banned: the channel is refused as private, and pushes stop.
    fake.world
        .change_channel(&fake_telegram::world::ChannelChange {
            channel: ids[0].to_string(),
            ban: Some(phone),
            ..Default::default()
        })
        .unwrap();
    let err = c.iter_messages(refs[0]).next().await.unwrap_err();
    assert!(err.is("CHANNEL_PRIVATE"), "{err}");
}

#[tokio::test]
async fn a_revoked_account_and_a_private_channel_answer_as_telegram_does() {
    let fake = start(Options {
        password: None,
        quotas: QuotaMode::Off,
        ..Default::default()
    })
    .await;
    let c = connect(&fake).client;
    login(&fake, &c).await;
    let peer = c
        .resolve_username(&fake.info.channels[1])
        .await
        .unwrap()
        .unwrap();
    let peer_ref = peer.to_ref().await.unwrap().unwrap();
    let id = fake.world.channel_id(&fake.info.channels[1]).unwrap();
    fake.world.set_private(id, true).unwrap();
    let err = c.iter_messages(peer_ref).next().await.unwrap_err();
    assert!(err.is("CHANNEL_PRIVATE"), "{err}");
    fake.world.revoke(None);
    let err = c
        .resolve_username(&fake.info.channels[0])
        .await
        .unwrap_err();
    assert!(err.is("AUTH_KEY_UNREGISTERED"), "{err}");
}

/// `updates.getDifference` names the joined channels that changed since the caller's state
/// (`updateChannelTooLong` with their pts), and only those; with none, `differenceEmpty`.
#[tokio::test]
async fn the_common_difference_names_the_joined_channels_that_changed() {
    use grammers_client::tl;
    let fake = start(Options {
        channels: 2,
        posts: 5,
        quotas: QuotaMode::Strict,
        ..Default::default()
    })
    .await;
    let conn = connect(&fake);
    let c = conn.client.clone();
    login(&fake, &c).await;
    let ids: Vec<i64> = fake
        .info
        .channels
        .iter()
        .map(|u| fake.world.channel_id(u).unwrap())
        .collect();
    let p = c
        .resolve_username(&fake.info.channels[0])
        .await
        .unwrap()
        .unwrap();
    c.join_chat(p.to_ref().await.unwrap().unwrap())
        .await
        .unwrap();
    let tl::enums::updates::State::State(state) = c
        .invoke(&tl::functions::updates::GetState {})
        .await
        .unwrap();
    let since = |date: i32| tl::functions::updates::GetDifference {
        pts: state.pts,
        pts_limit: None,
        pts_total_limit: None,
        date,
        qts: state.qts,
        qts_limit: None,
    };
    // Nothing yet happened in a joined channel after a second from now.
    let answer = c.invoke(&since(state.date + 1)).await.unwrap();
    assert!(
        matches!(answer, tl::enums::updates::Difference::Empty(_)),
        "{answer:?}"
    );
    fake.world.post(ids[0], "joined: named").unwrap();
    fake.world.post(ids[1], "not joined: not named").unwrap();
    let answer = c.invoke(&since(state.date)).await.unwrap();
    let tl::enums::updates::Difference::Difference(d) = answer else {
        panic!("expected a difference, got {answer:?}");
    };
    let named: Vec<(i64, Option<i32>)> = d
        .other_updates
        .iter()
        .filter_map(|u| match u {
            tl::enums::Update::ChannelTooLong(t) => Some((t.channel_id, t.pts)),
            _ => None,
        })
        .collect();
    let pts = fake.world.lock().channels[&ids[0]].pts;
    assert_eq!(named, vec![(ids[0], Some(pts))]);
}
