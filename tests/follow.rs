//! The follower against the fake: what happens while the daemon is stopped reaches the store at
//! the next start (posts, edits as versions, deletions), caught up with getChannelDifference
//! from the pts saved in the session, every call through the guard.

mod common;

use std::time::Duration;

use common::*;
use fake_telegram::faults::{Fault, FaultKind};
use fake_telegram::flood::QuotaMode;
use fake_telegram::{FakeTelegram, Options};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_edits_and_deletions_made_while_the_daemon_was_stopped_all_reach_the_store() {
    let (fake, env, ids) = logged_in_world(3, 120).await;
    let mut child = started(&env).await;
    wait_daemon(&mut child, "the backfill", || {
        one(
            &env,
            "SELECT count(*) FROM channels WHERE backfill_state != 'done'",
        ) == "0"
    })
    .await;
    stop(&mut child);

    // While the daemon is stopped, each channel gets new posts, edits (of an old post and of a
    // new one) and deletions.
    let requests = |m: &str| fake.world.stats().requests.get(m).copied().unwrap_or(0);
    let history_before = requests("messages.getHistory");
    let mut edited = Vec::new();
    for &ch in &ids {
        let old: Vec<i32> = fake.world.lock().channels[&ch]
            .posts
            .keys()
            .rev()
            .skip(3)
            .take(2)
            .copied()
            .collect();
        // A post made and deleted before the daemon saw it: the next post's id jumps over it,
        // and that is no reason to read history (the pts proves nothing else was missed).
        let gone = fake.world.post(ch, "Deleted before anyone saw it").unwrap();
        fake.world.delete(ch, &[gone]).unwrap();
        let first = fake
            .world
            .post(ch, "Posted while the daemon was away")
            .unwrap();
        fake.world.post(ch, "Второй пост, пока демон спал").unwrap();
        fake.world
            .edit(ch, old[0], "An old post, edited meanwhile")
            .unwrap();
        fake.world
            .edit(ch, first, "Posted while away, then edited")
            .unwrap();
        let deleted_text = fake.world.lock().channels[&ch].posts[&old[1]].text.clone();
        fake.world.delete(ch, &[old[1]]).unwrap();
        edited.push((ch, old[0], old[1], deleted_text));
    }

    let mut child = started(&env).await;
    for &ch in &ids {
        wait_daemon(&mut child, "every change made while stopped", || {
            stored_view(&env, ch) == world_view(&fake, ch)
        })
        .await;
    }
    for (ch, old_edited, deleted, deleted_text) in edited {
        // The edit is a new version, the text before it kept.
        assert_eq!(
            one(
                &env,
                &format!(
                    "SELECT version FROM messages WHERE channel_id = {ch} AND id = {old_edited}"
                )
            ),
            "2"
        );
        assert_eq!(
            one(
                &env,
                &format!(
                    "SELECT count(*) FROM message_versions WHERE channel_id = {ch} AND message_id = {old_edited} AND version = 1"
                )
            ),
            "1"
        );
        // The deletion is soft: the row stays, with its text.
        assert_eq!(
            one(
                &env,
                &format!(
                    "SELECT deleted_at IS NOT NULL FROM messages WHERE channel_id = {ch} AND id = {deleted}"
                )
            ),
            "1"
        );
        assert_eq!(
            one(
                &env,
                &format!("SELECT text FROM messages WHERE channel_id = {ch} AND id = {deleted}")
            ),
            deleted_text.trim()
        );
    }
    // Caught up from the saved pts with getChannelDifference, not by reading history again.
    assert!(requests("updates.getChannelDifference") >= ids.len() as u64);
    // (A post id jumping over a deleted post once made each channel read history again.)
    assert_eq!(
        requests("messages.getHistory"),
        history_before,
        "nothing read from history again"
    );
    stop(&mut child);
    assert_eq!(one(&env, "PRAGMA integrity_check"), "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_wait_during_catch_up_is_waited_out_without_a_call() {
    let fake = FakeTelegram::start(Options {
        channels: 1,
        posts: 50,
        password: None,
        quotas: QuotaMode::Strict,
        ..Default::default()
    })
    .await
    .unwrap();
    let env = telegram_env_with(&fake, "");
    login_and_add(&env, &fake, &fake.info.channels.clone()).await;
    let ch = fake.world.channel_id(&fake.info.channels[0]).unwrap();
    let mut child = started(&env).await;
    wait_daemon(&mut child, "the backfill", || {
        one(&env, "SELECT backfill_state FROM channels") == "done"
    })
    .await;
    stop(&mut child);
    let id = fake
        .world
        .post(ch, "Posted while the daemon was away")
        .unwrap();
    fake.faults.add(Fault {
        kind: FaultKind::FloodWait { secs: 3 },
        method: Some("updates.getChannelDifference".into()),
        count: 1,
    });
    let t = std::time::Instant::now();
    let mut child = started(&env).await;
    wait_daemon(&mut child, "the post made while stopped", || {
        stored_ids(&env, ch).contains(&id)
    })
    .await;
    assert!(
        t.elapsed() >= Duration::from_secs(3),
        "waited the FLOOD_WAIT out"
    );
    let stats = fake.world.stats();
    assert_eq!(stats.calls_during_wait, 0, "no call during the wait");
    assert_eq!(stats.bans, 0);
    stop(&mut child);
}

/// More happened while the daemon was stopped than Telegram keeps as events
/// (`channelDifferenceTooLong`): the posts in between are refilled from history, and a
/// FLOOD_WAIT on `messages.getHistory` in that refill is waited out without a call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_wait_during_a_gap_refill_from_history_is_waited_out_without_a_call() {
    let fake = FakeTelegram::start(Options {
        channels: 1,
        posts: 20,
        password: None,
        quotas: QuotaMode::Strict,
        ..Default::default()
    })
    .await
    .unwrap();
    let env = telegram_env_with(&fake, "");
    login_and_add(&env, &fake, &fake.info.channels.clone()).await;
    let ch = fake.world.channel_id(&fake.info.channels[0]).unwrap();
    let mut child = started(&env).await;
    wait_daemon(&mut child, "the backfill", || {
        one(&env, "SELECT backfill_state FROM channels") == "done"
    })
    .await;
    stop(&mut child);
    // Past the 500 events the fake keeps for a catch-up.
    let posted: Vec<i32> = (0..520)
        .map(|i| fake.world.post(ch, &format!("away {i}")).unwrap())
        .collect();
    fake.faults.add(Fault {
        kind: FaultKind::FloodWait { secs: 3 },
        method: Some("messages.getHistory".into()),
        count: 1,
    });
    let history = || fake.world.stats().requests["messages.getHistory"];
    let before = history();
    let t = std::time::Instant::now();
    let mut child = started(&env).await;
    wait_daemon(&mut child, "every post made while stopped", || {
        let stored = stored_ids(&env, ch);
        posted.iter().all(|id| stored.contains(id))
    })
    .await;
    assert!(history() > before, "refilled from history");
    assert!(
        t.elapsed() >= Duration::from_secs(3),
        "waited the FLOOD_WAIT out"
    );
    let stats = fake.world.stats();
    assert_eq!(stats.calls_during_wait, 0, "no call during the wait");
    assert_eq!(stats.bans, 0);
    assert_eq!(stored_view(&env, ch), world_view(&fake, ch));
    stop(&mut child);
}

/// The server loses its sessions (it sends `new_session_created`, which grammers keeps to
/// itself) and pushes meanwhile are lost; a quiet channel's edit and deletion still reach the
/// store within a sweep.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_pushed_to_a_session_the_server_lost_are_caught_up_by_the_sweep() {
    let fake = FakeTelegram::start(Options {
        channels: 1,
        posts: 60,
        password: None,
        quotas: QuotaMode::Off,
        ..Default::default()
    })
    .await
    .unwrap();
    let env = telegram_env(&fake);
    let cfg = std::fs::read_to_string(env.path("config.toml")).unwrap();
    std::fs::write(
        env.path("config.toml"),
        cfg.replacen("[telegram]\n", "[telegram]\nfollow_sweep_secs = 3\n", 1),
    )
    .unwrap();
    login_and_add(&env, &fake, &fake.info.channels.clone()).await;
    let ch = fake.world.channel_id(&fake.info.channels[0]).unwrap();
    let mut child = started(&env).await;
    wait_daemon(&mut child, "the backfill", || {
        one(&env, "SELECT backfill_state FROM channels") == "done"
    })
    .await;
    assert!(fake.shared.sessions.forget_all() >= 1);
    let (edited, deleted) = {
        let w = fake.world.lock();
        let ids: Vec<i32> = w.channels[&ch]
            .posts
            .keys()
            .rev()
            .take(2)
            .copied()
            .collect();
        (ids[0], ids[1])
    };
    fake.world
        .edit(ch, edited, "Edited while the session was lost")
        .unwrap();
    fake.world.delete(ch, &[deleted]).unwrap();
    wait_daemon(&mut child, "the edit and the deletion", || {
        one(&env, &format!("SELECT text FROM messages WHERE channel_id = {ch} AND id = {edited}"))
            == "Edited while the session was lost"
            && one(&env, &format!("SELECT deleted_at IS NOT NULL FROM messages WHERE channel_id = {ch} AND id = {deleted}"))
                == "1"
    })
    .await;
    assert!(fake.world.stats().new_sessions >= 2);
    stop(&mut child);
}

fn ban(fake: &FakeTelegram, channel: i64) {
    fake.world
        .change_channel(&fake_telegram::world::ChannelChange {
            channel: channel.to_string(),
            ban: Some(fake.info.phone.clone()),
            ..Default::default()
        })
        .unwrap();
}

/// A followed channel gone private made its refill fail and go back to the queue forever;
/// refills run before backfill, so a channel added meanwhile stored nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_gone_private_no_longer_refills_forever_and_the_others_go_on() {
    let fake = FakeTelegram::start(Options {
        channels: 2,
        posts: 80,
        password: None,
        quotas: QuotaMode::Off,
        ..Default::default()
    })
    .await
    .unwrap();
    let env = telegram_env(&fake);
    let (first, second) = (fake.info.channels[0].clone(), fake.info.channels[1].clone());
    login_and_add(&env, &fake, std::slice::from_ref(&first)).await;
    let a = fake.world.channel_id(&first).unwrap();
    let b = fake.world.channel_id(&second).unwrap();
    let mut child = started(&env).await;
    wait_daemon(&mut child, "the backfill", || {
        one(&env, "SELECT backfill_state FROM channels") == "done"
    })
    .await;
    stop(&mut child);
    // As an archive from before the saved update state: the channel has no pts, so the next
    // start tops it up from history, and Telegram refuses that now.
    sql_write(&env, "DELETE FROM session_channel_state");
    // The daemon joined it, so going private would not shut it out (members read private
    // channels); a ban does, with the same CHANNEL_PRIVATE.
    ban(&fake, a);
    let mut child = started(&env).await;
    let out = run_with_input(&env, &["channels", "add", &second], "").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    wait_daemon(&mut child, "the other channel's backfill", || {
        stored_ids(&env, b) == world_ids(&fake, b)
    })
    .await;
    wait_daemon(&mut child, "the private channel marked", || {
        one(
            &env,
            &format!("SELECT state || ' ' || last_error FROM channels WHERE id = {a}"),
        ) == "private CHANNEL_PRIVATE"
    })
    .await;
    // Nothing spins: no more history requests once both are settled.
    let history = || fake.world.stats().requests["messages.getHistory"];
    let before = history();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(history(), before, "history requests went on");
    stop(&mut child);
}

/// A live post whose id jumped past the newest stored one queued the refill of the ids between
/// in memory only: killed before the refill ran, the daemon started again above the hole (its
/// pts already past it) and those posts were never stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gap_revealed_before_a_kill_is_still_refilled_after_the_restart() {
    let (fake, env, ch) = one_channel(20).await;
    let mut child = started(&env).await;
    wait_daemon(&mut child, "the backfill", || {
        one(&env, "SELECT backfill_state FROM channels") == "done"
    })
    .await;
    // History refuses while the gap opens, so the refill cannot run before the kill.
    fake.faults.add(Fault {
        kind: FaultKind::Rpc500,
        method: Some("messages.getHistory".into()),
        count: 0,
    });
    // More than a catch-up hands out: the posts between come from history only.
    let mut missed = fake.world.open_gap(ch, 650).unwrap();
    let after = fake.world.post(ch, "after the gap").unwrap();
    wait_daemon(&mut child, "the post after the gap", || {
        stored_ids(&env, ch).contains(&after)
    })
    .await;
    assert_eq!(
        one(&env, "SELECT count(*) FROM refills"),
        "1",
        "the range is queued in the database with the post"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    fake.faults.clear();
    let mut child = started(&env).await;
    missed.push(after);
    wait_daemon(&mut child, "every post of the gap", || {
        let stored = stored_ids(&env, ch);
        missed.iter().all(|id| stored.contains(id))
    })
    .await;
    wait_daemon(&mut child, "the range off the queue", || {
        one(&env, "SELECT count(*) FROM refills") == "0"
    })
    .await;
    assert_eq!(stored_view(&env, ch), world_view(&fake, ch));
    stop(&mut child);
}

/// A channel's first pts (read with its first history page) was saved in the session's batch,
/// durable up to a second later: killed before that, the daemon started with no pts for the
/// channel, topped it up from history above its newest post, and the edits and deletions of
/// the posts it already held were lost for good. (The first channel's pts was flushed at once;
/// the others' waited for the batch.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_and_deletions_after_a_kill_right_after_the_first_history_pages_still_arrive() {
    let (fake, env, channels) = three_channels().await;
    let mut child = started(&env).await;
    let t = std::time::Instant::now();
    while one(
        &env,
        "SELECT count(*) FROM channels WHERE backfill_state = 'done'",
    ) != "3"
    {
        assert!(
            t.elapsed() < LIMIT,
            "no backfill: {}",
            stderr_of(&mut child)
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    for ch in &channels {
        // Posts with text (service messages cannot be edited).
        let texts: Vec<i32> = world_view(&fake, *ch)
            .into_iter()
            .filter(|(_, t)| !t.is_empty())
            .map(|(id, _)| id)
            .collect();
        fake.world
            .edit(*ch, texts[1], "edited while the daemon was down")
            .unwrap();
        fake.world.delete(*ch, &[texts[2]]).unwrap();
    }
    let mut child = started(&env).await;
    wait_daemon(&mut child, "every edit and deletion", || {
        channels
            .iter()
            .all(|ch| stored_view(&env, *ch) == world_view(&fake, *ch))
    })
    .await;
    stop(&mut child);
}

/// Each start catches every channel up and saves their pts, batched: the first was written at
/// once, the rest only a second later. A daemon killed within that second, again and again
/// (a crash loop), kept the last channels' old pts on disk while their posts were stored;
/// once more than Telegram keeps had happened since, the catch-up was "too long", and the
/// edits and deletions of that stretch were lost (found by the crash campaign's live phase).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_loop_right_after_each_catch_up_still_loses_no_edit() {
    let (fake, env, channels) = three_channels().await;
    let exact = || {
        channels
            .iter()
            .all(|ch| stored_view(&env, *ch) == world_view(&fake, *ch))
    };
    let mut child = started(&env).await;
    wait_daemon(&mut child, "the backfill", exact).await;
    stop(&mut child);
    // The channel edited at the end: a post it held from the start.
    let last = channels[2];
    let old = world_view(&fake, last)
        .into_iter()
        .find(|(_, t)| !t.is_empty())
        .map(|(id, _)| id)
        .unwrap();
    // Twelve starts, each killed as soon as every channel is caught up; 60 posts a channel
    // between them: 720 in all, more than the 500 events the fake's difference hands out.
    for round in 0..12 {
        for ch in &channels {
            for i in 0..60 {
                fake.world
                    .post(*ch, &format!("round {round} post {i}"))
                    .unwrap();
            }
        }
        let mut child = started(&env).await;
        let t = std::time::Instant::now();
        while !exact() {
            assert!(
                t.elapsed() < LIMIT,
                "no catch-up: {}",
                stderr_of(&mut child)
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        child.kill().unwrap();
        child.wait().unwrap();
    }
    fake.world
        .edit(last, old, "edited after the crash loop")
        .unwrap();
    let mut child = started(&env).await;
    wait_daemon(&mut child, "the edit", exact).await;
    stop(&mut child);
}

/// A fake Telegram of three channels of 20 posts (no 2FA, quotas off), logged in and all
/// three added; their ids.
async fn three_channels() -> (FakeTelegram, Env, Vec<i64>) {
    logged_in_world(3, 20).await
}
