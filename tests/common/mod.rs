//! Helpers shared by the tests that drive the real `tgparser` binary.
#![allow(dead_code)]

pub mod bot;
mod world;

pub use world::*;
pub mod disk;
pub mod media;

use std::net::SocketAddr;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_tgparser");

/// A state directory, a vault key and a config file, all in a temporary directory.
pub struct Env {
    pub dir: tempfile::TempDir,
}

/// Every test's state directory is searched for the secrets its configuration holds (the
/// bot token, the api_hash, the vault key and the pre-shared auth key, as written and as raw
/// bytes) when the test ends: no secret may reach any file in clear, whatever the test did.
impl Drop for Env {
    fn drop(&mut self) {
        if std::thread::panicking() || !self.state_dir().is_dir() {
            return;
        }
        let mut secrets: Vec<(String, Vec<u8>)> = Vec::new();
        for (what, file) in [
            ("the bot token", "bot_token"),
            ("the api_hash", "api_hash"),
            ("the vault key", "vault.key"),
            ("the auth key", "auth_key.hex"),
        ] {
            let Ok(text) = std::fs::read_to_string(self.path(file)) else {
                continue;
            };
            let text = text.trim();
            if text.len() < 16 {
                continue;
            }
            secrets.push((what.to_string(), text.as_bytes().to_vec()));
            if let Some((_, half)) = text.split_once(':') {
                secrets.push((format!("{what}'s secret half"), half.as_bytes().to_vec()));
            }
            if let Ok(raw) = hex::decode(text) {
                secrets.push((format!("{what} (raw bytes)"), raw));
            }
        }
        for f in files_under(&self.state_dir()) {
            let Ok(data) = std::fs::read(&f) else {
                continue;
            };
            for (what, s) in &secrets {
                assert!(
                    memchr::memmem::find(&data, s).is_none(),
                    "{what} is in {} in clear",
                    f.display()
                );
            }
        }
    }
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        Env { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn state_dir(&self) -> PathBuf {
        self.path("state")
    }

    /// Writes `config.toml` with the state dir, key file and a free loopback health port, plus
    /// `extra` TOML appended. Returns the health address.
    pub fn write_config(&self, extra: &str) -> SocketAddr {
        let addr = free_port();
        let text = format!(
            "[store]\ndir = \"state\"\n[vault]\nkey_file = \"vault.key\"\n[health]\nlisten = \"{addr}\"\n[log]\nlevel = \"info\"\nformat = \"text\"\n{extra}"
        );
        std::fs::write(self.path("config.toml"), text).unwrap();
        addr
    }

    /// The health port `write_config` chose.
    pub fn health_addr(&self) -> SocketAddr {
        let cfg = std::fs::read_to_string(self.path("config.toml")).unwrap();
        let line = cfg.lines().find(|l| l.starts_with("listen = ")).unwrap();
        line.trim_start_matches("listen = ")
            .trim_matches('"')
            .parse()
            .unwrap()
    }

    pub fn keygen(&self) {
        let out = self
            .cmd(&["keygen", "--out"])
            .arg(self.path("vault.key"))
            .output()
            .unwrap();
        assert!(out.status.success(), "keygen: {}", text(&out));
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--config")
            .arg(self.path("config.toml"))
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("RUST_LOG")
            .env_remove("JOURNAL_STREAM")
            .env_remove("CREDENTIALS_DIRECTORY");
        for (k, _) in std::env::vars() {
            if k.starts_with("TGPARSER_") {
                c.env_remove(k);
            }
        }
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }
}

pub fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// A `NOTIFY_SOCKET` the test reads, as systemd would.
pub struct NotifySocket {
    pub path: PathBuf,
    sock: UnixDatagram,
}

impl NotifySocket {
    pub fn new(dir: &Path) -> NotifySocket {
        let path = dir.join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        NotifySocket { path, sock }
    }

    /// Waits for a datagram containing `line` (e.g. "READY=1"); returns every datagram seen.
    pub fn wait_for(&self, line: &str, timeout: Duration) -> Result<Vec<String>, Vec<String>> {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(seen);
            }
            self.sock.set_read_timeout(Some(left)).unwrap();
            match self.sock.recv(&mut buf) {
                Ok(n) => {
                    let msg = String::from_utf8_lossy(&buf[..n]).to_string();
                    let hit = msg.lines().any(|l| l == line);
                    seen.push(msg);
                    if hit {
                        return Ok(seen);
                    }
                }
                Err(_) => return Err(seen),
            }
        }
    }
}

pub fn sigterm(child: &Child) {
    let st = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(st.success());
}

/// Waits for the child to exit, killing it after `timeout`. Returns (exit code, time taken).
pub fn wait_exit(child: &mut Child, timeout: Duration) -> (Option<i32>, Duration) {
    let t = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return (st.code(), t.elapsed());
        }
        if t.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            return (None, t.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    tgparser::cli::http_get(addr, path, Duration::from_secs(5)).unwrap()
}

type Drained = (
    std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    std::thread::JoinHandle<()>,
);

/// Daemons' stderr, drained as it is written: a pipe nobody reads fills at 64 KiB and then
/// blocks the daemon's next log line (a verbose daemon would hang).
static LOGS: std::sync::Mutex<Option<std::collections::HashMap<u32, Drained>>> =
    std::sync::Mutex::new(None);

pub fn spawn_daemon(env: &Env, notify: Option<&NotifySocket>) -> Child {
    spawn_daemon_with(env, notify, &[])
}

/// `spawn_daemon` with more environment (`WATCHDOG_USEC`, as systemd sets it).
pub fn spawn_daemon_with(env: &Env, notify: Option<&NotifySocket>, vars: &[(&str, &str)]) -> Child {
    let mut c = env.cmd(&["run"]);
    if let Some(n) = notify {
        c.env("NOTIFY_SOCKET", &n.path);
    }
    c.envs(vars.iter().copied());
    let mut child = c
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stderr.take().unwrap();
    let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = buf.clone();
    let thread = std::thread::spawn(move || {
        use std::io::Read;
        let mut chunk = [0u8; 8192];
        while let Ok(n) = pipe.read(&mut chunk) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&chunk[..n]);
        }
    });
    LOGS.lock()
        .unwrap()
        .get_or_insert_with(Default::default)
        .insert(child.id(), (buf, thread));
    child
}

/// A daemon's stderr so far (all of it once it exited).
pub fn stderr_of(child: &mut Child) -> String {
    let exited = matches!(child.try_wait(), Ok(Some(_)));
    let entry = LOGS
        .lock()
        .unwrap()
        .get_or_insert_with(Default::default)
        .remove(&child.id());
    match entry {
        Some((buf, thread)) => {
            if exited {
                let _ = thread.join();
                String::from_utf8_lossy(&buf.lock().unwrap()).into_owned()
            } else {
                let text = String::from_utf8_lossy(&buf.lock().unwrap()).into_owned();
                LOGS.lock()
                    .unwrap()
                    .get_or_insert_with(Default::default)
                    .insert(child.id(), (buf, thread));
                text
            }
        }
        None => {
            use std::io::Read;
            let mut s = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut s);
            }
            s
        }
    }
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// No pacing for any method: for tests that run the fake with its quotas off and want speed.
pub const NO_PACING: &str = "[telegram.pacing]\n\"messages.getHistory\" = \"off\"\n\"contacts.resolveUsername\" = \"off\"\n\"channels.getMessages\" = \"off\"\n\"channels.getChannels\" = \"off\"\n\"updates.getChannelDifference\" = \"off\"\n";

/// An `Env` whose config points the parser at a fake Telegram (pre-shared key, api_hash file),
/// without pacing (see [`telegram_env_with`]).
pub fn telegram_env(fake: &fake_telegram::FakeTelegram) -> Env {
    telegram_env_with(fake, NO_PACING)
}

/// As [`telegram_env`], with `extra` TOML after the `[telegram]` tables; keys before its first
/// table header go into `[telegram]` itself.
pub fn telegram_env_with(fake: &fake_telegram::FakeTelegram, extra: &str) -> Env {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    std::fs::write(env.path("api_hash"), "a3406de8d171bb422bb6ddf3bbd800e2\n").unwrap();
    std::fs::write(env.path("auth_key.hex"), fake.info.auth_key_file()).unwrap();
    for f in ["api_hash", "auth_key.hex"] {
        std::fs::set_permissions(env.path(f), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let split = if extra.starts_with('[') {
        Some(0)
    } else {
        extra.find("\n[").map(|i| i + 1)
    };
    let (keys, tables) = match split {
        Some(i) => extra.split_at(i),
        None => (extra, ""),
    };
    env.write_config(&format!(
        "[telegram]\napi_id = 94575\napi_hash_file = \"api_hash\"\n{keys}\n[telegram.server]\naddress = \"{}\"\nauth_key_file = \"auth_key.hex\"\n{tables}",
        fake.info.mtproto
    ));
    env.keygen();
    env
}

/// A daemon's environment with the parser and the bot on `fake`, `admins` as the bot's admins,
/// logging at `log_level`.
pub fn bot_env_for(fake: &fake_telegram::FakeTelegram, admins: &[i64], log_level: &str) -> Env {
    let admins: Vec<String> = admins.iter().map(i64::to_string).collect();
    let env = telegram_env_with(
        fake,
        &format!(
            "{NO_PACING}[bot]\ntoken_file = \"bot_token\"\napi_url = \"http://{}\"\nadmins = [{}]\nopen = false\n",
            fake.info.bot_api,
            admins.join(", ")
        ),
    );
    std::fs::write(env.path("bot_token"), format!("{}\n", fake.info.bot_token)).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            env.path("bot_token"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
    }
    if log_level != "info" {
        let cfg = std::fs::read_to_string(env.path("config.toml")).unwrap();
        std::fs::write(
            env.path("config.toml"),
            cfg.replace("level = \"info\"", &format!("level = \"{log_level}\"")),
        )
        .unwrap();
    }
    env
}

/// Starts the daemon and waits until it is ready and its bot runs (messages sent to the bot
/// before that would be dropped with the webhook it deletes first).
pub async fn start_with_bot(env: &Env) -> Child {
    let _ = std::fs::remove_file(env.dir.path().join("notify.sock"));
    let notify = NotifySocket::new(env.dir.path());
    let child = spawn_daemon(env, Some(&notify));
    notify
        .wait_for("READY=1", Duration::from_secs(20))
        .expect("READY=1");
    wait_until("the bot to run", Duration::from_secs(20), || {
        get(env.health_addr(), "/readyz").1.contains(
            "\"part:bot\":[{\"componentType\":\"component\",\"observedValue\":\"running\"",
        )
    })
    .await;
    child
}

/// Runs `tgparser <args>` with `input` on stdin, off the async runtime (a fake may run on it).
pub async fn run_with_input(env: &Env, args: &[&str], input: &str) -> Output {
    use std::io::Write;
    let mut cmd = env.cmd(args);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let input = input.to_string();
    tokio::task::spawn_blocking(move || {
        let mut child = cmd.spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let _ = stdin.write_all(input.as_bytes());
        drop(stdin);
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

/// The sqlite3 CLI on the state directory's database; its output, trimmed.
fn sqlite3(env: &Env, flags: &[&str], query: &str) -> String {
    // A running daemon holds the write lock for moments at a time: wait, as an operator's
    // sqlite3 should (`.timeout`), instead of failing with "database is locked".
    let out = Command::new("sqlite3")
        .args(["-cmd", ".timeout 10000"])
        .args(flags)
        .arg(env.state_dir().join("tgparser.db"))
        .arg(query)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// One query against the state directory's database, read-only, through the sqlite3 CLI.
pub fn sql(env: &Env, query: &str) -> String {
    sqlite3(env, &["-readonly"], query)
}

/// A write through the sqlite3 CLI (the test plays an operator editing by hand).
pub fn sql_write(env: &Env, query: &str) {
    sqlite3(env, &[], query);
}

/// Message ids stored for `channel`, ascending.
pub fn stored_ids(env: &Env, channel: i64) -> Vec<i32> {
    sql(
        env,
        &format!("SELECT id FROM messages WHERE channel_id = {channel} ORDER BY id"),
    )
    .lines()
    .filter(|l| !l.is_empty())
    .map(|l| l.parse().unwrap())
    .collect()
}

/// Whether the audit log holds an entry for `action`.
pub fn audited(env: &Env, action: &str) -> bool {
    sql(
        env,
        &format!("SELECT count(*) > 0 FROM audit_log WHERE action = '{action}'"),
    ) == "1"
}

/// Polls `f` every 100 ms until it holds; panics with `what` after `limit`.
pub async fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t = std::time::Instant::now();
    while !f() {
        assert!(
            t.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// The daemon as a process, and what it stored against what the fake holds.

pub const LIMIT: Duration = Duration::from_secs(20);

pub async fn started(env: &Env) -> std::process::Child {
    // A socket of an earlier start is in the way.
    let _ = std::fs::remove_file(env.dir.path().join("notify.sock"));
    let notify = NotifySocket::new(env.dir.path());
    let child = spawn_daemon(env, Some(&notify));
    notify.wait_for("READY=1", LIMIT).expect("READY=1");
    child
}

pub fn stop(child: &mut std::process::Child) {
    sigterm(child);
    let (code, _) = wait_exit(child, Duration::from_secs(10));
    assert_eq!(code, Some(0), "{}", stderr_of(child));
}

/// `wait_until`, showing the daemon's log if it times out.
pub async fn wait_daemon(child: &mut std::process::Child, what: &str, f: impl FnMut() -> bool) {
    wait_daemon_for(child, what, LIMIT, f).await
}

/// `wait_daemon` with its own time limit.
pub async fn wait_daemon_for(
    child: &mut std::process::Child,
    what: &str,
    limit: Duration,
    mut f: impl FnMut() -> bool,
) {
    let t = std::time::Instant::now();
    while !f() {
        if t.elapsed() > limit {
            let _ = child.kill();
            panic!(
                "timed out waiting for {what}; the daemon's log:\n{}",
                stderr_of(child)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn one(env: &Env, q: &str) -> String {
    sql(env, q)
}

/// The inline buttons of a Bot API call's `reply_markup`: `(text, callback data)`, row by row.
pub fn buttons(params: &serde_json::Value) -> Vec<(String, String)> {
    let markup = match &params["reply_markup"] {
        serde_json::Value::String(s) => serde_json::from_str(s).unwrap_or_default(),
        v => v.clone(),
    };
    markup["inline_keyboard"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|row| row.as_array().cloned().unwrap_or_default())
        .map(|b| {
            (
                b["text"].as_str().unwrap_or_default().to_string(),
                b["callback_data"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}
