//! The parser as a part of the daemon: waits for a login, then backfills the followed channels a
//! page at a time in turn while following new posts, edits and deletions live. Channel changes
//! (added, removed, paused from the CLI or the bot) are picked up from the database without a
//! restart.
//!
//! Gaps the update stream cannot fill are refilled from history: grammers fills a pts gap with
//! getChannelDifference, but drops the posts of a `channelDifferenceTooLong` answer, and posts
//! made while the daemon was stopped are only seen if the saved updates state survived. So the
//! parser also watches message ids: a live post whose id jumps past the newest stored one queues
//! a refill of the ids in between, and every start queues a top-up of each channel from its
//! newest stored post.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use grammers_client::InvocationError;
use grammers_client::sender::UpdatesConfiguration;
use grammers_client::update::Update;
use grammers_session::updates::UpdatesLike;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::backfill::{self, BackfillError};
use super::client::{self, Connected};
use super::control::SessionControl;
use super::convert;
use crate::config::TelegramConfig;
use crate::guard::Guard;
use crate::health::Histogram;
use crate::store::{ChannelRecord, Store};
use crate::supervisor::{PartContext, PartError, PartState};
use crate::vault::Vault;

const IDLE: Duration = Duration::from_secs(2);
const LOGIN_POLL: Duration = Duration::from_secs(5);
const FOLLOWED_REFRESH: Duration = Duration::from_secs(2);

/// Delivery lag buckets, seconds. Telegram dates posts to the second, so the lag is too.
const LAG_BUCKETS: &[f64] = &[1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0];

fn is_revoked(e: &InvocationError) -> bool {
    matches!(e, InvocationError::Rpc(r) if r.name == "AUTH_KEY_UNREGISTERED" || r.name == "SESSION_REVOKED" || r.name == "USER_DEACTIVATED" || r.name == "USER_DEACTIVATED_BAN")
}

#[derive(Debug, Default)]
struct ChannelLive {
    name: String,
    last_lag: f64,
    live_posts: u64,
    refilled_posts: u64,
}

/// What live following measured, for `/metrics`: kept across part restarts.
pub struct LiveStats {
    channels: Mutex<BTreeMap<i64, ChannelLive>>,
    lag: Mutex<Histogram>,
}

impl Default for LiveStats {
    fn default() -> Self {
        LiveStats {
            channels: Mutex::new(BTreeMap::new()),
            lag: Mutex::new(Histogram::new(LAG_BUCKETS)),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A label value with `"` and `\` escaped as the exposition format wants.
fn label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl LiveStats {
    fn delivered(&self, channel: i64, name: &str, lag: f64) {
        lock(&self.lag).observe(lag);
        let mut chs = lock(&self.channels);
        let c = chs.entry(channel).or_default();
        c.name = name.to_string();
        c.last_lag = lag;
        c.live_posts += 1;
    }

    fn refilled(&self, channel: i64, name: &str, n: usize) {
        let mut chs = lock(&self.channels);
        let c = chs.entry(channel).or_default();
        c.name = name.to_string();
        c.refilled_posts += n as u64;
    }

    pub fn write_metrics(&self, out: &mut String) {
        lock(&self.lag).write(
            out,
            "tg_delivery_lag_seconds",
            "From a post's date to it being stored, for posts followed live.",
        );
        let chs = lock(&self.channels);
        let _ = writeln!(
            out,
            "# HELP tg_channel_delivery_lag_seconds Lag of the last post followed live, per channel."
        );
        let _ = writeln!(out, "# TYPE tg_channel_delivery_lag_seconds gauge");
        for (id, c) in chs.iter() {
            let _ = writeln!(
                out,
                "tg_channel_delivery_lag_seconds{{channel_id=\"{id}\",channel=\"{}\"}} {}",
                label(&c.name),
                c.last_lag
            );
        }
        let _ = writeln!(
            out,
            "# HELP tg_channel_live_posts_total Posts stored from live updates, per channel."
        );
        let _ = writeln!(out, "# TYPE tg_channel_live_posts_total counter");
        for (id, c) in chs.iter() {
            let _ = writeln!(
                out,
                "tg_channel_live_posts_total{{channel_id=\"{id}\",channel=\"{}\"}} {}",
                label(&c.name),
                c.live_posts
            );
        }
        let _ = writeln!(
            out,
            "# HELP tg_channel_refilled_posts_total Posts recovered by refilling a gap, per channel."
        );
        let _ = writeln!(out, "# TYPE tg_channel_refilled_posts_total counter");
        for (id, c) in chs.iter() {
            let _ = writeln!(
                out,
                "tg_channel_refilled_posts_total{{channel_id=\"{id}\",channel=\"{}\"}} {}",
                label(&c.name),
                c.refilled_posts
            );
        }
    }
}

/// Posts of `channel` with ids strictly between `after` and `before` (0: up to the newest) to
/// fetch from history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Refill {
    channel: i64,
    after: i32,
    before: i32,
}

pub async fn run(
    ctx: PartContext,
    tg: TelegramConfig,
    store: Store,
    vault: Arc<Vault>,
    guard: Guard,
    stats: Arc<LiveStats>,
    control: Arc<SessionControl>,
) -> Result<(), PartError> {
    let connect = || async {
        // Not while the bot's login dialog is writing the session.
        let _gate = control.hold().await;
        client::connect(&tg, store.clone(), vault.clone(), guard.clone())
            .await
            .map_err(|e| {
                if e.is_config() {
                    PartError::Fatal(e.to_string())
                } else {
                    PartError::Retry(e.to_string())
                }
            })
    };
    let mut conn = connect().await?;
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
            Err(e) if is_revoked(&e) => return Err(revoked(&store, &e.to_string()).await),
            Err(e) => return Err(PartError::Retry(format!("cannot reach Telegram: {e}"))),
        }
        // The session may be written by `tgparser login` or the bot meanwhile: let go of it
        // and reopen it.
        drop(conn);
        tokio::select! {
            _ = control.wait_login(LOGIN_POLL) => {}
            _ = ctx.cancel.cancelled() => return Ok(()),
        }
        conn = connect().await?;
    }
    ctx.registry.set(ctx.name, PartState::Running);
    tracing::info!("parser running");

    let (refill_tx, refill_rx) = mpsc::unbounded_channel();
    // Posts made while the daemon was not following: top up every channel already being read.
    for ch in store
        .channels()
        .await
        .map_err(|e| PartError::Retry(e.to_string()))?
    {
        if ch.state == "active"
            && let Ok(Some(newest)) = store.newest_id(ch.id).await
        {
            let _ = refill_tx.send(Refill {
                channel: ch.id,
                after: i32::try_from(newest).unwrap_or(i32::MAX),
                before: 0,
            });
        }
    }
    // Raw updates pass a watcher on their way to grammers: a post Telegram pushed that grammers
    // never hands over (its gap handling dropped it) is refilled from history.
    let (raw_tx, raw_rx) = mpsc::channel(client::UPDATES_CAPACITY);
    let (seen_tx, seen_rx) = mpsc::unbounded_channel();
    let watcher = conn
        .updates
        .take()
        .map(|from| tokio::spawn(watch_raw(from, raw_tx, seen_tx)));
    let gaps = tokio::spawn(gap_watch(store.clone(), seen_rx, refill_tx.clone()));
    let follow = tokio::spawn(follow_live(
        conn.client.clone(),
        watcher.is_some().then_some(raw_rx),
        store.clone(),
        ctx.cancel.clone(),
        refill_tx,
        stats.clone(),
    ));
    let conn = Arc::new(conn);
    let requests = tokio::spawn(requests_loop(
        conn.clone(),
        store.clone(),
        ctx.cancel.clone(),
    ));
    let heartbeat = tokio::spawn(heartbeat(
        conn.clone(),
        store.clone(),
        ctx.cancel.clone(),
        tg.guard.heartbeat,
    ));
    let joined = |what: &'static str| {
        move |r: Result<Result<(), PartError>, tokio::task::JoinError>| match r {
            Ok(r) => r,
            Err(e) => Err(PartError::Retry(format!("{what} stopped: {e}"))),
        }
    };
    let mut follow = follow;
    let mut requests = requests;
    let mut heartbeat = heartbeat;
    let mut logout = None;
    let result = tokio::select! {
        r = work_loop(&conn, &store, &ctx.cancel, refill_rx, &stats) => r,
        r = &mut requests => joined("channel requests")(r),
        r = &mut follow => joined("following updates")(r),
        r = &mut heartbeat => joined("the heartbeat")(r),
        tx = control.logout_requested() => {
            logout = Some(tx);
            Ok(())
        }
    };
    requests.abort();
    heartbeat.abort();
    follow.abort();
    gaps.abort();
    if let Some(w) = watcher {
        w.abort();
    }
    let _ = conn.session.flush().await;
    if let Some(answer) = logout {
        // Asked through the bot: log out with our own connection, then wait for a new login
        // (the supervisor restarts the part, which finds no login).
        let who = super::login::current_account(&conn)
            .await
            .ok()
            .flatten()
            .map(|a| format!("{} (id {})", a.name, a.user_id))
            .unwrap_or_else(|| "the account".into());
        let r = super::login::logout(&conn)
            .await
            .map(|()| who)
            .map_err(|e| e.to_string());
        let outcome = match &r {
            Ok(_) => "the account logged out; waiting for a new login".to_string(),
            Err(e) => format!("logging out failed ({e}); resuming"),
        };
        let _ = answer.send(r);
        return Err(PartError::Retry(outcome));
    }
    result
}

/// What the raw update watcher saw.
#[derive(Debug, Clone, Copy)]
enum Sighting {
    Post { channel: i64, id: i32 },
    TooLong { channel: i64 },
}

fn sightings(u: &UpdatesLike, out: &mut Vec<Sighting>) {
    use grammers_client::tl::enums::{Message, Peer, Update as U, Updates};
    let UpdatesLike::Updates(updates) = u else {
        return;
    };
    let list: &[U] = match updates {
        Updates::Updates(x) => &x.updates,
        Updates::Combined(x) => &x.updates,
        Updates::UpdateShort(x) => std::slice::from_ref(&x.update),
        _ => &[],
    };
    for update in list {
        match update {
            U::NewChannelMessage(m) => {
                if let Message::Message(msg) = &m.message
                    && let Peer::Channel(c) = &msg.peer_id
                {
                    out.push(Sighting::Post {
                        channel: c.channel_id,
                        id: msg.id,
                    });
                }
            }
            U::ChannelTooLong(t) => out.push(Sighting::TooLong {
                channel: t.channel_id,
            }),
            _ => {}
        }
    }
}

async fn watch_raw(
    mut from: mpsc::Receiver<UpdatesLike>,
    to: mpsc::Sender<UpdatesLike>,
    seen: mpsc::UnboundedSender<Sighting>,
) {
    let mut found = Vec::new();
    while let Some(u) = from.recv().await {
        sightings(&u, &mut found);
        for s in found.drain(..) {
            let _ = seen.send(s);
        }
        if to.send(u).await.is_err() {
            return;
        }
    }
}

/// How long a pushed post may take to be stored before it counts as dropped.
const DELIVERY_GRACE: Duration = Duration::from_secs(3);

/// Turns sightings into refills: a pushed post still not stored after `DELIVERY_GRACE`, or a
/// channel Telegram says is too far behind, is fetched from history.
async fn gap_watch(
    store: Store,
    mut seen: mpsc::UnboundedReceiver<Sighting>,
    refills: mpsc::UnboundedSender<Refill>,
) {
    let mut pending: HashMap<i64, (i32, Instant)> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            s = seen.recv() => match s {
                None => return,
                Some(Sighting::Post { channel, id }) => {
                    let e = pending.entry(channel).or_insert((id, Instant::now()));
                    e.0 = e.0.max(id);
                }
                Some(Sighting::TooLong { channel }) => {
                    if let Ok(Some(newest)) = store.newest_id(channel).await {
                        let _ = refills.send(Refill {
                            channel,
                            after: i32::try_from(newest).unwrap_or(i32::MAX),
                            before: 0,
                        });
                    }
                }
            },
            _ = tick.tick() => {
                let due: Vec<(i64, i32)> = pending
                    .iter()
                    .filter(|(_, (_, at))| at.elapsed() >= DELIVERY_GRACE)
                    .map(|(c, (id, _))| (*c, *id))
                    .collect();
                for (channel, id) in due {
                    pending.remove(&channel);
                    // Only channels being read (some posts stored) and only if still missing.
                    if let Ok(Some(newest)) = store.newest_id(channel).await
                        && newest < i64::from(id)
                    {
                        tracing::info!(channel, after = newest, id, "a pushed post was never delivered; refilling");
                        let _ = refills.send(Refill {
                            channel,
                            after: i32::try_from(newest).unwrap_or(i32::MAX),
                            before: id + 1,
                        });
                    }
                }
            }
        }
    }
}

const REQUESTS_POLL: Duration = Duration::from_secs(1);

/// A cheap call (`updates.getState`) at an interval, so an idle parser still notices a revoked
/// session or an unreachable DC (readiness shows either) instead of waiting for the next post.
async fn heartbeat(
    conn: Arc<Connected>,
    store: Store,
    cancel: CancellationToken,
    every: Duration,
) -> Result<(), PartError> {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = cancel.cancelled() => return Ok(()),
        }
        match conn
            .invoke(&grammers_client::tl::functions::updates::GetState {})
            .await
        {
            Ok(_) => {}
            Err(crate::guard::GuardError::Revoked(e)) => return Err(revoked(&store, &e).await),
            // The guard counts it (breaker, readiness); the heartbeat goes on.
            Err(e) => tracing::debug!(error = %e, "heartbeat failed"),
        }
    }
}

/// `channels add` from the CLI while the daemon runs (and, later, the bot): resolve the channel
/// through the guard, add it, and write the outcome back for the requester. A request that fails
/// for a temporary reason stays pending and is tried again.
async fn requests_loop(
    conn: Arc<Connected>,
    store: Store,
    cancel: CancellationToken,
) -> Result<(), PartError> {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(REQUESTS_POLL) => {}
            _ = cancel.cancelled() => return Ok(()),
        }
        let pending = store
            .pending_channel_requests()
            .await
            .map_err(|e| PartError::Retry(e.to_string()))?;
        for r in pending {
            let resolved = tokio::select! {
                c = super::resolve::resolve(&conn, &r.reference) => c,
                _ = cancel.cancelled() => return Ok(()),
            };
            let (channel, outcome) = match resolved {
                Ok(c) => {
                    let added = store
                        .add_channel(&crate::store::NewChannel::from_tl(&c, r.since, r.last))
                        .await
                        .map_err(|e| PartError::Retry(e.to_string()))?;
                    let _ = store
                        .audit(
                            &r.requested_by,
                            "channel_add",
                            serde_json::json!({"channel_id": c.id, "username": c.username}),
                        )
                        .await;
                    tracing::info!(
                        channel = c.username.as_deref().unwrap_or("-"),
                        id = c.id,
                        "channel added on request"
                    );
                    (
                        Some(c.id),
                        format!(
                            "{} {} (@{}, id {}); the daemon is reading its history",
                            if added { "added" } else { "already followed:" },
                            c.title,
                            c.username.as_deref().unwrap_or("-"),
                            c.id
                        ),
                    )
                }
                Err(super::resolve::ResolveError::Telegram {
                    error: crate::guard::GuardError::Revoked(e),
                    ..
                }) => return Err(revoked(&store, &e).await),
                Err(e) if e.is_temporary() => {
                    tracing::warn!(reference = %r.reference, error = %e, "channel request postponed");
                    continue;
                }
                Err(e) => (None, e.to_string()),
            };
            store
                .finish_channel_request(r.id, channel, &outcome)
                .await
                .map_err(|e| PartError::Retry(e.to_string()))?;
        }
    }
}

async fn revoked(store: &Store, error: &str) -> PartError {
    let _ = store
        .audit(
            "daemon",
            "session_revoked",
            serde_json::json!({ "error": error }),
        )
        .await;
    PartError::Fatal(format!(
        "Telegram revoked the session ({error}); log in again with `tgparser login`"
    ))
}

/// What to do with a failed page or refill: go on, wait, or stop the part.
async fn handle(
    err: BackfillError,
    store: &Store,
    cancel: &CancellationToken,
) -> Result<(), PartError> {
    match err {
        BackfillError::Private(name) => {
            tracing::warn!(channel = %name, "channel is private; skipped until resumed");
            Ok(())
        }
        BackfillError::Revoked(e) => Err(revoked(store, &e).await),
        BackfillError::Unavailable { retry_in, message } => {
            tracing::warn!(retry_in_s = retry_in.as_secs(), "{message}");
            tokio::select! {
                _ = tokio::time::sleep(retry_in.max(Duration::from_millis(100))) => Ok(()),
                _ = cancel.cancelled() => Ok(()),
            }
        }
        // One channel's trouble (a 400 for its history) must not stop the others.
        BackfillError::Telegram { channel, error } => {
            tracing::warn!(%channel, %error, "history request refused; will try again later");
            Ok(())
        }
        BackfillError::Store(e) => Err(PartError::Retry(e.to_string())),
    }
}

async fn log_page(store: &Store, stored: Vec<(i64, backfill::PageOutcome)>) {
    for (id, _) in stored.into_iter().filter(|(_, o)| o.done) {
        let name = match store.find_channel(&id.to_string()).await {
            Ok(Some(c)) => c.display_name(),
            _ => id.to_string(),
        };
        tracing::info!(channel = %name, "backfill complete");
    }
}

async fn work_loop(
    conn: &Connected,
    store: &Store,
    cancel: &CancellationToken,
    mut refills: mpsc::UnboundedReceiver<Refill>,
    stats: &LiveStats,
) -> Result<(), PartError> {
    let mut last_flush = Instant::now();
    let mut queued: Vec<Refill> = Vec::new();
    let mut pipe = backfill::Pipeline::new(store.clone());
    loop {
        if cancel.is_cancelled() {
            let _ = pipe.finish().await;
            return Ok(());
        }
        while let Ok(r) = refills.try_recv() {
            if !queued.contains(&r) {
                queued.push(r);
            }
        }
        // Refills first: they are the freshest posts.
        if let Some(r) = queued.first().copied() {
            queued.remove(0);
            let ch = store
                .find_channel(&r.channel.to_string())
                .await
                .map_err(|e| PartError::Retry(e.to_string()))?;
            if let Some(ch) = ch.filter(|c| c.state == "active") {
                let res = tokio::select! {
                    r = backfill::refill(conn, store, &ch, r.after, r.before) => r,
                    _ = cancel.cancelled() => return Ok(()),
                };
                match res {
                    Ok(n) => {
                        if n > 0 {
                            tracing::info!(channel = %ch.display_name(), posts = n, after = r.after, "gap refilled from history");
                        }
                        stats.refilled(ch.id, &ch.display_name(), n);
                    }
                    Err(e) => {
                        // Try again later, after the other work.
                        if !matches!(e, BackfillError::Private(_)) {
                            queued.push(r);
                        }
                        handle(e, store, cancel).await?;
                    }
                }
            }
            continue;
        }
        let pending: Vec<ChannelRecord> = store
            .channels()
            .await
            .map_err(|e| PartError::Retry(e.to_string()))?
            .into_iter()
            .filter(|c| c.state == "active" && c.backfill_state != "done")
            .filter_map(|c| pipe.view(c))
            .collect();
        if pending.is_empty() {
            match pipe.finish().await {
                Ok(prev) => log_page(store, prev).await,
                Err(e) => handle(e, store, cancel).await?,
            }
            tokio::select! {
                _ = tokio::time::sleep(IDLE) => {}
                r = refills.recv() => if let Some(r) = r { queued.push(r) },
                _ = cancel.cancelled() => return Ok(()),
            }
        }
        for ch in pending {
            let res = tokio::select! {
                r = pipe.step(conn, &ch) => r,
                _ = cancel.cancelled() => {
                    let _ = pipe.finish().await;
                    return Ok(());
                }
            };
            match res {
                Ok(prev) => log_page(store, prev).await,
                Err(e) => handle(e, store, cancel).await?,
            }
            if !refills.is_empty() {
                break;
            }
        }
        if last_flush.elapsed() > Duration::from_secs(5) {
            let _ = conn.session.flush().await;
            last_flush = Instant::now();
        }
    }
}

/// Follows updates: new posts, edits (versions kept) and deletions (soft) of followed channels.
/// grammers recovers pts gaps with getChannelDifference and catches up after reconnecting; an id
/// jump it could not fill is sent to the work loop as a refill.
async fn follow_live(
    client: grammers_client::Client,
    updates: Option<mpsc::Receiver<UpdatesLike>>,
    store: Store,
    cancel: CancellationToken,
    refills: mpsc::UnboundedSender<Refill>,
    stats: Arc<LiveStats>,
) -> Result<(), PartError> {
    let Some(updates) = updates else {
        return Ok(());
    };
    let mut stream = match client
        .stream_updates(updates, UpdatesConfiguration { catch_up: true })
        .await
    {
        Ok(s) => s,
        Err(e) => return Err(PartError::Retry(format!("cannot follow updates: {e}"))),
    };
    let mut followed: HashMap<i64, String> = HashMap::new();
    // The newest id seen per channel, to notice posts that never arrived.
    let mut newest: HashMap<i64, i32> = HashMap::new();
    let mut refreshed = Instant::now() - Duration::from_secs(60);
    loop {
        let update = tokio::select! {
            u = stream.next() => u,
            _ = cancel.cancelled() => return Ok(()),
        };
        let update = match update {
            Ok(u) => u,
            Err(e) if is_revoked(&e) => {
                tracing::error!(error = %e, "session revoked while following updates");
                return Err(revoked(&store, &e.to_string()).await);
            }
            Err(e) => {
                tracing::warn!(error = %e, "update stream error");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if refreshed.elapsed() > FOLLOWED_REFRESH {
            if let Ok(chs) = store.channels().await {
                followed = chs
                    .into_iter()
                    .filter(|c| c.state == "active")
                    .map(|c| (c.id, c.display_name()))
                    .collect();
                let ids: HashSet<i64> = followed.keys().copied().collect();
                newest.retain(|k, _| ids.contains(k));
            }
            refreshed = Instant::now();
        }
        let result = match &update {
            Update::NewMessage(m) | Update::MessageEdited(m) => {
                let is_new = matches!(update, Update::NewMessage(_));
                let channel = m.peer_id().bare_id();
                let is_channel = m.peer_id().kind() == grammers_session::types::PeerKind::Channel;
                match (channel, convert::message_row(&(**m).raw)) {
                    (Some(ch), Some(row)) if is_channel && followed.contains_key(&ch) => {
                        let name = followed.get(&ch).cloned().unwrap_or_default();
                        if is_new {
                            let known = match newest.get(&ch) {
                                Some(n) => Some(*n),
                                None => store
                                    .newest_id(ch)
                                    .await
                                    .ok()
                                    .flatten()
                                    .and_then(|n| i32::try_from(n).ok()),
                            };
                            if let Some(k) = known
                                && row.id > k + 1
                            {
                                tracing::info!(channel = %name, after = k, before = row.id, "posts missing before a live post; refilling");
                                let _ = refills.send(Refill {
                                    channel: ch,
                                    after: k,
                                    before: row.id,
                                });
                            }
                            let top = known.map_or(row.id, |k| k.max(row.id));
                            newest.insert(ch, top);
                            let lag = (crate::time::unix_now() - row.date).max(0) as f64;
                            stats.delivered(ch, &name, lag);
                        }
                        let id = row.id;
                        let res = if is_new {
                            store.ingest_live(ch, &[row]).await.map(|_| ())
                        } else {
                            store.ingest(ch, &[row], None).await
                        };
                        if res.is_err() {
                            // Not lost: fetched again from history once the store recovers.
                            let _ = refills.send(Refill {
                                channel: ch,
                                after: id - 1,
                                before: id + 1,
                            });
                        }
                        res
                    }
                    _ => Ok(()),
                }
            }
            Update::MessageDeleted(d) => match d.channel_id() {
                Some(ch) if followed.contains_key(&ch) => {
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
