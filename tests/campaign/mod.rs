//! The reliability campaign: the release daemon against the fake Telegram, killed with SIGKILL
//! at random moments (`crash`) or run through injected faults (`faults`), every round checked
//! against what the fake holds. `benches/reliability.rs` runs it in full and prints its tables
//! (`scripts/reliability`); `tests/reliability.rs` runs a few rounds of each in every CI.
//!
//! Every round's randomness comes from the campaign's seed (printed with the table), so a
//! failure replays with the same `--seed`, phase and number of rounds (the kill lands at the
//! same moment of the round; Telegram's side and the scheduler are not replayed).

#![allow(dead_code)]

mod archive;
pub mod checks;
pub mod crash;
mod delivery;
pub mod faults;

use std::time::{Duration, Instant};

/// splitmix64: small, seedable, good enough to pick kill moments and post texts.
#[derive(Clone)]
pub struct Rng(pub u64);

impl Rng {
    pub fn new(campaign: u64, phase: &str, round: usize) -> Rng {
        let mut h = campaign ^ 0x9e37_79b9_7f4a_7c15;
        for b in phase.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        Rng(h ^ (round as u64).wrapping_mul(0xbf58_476d_1ce4_e5b9))
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `lo..hi` (`lo` when the range is empty).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next() % (hi - lo)
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    pub fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(self.range(lo, hi))
    }
}

/// What one phase (or fault row) came to.
#[derive(Debug, Default)]
pub struct Tally {
    pub name: String,
    pub rounds: usize,
    pub passed: usize,
    /// (round, what went wrong): the first few.
    pub failures: Vec<(usize, String)>,
    pub took: Duration,
    /// Kills that landed while the phase's work was under way (not before it began or after it
    /// ended): how many rounds tested a crash mid-work.
    pub mid_work: usize,
}

impl Tally {
    pub fn new(name: &str) -> Tally {
        Tally {
            name: name.to_string(),
            ..Default::default()
        }
    }

    pub fn record(&mut self, round: usize, result: Result<(), String>) {
        self.rounds += 1;
        match result {
            Ok(()) => self.passed += 1,
            Err(why) => {
                eprintln!("{} round {round} FAILED: {why}", self.name);
                if self.failures.len() < 5 {
                    self.failures.push((round, why));
                }
            }
        }
    }
}

/// Runs `round` and turns a panic inside it (a helper's assertion) into a failure.
pub async fn guarded<F: std::future::Future<Output = Result<(), String>>>(
    round: F,
) -> Result<(), String> {
    use futures::FutureExt;
    match std::panic::AssertUnwindSafe(round).catch_unwind().await {
        Ok(r) => r,
        Err(p) => Err(p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panicked".into())),
    }
}

/// Polls `f` every 50 ms until it holds, or says what it waited for.
pub async fn wait_for(
    what: &str,
    limit: Duration,
    mut f: impl FnMut() -> bool,
) -> Result<(), String> {
    let t = Instant::now();
    while !f() {
        if t.elapsed() > limit {
            return Err(format!("timed out after {limit:?} waiting for {what}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Kills `child` with SIGKILL and reaps it.
pub fn kill9(child: &mut std::process::Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Keeps the daemons' logs of a failed round in the system's temporary directory; returns
/// where, for the failure's message.
pub fn keep_logs(phase: &str, round: usize, logs: &[String]) -> String {
    let path = std::env::temp_dir().join(format!("tgparser-campaign-{phase}-{round}.log"));
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::write(&path, logs.join("\n----- the next start -----\n"));
    format!("(the daemons' logs: {})", path.display())
}

/// A fake Telegram of one channel of `posts` posts (no 2FA password, quotas off, the Bot
/// API's limits on), and the daemon's environment on it with an open bot (`digest_after` 0:
/// one message per alert), `extra` appended to its configuration.
pub async fn bot_stage(
    posts: usize,
    extra: &str,
) -> Result<(fake_telegram::FakeTelegram, crate::common::Env), String> {
    let fake = fake_telegram::FakeTelegram::start(fake_telegram::Options {
        channels: 1,
        posts,
        password: None,
        quotas: fake_telegram::flood::QuotaMode::Off,
        bot_limits: true,
        ..Default::default()
    })
    .await
    .map_err(|e| format!("the fake did not start: {e}"))?;
    let env = crate::common::bot_env_for(&fake, &[crate::common::bot::ADMIN], "info");
    let cfg = std::fs::read_to_string(env.path("config.toml")).map_err(|e| e.to_string())?;
    std::fs::write(
        env.path("config.toml"),
        format!(
            "{}{extra}",
            cfg.replace("open = false", "open = true\ndigest_after = 0")
        ),
    )
    .map_err(|e| e.to_string())?;
    Ok((fake, env))
}

/// The crash table: one row per phase.
pub fn crash_table(seed: u64, tallies: &[Tally]) -> String {
    let mut s = format!(
        "crash campaign, seed {seed} (replay: --seed {seed} --phase <phase> --rounds <round + 1>)\n{:<10} {:>7} {:>7} {:>9} {:>8}  first failure\n",
        "phase", "rounds", "passed", "mid-work", "seconds"
    );
    for t in tallies {
        s.push_str(&format!(
            "{:<10} {:>7} {:>7} {:>9} {:>8.1}  {}\n",
            t.name,
            t.rounds,
            t.passed,
            t.mid_work,
            t.took.as_secs_f64(),
            t.failures
                .first()
                .map(|(r, why)| format!("round {r}: {}", one_line(why)))
                .unwrap_or_else(|| "-".into())
        ));
    }
    s
}

pub fn one_line(s: &str) -> String {
    let l: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    l.chars().take(160).collect()
}
