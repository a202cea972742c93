//! Backfill: a channel's history, newest to oldest, in pages of 100. Each page is stored in the
//! same transaction that moves the channel's cursor, so a crash (even `kill -9`) resumes exactly
//! after the last stored page, and the cursor never moves backwards. Channels take turns, one
//! page each, so a big channel does not starve the others.

use std::collections::HashMap;
use std::time::Duration;

use grammers_client::tl;

use super::client::Connected;
use super::convert;
use crate::guard::GuardError;
use crate::store::{ChannelRecord, CursorAdvance, Store, StoreError};

pub const PAGE: i32 = 100;

#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    #[error("{0} is private now: the account must join it to read it")]
    Private(String),
    #[error("{channel}: Telegram refused the history request: {error}")]
    Telegram { channel: String, error: String },
    /// The session is gone (Telegram's error name): the parser must stop until someone logs in
    /// again.
    #[error("Telegram revoked the session ({0}); log in again with `tgparser login`")]
    Revoked(String),
    /// The account is frozen (Telegram's error name): the parser stops for good.
    #[error("Telegram froze the parsing account ({0})")]
    Frozen(String),
    /// Telegram is unreachable for now (the guard's breaker is open).
    #[error("{message}")]
    Unavailable { retry_in: Duration, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl BackfillError {
    pub fn from_guard(ch: &ChannelRecord, e: GuardError) -> BackfillError {
        match e {
            GuardError::Revoked(name) => BackfillError::Revoked(name),
            GuardError::Frozen(name) => BackfillError::Frozen(name),
            GuardError::Unavailable { retry_in, .. } => BackfillError::Unavailable {
                retry_in,
                message: e.to_string(),
            },
            GuardError::Flood { secs, .. } => BackfillError::Unavailable {
                retry_in: Duration::from_secs(u64::from(secs)),
                message: e.to_string(),
            },
            other => BackfillError::Telegram {
                channel: ch.display_name(),
                error: other.to_string(),
            },
        }
    }
}

/// What one page did.
#[derive(Debug, Clone, Copy)]
pub struct PageOutcome {
    pub stored: usize,
    pub done: bool,
}

fn input_peer(ch: &ChannelRecord) -> tl::enums::InputPeer {
    tl::types::InputPeerChannel {
        channel_id: ch.id,
        access_hash: ch.access_hash.unwrap_or(0),
    }
    .into()
}

/// A page of `ch`'s history: up to `PAGE` messages below `offset_id` (0: from the newest) and
/// above `min_id`, newest first.
pub(super) fn history(
    ch: &ChannelRecord,
    offset_id: i32,
    min_id: i32,
) -> tl::functions::messages::GetHistory {
    tl::functions::messages::GetHistory {
        peer: input_peer(ch),
        offset_id,
        offset_date: 0,
        add_offset: 0,
        limit: PAGE,
        max_id: 0,
        min_id,
        hash: 0,
    }
}

/// A page fetched and converted, ready to be stored with its cursor advance.
#[derive(Debug)]
pub struct Page {
    pub channel_id: i64,
    pub rows: Vec<crate::store::MessageRow>,
    pub advance: CursorAdvance,
}

/// Fetches the next page of `ch` (below its cursor) and decides how far the cursor moves. Pacing
/// and FLOOD_WAIT are waited out in the guard; nothing is skipped.
pub async fn fetch_page(
    conn: &Connected,
    store: &Store,
    ch: &ChannelRecord,
) -> Result<Page, BackfillError> {
    let offset_id = ch.backfill_cursor.unwrap_or(0) as i32;
    let req = history(ch, offset_id, 0);
    let answer = match conn.invoke(&req).await {
        Ok(a) => a,
        Err(e) => return Err(refused(conn, store, ch, e).await),
    };
    let messages = page_messages(conn, store, ch, answer).await;
    let page_min = messages.iter().map(message_id).min();
    let mut rows: Vec<_> = messages.iter().filter_map(convert::message_row).collect();
    let mut done = messages.is_empty() || page_min.is_some_and(|m| m <= 1);
    if let Some(since) = ch.backfill_since {
        let before = rows.len();
        rows.retain(|r| r.date >= since);
        done |= rows.len() < before;
    }
    if let Some(limit) = ch.backfill_limit {
        let left = (limit - ch.backfill_done_count).max(0) as usize;
        if rows.len() >= left {
            rows.sort_by_key(|r| std::cmp::Reverse(r.id));
            rows.truncate(left);
            done = true;
        }
    }
    // A server that ignores offset_id would hand the same page forever: end there.
    if offset_id != 0 && page_min.is_some_and(|m| m >= offset_id) {
        done = true;
    }
    Ok(Page {
        channel_id: ch.id,
        rows,
        advance: CursorAdvance {
            channel_id: ch.id,
            cursor: page_min.unwrap_or(offset_id),
            done,
        },
    })
}

/// Stores a page and moves its channel's cursor, in one transaction.
pub async fn store_page(store: &Store, page: &Page) -> Result<PageOutcome, StoreError> {
    store
        .ingest(page.channel_id, &page.rows, Some(page.advance))
        .await?;
    Ok(PageOutcome {
        stored: page.rows.len(),
        done: page.advance.done,
    })
}

/// Fetches and stores the next page of `ch`.
pub async fn next_page(
    conn: &Connected,
    store: &Store,
    ch: &ChannelRecord,
) -> Result<PageOutcome, BackfillError> {
    let page = fetch_page(conn, store, ch).await?;
    Ok(store_page(store, &page).await?)
}

/// Backfill with the next pages fetched while earlier ones are being stored: the network and
/// the database work at the same time, and pages that arrive while a commit runs are committed
/// together by the next one (each with its own cursor advance, so a page and its cursor still
/// move in one transaction). Until a page commits, the pipeline remembers how far its channel
/// has been fetched.
pub struct Pipeline {
    store: Store,
    /// The commit running now: what it carries (channel, cursor, posts, done) and its task.
    inflight: Option<(Vec<Carried>, Commit)>,
    queued: Vec<Page>,
    /// Pages committed while a fetch ran, reported by the next step.
    finished: Vec<(i64, PageOutcome)>,
    /// Channel → (cursor, posts counted, done) as fetched, ahead of the database.
    ahead: HashMap<i64, (i64, i64, bool)>,
}

/// What a running commit carries, per page: channel, cursor, posts, done.
type Carried = (i64, i32, usize, bool);
/// The task committing a group of pages.
type Commit = tokio::task::JoinHandle<Result<(), StoreError>>;

/// Pages waiting for a commit before the fetcher waits for the database: 1.5 commits' worth, so
/// the next commit is ready when one ends.
const MAX_QUEUED: usize = 60;
/// Posts a commit waits for while fetching keeps up. Each commit writes its FTS index segment and
/// does the index's share of merging; commits of one or two pages made that most of a backfill's
/// time, and 4,000 posts cost the writer 7% fewer instructions per post than 1,000.
const COMMIT_AT_LEAST: usize = 4_000;
/// How long fetched pages may wait for more before they are committed anyway (a slow or paced
/// fetch): progress in `/status` and `channels list` stays this fresh.
const COMMIT_AFTER: std::time::Duration = std::time::Duration::from_millis(200);

impl Pipeline {
    pub fn new(store: Store) -> Pipeline {
        Pipeline {
            store,
            inflight: None,
            queued: Vec::new(),
            finished: Vec::new(),
            ahead: HashMap::new(),
        }
    }

    /// `ch` as the pipeline sees it (its fetched progress applied); `None` once it is done.
    pub fn view(&self, mut ch: ChannelRecord) -> Option<ChannelRecord> {
        if let Some(&(cursor, count, done)) = self.ahead.get(&ch.id) {
            if done {
                return None;
            }
            ch.backfill_cursor = Some(ch.backfill_cursor.map_or(cursor, |c| c.min(cursor)));
            ch.backfill_done_count = ch.backfill_done_count.max(count);
        }
        Some(ch)
    }

    /// Fetches the next page of `ch` (as returned by [`Pipeline::view`]) and hands it to the
    /// database. Returns the pages whose commit finished meanwhile: (channel, outcome).
    pub async fn step(
        &mut self,
        conn: &Connected,
        ch: &ChannelRecord,
    ) -> Result<Vec<(i64, PageOutcome)>, BackfillError> {
        // A finished commit is collected first, so its error is not held behind a fetch.
        if self.inflight.as_ref().is_some_and(|(_, h)| h.is_finished()) {
            let out = self.wait_inflight().await?;
            self.finished.extend(out);
        }
        let store = self.store.clone();
        let fetch = fetch_page(conn, &store, ch);
        tokio::pin!(fetch);
        let fetched = if self.inflight.is_none() && !self.queued.is_empty() {
            // Pages wait for more only while the next fetch is quick.
            tokio::select! {
                page = &mut fetch => page,
                _ = tokio::time::sleep(COMMIT_AFTER) => {
                    self.start_commit();
                    fetch.await
                }
            }
        } else {
            fetch.await
        };
        let page = match fetched {
            Ok(p) => p,
            Err(e) => {
                // Whatever was fetched before is stored before the error is handled.
                self.finish().await?;
                return Err(e);
            }
        };
        self.ahead.insert(
            ch.id,
            (
                i64::from(page.advance.cursor),
                ch.backfill_done_count + page.rows.len() as i64,
                page.advance.done,
            ),
        );
        self.queued.push(page);
        let mut stored = std::mem::take(&mut self.finished);
        let busy = self
            .inflight
            .as_ref()
            .is_some_and(|(_, h)| !h.is_finished());
        let rows: usize = self.queued.iter().map(|p| p.rows.len()).sum();
        let done = self.queued.last().is_some_and(|p| p.advance.done);
        if self.queued.len() < MAX_QUEUED && (busy || (rows < COMMIT_AT_LEAST && !done)) {
            return Ok(stored);
        }
        stored.extend(self.wait_inflight().await?);
        self.start_commit();
        Ok(stored)
    }

    fn start_commit(&mut self) {
        if self.queued.is_empty() {
            return;
        }
        let pages = std::mem::take(&mut self.queued);
        let carried = pages
            .iter()
            .map(|p| (p.channel_id, p.advance.cursor, p.rows.len(), p.advance.done))
            .collect();
        let store = self.store.clone();
        let handle = tokio::spawn(async move {
            let batches: Vec<_> = pages
                .iter()
                .map(|p| (p.channel_id, p.rows.as_slice(), Some(p.advance)))
                .collect();
            store.ingest_group(&batches).await
        });
        self.inflight = Some((carried, handle));
    }

    async fn wait_inflight(&mut self) -> Result<Vec<(i64, PageOutcome)>, BackfillError> {
        let Some((carried, handle)) = self.inflight.take() else {
            return Ok(Vec::new());
        };
        handle
            .await
            .map_err(|e| BackfillError::Store(StoreError::Task(e.to_string())))??;
        let mut out = Vec::with_capacity(carried.len());
        for (channel, cursor, stored, done) in carried {
            // Stored: the database knows as much as we do, unless a later page was fetched.
            if self
                .ahead
                .get(&channel)
                .is_some_and(|a| a.0 == i64::from(cursor))
            {
                self.ahead.remove(&channel);
            }
            out.push((channel, PageOutcome { stored, done }));
        }
        Ok(out)
    }

    /// Commits everything fetched so far and waits for it.
    pub async fn finish(&mut self) -> Result<Vec<(i64, PageOutcome)>, BackfillError> {
        let mut out = std::mem::take(&mut self.finished);
        out.extend(self.wait_inflight().await?);
        self.start_commit();
        out.extend(self.wait_inflight().await?);
        Ok(out)
    }
}

/// Fetches the posts of `ch` with ids strictly between `after` and `before` (`before` = 0: up to
/// the newest) in pages of 100, newest first, and stores them, leaving the backfill cursor alone:
/// the refill for a gap the update stream could not fill (a too-long gap, posts made while the
/// connection was down or the daemon stopped). Bounded by the range; returns the posts stored.
pub async fn refill(
    conn: &Connected,
    store: &Store,
    ch: &ChannelRecord,
    after: i32,
    before: i32,
) -> Result<usize, BackfillError> {
    let mut offset_id = before;
    let mut stored = 0;
    while offset_id == 0 || offset_id > after + 1 {
        let req = history(ch, offset_id, after);
        let answer = match conn.invoke(&req).await {
            Ok(a) => a,
            Err(e) => return Err(refused(conn, store, ch, e).await),
        };
        let messages = page_messages(conn, store, ch, answer).await;
        let Some(page_min) = messages.iter().map(message_id).min() else {
            break;
        };
        let rows: Vec<_> = messages
            .iter()
            .filter_map(convert::message_row)
            .filter(|r| r.id > after && (before == 0 || r.id < before))
            .collect();
        store.ingest_live(ch.id, &rows, None).await?;
        stored += rows.len();
        if offset_id != 0 && page_min >= offset_id {
            break; // no progress: never loop on a server that ignores offset_id
        }
        offset_id = page_min;
    }
    Ok(stored)
}

/// A failed history request. A refused access hash is looked up again once. A channel Telegram
/// no longer lets the account read (private, or an access hash still refused) is marked
/// `private` with the reason, so backfill, refills and the
/// follower leave it alone until someone resumes it, instead of asking again forever.
pub(super) async fn refused(
    conn: &Connected,
    store: &Store,
    ch: &ChannelRecord,
    e: GuardError,
) -> BackfillError {
    match e {
        // A refused access hash is looked up again once before the channel is given up.
        GuardError::Rpc { name, .. }
            if name == "CHANNEL_INVALID"
                && super::resolve::refresh_access_hash(
                    conn,
                    store,
                    ch.id,
                    ch.username.as_deref(),
                )
                .await =>
        {
            BackfillError::Unavailable {
                retry_in: Duration::from_secs(1),
                message: format!(
                    "{}: a new access hash was looked up; trying again",
                    ch.display_name()
                ),
            }
        }
        GuardError::Rpc { name, .. } if name == "CHANNEL_PRIVATE" || name == "CHANNEL_INVALID" => {
            if let Err(e) = store.set_channel_state(ch.id, "private", Some(&name)).await {
                return BackfillError::Store(e);
            }
            BackfillError::Private(ch.display_name())
        }
        e => BackfillError::from_guard(ch, e),
    }
}

/// A history page's messages (its senders stored in `users`). A channel's page also carries the channel's pts, which becomes
/// the follower's first bookmark for a channel that has none: what happened after it is caught
/// up with getChannelDifference, what came before is in history.
pub(super) async fn page_messages(
    conn: &Connected,
    store: &Store,
    ch: &ChannelRecord,
    answer: tl::enums::messages::Messages,
) -> Vec<tl::enums::Message> {
    // The senders of a supergroup's messages, for `users` (a failure costs only names).
    let users = match &answer {
        tl::enums::messages::Messages::Messages(m) => &m.users[..],
        tl::enums::messages::Messages::Slice(m) => &m.users[..],
        tl::enums::messages::Messages::ChannelMessages(m) => &m.users[..],
        tl::enums::messages::Messages::NotModified(_) => &[],
    };
    if let Err(e) = store.upsert_users(&convert::user_rows(users)).await {
        tracing::warn!(channel = %ch.display_name(), error = %e, "cannot record the senders' names");
    }
    match answer {
        tl::enums::messages::Messages::Messages(m) => m.messages,
        tl::enums::messages::Messages::Slice(m) => m.messages,
        tl::enums::messages::Messages::ChannelMessages(m) => {
            if conn.session.channel_pts(ch.id).is_none()
                && m.pts > 0
                && let Err(e) = conn.session.set_first_channel_pts(ch.id, m.pts).await
            {
                tracing::warn!(channel = %ch.display_name(), error = %e, "cannot save the channel's update state");
            }
            m.messages
        }
        tl::enums::messages::Messages::NotModified(_) => Vec::new(),
    }
}

pub(super) fn message_id(m: &tl::enums::Message) -> i32 {
    match m {
        tl::enums::Message::Message(x) => x.id,
        tl::enums::Message::Service(x) => x.id,
        tl::enums::Message::Empty(x) => x.id,
    }
}

/// Backfills every active channel that is not done, a page at a time in turn, calling
/// `progress` after each page is stored. Returns the number of posts stored.
pub async fn run_all(
    conn: &Connected,
    store: &Store,
    only: Option<i64>,
    mut progress: impl FnMut(&ChannelRecord, PageOutcome),
) -> Result<u64, BackfillError> {
    let mut total = 0u64;
    let mut pipe = Pipeline::new(store.clone());
    async fn report(
        store: &Store,
        stored: Vec<(i64, PageOutcome)>,
        total: &mut u64,
    ) -> Result<Vec<(ChannelRecord, PageOutcome)>, StoreError> {
        let mut out = Vec::with_capacity(stored.len());
        for (id, o) in stored {
            *total += o.stored as u64;
            if let Some(fresh) = store.find_channel(&id.to_string()).await? {
                out.push((fresh, o));
            }
        }
        Ok(out)
    }
    loop {
        let pending: Vec<ChannelRecord> = store
            .channels()
            .await?
            .into_iter()
            .filter(|c| c.state == "active" && c.backfill_state != "done")
            .filter(|c| only.is_none_or(|id| id == c.id))
            .filter_map(|c| pipe.view(c))
            .collect();
        if pending.is_empty() {
            let last = pipe.finish().await?;
            for (ch, o) in report(store, last, &mut total).await? {
                progress(&ch, o);
            }
            // Channels done only in the pipeline's view are stored now; look again.
            let left = store
                .channels()
                .await?
                .into_iter()
                .filter(|c| c.state == "active" && c.backfill_state != "done")
                .any(|c| only.is_none_or(|id| id == c.id));
            if !left {
                return Ok(total);
            }
            continue;
        }
        for ch in pending {
            match pipe.step(conn, &ch).await {
                Ok(stored) => {
                    for (fresh, o) in report(store, stored, &mut total).await? {
                        progress(&fresh, o);
                    }
                }
                Err(BackfillError::Private(name)) => {
                    tracing::warn!(channel = %name, "channel became private; skipping it");
                }
                Err(e) => return Err(e),
            }
        }
    }
}
