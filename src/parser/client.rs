//! Connecting the MTProto client: our session, the configured server, no silent retries.

use std::sync::Arc;

use grammers_client::Client;
use grammers_client::sender::{ConnectionParams, NoRetries, SenderPool};
use grammers_client::tl::{Identifiable, RemoteCall};
use zeroize::Zeroizing;

use super::session::{SessionError, StoreSession};
use crate::config::{ConfigError, TelegramConfig};
use crate::guard::{Guard, GuardError};
use crate::store::Store;
use crate::vault::Vault;

/// Updates buffered between the connection and the follower. grammers drops updates when its
/// buffer is full (100 by default); a burst of posts across many channels must fit.
pub const UPDATES_CAPACITY: usize = 8192;

/// The DC a `[telegram.server]` test server is addressed as.
pub const TEST_SERVER_DC: i32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Session(#[from] SessionError),
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
    /// The home DC (the breaker's key).
    pub dc: i32,
    /// Updates grammers received; taken by whoever follows them (the daemon's parser).
    pub updates: Option<tokio::sync::mpsc::Receiver<grammers_session::updates::UpdatesLike>>,
    runner: tokio::task::JoinHandle<()>,
}

impl Connected {
    /// Calls Telegram through the guard.
    pub async fn invoke<R: RemoteCall + Identifiable>(
        &self,
        req: &R,
    ) -> Result<R::Return, GuardError> {
        self.guard.invoke(&self.client, self.dc, req).await
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
        let hex_key = read_secret("telegram.server.auth_key_file", &server.auth_key_file)?;
        let mut key = [0u8; 256];
        hex::decode_to_slice(hex_key.as_bytes(), &mut key).map_err(|_| {
            ConfigError::new(
                "telegram.server.auth_key_file",
                format!(
                    "{} must hold a 256-byte auth key as 512 hex characters",
                    server.auth_key_file.display()
                ),
            )
        })?;
        session
            .use_test_server(TEST_SERVER_DC, server.address, key)
            .await?;
        zeroize::Zeroize::zeroize(&mut key);
    }
    let pool = SenderPool::with_configuration(
        session.clone(),
        tg.api_id,
        ConnectionParams {
            retry_policy: Box::new(NoRetries),
            updates_channel_capacity: std::num::NonZeroUsize::new(UPDATES_CAPACITY)
                .unwrap_or(std::num::NonZeroUsize::MIN),
            ..Default::default()
        },
    );
    let dc = grammers_session::Session::home_dc_id(&*session)?;
    let client = Client::new(pool.handle);
    let runner = tokio::spawn(pool.runner.run());
    Ok(Connected {
        client,
        session,
        api_hash,
        api_id: tg.api_id,
        guard,
        dc,
        updates: Some(pool.updates),
        runner,
    })
}
