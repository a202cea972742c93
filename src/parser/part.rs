//! The parser as a part of the daemon: waits for a login, then backfills the followed channels a
//! page at a time in turn while following new posts, edits and deletions live. Channel changes
//! (added, removed, paused from the CLI or the bot) are picked up from the database without a
//! restart.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use grammers_client::InvocationError;
use grammers_client::sender::UpdatesConfiguration;
use grammers_client::update::Update;
use tokio_util::sync::CancellationToken;

use super::backfill::{self, BackfillError};
use super::client::{self, Connected};

use super::convert;
use crate::config::TelegramConfig;
use crate::store::Store;
use crate::supervisor::{PartContext, PartError, PartState};
use crate::vault::Vault;

const IDLE: Duration = Duration::from_secs(2);
const LOGIN_POLL: Duration = Duration::from_secs(5);

fn is_revoked(e: &InvocationError) -> bool {
    matches!(e, InvocationError::Rpc(r) if r.name == "AUTH_KEY_UNREGISTERED" || r.name == "SESSION_REVOKED" || r.name == "USER_DEACTIVATED" || r.name == "USER_DEACTIVATED_BAN")
}

pub async fn run(
    ctx: PartContext,
    tg: TelegramConfig,
    store: Store,
    vault: Arc<Vault>,
) -> Result<(), PartError> {
    let mut conn = client::connect(&tg, store.clone(), vault.clone())
        .await
        .map_err(|e| {
            if e.is_config() {
                PartError::Fatal(e.to_string())
            } else {
                PartError::Retry(e.to_string())
            }
        })?;
    // Logged in? If not, wait for a login (CLI or bot) instead of failing: readiness warns.
    loop {
        match conn.client.is_authorized().await {
            Ok(true) => break,
            Ok(false) => ctx.registry.set(
                ctx.name,
                PartState::NotConfigured {
                    hint: "the account is not logged in: run `tgparser login`".into(),
                },
            ),
            Err(e) => return Err(PartError::Retry(format!("cannot reach Telegram: {e}"))),
        }
        tokio::select! {
            _ = tokio::time::sleep(LOGIN_POLL) => {}
            _ = ctx.cancel.cancelled() => return Ok(()),
        }
        // The session may have been written by `tgparser login` meanwhile; reopen it.
        drop(conn);
        conn = client::connect(&tg, store.clone(), vault.clone())
            .await
            .map_err(|e| PartError::Retry(e.to_string()))?;
    }
    ctx.registry.set(ctx.name, PartState::Running);
    tracing::info!("parser running");

    let follow = tokio::spawn(follow_live(
        conn.client.clone(),
        conn.updates.take(),
        store.clone(),
        ctx.cancel.clone(),
    ));
    let result = backfill_loop(&conn, &store, &ctx.cancel).await;
    follow.abort();
    let _ = conn.session.flush().await;
    result
}

async fn backfill_loop(
    conn: &Connected,
    store: &Store,
    cancel: &CancellationToken,
) -> Result<(), PartError> {
    let mut last_flush = Instant::now();
    loop {
        if cancel.is_cancelled() {
            return Ok(());
        }
        let pending: Vec<_> = store
            .channels()
            .await
            .map_err(|e| PartError::Retry(e.to_string()))?
            .into_iter()
            .filter(|c| c.state == "active" && c.backfill_state != "done")
            .collect();
        if pending.is_empty() {
            tokio::select! {
                _ = tokio::time::sleep(IDLE) => {}
                _ = cancel.cancelled() => return Ok(()),
            }
        }
        for ch in pending {
            if cancel.is_cancelled() {
                return Ok(());
            }
            match backfill::next_page(&conn.client, store, &ch).await {
                Ok(p) if p.done => {
                    tracing::info!(channel = %ch.display_name(), "backfill complete")
                }
                Ok(_) => {}
                Err(BackfillError::Private(name)) => {
                    tracing::warn!(channel = %name, "channel is private; skipped")
                }
                Err(BackfillError::Telegram { channel, error }) => {
                    if error.contains("AUTH_KEY_UNREGISTERED") || error.contains("SESSION_REVOKED")
                    {
                        let _ = store
                            .audit(
                                "daemon",
                                "session_revoked",
                                serde_json::json!({"error": error}),
                            )
                            .await;
                        return Err(PartError::Fatal(format!(
                            "Telegram revoked the session ({error}); log in again with `tgparser login`"
                        )));
                    }
                    return Err(PartError::Retry(format!("{channel}: {error}")));
                }
                Err(BackfillError::Store(e)) => return Err(PartError::Retry(e.to_string())),
            }
        }
        if last_flush.elapsed() > Duration::from_secs(5) {
            let _ = conn.session.flush().await;
            last_flush = Instant::now();
        }
    }
}

/// Follows updates: new posts, edits (versions kept) and deletions (soft) of followed channels.
/// grammers recovers pts gaps with getChannelDifference and catches up after reconnecting.
async fn follow_live(
    client: grammers_client::Client,
    updates: Option<tokio::sync::mpsc::Receiver<grammers_session::updates::UpdatesLike>>,
    store: Store,
    cancel: CancellationToken,
) {
    let Some(updates) = updates else {
        return;
    };
    let mut stream = match client
        .stream_updates(updates, UpdatesConfiguration { catch_up: true })
        .await
    {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot follow updates");
            return;
        }
    };
    let mut followed: HashSet<i64> = HashSet::new();
    let mut refreshed = Instant::now() - Duration::from_secs(60);
    loop {
        let update = tokio::select! {
            u = stream.next() => u,
            _ = cancel.cancelled() => return,
        };
        let update = match update {
            Ok(u) => u,
            Err(e) if is_revoked(&e) => {
                tracing::error!(error = %e, "session revoked while following updates");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "update stream error");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if refreshed.elapsed() > Duration::from_secs(2) {
            if let Ok(chs) = store.channels().await {
                followed = chs
                    .into_iter()
                    .filter(|c| c.state == "active")
                    .map(|c| c.id)
                    .collect();
            }
            refreshed = Instant::now();
        }
        let result = match &update {
            Update::NewMessage(m) | Update::MessageEdited(m) => {
                let channel = m.peer_id().bare_id();
                match (channel, convert::message_row(&(**m).raw)) {
                    (Some(ch), Some(row))
                        if followed.contains(&ch)
                            && m.peer_id().kind() == grammers_session::types::PeerKind::Channel =>
                    {
                        let lag = crate::time::unix_now() - row.date;
                        tracing::debug!(channel = ch, id = row.id, lag_s = lag, "live post");
                        store.ingest(ch, &[row], None).await
                    }
                    _ => Ok(()),
                }
            }
            Update::MessageDeleted(d) => match d.channel_id() {
                Some(ch) if followed.contains(&ch) => {
                    store.mark_deleted(ch, d.messages()).await.map(|_| ())
                }
                _ => Ok(()),
            },
            _ => Ok(()),
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "storing a live update failed");
        }
    }
}
