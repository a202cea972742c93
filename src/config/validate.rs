//! Validation of a parsed configuration: every value checked, paths resolved (secrets against
//! the credentials directory), each error naming where the value came from.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

pub(super) struct Validator<'a> {
    pub(super) file: String,
    pub(super) overrides: BTreeMap<&'a str, &'a str>,
    pub(super) base_dir: PathBuf,
    pub(super) credentials_dir: Option<PathBuf>,
    pub(super) warnings: Vec<String>,
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

    /// `<table>.proxy` and `<table>.proxy_password_file`.
    fn proxy(
        &mut self,
        table: &str,
        url: Option<&str>,
        password_file: Option<PathBuf>,
    ) -> Result<Option<super::proxy::ProxyConfig>, ConfigError> {
        let key = format!("{table}.proxy");
        let Some(url) = url else {
            if password_file.is_some() {
                return Err(self.err(
                    &format!("{table}.proxy_password_file"),
                    format!("is set but {key} is not"),
                ));
            }
            return Ok(None);
        };
        let (scheme, host, port, user) = super::proxy::parse(url).map_err(|e| self.err(&key, e))?;
        let password_file = match password_file {
            None => None,
            Some(_) if user.is_none() => {
                return Err(self.err(
                    &format!("{table}.proxy_password_file"),
                    format!("a password needs a user: write {key} as socks5://user@host:port"),
                ));
            }
            Some(p) => {
                let p = self.secret_path(p);
                self.check_secret_file(&format!("{table}.proxy_password_file"), &p)?;
                Some(p)
            }
        };
        Ok(Some(super::proxy::ProxyConfig {
            scheme,
            host,
            port,
            user,
            password_file,
        }))
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

    pub(super) fn validate(
        mut self,
        raw: RawConfig,
        path: Option<&Path>,
    ) -> Result<Config, ConfigError> {
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
                        let proxy =
                            self.proxy("telegram", t.proxy.as_deref(), t.proxy_password_file)?;
                        let follow_sweep = match t.follow_sweep_secs {
                            None => Duration::from_secs(900),
                            Some(v) if v.is_finite() && (1.0..=86_400.0).contains(&v) => {
                                Duration::from_secs_f64(v)
                            }
                            Some(v) => {
                                return Err(self.err(
                                    "telegram.follow_sweep_secs",
                                    format!("found {v}; expected seconds between 1 and 86400"),
                                ));
                            }
                        };
                        let follow_schedule = match t.follow_schedule.as_deref() {
                            None | Some("adaptive") => super::FollowSchedule::Adaptive,
                            Some("round_robin") => super::FollowSchedule::RoundRobin,
                            Some(v) => {
                                return Err(self.err(
                                    "telegram.follow_schedule",
                                    format!(
                                        "found {v:?}; expected \"adaptive\" or \"round_robin\""
                                    ),
                                ));
                            }
                        };
                        Some(TelegramConfig {
                            api_id,
                            api_hash_file: hash,
                            server,
                            proxy,
                            follow_sweep,
                            join: t.join.unwrap_or(true),
                            follow_schedule,
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
                    let proxy = self.proxy("bot", b.proxy.as_deref(), b.proxy_password_file)?;
                    Some(BotConfig {
                        token_file,
                        api_url: b.api_url,
                        proxy,
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
            media: super::media::validate(raw.media, &self.origin("media"))?,
            warnings: self.warnings,
        })
    }
}
