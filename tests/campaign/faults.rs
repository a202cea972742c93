//! `faults`: the matrix. Each row starts the daemon (parser and bot, one channel, three chats
//! subscribed to a word), injects one fault while posts keep arriving, then ends it. Each row
//! says: whether the daemon stayed alive, what readiness said during the fault, how many
//! seconds after the fault ended until readiness passed and every post and alert had arrived,
//! and how many posts and alerts were lost or repeated (targets: 0, 0, 0).

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fake_telegram::FakeTelegram;
use fake_telegram::botapi::UserMessage;
use fake_telegram::faults::{Fault, FaultKind};

use super::checks::*;
use super::{Rng, wait_for};
use crate::common::*;

/// The rows, in the order the matrix runs them.
pub const ROWS: [&str; 17] = [
    "none",
    "mtproto-500",
    "mtproto-503",
    "mtproto-drops",
    "mtproto-latency",
    "mtproto-malformed",
    "flood-wait-storm",
    "revoked-key",
    "botapi-429",
    "botapi-5xx",
    "botapi-hang",
    "botapi-bad-json",
    "botapi-409",
    "disk-full",
    "write-lock",
    "sigstop",
    "clock-jump",
];

const WORD: &str = "alpha";
const CHATS: [i64; 3] = [40_001, 40_002, 40_003];

/// How long the recovery may take before the row says it never recovered.
const RECOVERY_LIMIT: Duration = Duration::from_secs(120);

/// One row of the matrix.
#[derive(Debug, Default)]
pub struct Row {
    pub name: String,
    /// Running (and answering `/livez`) through the fault and after it.
    pub alive: bool,
    /// What readiness said during the fault: each distinct answer, in order.
    pub during: Vec<String>,
    /// Seconds from the fault's end until readiness passed and everything had arrived.
    pub recovered_after: Option<f64>,
    pub posts_lost: usize,
    pub alerts_lost: usize,
    pub alerts_repeated: usize,
    /// What went wrong with the row itself (set-up), if anything.
    pub error: Option<String>,
    /// Where the daemon's log of a row that never recovered is kept.
    pub logs: Option<String>,
}

impl Row {
    /// Whether the row met its targets.
    pub fn passed(&self) -> bool {
        self.error.is_none()
            && self.alive
            && self.recovered_after.is_some()
            && self.posts_lost == 0
            && self.alerts_lost == 0
            && self.alerts_repeated == 0
    }
}

/// Whether readiness passes (200; checks may warn).
fn ready(env: &Env) -> bool {
    tgparser::cli::http_get(env.health_addr(), "/readyz", Duration::from_millis(800))
        .is_ok_and(|(code, _)| code == 200)
}

/// Readiness in a few words: the status and the checks that did not pass.
fn readiness(env: &Env) -> String {
    let Ok((code, body)) =
        tgparser::cli::http_get(env.health_addr(), "/readyz", Duration::from_millis(800))
    else {
        return "no answer".into();
    };
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let mut failing = Vec::new();
    if let Some(checks) = doc["checks"].as_object() {
        for (name, list) in checks {
            for c in list.as_array().into_iter().flatten() {
                let status = c["status"].as_str().unwrap_or("?");
                if status != "pass" {
                    let out: String = c["output"]
                        .as_str()
                        .unwrap_or("")
                        .chars()
                        .take(70)
                        .collect();
                    failing.push(format!("{name} {status}: {out}"));
                }
            }
        }
    }
    if failing.is_empty() {
        code.to_string()
    } else {
        format!("{code} {}", failing.join("; "))
    }
}

/// The matrix's set-up: a fake (bot limits on), the daemon with an open bot, one channel
/// backfilled, three chats subscribed.
struct Stage {
    fake: FakeTelegram,
    env: Env,
    child: Child,
    ch: i64,
    name: String,
    _disk: Option<disk::Tmpfs>,
}

async fn stage(row: &str) -> Result<Stage, String> {
    // Write failures show within a second, not after the default busy wait; an idle parser
    // notices a dead session within a second.
    let (fake, env) = super::bot_stage(30, "[telegram.guard]\nheartbeat_secs = 0.5\n").await?;
    let cfg = std::fs::read_to_string(env.path("config.toml")).map_err(|e| e.to_string())?;
    std::fs::write(
        env.path("config.toml"),
        cfg.replacen("[store]\n", "[store]\nbusy_timeout_ms = 1000\n", 1),
    )
    .map_err(|e| e.to_string())?;
    let disk = if row == "disk-full" {
        Some(disk::Tmpfs::mount(&env.state_dir(), "48m")?)
    } else {
        None
    };
    let name = fake.info.channels[0].clone();
    let ch = fake.world.channel_id(&name).ok_or("no channel")?;
    login_and_add(&env, &fake, std::slice::from_ref(&name)).await;
    let child = if row == "clock-jump" {
        start_under_faketime(&env).await?
    } else {
        start_with_bot(&env).await
    };
    for c in CHATS {
        fake.bot.user_message(&UserMessage {
            user_id: c,
            text: Some(format!("/subscribe {WORD}")),
            ..Default::default()
        });
    }
    wait_for("the subscriptions", Duration::from_secs(30), || {
        sql(&env, "SELECT count(*) FROM subscriptions") == CHATS.len().to_string()
    })
    .await?;
    wait_for("the backfill", Duration::from_secs(30), || {
        exact_posts(&fake, &env, ch).is_ok()
    })
    .await?;
    Ok(Stage {
        fake,
        env,
        child,
        ch,
        name,
        _disk: disk,
    })
}

/// libfaketime, as Debian installs it (`faketime`).
pub const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// The daemon with its wall clock read from `clock` in the environment's directory (a
/// libfaketime offset, "+0" to begin with; monotonic clocks left alone, as a clock jump leaves
/// them), started and its bot running.
async fn start_under_faketime(env: &Env) -> Result<Child, String> {
    if !std::path::Path::new(LIBFAKETIME).exists() {
        return Err(format!(
            "{LIBFAKETIME} is missing: apt-get install faketime"
        ));
    }
    let clock = env.path("clock");
    std::fs::write(&clock, "+0\n").map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(env.dir.path().join("notify.sock"));
    let notify = NotifySocket::new(env.dir.path());
    let clock = clock.to_string_lossy().into_owned();
    let mut child = spawn_daemon_with(
        env,
        Some(&notify),
        &[
            ("LD_PRELOAD", LIBFAKETIME),
            ("FAKETIME_TIMESTAMP_FILE", &clock),
            ("FAKETIME_CACHE_DURATION", "1"),
            ("DONT_FAKE_MONOTONIC", "1"),
        ],
    );
    if let Err(seen) = notify.wait_for("READY=1", Duration::from_secs(20)) {
        super::kill9(&mut child);
        return Err(format!("no READY=1 under libfaketime: {seen:?}"));
    }
    let running = wait_for("the bot to run", Duration::from_secs(20), || {
        tgparser::cli::http_get(env.health_addr(), "/readyz", Duration::from_millis(800)).is_ok_and(
            |(_, body)| {
                body.contains(
                    "\"part:bot\":[{\"componentType\":\"component\",\"observedValue\":\"running\"",
                )
            },
        )
    })
    .await;
    if let Err(why) = running {
        super::kill9(&mut child);
        return Err(why);
    }
    Ok(child)
}

/// A fault and how it ends.
enum Injected {
    /// Cleared with the fake's faults.
    Faults,
    /// The session was ended elsewhere: the admin logs in again through the bot.
    Revoked,
    /// The state directory's disk was filled.
    Full,
    /// Another program holds the database's write lock.
    Lock(Child),
    /// The daemon was stopped with SIGSTOP.
    Stopped,
    /// Another program polls the bot's updates.
    Poller(
        std::sync::Arc<std::sync::atomic::AtomicBool>,
        std::thread::JoinHandle<()>,
    ),
    /// The daemon's clock runs ahead (`clock` file of libfaketime).
    Clock(std::path::PathBuf),
}

fn fault(kind: FaultKind, method: Option<&str>) -> Fault {
    Fault {
        kind,
        method: method.map(str::to_string),
        count: 0,
    }
}

fn signal(child: &Child, sig: &str) {
    let _ = Command::new("kill")
        .arg(sig)
        .arg(child.id().to_string())
        .status();
}

fn inject(s: &mut Stage, row: &str) -> Result<Injected, String> {
    let f = &s.fake.faults;
    Ok(match row {
        // The reference: the same posts and alerts with no fault (alerts to one chat go at
        // Telegram's one message a second, which bounds every row's recovery).
        "none" => Injected::Faults,
        "mtproto-500" => {
            f.add(fault(FaultKind::Rpc500, None));
            Injected::Faults
        }
        "mtproto-503" => {
            f.add(fault(FaultKind::Timeout503, None));
            Injected::Faults
        }
        "mtproto-drops" => {
            f.add(fault(FaultKind::Drop { after: 2 }, None));
            Injected::Faults
        }
        "mtproto-latency" => {
            f.add(fault(FaultKind::Latency { ms: 1_500 }, None));
            Injected::Faults
        }
        "mtproto-malformed" => {
            f.add(fault(FaultKind::MalformedFrame, None));
            Injected::Faults
        }
        "flood-wait-storm" => {
            f.add(fault(FaultKind::FloodWait { secs: 3 }, None));
            Injected::Faults
        }
        "revoked-key" => {
            s.fake.shared.log_out_user(None);
            Injected::Revoked
        }
        "botapi-429" => {
            f.add(fault(
                FaultKind::TooMany { retry_after: 2 },
                Some("sendMessage"),
            ));
            Injected::Faults
        }
        "botapi-5xx" => {
            f.add(fault(FaultKind::Status { code: 502 }, Some("sendMessage")));
            Injected::Faults
        }
        "botapi-hang" => {
            // Past the Bot API call's 30-second timeout, once.
            f.add(Fault {
                kind: FaultKind::Hang { ms: 35_000 },
                method: Some("sendMessage".into()),
                count: 1,
            });
            Injected::Faults
        }
        "botapi-bad-json" => {
            f.add(fault(FaultKind::MalformedJson, Some("sendMessage")));
            Injected::Faults
        }
        "botapi-409" => {
            // A second instance polling the same token: each of its calls ends the daemon's
            // (Telegram answers the one overtaken 409).
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let (addr, token, flag) = (
                s.fake.info.bot_api,
                s.fake.info.bot_token.clone(),
                stop.clone(),
            );
            let poller = std::thread::spawn(move || {
                while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                    let path = format!("/bot{token}/getUpdates?timeout=1");
                    let _ = tgparser::cli::http_get(addr, &path, Duration::from_secs(5));
                }
            });
            Injected::Poller(stop, poller)
        }
        "disk-full" => {
            disk::fill(&s.env.state_dir());
            Injected::Full
        }
        "write-lock" => {
            let mut holder = Command::new("sqlite3")
                .arg(s.env.state_dir().join("tgparser.db"))
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .spawn()
                .map_err(|e| format!("sqlite3: {e}"))?;
            let stdin = holder.stdin.as_mut().ok_or("no stdin")?;
            stdin
                .write_all(b".timeout 10000\nBEGIN IMMEDIATE;\nUPDATE write_probe SET at = 1;\n")
                .map_err(|e| e.to_string())?;
            stdin.flush().map_err(|e| e.to_string())?;
            Injected::Lock(holder)
        }
        "sigstop" => {
            signal(&s.child, "-STOP");
            Injected::Stopped
        }
        "clock-jump" => {
            // The wall clock jumps two hours ahead (a wrong clock set right by NTP later),
            // while the Bot API asks for a pause, so alerts wait for retries scheduled by the
            // clock ahead when it is set right.
            f.add(fault(
                FaultKind::TooMany { retry_after: 2 },
                Some("sendMessage"),
            ));
            let clock = s.env.path("clock");
            std::fs::write(&clock, "+2h\n").map_err(|e| e.to_string())?;
            Injected::Clock(clock)
        }
        other => return Err(format!("no fault row {other}")),
    })
}

async fn end(s: &mut Stage, injected: Injected) -> Result<(), String> {
    match injected {
        Injected::Faults => s.fake.faults.clear(),
        Injected::Revoked => {
            let spaced: Vec<String> = s.fake.info.code.chars().map(|c| c.to_string()).collect();
            for say in [
                "/login".to_string(),
                s.fake.info.phone.clone(),
                spaced.join(" "),
            ] {
                bot::ask(&s.fake, bot::ADMIN, &say).await;
            }
        }
        Injected::Full => {
            std::fs::remove_file(s.env.state_dir().join("filler")).map_err(|e| e.to_string())?;
        }
        Injected::Lock(mut holder) => {
            if let Some(mut stdin) = holder.stdin.take() {
                let _ = stdin.write_all(b"ROLLBACK;\n.quit\n");
            }
            let _ = holder.wait();
        }
        Injected::Stopped => signal(&s.child, "-CONT"),
        Injected::Poller(stop, poller) => {
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            let _ = poller.join();
        }
        Injected::Clock(file) => {
            std::fs::write(&file, "+0\n").map_err(|e| e.to_string())?;
            s.fake.faults.clear();
        }
    }
    Ok(())
}

/// Posts for `dur`, one every 150 to 400 ms, a quarter of them holding the word; before one
/// in five, posts nobody is told of (a gap the daemon must fetch, through the calls the faults
/// hit).
async fn post_for(s: &Stage, rng: &mut Rng, dur: Duration) {
    let t = Instant::now();
    while t.elapsed() < dur {
        if rng.chance(20) {
            for _ in 0..rng.range(1, 4) {
                let text = super::archive::post_text(rng, "unseen");
                s.fake.world.post_with(s.ch, true, |id| {
                    fake_telegram::world::Post::text(id, fake_telegram::world::unix_now(), text)
                });
            }
        }
        let text = if rng.chance(25) {
            format!("{WORD} {}", super::archive::post_text(rng, "fault"))
        } else {
            super::archive::post_text(rng, "fault")
        };
        s.fake.world.post(s.ch, &text);
        tokio::time::sleep(rng.millis(150, 400)).await;
    }
}

/// Runs one row, the fault lasting `during` (long enough for a breaker to open, 20 s, shows
/// what readiness says of a fault that goes on; shorter, of a blip).
pub async fn row(name: &str, seed: u64, during: Duration) -> Row {
    let mut r = Row {
        name: name.to_string(),
        ..Default::default()
    };
    if let Err(e) = run_row(name, seed, during, &mut r).await {
        r.error = Some(e);
    }
    r
}

async fn run_row(name: &str, seed: u64, during: Duration, r: &mut Row) -> Result<(), String> {
    let mut rng = Rng::new(seed, name, 0);
    let mut s = stage(name).await?;
    let injected = inject(&mut s, name)?;
    let mut alive = true;
    {
        let sampler = async {
            let t = Instant::now();
            while t.elapsed() < during {
                let said = readiness(&s.env);
                // "failed for 3 s" and "for 4 s" are the same answer.
                let shape = |t: &str| t.replace(|c: char| c.is_ascii_digit(), "");
                if r.during.last().map(|l| shape(l)) != Some(shape(&said)) && r.during.len() < 8 {
                    r.during.push(said);
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        };
        let mut post_rng = rng.clone();
        tokio::join!(sampler, post_for(&s, &mut post_rng, during));
    }
    alive &= matches!(s.child.try_wait(), Ok(None));
    let t = Instant::now();
    end(&mut s, injected).await?;
    // A few posts after the fault too: the daemon must be working again, not only caught up.
    post_for(&s, &mut rng, Duration::from_secs(1)).await;
    let recovered = wait_for("the recovery", RECOVERY_LIMIT, || {
        ready(&s.env)
            && exact_posts(&s.fake, &s.env, s.ch).is_ok()
            && every_alert_once(&s.fake, &s.env, s.ch, &s.name, &CHATS, WORD).is_ok()
    })
    .await;
    match recovered {
        Ok(()) => r.recovered_after = Some(t.elapsed().as_secs_f64()),
        Err(_) => {
            r.logs = Some(super::keep_logs(name, 0, &[stderr_of(&mut s.child)]));
        }
    }
    let stored: std::collections::BTreeSet<i32> = stored_ids(&s.env, s.ch).into_iter().collect();
    r.posts_lost = world_ids(&s.fake, s.ch)
        .into_iter()
        .filter(|id| !stored.contains(id))
        .count();
    let got = delivered_alerts(&s.fake);
    let matching = world_view(&s.fake, s.ch)
        .into_iter()
        .filter(|(_, t)| t.contains(WORD))
        .count();
    r.alerts_lost = (CHATS.len() * matching).saturating_sub(got.len());
    r.alerts_repeated = got.values().map(|n| n - 1).sum();
    alive &= matches!(s.child.try_wait(), Ok(None))
        && tgparser::cli::http_get(s.env.health_addr(), "/livez", Duration::from_secs(2))
            .is_ok_and(|(c, _)| c == 200);
    r.alive = alive;
    sigterm(&s.child);
    let (code, _) = wait_exit(&mut s.child, Duration::from_secs(15));
    if code != Some(0) {
        r.alive = false;
    }
    Ok(())
}

/// The matrix as a table.
pub fn table(seed: u64, during: Duration, rows: &[Row]) -> String {
    let mut s = format!(
        "fault matrix, seed {seed}, each fault lasting {} s\n{:<18} {:>5} {:>9} {:>10} {:>12} {:>8}  readiness during the fault\n",
        during.as_secs(),
        "fault",
        "alive",
        "recovered",
        "posts lost",
        "alerts lost",
        "repeated"
    );
    for r in rows {
        let during = match &r.error {
            Some(e) => format!("ROW FAILED: {}", super::one_line(e)),
            None => r.during.join(" | "),
        };
        let during = match &r.logs {
            Some(l) => format!("{during} {l}"),
            None => during,
        };
        s.push_str(&format!(
            "{:<18} {:>5} {:>9} {:>10} {:>12} {:>8}  {}\n",
            r.name,
            if r.alive { "yes" } else { "NO" },
            r.recovered_after
                .map(|s| format!("{s:.1} s"))
                .unwrap_or_else(|| "never".into()),
            r.posts_lost,
            r.alerts_lost,
            r.alerts_repeated,
            during
        ));
    }
    s
}
