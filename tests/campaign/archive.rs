//! The archive's crash phases: backfill, live follow with gaps, media downloads, and the
//! rebuild a reindexing migration asks for.

use std::process::Stdio;
use std::time::{Duration, Instant};

use fake_telegram::flood::QuotaMode;
use fake_telegram::world::{Media, Post, unix_now};
use fake_telegram::{FakeTelegram, Options};

use super::checks::*;
use super::{Rng, Tally, guarded, keep_logs, kill9, wait_for};
use crate::common::*;

/// Words the posts are made of: several scripts, so the index's word cutting is exercised.
const WORDS: &[&str] = &[
    "market",
    "bitcoin",
    "release",
    "ёлка",
    "новости",
    "東京",
    "比特币",
    "ราคา",
    "비트코인",
    "price",
    "rocket",
    "🚀",
    "über",
    "café",
    "delta",
    "news",
    "update",
    "launch",
];

pub fn post_text(rng: &mut Rng, tag: &str) -> String {
    let n = rng.range(2, 14);
    let mut s = String::from(tag);
    for _ in 0..n {
        s.push(' ');
        s.push_str(WORDS[rng.range(0, WORDS.len() as u64) as usize]);
    }
    s
}

async fn fake(channels: usize, posts: usize) -> Result<FakeTelegram, String> {
    FakeTelegram::start(Options {
        channels,
        posts,
        password: None,
        quotas: QuotaMode::Off,
        ..Default::default()
    })
    .await
    .map_err(|e| format!("the fake did not start: {e}"))
}

fn channel_ids(fake: &FakeTelegram) -> Vec<i64> {
    fake.info
        .channels
        .iter()
        .filter_map(|n| fake.world.channel_id(n))
        .collect()
}

/// A new channel of `n` posts, added with `channels add`.
async fn add_channel(
    fake: &FakeTelegram,
    env: &Env,
    name: &str,
    n: u64,
    rng: &mut Rng,
) -> Result<i64, String> {
    let ch = fake.world.add_channel(Some(name), name, "", 1_000);
    let start = unix_now() - n as i32;
    for i in 0..n {
        let text = post_text(rng, &format!("post {i}"));
        fake.world
            .post_with(ch, true, |id| Post::text(id, start + i as i32, text));
    }
    let out = run_with_input(env, &["channels", "add", name], "").await;
    if out.status.code() != Some(0) {
        return Err(format!("channels add: {}", text(&out)));
    }
    Ok(ch)
}

/// Kills `child` after `wait`; an exit before that must have been a success.
async fn kill_after(child: &mut std::process::Child, wait: Duration) -> Result<(), String> {
    tokio::time::sleep(wait).await;
    if let Ok(Some(st)) = child.try_wait()
        && !st.success()
    {
        return Err(format!("tgparser backfill failed before the kill: {st}"));
    }
    kill9(child);
    Ok(())
}

/// Backfill: each round a new channel of 1,000 to 5,000 posts, `tgparser backfill` killed at
/// a random moment of it; the cursor never moves back and nothing at or above it is missing;
/// the next run completes it exactly; then the channel is purged.
pub async fn backfill(rounds: usize, seed: u64, tally: &mut Tally) -> Result<(), String> {
    let fake = fake(1, 10).await?;
    let env = telegram_env(&fake);
    login_and_add(&env, &fake, &[]).await;
    // How long a whole run takes (start, connect, 3,000 posts): the kills are drawn over it.
    let full = {
        let mut rng = Rng::new(seed, "backfill", usize::MAX);
        add_channel(&fake, &env, "backfillwarm", 3_000, &mut rng).await?;
        let t = Instant::now();
        let out = run_with_input(&env, &["backfill"], "").await;
        if out.status.code() != Some(0) {
            return Err(format!("a backfill without a kill: {}", text(&out)));
        }
        t.elapsed()
    };
    for round in 0..rounds {
        let mut rng = Rng::new(seed, "backfill", round);
        let r = guarded(async {
            let n = rng.range(1_000, 5_000);
            let ch = add_channel(&fake, &env, &format!("backfill{round}"), n, &mut rng).await?;
            let mut child = env
                .cmd(&["backfill"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| e.to_string())?;
            let wait = rng.millis(0, (full.as_millis() as u64 * 12 / 10).max(50));
            kill_after(&mut child, wait).await?;
            let state = sql(
                &env,
                &format!("SELECT backfill_state FROM channels WHERE id = {ch}"),
            );
            if state != "done" {
                tally.mid_work += 1;
            }
            archive_sound(&env)?;
            let mut cursor = i64::MAX;
            nothing_skipped_above_the_cursor(&fake, &env, ch, &mut cursor)?;
            let out = run_with_input(&env, &["backfill"], "").await;
            if out.status.code() != Some(0) {
                return Err(format!("the backfill after the kill: {}", text(&out)));
            }
            exact_posts(&fake, &env, ch)?;
            // Purged, so every round's checks read an archive of one channel's size.
            let name = format!("backfill{round}");
            let out = run_with_input(&env, &["channels", "remove", &name, "--purge"], "").await;
            if out.status.code() != Some(0) {
                return Err(format!("channels remove --purge: {}", text(&out)));
            }
            Ok(())
        })
        .await;
        tally.record(round, r);
    }
    Ok(())
}

/// Changes as a channel's life makes them, for `dur`: posts, edits, deletions, and posts
/// nobody is told of (a gap the next push reveals).
pub async fn produce(
    fake: &FakeTelegram,
    channels: &[i64],
    rng: &mut Rng,
    dur: Duration,
    word: Option<&str>,
) {
    let t = Instant::now();
    while t.elapsed() < dur {
        let ch = channels[rng.range(0, channels.len() as u64) as usize];
        let roll = rng.range(0, 100);
        let tag = match word {
            Some(w) if rng.chance(15) => format!("{w} alert"),
            _ => "live".to_string(),
        };
        let text = post_text(rng, &tag);
        if roll < 72 {
            fake.world.post(ch, &text);
        } else if roll < 82 {
            let ids: Vec<i32> = fake.world.lock().channels[&ch]
                .posts
                .keys()
                .copied()
                .collect();
            if !ids.is_empty() && word.is_none() {
                let id = ids[rng.range(0, ids.len() as u64) as usize];
                let _ = fake.world.edit(ch, id, &post_text(rng, "edited"));
            }
        } else if roll < 88 {
            let ids: Vec<i32> = fake.world.lock().channels[&ch]
                .posts
                .keys()
                .copied()
                .collect();
            if ids.len() > 10 && word.is_none() {
                let id = ids[rng.range(0, ids.len() as u64) as usize];
                let _ = fake.world.delete(ch, &[id]);
            }
        } else {
            for _ in 0..rng.range(1, 6) {
                let text = post_text(rng, &tag);
                fake.world
                    .post_with(ch, true, |id| Post::text(id, unix_now(), text));
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.range(2, 20))).await;
    }
}

/// While the daemon is down: more happens in one channel than the fake's difference hands out
/// (500 events), so the next catch-up is "too long" and only a recheck from history finds the
/// edits and deletions of older posts made meanwhile.
fn long_outage(fake: &FakeTelegram, channels: &[i64], rng: &mut Rng) {
    let ch = channels[rng.range(0, channels.len() as u64) as usize];
    let ids: Vec<i32> = fake.world.lock().channels[&ch]
        .posts
        .values()
        .filter(|p| p.action.is_none())
        .map(|p| p.id)
        .collect();
    for _ in 0..3 {
        if let Some(&id) = ids.get(rng.range(0, ids.len() as u64) as usize) {
            let _ = fake
                .world
                .edit(ch, id, &post_text(rng, "edited while down"));
        }
    }
    if ids.len() > 10 {
        let id = ids[rng.range(0, ids.len() as u64) as usize];
        let _ = fake.world.delete(ch, &[id]);
    }
    for _ in 0..600 {
        fake.world.post(ch, &post_text(rng, "while down"));
    }
}

/// Live follow: the daemon follows three channels while posts, edits, deletions and gaps
/// arrive, and is killed at a random moment; restarted, it stores exactly what the fake holds
/// and no gap is left queued.
pub async fn live(rounds: usize, seed: u64, tally: &mut Tally) -> Result<(), String> {
    let mut stage: Option<LiveStage> = None;
    for round in 0..rounds {
        let mut rng = Rng::new(seed, "live", round);
        if stage.is_none() {
            stage = Some(live_stage().await?);
        }
        let Some(LiveStage {
            fake,
            env,
            channels,
            child,
        }) = stage.as_mut()
        else {
            continue;
        };
        let r = guarded(async {
            let dur = rng.millis(200, 2_000);
            let kill_at = rng.millis(0, dur.as_millis() as u64);
            let mut producer_rng = rng.clone();
            let produced = produce(fake, channels, &mut producer_rng, dur, None);
            let killer = async {
                tokio::time::sleep(kill_at).await;
                kill9(child);
            };
            tokio::join!(produced, killer);
            tally.mid_work += 1;
            let killed_log = stderr_of(child);
            archive_sound(env)?;
            if rng.chance(10) {
                long_outage(fake, channels, &mut rng);
            }
            *child = started(env).await;
            let caught_up = wait_for("the recovery", Duration::from_secs(30), || {
                all_exact(fake, env, channels) && no_refills_left(env).is_ok()
            })
            .await;
            caught_up.map_err(|why| {
                format!(
                    "{why}: {}; {} {}",
                    every_exact(fake, env, channels).err().unwrap_or_default(),
                    no_refills_left(env).err().unwrap_or_default(),
                    keep_logs("live", round, &[killed_log, stderr_of(child)])
                )
            })
        })
        .await;
        if r.is_err() {
            // What this round lost stays lost: the next round starts on a new world, or
            // every later round would fail on it too.
            if let Some(mut s) = stage.take() {
                kill9(&mut s.child);
            }
        }
        tally.record(round, r);
    }
    if let Some(mut s) = stage {
        stop(&mut s.child);
        archive_sound(&s.env)?;
    }
    Ok(())
}

/// The live phase's world: three channels followed by a running daemon, backfilled.
struct LiveStage {
    fake: FakeTelegram,
    env: Env,
    channels: Vec<i64>,
    child: std::process::Child,
}

async fn live_stage() -> Result<LiveStage, String> {
    let fake = fake(3, 50).await?;
    let env = telegram_env(&fake);
    if let Ok(level) = std::env::var("TGPARSER_CAMPAIGN_LOG") {
        let cfg = std::fs::read_to_string(env.path("config.toml")).map_err(|e| e.to_string())?;
        std::fs::write(
            env.path("config.toml"),
            cfg.replace("level = \"info\"", &format!("level = \"{level}\"")),
        )
        .map_err(|e| e.to_string())?;
    }
    login_and_add(&env, &fake, &fake.info.channels.clone()).await;
    let channels = channel_ids(&fake);
    let mut child = started(&env).await;
    let backfilled = wait_for("the first backfill", Duration::from_secs(60), || {
        all_exact(&fake, &env, &channels)
    })
    .await;
    if let Err(why) = backfilled {
        kill9(&mut child);
        return Err(why);
    }
    Ok(LiveStage {
        fake,
        env,
        channels,
        child,
    })
}

/// A file for the media phase: a photo or a document, of a size drawn from `rng`.
fn a_file(rng: &mut Rng, id: i64) -> Media {
    let size = rng.range(200_000, 4_500_000) as i64;
    let mut m = if rng.chance(50) {
        Media::photo(id, 1280, 960, size)
    } else {
        Media::document(id, "application/pdf", size, "report.pdf")
    };
    m.dc = [2, 4, 5][rng.range(0, 3) as usize];
    m
}

/// Media: files posted in bursts, the daemon killed while it downloads them; every file a
/// row calls done is byte-exact at every kill (`media verify`), and after the restart every
/// file is stored, byte-exact.
pub async fn media(rounds: usize, seed: u64, tally: &mut Tally) -> Result<(), String> {
    let fake = fake(1, 0).await?;
    let ch = channel_ids(&fake)[0];
    let env = telegram_env_with(
        &fake,
        &format!(
            "{NO_PACING}[media]\nkinds = [\"all\"]\nmax_file_size = \"5 MB\"\nmin_free_space = 1\n"
        ),
    );
    login_and_add(&env, &fake, &fake.info.channels.clone()).await;
    let mut child = started(&env).await;
    let mut files: Vec<(i64, String)> = Vec::new();
    for round in 0..rounds {
        let mut rng = Rng::new(seed, "media", round);
        let r = guarded(async {
            for i in 0..rng.range(2, 7) {
                let m = a_file(&mut rng, 100_000 + round as i64 * 10 + i as i64);
                let sha = m.sha256(false);
                let id = fake
                    .world
                    .post_media(ch, &post_text(&mut rng, "file"), m)
                    .ok_or("no channel")?;
                files.push((i64::from(id), sha));
            }
            tokio::time::sleep(rng.millis(0, 300)).await;
            // Mid-work: not every file posted so far was stored when the kill came.
            let done: usize = sql(&env, "SELECT count(*) FROM media WHERE state = 'done'")
                .parse()
                .unwrap_or(0);
            if done < files.len() {
                tally.mid_work += 1;
            }
            kill9(&mut child);
            archive_sound(&env)?;
            let out = env.run(&["media", "verify"]);
            if out.status.code() != Some(0) {
                return Err(format!("media verify after the kill: {}", text(&out)));
            }
            child = started(&env).await;
            let want = format!("{} 0", files.len());
            wait_for("every file", Duration::from_secs(90), || {
                sql(
                    &env,
                    "SELECT count(*) || ' ' || count(*) FILTER (WHERE state = 'pending') FROM media",
                ) == want
            })
            .await?;
            let got = crate::common::media::rows(&env, ch);
            for (id, sha) in &files {
                let row = got.iter().find(|r| r.0 == *id).ok_or(format!("no media row for post {id}"))?;
                let path = env.state_dir().join(&row.2);
                if row.3 != "done" || row.1 != *sha || !path.is_file() || crate::common::media::sha_of_file(&path) != *sha {
                    return Err(format!("post {id}: {row:?}, want sha256 {sha}"));
                }
            }
            exact_posts(&fake, &env, ch)
        })
        .await;
        tally.record(round, r);
    }
    stop(&mut child);
    Ok(())
}

/// Whether the search index is built (no build under way or asked for).
fn index_built(env: &Env) -> bool {
    sql(
        env,
        "SELECT version != 0 AND pending_from IS NULL FROM search_index",
    ) == "1"
}

/// A reindexing migration: it empties the search index and asks for a build (`version` 0), as
/// 0006, 0008, 0009, 0016 and 0017 did; the daemon builds it in batches at start, killed at a
/// random moment of the build while posts keep arriving. Every kill leaves a sound archive;
/// the restart finishes the build, and the index then holds every post's words exactly.
pub async fn reindex(rounds: usize, seed: u64, tally: &mut Tally) -> Result<(), String> {
    let posts = if cfg!(debug_assertions) {
        20_000
    } else {
        40_000
    };
    let fake = fake(1, posts).await?;
    let channels = channel_ids(&fake);
    let env = telegram_env(&fake);
    login_and_add(&env, &fake, &fake.info.channels.clone()).await;
    let mut child = started(&env).await;
    wait_for("the backfill", Duration::from_secs(300), || {
        all_exact(&fake, &env, &channels)
    })
    .await?;
    stop(&mut child);
    // How long a build takes: the kills are drawn over it.
    sql_write(&env, "UPDATE search_index SET version = 0");
    let t = Instant::now();
    let mut child = spawn_daemon(&env, None);
    let built = wait_for("the first build", Duration::from_secs(300), || {
        index_built(&env)
    })
    .await;
    if let Err(why) = built {
        kill9(&mut child);
        return Err(why);
    }
    let build = t.elapsed();
    stop(&mut child);
    for round in 0..rounds {
        let mut rng = Rng::new(seed, "reindex", round);
        let r = guarded(async {
            sql_write(&env, "UPDATE search_index SET version = 0");
            let mut child = spawn_daemon(&env, None);
            let kill_at = rng.millis(0, build.as_millis() as u64 * 12 / 10 + 1);
            let mut producer_rng = rng.clone();
            let produced = produce(&fake, &channels, &mut producer_rng, kill_at, None);
            tokio::join!(produced, tokio::time::sleep(kill_at));
            kill9(&mut child);
            if !index_built(&env) {
                tally.mid_work += 1;
            }
            archive_sound(&env)?;
            let mut child = started(&env).await;
            let done = wait_for(
                "the build and the recovery",
                Duration::from_secs(120),
                || index_built(&env) && all_exact(&fake, &env, &channels),
            )
            .await;
            stop(&mut child);
            done.map_err(|why| {
                format!(
                    "{why}: {}",
                    every_exact(&fake, &env, &channels)
                        .err()
                        .unwrap_or_default()
                )
            })?;
            archive_sound_and_indexed(&env)
        })
        .await;
        tally.record(round, r);
    }
    Ok(())
}
