//! Configuration: `config.toml`, then `TGPARSER_<SECTION>__<KEY>` environment overrides, then
//! validation. Secrets are never values here, only paths to files (systemd credentials), which
//! are resolved against `$CREDENTIALS_DIRECTORY` when it is set.
//!
//! Every error names the file (or environment variable), the key, what was found and what was
//! expected; the CLI turns a [`ConfigError`] into exit code 78 so systemd stops restarting.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub mod media;
pub mod proxy;
mod validate;

pub use media::MediaConfig;

use validate::Validator;

/// Where the CLI looks when `--config` is not given, in order.
pub const DEFAULT_CONFIG_PATHS: &[&str] = &["config.toml", "/etc/tgparser/config.toml"];
const ENV_PREFIX: &str = "TGPARSER_";

/// A configuration problem. Always fatal for the command; exit code 78.
#[derive(Debug, thiserror::Error)]
#[error("{source_name}: {message}")]
pub struct ConfigError {
    /// The file or environment variable the problem came from.
    pub source_name: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(source_name: impl fmt::Display, message: impl Into<String>) -> Self {
        ConfigError {
            source_name: source_name.to_string(),
            message: message.into(),
        }
    }
}

// ---- raw, as written ------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    store: RawStore,
    #[serde(default)]
    vault: RawVault,
    #[serde(default)]
    health: RawHealth,
    #[serde(default)]
    log: RawLog,
    telegram: Option<RawTelegram>,
    bot: Option<RawBot>,
    #[serde(default)]
    media: media::RawMedia,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    dir: Option<PathBuf>,
    busy_timeout_ms: Option<u64>,
    read_connections: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVault {
    key_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealth {
    listen: Option<String>,
    allow_remote: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    level: Option<String>,
    format: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTelegram {
    api_id: Option<i32>,
    api_hash_file: Option<PathBuf>,
    server: Option<RawTelegramServer>,
    /// `socks5://[user@]host:port`.
    proxy: Option<String>,
    proxy_password_file: Option<PathBuf>,
    /// The longest a followed channel goes without being polled, however quiet it is.
    follow_sweep_secs: Option<f64>,
    /// Join channels when they are added (Telegram pushes updates only to members).
    join: Option<bool>,
    /// `adaptive` (default) or `round_robin` (the plain reference the benchmark compares with).
    follow_schedule: Option<String>,
    #[serde(default)]
    guard: RawGuard,
    /// Method name → "calls/window" or "off"; merged over the built-in pacing.
    #[serde(default)]
    pacing: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGuard {
    call_timeout_secs: Option<f64>,
    breaker_failures: Option<u32>,
    breaker_cooldown_secs: Option<f64>,
    breaker_cooldown_max_secs: Option<f64>,
    retry_delay_secs: Option<f64>,
    retry_delay_max_secs: Option<f64>,
    heartbeat_secs: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTelegramServer {
    address: String,
    auth_key_file: PathBuf,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBot {
    token_file: Option<PathBuf>,
    api_url: Option<String>,
    /// `socks5://[user@]host:port` (or `socks5h://`).
    proxy: Option<String>,
    proxy_password_file: Option<PathBuf>,
    #[serde(default)]
    admins: Vec<i64>,
    #[serde(default)]
    open: bool,
    /// Messages per window overall, per private chat, per group ("30/1s", "off").
    send_rate: Option<String>,
    chat_rate: Option<String>,
    group_rate: Option<String>,
    /// Pending alerts in one chat above which they are folded into a digest (0: never).
    digest_after: Option<u32>,
    call_timeout_secs: Option<f64>,
    /// How long each step of the chat login dialog waits for an answer.
    login_step_timeout_secs: Option<u64>,
}

// ---- validated ------------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct Config {
    /// The file this was read from (`None` for a built-in configuration such as `demo`'s).
    pub path: Option<PathBuf>,
    pub store: StoreConfig,
    pub vault: VaultConfig,
    pub health: HealthConfig,
    pub log: LogConfig,
    pub telegram: Option<TelegramConfig>,
    pub bot: Option<BotConfig>,
    pub media: MediaConfig,
    /// Things worth a warning that do not stop the daemon (e.g. a group-readable key file).
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub dir: PathBuf,
    pub busy_timeout: Duration,
    pub read_connections: u32,
}

#[derive(Debug, Clone)]
pub struct VaultConfig {
    pub key_file: PathBuf,
}

#[derive(Debug, Clone)]
pub struct HealthConfig {
    pub listen: SocketAddr,
    pub allow_remote: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Text; journald style under systemd, coloured on a terminal.
    Auto,
    Text,
    Journald,
    Json,
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    pub level: String,
    pub format: LogFormat,
}

#[derive(Debug, Clone)]
pub struct TelegramConfig {
    pub api_id: i32,
    pub api_hash_file: PathBuf,
    pub server: Option<TelegramServerConfig>,
    /// A SOCKS5 proxy every MTProto connection goes through.
    pub proxy: Option<proxy::ProxyConfig>,
    /// The longest a followed channel goes unpolled, however quiet.
    pub follow_sweep: Duration,
    /// Join channels when they are added (`channels add --no-join` opts one out).
    pub join: bool,
    /// How polls are spread over the followed channels.
    pub follow_schedule: FollowSchedule,
    pub guard: crate::guard::GuardConfig,
}

/// How the follower spreads its polls (`telegram.follow_schedule`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FollowSchedule {
    /// Busy channels often, quiet ones rarely, within the quota (see `parser::follow::poll`).
    #[default]
    Adaptive,
    /// Every channel in turn at the same cadence: the reference the benchmark compares with.
    RoundRobin,
}

#[derive(Debug, Clone)]
pub struct TelegramServerConfig {
    pub address: SocketAddr,
    pub auth_key_file: PathBuf,
}

#[derive(Debug, Clone)]
pub struct BotConfig {
    pub token_file: PathBuf,
    pub api_url: Option<String>,
    /// A SOCKS5 proxy every Bot API request goes through.
    pub proxy: Option<proxy::ProxyConfig>,
    pub admins: Vec<i64>,
    pub open: bool,
    pub guard: crate::guard::botapi::BotGuardConfig,
    /// Pending alerts in one chat above which they are folded into a digest; 0: never.
    pub digest_after: u32,
    pub login_step_timeout: Duration,
}

impl Config {
    /// Finds the configuration file: the explicit path, else the first of
    /// [`DEFAULT_CONFIG_PATHS`] that exists.
    pub fn locate(explicit: Option<&Path>) -> Result<PathBuf, ConfigError> {
        Self::locate_in(explicit, DEFAULT_CONFIG_PATHS)
    }

    fn locate_in(explicit: Option<&Path>, candidates: &[&str]) -> Result<PathBuf, ConfigError> {
        if let Some(p) = explicit {
            return Ok(p.to_path_buf());
        }
        for candidate in candidates {
            let p = Path::new(candidate);
            if p.exists() {
                return Ok(p.to_path_buf());
            }
        }
        Err(ConfigError::new(
            "config",
            format!(
                "no configuration file found (looked for {}); pass --config PATH",
                candidates.join(" and ")
            ),
        ))
    }

    /// Reads, overrides from the process environment, and validates.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        let credentials = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
        Self::load_with(path, &env, credentials.as_deref())
    }

    /// As [`Config::load`], with the environment given explicitly (tests, `demo`).
    pub fn load_with(
        path: &Path,
        env: &[(String, String)],
        credentials_dir: Option<&Path>,
    ) -> Result<Config, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new(&shown, format!("cannot read the configuration file: {e}"))
        })?;
        Self::from_toml(&text, Some(path), env, credentials_dir)
    }

    /// Parses configuration text. Relative paths are taken from the directory of `path` (or the
    /// current directory), secret files from `credentials_dir` when given.
    pub fn from_toml(
        text: &str,
        path: Option<&Path>,
        env: &[(String, String)],
        credentials_dir: Option<&Path>,
    ) -> Result<Config, ConfigError> {
        let shown = path
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "built-in configuration".into());
        // First the file alone, so that a mistake in it is reported with its line and column.
        let file_table: toml::Table =
            toml::from_str(text).map_err(|e| ConfigError::new(&shown, e.to_string().trim_end()))?;
        let _: RawConfig =
            toml::from_str(text).map_err(|e| ConfigError::new(&shown, e.to_string().trim_end()))?;

        // Then with the environment overrides, each checked on its own so the error names it.
        let mut merged = file_table;
        let mut overrides: BTreeMap<&str, &str> = BTreeMap::new();
        for (name, value) in env {
            if let Some(rest) = name.strip_prefix(ENV_PREFIX)
                && rest.contains("__")
            {
                overrides.insert(name.as_str(), value.as_str());
                apply_override(&mut merged, rest, value).map_err(|m| ConfigError::new(name, m))?;
                let check: Result<RawConfig, _> = merged.clone().try_into();
                if let Err(e) = check {
                    return Err(ConfigError::new(
                        name,
                        format!("{} (value {value:?})", e.to_string().trim_end()),
                    ));
                }
            }
        }
        let raw: RawConfig = merged
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::new(&shown, e.to_string()))?;

        let base_dir = path
            .and_then(|p| p.parent())
            .map(|p| {
                if p.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    p.to_path_buf()
                }
            })
            .unwrap_or_else(|| PathBuf::from("."));
        Validator {
            file: shown,
            overrides,
            base_dir,
            credentials_dir: credentials_dir.map(Path::to_path_buf),
            warnings: Vec::new(),
        }
        .validate(raw, path)
    }
}

/// Sets `section.key` (or `section.sub.key`) from `TGPARSER_SECTION__SUB__KEY=value`. The value is
/// read as a TOML value when it parses as one (numbers, booleans, arrays), else as a string.
fn apply_override(table: &mut toml::Table, rest: &str, value: &str) -> Result<(), String> {
    let parts: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err("expected TGPARSER_<SECTION>__<KEY>, e.g. TGPARSER_HEALTH__LISTEN".into());
    }
    let parsed = toml::from_str::<toml::Table>(&format!("v = {value}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_string()));
    let (last, sections) = parts.split_last().ok_or("empty key")?;
    let mut cur = table;
    for s in sections {
        let entry = cur
            .entry(s.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = match entry {
            toml::Value::Table(t) => t,
            _ => return Err(format!("`{s}` is not a section")),
        };
    }
    cur.insert(last.clone(), parsed);
    Ok(())
}

#[cfg(test)]
mod tests;
