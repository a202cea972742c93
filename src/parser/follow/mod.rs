//! The follower: every change to a followed channel — new posts, edits, deletions — into the
//! store, whether Telegram pushed it or not, and nothing twice.
//!
//! Each channel's pts (core.telegram.org/api/updates) is the follower's bookmark: it is saved
//! in the session (sealed with the rest, durable within a few seconds and at shutdown) after
//! the changes it covers are stored. A pushed update whose `pts - pts_count` is the saved pts
//! is applied; one already covered is skipped; one that leaves a gap, an
//! `updateChannelTooLong`, a reconnect (grammers' `ConnectionClosed`) and every start send the
//! channel to `updates.getChannelDifference` from its saved pts (`difference.rs`), which brings
//! posts, edits and deletions made meanwhile, however long the daemon was away.
//!
//! Telegram pushes a channel's updates only to its members, and not reliably even then, so
//! pushes are never relied on: every followed channel is also polled (`poll.rs`: busy channels
//! often, quiet ones rarely, within the method's pace), and channels are joined (`join.rs`) so
//! that pushes, when they come, make it faster.
//!
//! The follower reads the raw updates itself instead of grammers' update stream, whose gap
//! recovery called `getChannelDifference` outside the guard; here every call is the guard's.
//! A channel's first pts comes from the first history page the backfill or a refill reads
//! (`messages.channelMessages` carries it), or from its first pushed update.

mod allocate;
mod apply;
mod comments;
mod difference;
pub(crate) mod join;
mod poll;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use grammers_client::tl::enums::{Update, Updates};
use grammers_session::updates::UpdatesLike;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::FollowSchedule;
use crate::parser::client::Connected;
use crate::parser::part::{LiveStats, Refill};
use crate::store::{ChannelRecord, Store};
use crate::supervisor::PartError;
use difference::CatchUpError;

/// How the follower works (`[telegram]`: `follow_sweep_secs`, `join`, `follow_schedule`).
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Bot admins, told once when a channel is lost.
    pub admins: Arc<[i64]>,
    /// The longest a channel goes unpolled.
    pub sweep: Duration,
    /// Join channels whose membership is `join`.
    pub join: bool,
    pub schedule: FollowSchedule,
}

/// How often the followed channels are read again (`channels add/pause/remove` reach a running
/// daemon this fast).
const FOLLOWED_REFRESH: Duration = Duration::from_secs(2);
/// A channel whose catch-up failed for a passing reason is tried again after this long.
const RETRY_AFTER: Duration = Duration::from_secs(5);
/// Channels caught up per round before pushed updates are read again.
const CATCH_UPS_PER_ROUND: usize = 16;

/// What the follower works with.
pub(super) struct Ctx {
    conn: Arc<Connected>,
    store: Store,
    stats: Arc<LiveStats>,
    refills: mpsc::UnboundedSender<Refill>,
    /// The followed (active) channels.
    channels: HashMap<i64, ChannelRecord>,
    /// The newest post id seen per channel, to notice posts that never arrived.
    newest: HashMap<i64, i32>,
    schedule: poll::Schedule,
    admins: Arc<[i64]>,
    /// The channels no longer readable (private, banned, deleted), as last reported.
    lost: Option<Vec<i64>>,
}

impl Ctx {
    fn name(&self, ch: i64) -> String {
        self.channels
            .get(&ch)
            .map(ChannelRecord::display_name)
            .unwrap_or_else(|| ch.to_string())
    }

    /// Queues a refill: in the database, where a crash cannot lose it; in memory when the
    /// database cannot take it (the write that failed is usually why there is a refill).
    async fn refill(&self, r: Refill) {
        if let Err(e) = self.store.queue_refill(r).await {
            tracing::warn!(error = %e, "cannot queue a refill in the database; queued in memory until a restart");
        }
        let _ = self.refills.send(r);
    }

    /// Wakes the refill loop for a range already queued in the database (the loop removes
    /// the database's copy once the range is stored).
    fn wake_refills(&self, r: Refill) {
        let _ = self.refills.send(r);
    }

    fn pts(&self, ch: i64) -> Option<i32> {
        self.conn.session.channel_pts(ch)
    }

    async fn save_pts(&self, ch: i64, pts: i32) {
        if let Err(e) = self.conn.session.set_channel_pts(ch, pts).await {
            tracing::warn!(channel = ch, error = %e, "cannot save the channel's update state");
        }
    }
}

/// Follows the followed channels until cancelled or the session is gone: pushed updates
/// applied in order, gaps caught up, every channel polled on its schedule, and (with
/// `settings.join`) channels joined in a task of their own.
pub(crate) async fn follow(
    conn: Arc<Connected>,
    updates: Option<mpsc::Receiver<UpdatesLike>>,
    store: Store,
    cancel: CancellationToken,
    refills: mpsc::UnboundedSender<Refill>,
    stats: Arc<LiveStats>,
    settings: Settings,
) -> Result<(), PartError> {
    let Some(mut updates) = updates else {
        return Ok(());
    };
    let budget = conn
        .guard
        .config()
        .pacing
        .get("updates.getChannelDifference")
        .map(|p| f64::from(p.calls) / p.window.as_secs_f64())
        .unwrap_or(2.0)
        * poll::POLL_SHARE;
    let admins = settings.admins.clone();
    let mut joiner = Some(tokio::spawn(join::run(
        conn.clone(),
        store.clone(),
        cancel.clone(),
        settings.join,
    )));
    let mut ctx = Ctx {
        conn,
        store,
        stats,
        refills,
        channels: HashMap::new(),
        newest: HashMap::new(),
        schedule: poll::Schedule::new(settings.schedule, budget, settings.sweep),
        admins,
        lost: None,
    };
    // Channels to catch up, and when each may be tried (a failed one waits).
    let mut behind: HashMap<i64, Instant> = HashMap::new();
    let mut refreshed: Option<Instant> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let result = loop {
        if refreshed.is_none_or(|t| t.elapsed() > FOLLOWED_REFRESH) {
            refresh(&mut ctx, &mut behind, refreshed.is_none()).await;
            refreshed = Some(Instant::now());
        }
        if joiner.as_ref().is_some_and(|j| j.is_finished())
            && let Some(j) = joiner.take()
            && let Ok(Err(e)) = j.await
        {
            break Err(e);
        }
        tokio::select! {
            u = updates.recv() => match u {
                Some(u) => on_updates(&mut ctx, &u, &mut behind).await,
                None => break Ok(()),
            },
            _ = tick.tick() => {
                // Pts saved by pushes wait in the session's batch for at most a second more,
                // however long the next push takes.
                let _ = ctx.conn.session.flush_if_due().await;
                if let Err(e) = catch_up_due(&mut ctx, &mut behind, &cancel).await {
                    break Err(e);
                }
                if let Err(e) = poll_due(&mut ctx, &behind, &cancel).await {
                    break Err(e);
                }
            }
            _ = cancel.cancelled() => break Ok(()),
        }
    };
    if let Some(j) = joiner {
        j.abort();
    }
    result
}

/// Reads the followed channels again. Newly followed ones with a saved pts are caught up (at
/// the first read: every one, for what happened while the daemon was stopped).
async fn refresh(ctx: &mut Ctx, behind: &mut HashMap<i64, Instant>, first: bool) {
    let Ok(chs) = ctx.store.channels().await else {
        return;
    };
    // How busy each channel was lately seeds its poll rate (read once; then posts seen count).
    let seeds = if first {
        ctx.store
            .posting_since(crate::time::unix_now() - 86_400)
            .await
            .unwrap_or_default()
    } else {
        HashMap::new()
    };
    let now: HashMap<i64, ChannelRecord> = chs
        .iter()
        .filter(|c| c.state == "active")
        .cloned()
        .map(|c| (c.id, c))
        .collect();
    // All at one instant: among them, the busiest go first (see `catch_up_due`).
    let at = Instant::now();
    for id in now.keys() {
        if !ctx.channels.contains_key(id) && ctx.pts(*id).is_some() {
            behind.entry(*id).or_insert(at);
        }
    }
    behind.retain(|id, _| now.contains_key(id));
    ctx.newest.retain(|id, _| now.contains_key(id));
    lost_channels(ctx, &chs).await;
    let ids: Vec<(i64, Option<poll::Seed>)> = now
        .keys()
        .map(|id| {
            let seed = seeds.get(id).map(|&(posts, secs)| poll::Seed {
                posts: posts as f64,
                secs: secs as f64,
            });
            (*id, seed)
        })
        .collect();
    ctx.schedule.set_channels(&ids, Instant::now());
    ctx.channels = now;
}

async fn on_updates(ctx: &mut Ctx, u: &UpdatesLike, behind: &mut HashMap<i64, Instant>) {
    match u {
        UpdatesLike::Updates(Updates::Updates(x)) => {
            apply::note_chats(ctx, &x.chats).await;
            apply::note_users(ctx, &x.users).await;
        }
        UpdatesLike::Updates(Updates::Combined(x)) => {
            apply::note_chats(ctx, &x.chats).await;
            apply::note_users(ctx, &x.users).await;
        }
        _ => {}
    }
    let list: &[Update] = match u {
        UpdatesLike::Updates(Updates::Updates(x)) => &x.updates,
        UpdatesLike::Updates(Updates::Combined(x)) => &x.updates,
        UpdatesLike::Updates(Updates::UpdateShort(x)) => std::slice::from_ref(&x.update),
        // Telegram says too much happened, or the connection was lost (updates may have been
        // missed), or updates came that could not be read: every channel catches up.
        UpdatesLike::Updates(Updates::TooLong)
        | UpdatesLike::ConnectionClosed
        | UpdatesLike::MalformedUpdates => {
            let now = Instant::now();
            for id in ctx.channels.keys() {
                if ctx.pts(*id).is_some() {
                    behind.entry(*id).or_insert(now);
                }
            }
            return;
        }
        _ => return,
    };
    for update in list {
        if let Update::ChannelTooLong(t) = update {
            if ctx.channels.contains_key(&t.channel_id) && ctx.pts(t.channel_id).is_some() {
                behind.entry(t.channel_id).or_insert_with(Instant::now);
            }
            continue;
        }
        let Some((ch, pts, count)) = apply::channel_pts(update) else {
            continue;
        };
        if !ctx.channels.contains_key(&ch) || behind.contains_key(&ch) {
            // Not followed; or being caught up, which brings this update in order.
            continue;
        }
        match ctx.pts(ch) {
            Some(local) if pts <= local => {} // already stored
            Some(local) if pts - count != local => {
                tracing::debug!(channel = ch, local, pts, count, "update gap; catching up");
                behind.insert(ch, Instant::now());
            }
            // In order after the saved pts: gapless. With no pts saved yet, nothing proves it;
            // the pts before this update becomes the first, durably, before it is stored, so a
            // crash in between replays it from there.
            local => match first_pts(ctx, ch, local, pts - count).await {
                Err(()) => {
                    behind.insert(ch, Instant::now() + RETRY_AFTER);
                }
                Ok(()) => match apply::apply(ctx, ch, update, true, local.is_some()).await {
                    Ok(()) => {
                        ctx.save_pts(ch, pts).await;
                        // In order: the channel is current, its next poll can wait.
                        let post = matches!(update, Update::NewChannelMessage(_));
                        ctx.schedule.pushed(ch, post, Instant::now());
                        ctx.stats.pushed(ch, &ctx.name(ch));
                    }
                    Err(e) => {
                        tracing::warn!(channel = %ctx.name(ch), error = %e, "storing a live update failed; catching up later");
                        behind.insert(ch, Instant::now() + RETRY_AFTER);
                    }
                },
            },
        }
    }
}

/// With no pts saved for `ch` (`local`), saves `before` (the pts just before a pushed update)
/// as its first, durably.
async fn first_pts(ctx: &Ctx, ch: i64, local: Option<i32>, before: i32) -> Result<(), ()> {
    if local.is_some() || before <= 0 {
        return Ok(());
    }
    ctx.conn
        .session
        .set_first_channel_pts(ch, before)
        .await
        .map_err(|e| {
            tracing::warn!(channel = %ctx.name(ch), error = %e, "cannot save the channel's update state; catching up later");
        })
}

/// Catches up the channels that are behind and due, oldest first.
async fn catch_up_due(
    ctx: &mut Ctx,
    behind: &mut HashMap<i64, Instant>,
    cancel: &CancellationToken,
) -> Result<(), PartError> {
    let now = Instant::now();
    // Oldest first; of those behind since the same moment (every channel at a start), the ones
    // the schedule polls most often, whose posts wait most.
    let mut due: Vec<(Instant, f64, i64)> = behind
        .iter()
        .filter(|(_, at)| **at <= now)
        .map(|(id, at)| (*at, ctx.schedule.urgency(*id), *id))
        .collect();
    due.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)).then(a.2.cmp(&b.2)));
    // A few at a time, so pushed updates are read between them.
    let due = due.into_iter().take(CATCH_UPS_PER_ROUND);
    let mut caught = false;
    for (_, _, ch) in due {
        if cancel.is_cancelled() {
            break;
        }
        if ctx.pts(ch).is_none() {
            behind.remove(&ch);
            continue;
        }
        match poll_one(ctx, ch).await? {
            Some(retry) => {
                behind.insert(ch, retry);
            }
            None => {
                behind.remove(&ch);
                caught = true;
            }
        }
    }
    // What the catch-ups stored is covered by their pts: written now, not with the batch a
    // second later. Every start catches every channel up; a daemon that kept dying within that
    // second kept the old pts of all but the first, until the gap grew too long to recover
    // edits and deletions.
    if caught && let Err(e) = ctx.conn.session.flush().await {
        tracing::warn!(error = %e, "cannot save the channels' update state now; kept for the next flush");
    }
    Ok(())
}

/// Polls the channels whose turn it is (those being caught up aside: that is their poll).
async fn poll_due(
    ctx: &mut Ctx,
    behind: &HashMap<i64, Instant>,
    cancel: &CancellationToken,
) -> Result<(), PartError> {
    let due = ctx.schedule.due(Instant::now(), CATCH_UPS_PER_ROUND);
    for ch in due {
        if cancel.is_cancelled() {
            return Ok(());
        }
        if behind.contains_key(&ch) || ctx.pts(ch).is_none() {
            // Not current yet: its pts comes from the backfill's first page.
            ctx.schedule.put_off(ch, Instant::now());
            continue;
        }
        if poll_one(ctx, ch).await?.is_some() {
            // Failed for a passing reason: the next turn comes on the schedule.
            ctx.schedule.put_off(ch, Instant::now());
        }
    }
    Ok(())
}

/// Catches `ch` up from its saved pts. `Some(at)`: failed for a passing reason, try at `at`.
async fn poll_one(ctx: &mut Ctx, ch: i64) -> Result<Option<Instant>, PartError> {
    let Some(pts) = ctx.pts(ch) else {
        return Ok(None);
    };
    ctx.stats.polled(ch, &ctx.name(ch));
    match difference::catch_up(ctx, ch, pts).await {
        Ok(caught) => {
            let now = Instant::now();
            ctx.schedule.answered(ch, caught.timeout, now);
            if caught.posts > 0 {
                ctx.schedule.saw_posts(ch, caught.posts, now);
                tracing::debug!(channel = %ctx.name(ch), posts = caught.posts, "caught up");
            }
            Ok(None)
        }
        Err(CatchUpError::Fatal(e)) => Err(crate::parser::part::fatal(&ctx.store, e).await),
        Err(CatchUpError::Refused(why)) => {
            tracing::warn!(channel = %ctx.name(ch), %why, "Telegram refused to catch the channel up; it is skipped until it changes");
            ctx.schedule.put_off(ch, Instant::now());
            Ok(None)
        }
        Err(CatchUpError::Later(why)) => {
            tracing::warn!(channel = %ctx.name(ch), %why, "catching up failed; trying again shortly");
            Ok(Some(Instant::now() + RETRY_AFTER))
        }
    }
}

/// Channels Telegram no longer lets the account read (`state = 'private'`: private, banned,
/// deleted, or an access hash refused): readiness warns while there are any, and the bot's
/// admins are told once per channel and day; the others go on.
async fn lost_channels(ctx: &mut Ctx, chs: &[ChannelRecord]) {
    let lost: Vec<&ChannelRecord> = chs.iter().filter(|c| c.state == "private").collect();
    let ids: Vec<i64> = lost.iter().map(|c| c.id).collect();
    if ctx.lost.as_ref() == Some(&ids) {
        return;
    }
    let before = ctx.lost.replace(ids.clone()).unwrap_or_default();
    for c in lost.iter().filter(|c| !before.contains(&c.id)) {
        let why = c.last_error.as_deref().unwrap_or("refused");
        tracing::warn!(channel = %c.display_name(), %why, "the channel can no longer be read; it is left alone (`channels resume` tries again)");
        let text = format!(
            "The channel {} ({}) can no longer be read: Telegram answers {why} (it went private, was deleted, or banned the account). It is left alone; the others go on. `tgparser channels resume {}` tries again.",
            c.display_name(),
            c.title,
            c.display_name()
        );
        let day = crate::time::unix_now() / 86_400;
        for &chat in ctx.admins.iter() {
            let key = format!("notice:channel_lost:{}:{day}:{chat}", c.id);
            if let Err(e) = ctx.store.queue_notice(chat, &key, &text).await {
                tracing::warn!(error = %e, "cannot queue the notice to the admins");
            }
        }
    }
    if let Some(h) = ctx.conn.guard.health() {
        let check = (!lost.is_empty()).then(|| crate::health::ExtraCheck {
            component_type: "component",
            status: crate::health::Status::Warn,
            observed_value: Some(lost.len() as f64),
            observed_unit: Some("channels"),
            output: format!(
                "{} channel(s) can no longer be read: {}",
                lost.len(),
                lost.iter()
                    .map(|c| format!(
                        "{} ({})",
                        c.display_name(),
                        c.last_error.as_deref().unwrap_or("refused")
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
        h.set_check("channels:lost", check);
    }
}
