//! How the bot reaches the parser's session: a gate the bot's login dialog holds so the parser
//! does not reopen the session while it is being written, and a logout request that the
//! running parser carries out with its own connection (a second connection logging out would
//! revoke the key under the parser's feet, which then looks like a revoked session).

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{Notify, OwnedMutexGuard, oneshot};

/// Shared by the parser part and the bot for the daemon's life.
#[derive(Default)]
pub struct SessionControl {
    gate: std::sync::Arc<tokio::sync::Mutex<()>>,
    logout: Mutex<Option<oneshot::Sender<Result<String, String>>>>,
    logout_wanted: Notify,
    /// Wakes a parser waiting for a login as soon as one finished.
    logged_in: Notify,
}

impl SessionControl {
    /// Held while a login dialog writes the session.
    pub async fn hold(&self) -> OwnedMutexGuard<()> {
        self.gate.clone().lock_owned().await
    }

    pub fn login_finished(&self) {
        self.logged_in.notify_one();
    }

    pub async fn wait_login(&self, at_most: Duration) {
        let _ = tokio::time::timeout(at_most, self.logged_in.notified()).await;
    }

    /// Asks the running parser to log its account out; its answer names the account. `Err`
    /// when no parser is running logged in (within `wait`).
    pub async fn request_logout(&self, wait: Duration) -> Result<String, String> {
        let (tx, rx) = oneshot::channel();
        *self.logout.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
        self.logout_wanted.notify_one();
        match tokio::time::timeout(wait, rx).await {
            Ok(Ok(answer)) => answer,
            _ => {
                self.logout.lock().unwrap_or_else(|p| p.into_inner()).take();
                Err("the parser is not running with a logged-in account".into())
            }
        }
    }

    /// For the parser: resolves when a logout was asked for; answer through the sender.
    pub async fn logout_requested(&self) -> oneshot::Sender<Result<String, String>> {
        loop {
            if let Some(tx) = self.logout.lock().unwrap_or_else(|p| p.into_inner()).take() {
                return tx;
            }
            self.logout_wanted.notified().await;
        }
    }
}
