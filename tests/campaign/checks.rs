//! What every round checks, each returning what it found wrong.

use std::collections::BTreeMap;

use fake_telegram::FakeTelegram;

pub use crate::common::bot::delivered_alerts;
use crate::common::{Env, sql, stored_view, world_view};

/// `tgparser check`, as an operator runs it after a crash: the database's integrity, the
/// search index word for word against the posts, FTS5's structure check (the daemon is not
/// running when the campaign calls it). Nothing to check before the database exists.
pub fn archive_sound(env: &Env) -> Result<(), String> {
    if !env.state_dir().join("tgparser.db").exists() {
        return Ok(());
    }
    let mut out = env.run(&["check"]);
    if String::from_utf8_lossy(&out.stderr).contains("run `tgparser migrate`") {
        // Killed during the first start's migrations (each its own transaction): the next
        // start applies the rest, as `migrate` does; then the archive must be sound.
        let m = env.run(&["migrate"]);
        if m.status.code() != Some(0) {
            return Err(format!(
                "migrate after the kill: {}",
                String::from_utf8_lossy(&m.stderr)
            ));
        }
        out = env.run(&["check"]);
    }
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.code() != Some(0) {
        return Err(format!(
            "tgparser check failed ({:?}): {said}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    if !said.contains("index structure  ok") {
        return Err(format!("the index structure was not checked: {said}"));
    }
    Ok(())
}

/// As [`archive_sound`], and the search index must be built (not under way).
pub fn archive_sound_and_indexed(env: &Env) -> Result<(), String> {
    archive_sound(env)?;
    let out = env.run(&["check"]);
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    if !said.contains("search index     ok") {
        return Err(format!("the search index is not complete: {said}"));
    }
    Ok(())
}

/// The store holds exactly the posts the fake holds for `channel` (ids and texts; deleted
/// posts marked deleted): nothing lost, nothing extra, every edit and deletion applied.
pub fn exact_posts(fake: &FakeTelegram, env: &Env, channel: i64) -> Result<(), String> {
    let want: BTreeMap<i32, String> = world_view(fake, channel).into_iter().collect();
    let have: BTreeMap<i32, String> = stored_view(env, channel).into_iter().collect();
    if want == have {
        return Ok(());
    }
    let missing: Vec<i32> = want
        .keys()
        .filter(|k| !have.contains_key(k))
        .copied()
        .collect();
    let extra: Vec<i32> = have
        .keys()
        .filter(|k| !want.contains_key(k))
        .copied()
        .collect();
    let stale: Vec<i32> = want
        .iter()
        .filter(|(k, v)| have.get(k).is_some_and(|h| h != *v))
        .map(|(k, _)| *k)
        .collect();
    Err(format!(
        "channel {channel}: {} posts missing {:?}, {} not deleted {:?}, {} with old text {:?}",
        missing.len(),
        &missing[..missing.len().min(12)],
        extra.len(),
        &extra[..extra.len().min(12)],
        stale.len(),
        &stale[..stale.len().min(12)]
    ))
}

/// Whether [`exact_posts`] holds for every channel (for waiting).
pub fn all_exact(fake: &FakeTelegram, env: &Env, channels: &[i64]) -> bool {
    channels.iter().all(|c| exact_posts(fake, env, *c).is_ok())
}

/// Every channel's posts exact, as the first difference found.
pub fn every_exact(fake: &FakeTelegram, env: &Env, channels: &[i64]) -> Result<(), String> {
    channels.iter().try_for_each(|c| exact_posts(fake, env, *c))
}

/// No gap is left waiting to be fetched again (after a recovery that stored everything).
pub fn no_refills_left(env: &Env) -> Result<(), String> {
    match sql(
        env,
        "SELECT group_concat(channel_id || ':' || after_id || '-' || before_id, ' ') FROM refills",
    )
    .as_str()
    {
        "" => Ok(()),
        left => Err(format!("gaps still queued after the recovery: {left}")),
    }
}

/// The backfill's promise, checked right after a kill: every post at or above the channel's
/// backfill cursor (up to the newest stored) is stored, and the cursor never moved back up.
pub fn nothing_skipped_above_the_cursor(
    fake: &FakeTelegram,
    env: &Env,
    channel: i64,
    previous_cursor: &mut i64,
) -> Result<(), String> {
    let cursor: i64 = sql(
        env,
        &format!(
            "SELECT coalesce(backfill_cursor, 9223372036854775807) FROM channels WHERE id = {channel}"
        ),
    )
    .parse()
    .map_err(|e| format!("no cursor for channel {channel}: {e}"))?;
    if cursor > *previous_cursor {
        return Err(format!(
            "channel {channel}: the backfill cursor moved back up from {previous_cursor} to {cursor}"
        ));
    }
    *previous_cursor = cursor;
    if cursor == i64::MAX {
        return Ok(());
    }
    let have: std::collections::BTreeSet<i32> = crate::common::stored_ids(env, channel)
        .into_iter()
        .collect();
    let newest = have.iter().next_back().copied().unwrap_or(0);
    let missing: Vec<i32> = crate::common::world_ids(fake, channel)
        .into_iter()
        .filter(|id| i64::from(*id) >= cursor && *id <= newest && !have.contains(id))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "channel {channel}: {} posts at or above the cursor {cursor} not stored: {:?}",
            missing.len(),
            &missing[..missing.len().min(12)]
        ))
    }
}

/// Every post of `channel` (username `name`) whose text holds `word` reached every chat in
/// `chats`, and no more often than its outbox row was attempted (a repeat is allowed only for
/// a message whose call was in flight at a kill: claimed, counted, then sent again); no other
/// post was alerted.
pub fn every_alert_once(
    fake: &FakeTelegram,
    env: &Env,
    channel: i64,
    name: &str,
    chats: &[i64],
    word: &str,
) -> Result<(), String> {
    let got = delivered_alerts(fake);
    let matching: Vec<i32> = world_view(fake, channel)
        .into_iter()
        .filter(|(_, t)| t.to_lowercase().contains(word))
        .map(|(id, _)| id)
        .collect();
    // (chat, post) → attempts of its alert row (`alert:<subscription>:<channel>:<post>`).
    let attempts: BTreeMap<(i64, i32), i64> = sql(
        env,
        "SELECT chat_id || '|' || dedupe_key || '|' || attempts FROM outbox WHERE kind = 'alert'",
    )
    .lines()
    .filter_map(|l| {
        let mut f = l.split('|');
        let chat = f.next()?.parse().ok()?;
        let key = f.next()?;
        let tries = f.next()?.parse().ok()?;
        let (ch, post) = key.rsplit_once(':')?;
        ch.ends_with(&format!(":{channel}"))
            .then_some(((chat, post.parse().ok()?), tries))
    })
    .collect();
    let mut lost = Vec::new();
    let mut repeated = Vec::new();
    for chat in chats {
        for id in &matching {
            let link = format!("https://t.me/{name}/{id}");
            let n = got.get(&(*chat, link)).copied().unwrap_or(0);
            if n == 0 {
                lost.push((*chat, *id));
                continue;
            }
            let tries = attempts.get(&(*chat, *id)).copied().unwrap_or(0);
            if n as i64 > tries {
                repeated.push((*chat, *id, n, tries));
            }
        }
    }
    let alerted_posts = got.len();
    let expected = chats.len() * matching.len();
    if !lost.is_empty() || !repeated.is_empty() || alerted_posts != expected {
        return Err(format!(
            "{} of {expected} alerts never arrived {:?}; {} arrived more often than attempted \
             (chat, post, received, attempts) {:?}; {alerted_posts} (chat, post) pairs alerted",
            lost.len(),
            &lost[..lost.len().min(8)],
            repeated.len(),
            &repeated[..repeated.len().min(8)]
        ));
    }
    Ok(())
}
