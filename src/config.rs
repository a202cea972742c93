//! Configuration: `config.toml`, then `TGPARSER_<SECTION>__<KEY>` environment overrides, then
//! validation. Secrets are never values here, only paths to files (systemd credentials), which
//! are resolved against `$CREDENTIALS_DIRECTORY` when it is set.
//!
//! Every error names the file (or environment variable), the key, what was found and what was
//! expected; the CLI turns a [`ConfigError`] into exit code 78 so systemd stops restarting.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

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
    pub guard: crate::guard::GuardConfig,
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

struct Validator<'a> {
    file: String,
    overrides: BTreeMap<&'a str, &'a str>,
    base_dir: PathBuf,
    credentials_dir: Option<PathBuf>,
    warnings: Vec<String>,
}

impl Validator<'_> {
    /// Names where a key's value came from: the env variable that set it, else the file.
    fn origin(&self, key: &str) -> String {
        let env_name = format!(
            "{ENV_PREFIX}{}",
            key.replace('.', "__").to_ascii_uppercase()
        );
        if self.overrides.contains_key(env_name.as_str()) {
            env_name
        } else {
            self.file.clone()
        }
    }

    fn guard_config(
        &self,
        raw: RawGuard,
        pacing: BTreeMap<String, String>,
    ) -> Result<crate::guard::GuardConfig, ConfigError> {
        let mut g = crate::guard::GuardConfig::default();
        let secs = |key: &str, v: Option<f64>, min: f64, max: f64, default: Duration| match v {
            None => Ok(default),
            Some(x) if x.is_finite() && (min..=max).contains(&x) => Ok(Duration::from_secs_f64(x)),
            Some(x) => Err(self.err(
                &format!("telegram.guard.{key}"),
                format!("found {x}; expected seconds from {min} to {max}"),
            )),
        };
        g.call_timeout = secs(
            "call_timeout_secs",
            raw.call_timeout_secs,
            0.1,
            600.0,
            g.call_timeout,
        )?;
        g.breaker_cooldown = secs(
            "breaker_cooldown_secs",
            raw.breaker_cooldown_secs,
            0.1,
            3600.0,
            g.breaker_cooldown,
        )?;
        g.breaker_cooldown_max = secs(
            "breaker_cooldown_max_secs",
            raw.breaker_cooldown_max_secs,
            0.1,
            86400.0,
            g.breaker_cooldown_max,
        )?;
        g.retry_delay = secs(
            "retry_delay_secs",
            raw.retry_delay_secs,
            0.01,
            600.0,
            g.retry_delay,
        )?;
        g.retry_delay_max = secs(
            "retry_delay_max_secs",
            raw.retry_delay_max_secs,
            0.01,
            3600.0,
            g.retry_delay_max,
        )?;
        g.heartbeat = secs(
            "heartbeat_secs",
            raw.heartbeat_secs,
            0.5,
            3600.0,
            g.heartbeat,
        )?;
        if g.breaker_cooldown_max < g.breaker_cooldown {
            return Err(self.err(
                "telegram.guard.breaker_cooldown_max_secs",
                "is shorter than breaker_cooldown_secs; it is the longest the cool-down grows to",
            ));
        }
        if let Some(n) = raw.breaker_failures {
            if !(1..=1000).contains(&n) {
                return Err(self.err(
                    "telegram.guard.breaker_failures",
                    format!("found {n}; expected 1 to 1000 consecutive failures"),
                ));
            }
            g.breaker_failures = n;
        }
        for (method, value) in pacing {
            let key = format!("telegram.pacing.\"{method}\"");
            let known = method.split_once('.').is_some_and(|(a, b)| {
                !a.is_empty()
                    && !b.is_empty()
                    && method
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_')
            });
            if !known {
                return Err(self.err(
                    &key,
                    "is not an MTProto method name; expected one such as \"messages.getHistory\"",
                ));
            }
            if value.trim() == "off" {
                g.pacing.remove(&method);
            } else {
                let pace = value.parse().map_err(|e: String| self.err(&key, e))?;
                g.pacing.insert(method, pace);
            }
        }
        Ok(g)
    }

    fn err(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::new(self.origin(key), format!("key `{key}`: {}", message.into()))
    }

    fn plain_path(&self, p: PathBuf) -> PathBuf {
        if p.is_absolute() {
            p
        } else {
            self.base_dir.join(p)
        }
    }

    fn secret_path(&self, p: PathBuf) -> PathBuf {
        if p.is_absolute() {
            p
        } else if let Some(c) = &self.credentials_dir {
            c.join(p)
        } else {
            self.base_dir.join(p)
        }
    }

    /// A secret file must exist, be a readable regular file and not be empty. Loose permissions
    /// are a warning (systemd credentials are already 0400 in a private directory).
    fn check_secret_file(&mut self, key: &str, p: &Path) -> Result<(), ConfigError> {
        let meta = std::fs::metadata(p).map_err(|e| {
            self.err(
                key,
                format!(
                    "secret file {} cannot be read ({e}); expected a file holding the secret",
                    p.display()
                ),
            )
        })?;
        if !meta.is_file() {
            return Err(self.err(
                key,
                format!(
                    "{} is not a regular file; expected a file holding the secret",
                    p.display()
                ),
            ));
        }
        if meta.len() == 0 {
            return Err(self.err(
                key,
                format!(
                    "secret file {} is empty; expected the secret in it",
                    p.display()
                ),
            ));
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            self.warnings.push(format!(
                "{key}: secret file {} has mode {mode:o}, readable by other users; run chmod 600 {}",
                p.display(),
                p.display()
            ));
        }
        Ok(())
    }

    fn validate(mut self, raw: RawConfig, path: Option<&Path>) -> Result<Config, ConfigError> {
        let store = StoreConfig {
            dir: self.plain_path(raw.store.dir.unwrap_or_else(|| PathBuf::from("sessions"))),
            busy_timeout: Duration::from_millis(raw.store.busy_timeout_ms.unwrap_or(5_000)),
            read_connections: match raw.store.read_connections.unwrap_or(4) {
                n @ 1..=64 => n,
                n => {
                    return Err(self.err(
                        "store.read_connections",
                        format!("found {n}; expected a number from 1 to 64"),
                    ));
                }
            },
        };

        let vault_key = raw
            .vault
            .key_file
            .unwrap_or_else(|| PathBuf::from("sessions/vault.key"));
        let vault = VaultConfig {
            key_file: self.secret_path(vault_key),
        };

        let listen_text = raw.health.listen.unwrap_or_else(|| "127.0.0.1:8787".into());
        let listen: SocketAddr = listen_text.parse().map_err(|_| {
            self.err(
                "health.listen",
                format!("found {listen_text:?}; expected an IP address and port such as \"127.0.0.1:8787\""),
            )
        })?;
        let allow_remote = raw.health.allow_remote.unwrap_or(false);
        if !listen.ip().is_loopback() && !allow_remote {
            return Err(self.err(
                "health.listen",
                format!(
                    "found {listen}, which is not a loopback address; the health port is meant for \
                     this machine only. Use 127.0.0.1, or set health.allow_remote = true if you \
                     really want it reachable from elsewhere"
                ),
            ));
        }

        let level = raw.log.level.unwrap_or_else(|| "info".into());
        if tracing_subscriber::EnvFilter::try_new(&level).is_err() {
            return Err(self.err(
                "log.level",
                format!("found {level:?}; expected error, warn, info, debug, trace or a filter such as \"info,tgparser=debug\""),
            ));
        }
        let format = match raw.log.format.as_deref().unwrap_or("auto") {
            "auto" => LogFormat::Auto,
            "text" => LogFormat::Text,
            "journald" => LogFormat::Journald,
            "json" => LogFormat::Json,
            other => {
                return Err(self.err(
                    "log.format",
                    format!(
                        "found {other:?}; expected \"auto\", \"text\", \"journald\" or \"json\""
                    ),
                ));
            }
        };

        let telegram = match raw.telegram {
            None => None,
            Some(t) => {
                let server = match t.server {
                    None => None,
                    Some(s) => {
                        let address: SocketAddr = s.address.parse().map_err(|_| {
                            self.err(
                                "telegram.server.address",
                                format!("found {:?}; expected an IP address and port such as \"127.0.0.1:4430\"", s.address),
                            )
                        })?;
                        let key = self.secret_path(s.auth_key_file);
                        self.check_secret_file("telegram.server.auth_key_file", &key)?;
                        Some(TelegramServerConfig {
                            address,
                            auth_key_file: key,
                        })
                    }
                };
                match (t.api_id, t.api_hash_file) {
                    (Some(api_id), Some(hash)) => {
                        if api_id <= 0 {
                            return Err(self.err(
                                "telegram.api_id",
                                format!("found {api_id}; expected the positive api_id from my.telegram.org"),
                            ));
                        }
                        let hash = self.secret_path(hash);
                        self.check_secret_file("telegram.api_hash_file", &hash)?;
                        Some(TelegramConfig {
                            api_id,
                            api_hash_file: hash,
                            server,
                            guard: self.guard_config(t.guard, t.pacing)?,
                        })
                    }
                    (None, None) => None,
                    (Some(_), None) => {
                        return Err(self.err(
                            "telegram.api_hash_file",
                            "missing; telegram.api_id is set, so the api_hash file is needed too",
                        ));
                    }
                    (None, Some(_)) => {
                        return Err(self.err(
                            "telegram.api_id",
                            "missing; telegram.api_hash_file is set, so the api_id is needed too",
                        ));
                    }
                }
            }
        };

        let bot = match raw.bot {
            None => None,
            Some(b) => match b.token_file {
                None => None,
                Some(token_file) => {
                    let token_file = self.secret_path(token_file);
                    self.check_secret_file("bot.token_file", &token_file)?;
                    if let Some(url) = &b.api_url
                        && !(url.starts_with("http://") || url.starts_with("https://"))
                    {
                        return Err(self.err(
                            "bot.api_url",
                            format!("found {url:?}; expected an http:// or https:// URL"),
                        ));
                    }
                    let mut guard = crate::guard::botapi::BotGuardConfig::default();
                    for (key, value, slot) in [
                        ("bot.send_rate", &b.send_rate, &mut guard.overall),
                        ("bot.chat_rate", &b.chat_rate, &mut guard.per_chat),
                        ("bot.group_rate", &b.group_rate, &mut guard.per_group),
                    ] {
                        match value.as_deref().map(str::trim) {
                            None => {}
                            Some("off") => *slot = None,
                            Some(v) => {
                                let pace: crate::guard::Pace =
                                    v.parse().map_err(|e: String| self.err(key, e))?;
                                if pace.calls == 0 {
                                    return Err(self.err(
                                        key,
                                        "allows no message at all; write \"off\" for no limit",
                                    ));
                                }
                                *slot = Some(pace);
                            }
                        }
                    }
                    if let Some(t) = b.call_timeout_secs {
                        if !(t.is_finite() && (1.0..=600.0).contains(&t)) {
                            return Err(self.err(
                                "bot.call_timeout_secs",
                                format!("found {t}; expected seconds between 1 and 600"),
                            ));
                        }
                        guard.call_timeout = Duration::from_secs_f64(t);
                    }
                    Some(BotConfig {
                        token_file,
                        api_url: b.api_url,
                        admins: b.admins,
                        open: b.open,
                        guard,
                        digest_after: b.digest_after.unwrap_or(20),
                        login_step_timeout: match b.login_step_timeout_secs {
                            None => Duration::from_secs(300),
                            Some(t @ 1..=3600) => Duration::from_secs(t),
                            Some(t) => {
                                return Err(self.err(
                                    "bot.login_step_timeout_secs",
                                    format!("found {t}; expected seconds between 1 and 3600"),
                                ));
                            }
                        },
                    })
                }
            },
        };

        Ok(Config {
            path: path.map(Path::to_path_buf),
            store,
            vault,
            health: HealthConfig {
                listen,
                allow_remote,
            },
            log: LogConfig { level, format },
            telegram,
            bot,
            warnings: self.warnings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        Config::from_toml(text, Some(Path::new("/etc/t/config.toml")), &env, None)
    }

    #[test]
    fn defaults_are_loopback_and_relative_to_the_config_file() {
        let c = parse("", &[]).unwrap();
        assert_eq!(c.health.listen.to_string(), "127.0.0.1:8787");
        assert_eq!(c.store.dir, PathBuf::from("/etc/t/sessions"));
        assert_eq!(c.vault.key_file, PathBuf::from("/etc/t/sessions/vault.key"));
        assert!(c.telegram.is_none() && c.bot.is_none());
    }

    #[test]
    fn unknown_key_names_the_key_and_the_file() {
        let e = parse("[health]\nlisten = \"127.0.0.1:1\"\nlistne = 3\n", &[]).unwrap_err();
        let s = e.to_string();
        assert!(s.contains("/etc/t/config.toml"), "{s}");
        assert!(s.contains("listne"), "{s}");
        assert!(s.contains("line 3"), "{s}");
    }

    #[test]
    fn env_override_replaces_the_file_value_and_is_named_in_errors() {
        let c = parse(
            "[health]\nlisten = \"127.0.0.1:1\"\n",
            &[("TGPARSER_HEALTH__LISTEN", "127.0.0.1:2")],
        )
        .unwrap();
        assert_eq!(c.health.listen.port(), 2);
        let e = parse("", &[("TGPARSER_HEALTH__ALLOW_REMOTE", "maybe")]).unwrap_err();
        assert_eq!(e.source_name, "TGPARSER_HEALTH__ALLOW_REMOTE");
        let e = parse("", &[("TGPARSER_HEALTH__LISTEN", "0.0.0.0:1")]).unwrap_err();
        assert_eq!(e.source_name, "TGPARSER_HEALTH__LISTEN");
        let e = parse("", &[("TGPARSER_HEALTH__NOPE", "1")]).unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
    }

    #[test]
    fn non_loopback_health_is_refused_unless_allowed() {
        let e = parse("[health]\nlisten = \"0.0.0.0:8787\"\n", &[]).unwrap_err();
        assert!(e.to_string().contains("allow_remote"), "{e}");
        let c = parse(
            "[health]\nlisten = \"0.0.0.0:8787\"\nallow_remote = true\n",
            &[],
        )
        .unwrap();
        assert!(c.health.allow_remote);
    }

    #[test]
    fn secret_paths_resolve_against_the_credentials_directory() {
        let c = Config::from_toml(
            "[vault]\nkey_file = \"vault.key\"\n[store]\ndir = \"state\"\n",
            Some(Path::new("/etc/t/config.toml")),
            &[],
            Some(Path::new("/run/credentials/tgparser.service")),
        )
        .unwrap();
        assert_eq!(
            c.vault.key_file,
            PathBuf::from("/run/credentials/tgparser.service/vault.key")
        );
        assert_eq!(c.store.dir, PathBuf::from("/etc/t/state"));
    }

    #[test]
    fn no_config_file_anywhere_says_to_pass_config() {
        let e =
            Config::locate_in(None, &["/nonexistent/a.toml", "/nonexistent/b.toml"]).unwrap_err();
        assert!(
            e.to_string()
                .contains("/nonexistent/a.toml and /nonexistent/b.toml"),
            "{e}"
        );
        assert!(e.to_string().contains("--config"), "{e}");
        let p = Config::locate_in(Some(Path::new("x.toml")), &[]).unwrap();
        assert_eq!(p, PathBuf::from("x.toml"));
    }

    #[test]
    fn half_a_telegram_credential_is_an_error_and_none_is_not() {
        assert!(parse("[telegram]\n", &[]).unwrap().telegram.is_none());
        let e = parse("[telegram]\napi_id = 5\n", &[]).unwrap_err();
        assert!(e.to_string().contains("telegram.api_hash_file"), "{e}");
    }
}
