//! Connecting the MTProto client: our session, the configured server, no silent retries.

use std::sync::Arc;

use std::collections::BTreeMap;

use grammers_client::Client;
use grammers_client::sender::{ConnectionParams, NoRetries, SenderPool, SenderPoolHandle};
use grammers_client::tl::{self, Identifiable, RemoteCall};
use zeroize::Zeroizing;

use super::session::{SessionError, StoreSession};
use crate::config::{ConfigError, TelegramConfig};
use crate::guard::{Guard, GuardError};
use crate::store::Store;
use crate::vault::Vault;

/// Updates buffered between the connection and the follower. grammers drops updates when its
/// buffer is full (100 by default); a burst of posts across many channels must fit.
pub const UPDATES_CAPACITY: usize = 8192;

/// The DC a `[telegram.server]` test server's `address` serves; the other DCs' addresses come
/// from its `help.getConfig`.
pub const TEST_SERVER_DC: i32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The proxy's host name does not resolve (for now: a network fault, tried again).
    #[error("cannot find the proxy {0}")]
    Proxy(String),
}

impl ConnectError {
    /// Problems an operator must fix before a restart can help (exit 78).
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            ConnectError::Config(_) | ConnectError::Session(SessionError::SealedKey { .. })
        )
    }
}

/// A running client and the session behind it.
pub struct Connected {
    pub client: Client,
    pub session: Arc<StoreSession>,
    pub api_hash: Zeroizing<String>,
    pub api_id: i32,
    /// Every call the parser makes goes through it.
    pub guard: Guard,
    /// grammers' sender pool, to drop a connection after a DC migration.
    sender: SenderPoolHandle,
    /// Updates grammers received; taken by whoever follows them (the daemon's parser).
    pub updates: Option<tokio::sync::mpsc::Receiver<grammers_session::updates::UpdatesLike>>,
    runner: tokio::task::JoinHandle<()>,
    /// One DC move at a time: several calls meet the same `USER_MIGRATE` at once (polls, the
    /// joiner, the heartbeat), and the login must be copied once.
    moving: tokio::sync::Mutex<()>,
    /// Channels whose refused access hash was looked up again in this run (once each).
    pub(crate) hash_refreshed: std::sync::Mutex<std::collections::HashSet<i64>>,
}

impl Connected {
    /// The DC the account lives on: where calls go, and the breaker they count against.
    pub fn dc(&self) -> i32 {
        self.session.home_dc().unwrap_or(TEST_SERVER_DC)
    }

    /// Calls Telegram through the guard, on the home DC. A `USER_MIGRATE_X` answer (the
    /// account lives on DC X now) moves the session there, login included, and calls again.
    pub async fn invoke<R: RemoteCall + Identifiable>(
        &self,
        req: &R,
    ) -> Result<R::Return, GuardError> {
        self.invoke_within(req, self.guard.config().longest_wait)
            .await
    }

    /// As [`Connected::invoke`], waiting out a FLOOD_WAIT only up to `longest`
    /// (`Guard::invoke_within`).
    pub async fn invoke_within<R: RemoteCall + Identifiable>(
        &self,
        req: &R,
        longest: Option<std::time::Duration>,
    ) -> Result<R::Return, GuardError> {
        let mut moves = 0;
        loop {
            match self
                .guard
                .invoke_within(&self.client, self.dc(), req, longest)
                .await
            {
                Err(GuardError::Rpc {
                    code: 303,
                    name,
                    value: Some(to),
                }) if name == "USER_MIGRATE" && moves < 2 => {
                    moves += 1;
                    if let Err(e) = self.move_home(to as i32, true).await {
                        tracing::warn!(to, error = %e, "cannot follow the account to its new DC");
                        return Err(e);
                    }
                }
                other => return other,
            }
        }
    }

    /// Makes `dc` the home DC, durably (a `*_MIGRATE_X` answer). `copy_login`: the account is
    /// logged in on the old DC, so its login is exported there and imported on `dc` first
    /// (core.telegram.org/api/datacenter). Connections to both DCs are dropped: grammers
    /// forwards updates only from a connection opened to the home DC, so the next call opens
    /// a new one.
    pub async fn move_home(&self, dc: i32, copy_login: bool) -> Result<(), GuardError> {
        let _one = self.moving.lock().await;
        // Another call may have moved it while this one waited.
        let old = self.dc();
        if old == dc {
            return Ok(());
        }
        if !(1..=1000).contains(&dc) {
            return Err(GuardError::Local(format!(
                "Telegram sent the session to DC {dc}, which is not a DC id"
            )));
        }
        if copy_login {
            let tl::enums::auth::ExportedAuthorization::Authorization(exported) = self
                .guard
                .invoke(
                    &self.client,
                    old,
                    &tl::functions::auth::ExportAuthorization { dc_id: dc },
                )
                .await?;
            self.guard
                .invoke(
                    &self.client,
                    dc,
                    &tl::functions::auth::ImportAuthorization {
                        id: exported.id,
                        bytes: exported.bytes,
                    },
                )
                .await?;
        }
        grammers_session::Session::set_home_dc_id(&*self.session, dc)
            .await
            .map_err(|e| GuardError::Local(format!("cannot save the new home DC: {e}")))?;
        self.sender.disconnect_from_dc(old);
        self.sender.disconnect_from_dc(dc);
        tracing::info!(from = old, to = dc, "the account's home DC moved");
        Ok(())
    }
}

impl Drop for Connected {
    fn drop(&mut self) {
        self.runner.abort();
    }
}

fn read_secret(key: &str, path: &std::path::Path) -> Result<Zeroizing<String>, ConfigError> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(key, format!("cannot read {}: {e}", path.display())))?,
    );
    let trimmed = Zeroizing::new(text.trim().to_string());
    if trimmed.is_empty() {
        return Err(ConfigError::new(
            key,
            format!("{} is empty", path.display()),
        ));
    }
    Ok(trimmed)
}

/// A guard for a command run by hand: no health port, and a FLOOD_WAIT over a minute is told
/// to the user instead of waited out silently.
pub fn interactive_guard(tg: &TelegramConfig) -> Guard {
    let mut config = tg.guard.clone();
    config.longest_wait = Some(std::time::Duration::from_secs(60));
    Guard::new(config, None)
}

/// Opens the session and starts grammers' sender. Errors from Telegram come back to the caller
/// unretried: pacing and retries are the guard's job, where they are visible.
pub async fn connect(
    tg: &TelegramConfig,
    store: Store,
    vault: Arc<Vault>,
    guard: Guard,
) -> Result<Connected, ConnectError> {
    let api_hash = read_secret("telegram.api_hash_file", &tg.api_hash_file)?;
    let session = Arc::new(StoreSession::open(store, vault).await?);
    if let Some(server) = &tg.server {
        let text = read_secret("telegram.server.auth_key_file", &server.auth_key_file)?;
        let mut keys = server_keys(&text).map_err(|reason| {
            ConfigError::new(
                "telegram.server.auth_key_file",
                format!("{}: {reason}", server.auth_key_file.display()),
            )
        })?;
        session
            .use_test_server(TEST_SERVER_DC, server.address, &keys)
            .await?;
        for key in keys.values_mut() {
            zeroize::Zeroize::zeroize(key);
        }
    }
    let proxy_url = match &tg.proxy {
        Some(p) => Some(proxy_url("telegram", p).await?),
        None => None,
    };
    let pool = SenderPool::with_configuration(
        session.clone(),
        tg.api_id,
        ConnectionParams {
            retry_policy: Box::new(NoRetries),
            proxy_url: proxy_url.map(|u| u.to_string()),
            updates_channel_capacity: std::num::NonZeroUsize::new(UPDATES_CAPACITY)
                .unwrap_or(std::num::NonZeroUsize::MIN),
            ..Default::default()
        },
    );
    let sender = pool.handle.thin.clone();
    let client = Client::new(pool.handle);
    let runner = tokio::spawn(pool.runner.run());
    Ok(Connected {
        client,
        session,
        api_hash,
        api_id: tg.api_id,
        guard,
        sender,
        updates: Some(pool.updates),
        runner,
        moving: tokio::sync::Mutex::new(()),
        hash_refreshed: Default::default(),
    })
}

/// The URL grammers connects through: the proxy's host resolved here (grammers would resolve
/// a name with a resolver that panics without /etc/resolv.conf), the password read from its
/// file and hidden from every log line.
pub async fn proxy_url(
    table: &str,
    p: &crate::config::proxy::ProxyConfig,
) -> Result<Zeroizing<String>, ConnectError> {
    let key = format!("{table}.proxy_password_file");
    let password = match &p.password_file {
        Some(f) => {
            let pw = read_secret(&key, f)?;
            crate::config::proxy::check_credential("the proxy password", &pw)
                .map_err(|e| ConfigError::new(&key, format!("{}: {e}", f.display())))?;
            crate::logging::hide(&pw);
            Some(pw)
        }
        None => None,
    };
    let ip = match p.host.parse::<std::net::IpAddr>() {
        Ok(ip) => ip,
        Err(_) => tokio::net::lookup_host((p.host.as_str(), p.port))
            .await
            .ok()
            .and_then(|mut a| a.next())
            .map(|a| a.ip())
            .ok_or_else(|| {
                ConnectError::Proxy(format!("{}: its name does not resolve", p.shown()))
            })?,
    };
    Ok(Zeroizing::new(p.url_with(
        &ip.to_string(),
        password.as_deref().map(|s| s.as_str()),
    )))
}

/// The pre-shared keys in a `telegram.server.auth_key_file`: one key (512 hex characters) for
/// the server's DC 2, or a line `<dc> <512 hex characters>` per DC (what `fake-telegram serve`
/// prints). It must hold DC 2's key. Errors never quote the file's text.
pub fn server_keys(text: &str) -> Result<BTreeMap<i32, [u8; 256]>, String> {
    const SHAPE: &str = "expected one auth key as 512 hex characters, or a line \"<dc> <512 hex characters>\" per DC";
    let mut keys = BTreeMap::new();
    let decode = |hex_key: &str| -> Option<[u8; 256]> {
        let mut key = [0u8; 256];
        hex::decode_to_slice(hex_key.as_bytes(), &mut key).ok()?;
        Some(key)
    };
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    if let [only] = lines.as_slice()
        && !only.contains(char::is_whitespace)
    {
        let key = decode(only).ok_or_else(|| SHAPE.to_string())?;
        keys.insert(TEST_SERVER_DC, key);
        return Ok(keys);
    }
    for (n, line) in lines.iter().enumerate() {
        let mut parts = line.split_whitespace();
        let (Some(dc), Some(hex_key), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!("line {}: {SHAPE}", n + 1));
        };
        let dc: i32 = dc
            .parse()
            .ok()
            .filter(|d| (1..=1000).contains(d))
            .ok_or_else(|| format!("line {}: the DC must be a number from 1 to 1000", n + 1))?;
        let key = decode(hex_key).ok_or_else(|| format!("line {}: {SHAPE}", n + 1))?;
        if keys.insert(dc, key).is_some() {
            return Err(format!("line {}: DC {dc} is listed twice", n + 1));
        }
    }
    if !keys.contains_key(&TEST_SERVER_DC) {
        return Err(format!(
            "no key for DC {TEST_SERVER_DC}, the DC telegram.server.address serves"
        ));
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_key_files_with_one_key_or_a_key_per_dc() {
        let k2 = "ab".repeat(256);
        let k4 = "cd".repeat(256);
        let one = server_keys(&format!("{k2}\n")).unwrap();
        assert_eq!(one.keys().copied().collect::<Vec<_>>(), vec![2]);
        assert_eq!(one[&2], [0xab; 256]);
        let many = server_keys(&format!("# fake\n2 {k2}\n4 {k4}\n")).unwrap();
        assert_eq!(many[&4], [0xcd; 256]);
        for (bad, why) in [
            (format!("4 {k4}\n"), "no key for DC 2"),
            (format!("2 {k2}\n2 {k2}\n"), "listed twice"),
            (format!("x {k2}\n"), "from 1 to 1000"),
            (format!("2 {}\n", &k2[..100]), "512 hex"),
            ("zz".repeat(256), "512 hex"),
            (format!("2 {k2} extra\n"), "512 hex"),
        ] {
            let e = server_keys(&bad).unwrap_err();
            assert!(e.contains(why), "{bad:.20}: {e}");
            assert!(!e.contains(&k2[..32]), "the key must not be quoted: {e}");
        }
    }
}
