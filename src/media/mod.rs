//! The media archive: downloads the files of the posts each channel archives (`media` table,
//! `[media]` in the configuration), into a content-addressed store under the state directory.
//!
//! - **The queue** is fed from the archive (`Store::media_enqueue_new`), so whatever stored a
//!   post (backfill, refill, live follow), its file is queued once, crash or not. The newest
//!   posts go first. Text never waits for media: this task has its own queue and its calls are
//!   made through the guard (`upload.getFile` has its own FLOOD_WAIT pause, and a pacing window
//!   when `[telegram.pacing]` sets one).
//! - **A file's location** (its id, access hash and file reference) is read fresh with
//!   `channels.getMessages` before the download and again when Telegram says the reference
//!   expired (core.telegram.org/api/file_reference); only the file's identity is stored.
//! - **Files live on DCs** (`dc_id`): the login is copied to a DC before its first file
//!   (`auth.exportAuthorization`/`importAuthorization`), and `FILE_MIGRATE_X` is followed
//!   (core.telegram.org/api/files).
//! - **Parts** of 512 KiB, appended to `media/.partial/`; a restart resumes from the last whole
//!   part. The file is fsynced, hashed, and moved to `media/ab/cd/<sha256>.<ext>` (mode 0600)
//!   before its row says done; the same content is stored once.
//! - **The disk**: past `media.max_total_size`, or below `media.min_free_space` free (or on
//!   ENOSPC), downloads pause, readiness warns why, and they resume when there is room.

mod download;
mod location;
pub mod maintain;
mod room;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::MediaConfig;
use crate::parser::client::Connected;
use crate::store::{MediaJob, MediaSelection, Store};
use crate::supervisor::PartError;

pub use download::PART;
pub use room::Room;

/// How often the queue is read when idle.
const IDLE: Duration = Duration::from_secs(2);
/// Posts read from the archive per look.
const SCAN_BATCH: i64 = 5_000;
/// A file that failed for a passing reason is tried again after this long, doubling, up to an
/// hour; after this many tries it is failed for good.
const RETRY_FIRST: i64 = 30;
const MAX_ATTEMPTS: i64 = 8;
/// How long downloads pause when the disk is full or the budget reached, before looking again.
const NO_ROOM_PAUSE: Duration = Duration::from_secs(10);

/// Sets the kinds of files `channel` archives (`--media` of `channels add`, `/add`; the
/// maximum size and video thumbnails as `[media]` says) and queues its stored posts' files:
/// how many were queued.
pub async fn set_kinds(
    store: &Store,
    config: &MediaConfig,
    channel: i64,
    kinds: &[String],
) -> Result<usize, crate::store::StoreError> {
    let policy = crate::store::MediaPolicy {
        kinds: kinds.to_vec(),
        max_size: None,
        video_thumbs: !kinds.is_empty() && config.video_thumbnails,
    };
    store.set_media_policy(channel, &policy).await?;
    store
        .media_enqueue_channel(channel, config.max_file_size)
        .await
}

/// What the downloader needs.
#[derive(Clone)]
pub struct Downloader {
    pub conn: Arc<Connected>,
    pub store: Store,
    pub config: MediaConfig,
    /// `<state dir>/media`.
    pub dir: PathBuf,
    auths: Arc<location::Auths>,
}

impl Downloader {
    pub fn new(conn: Arc<Connected>, store: Store, config: MediaConfig, dir: PathBuf) -> Self {
        Downloader {
            conn,
            store,
            config,
            dir,
            auths: Arc::new(location::Auths::default()),
        }
    }

    /// Runs until cancelled. Only a revoked or frozen session stops it (and the parser).
    pub async fn run(self, cancel: CancellationToken) -> Result<(), PartError> {
        let room = Room::new(&self.dir, &self.config);
        loop {
            if cancel.is_cancelled() {
                return Ok(());
            }
            self.catch_up().await;
            let jobs = match self.store.media_next(self.config.parallel as i64 * 4).await {
                Ok(j) => j,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the media queue");
                    Vec::new()
                }
            };
            if jobs.is_empty() {
                self.report(None);
                tokio::select! {
                    _ = tokio::time::sleep(IDLE) => continue,
                    _ = cancel.cancelled() => return Ok(()),
                }
            }
            // Room on the disk and in the budget for these.
            let need: i64 = jobs.iter().map(|j| j.size.unwrap_or(0)).max().unwrap_or(0);
            if let Some(why) = room.lacks(&self.store, need).await {
                self.report(Some(&why));
                tokio::select! {
                    _ = tokio::time::sleep(NO_ROOM_PAUSE) => continue,
                    _ = cancel.cancelled() => return Ok(()),
                }
            }
            self.report(None);
            if let Some(why) = self.batch(jobs, &room, &cancel).await? {
                // Kept pending (the parts written stay); nothing more until there is room.
                self.report(Some(&why));
                tokio::select! {
                    _ = tokio::time::sleep(NO_ROOM_PAUSE) => {}
                    _ = cancel.cancelled() => return Ok(()),
                }
            }
        }
    }

    /// Downloads the files of `sel` now, each tried once more even if it waits to be tried
    /// again later, until none is left (`Ok(None)`) or there is no room (`Ok(Some(why))`).
    pub async fn fetch(
        &self,
        sel: &MediaSelection,
        cancel: &CancellationToken,
    ) -> Result<Option<String>, PartError> {
        let room = Room::new(&self.dir, &self.config);
        let started = crate::time::unix_now();
        self.catch_up().await;
        loop {
            if cancel.is_cancelled() {
                return Ok(None);
            }
            let jobs = self
                .store
                .media_next_in(self.config.parallel as i64 * 4, sel, Some(started))
                .await
                .map_err(|e| PartError::Retry(e.to_string()))?;
            if jobs.is_empty() {
                return Ok(None);
            }
            let need: i64 = jobs.iter().map(|j| j.size.unwrap_or(0)).max().unwrap_or(0);
            if let Some(why) = room.lacks(&self.store, need).await {
                return Ok(Some(why));
            }
            if let Some(why) = self.batch(jobs, &room, cancel).await? {
                return Ok(Some(why));
            }
        }
    }

    /// Catches the queue up with the archive.
    async fn catch_up(&self) {
        loop {
            match self
                .store
                .media_enqueue_new(SCAN_BATCH, self.config.max_file_size)
                .await
            {
                Ok(0) => break,
                Ok(_) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot queue media now");
                    break;
                }
            }
        }
    }

    /// Downloads `jobs`, `parallel` at once, their locations read first (a call per channel).
    /// `Some(why)`: stopped because the disk is full.
    async fn batch(
        &self,
        jobs: Vec<MediaJob>,
        room: &Room,
        cancel: &CancellationToken,
    ) -> Result<Option<String>, PartError> {
        let mut by_channel: HashMap<i64, Vec<MediaJob>> = HashMap::new();
        for j in jobs {
            by_channel.entry(j.channel_id).or_default().push(j);
        }
        let mut work: Vec<(MediaJob, location::Location)> = Vec::new();
        for (ch, jobs) in by_channel {
            match location::read(&self.conn, &self.store, ch, &jobs).await {
                Ok(found) => {
                    for j in jobs {
                        match found.get(&j.message_id) {
                            // One download per file in a batch: its reposts find it stored
                            // in the next.
                            Some(Ok(loc))
                                if work.iter().any(|(w, l)| {
                                    l.file_id == loc.file_id && w.thumb == j.thumb
                                }) => {}
                            Some(Ok(loc)) => work.push((j, loc.clone())),
                            Some(Err(why)) => self.skip(&j, why).await,
                            None => self.skip(&j, "the post is gone").await,
                        }
                    }
                }
                Err(location::Error::Fatal(e)) => {
                    return Err(crate::parser::part::fatal(&self.store, e).await);
                }
                Err(location::Error::Refused(why)) => {
                    for j in jobs {
                        self.fail(&j, &why, false).await;
                    }
                }
                Err(location::Error::Later(why)) => {
                    for j in jobs {
                        self.fail(&j, &why, true).await;
                    }
                }
            }
        }
        let mut set = tokio::task::JoinSet::new();
        let mut work = work.into_iter().peekable();
        // Bytes the downloads in flight may still write, by file: a download starts only if
        // it fits beside them, so downloads at once never take the room the database keeps.
        let mut in_flight: HashMap<(i64, i64), i64> = HashMap::new();
        let mut no_room = None;
        loop {
            while set.len() < self.config.parallel && !cancel.is_cancelled() && no_room.is_none() {
                let Some((job, _)) = work.peek() else { break };
                let size = job.size.unwrap_or(0);
                let others: i64 = in_flight.values().sum();
                if let Some(why) = room.lacks(&self.store, others + size).await {
                    no_room = Some(why);
                    break;
                }
                let Some((job, loc)) = work.next() else { break };
                in_flight.insert((job.channel_id, job.message_id), size);
                let me = self.clone();
                set.spawn(async move {
                    let r = download::fetch(&me, &job, loc).await;
                    (job, r)
                });
            }
            let Some(done) = set.join_next().await else {
                return Ok(no_room);
            };
            let Ok((job, r)) = done else { continue };
            let size = in_flight
                .remove(&(job.channel_id, job.message_id))
                .unwrap_or(0);
            match r {
                Ok(()) => room.stored(size),
                Err(download::Error::Fatal(e)) => {
                    set.abort_all();
                    return Err(crate::parser::part::fatal(&self.store, e).await);
                }
                Err(download::Error::Skip(why)) => self.skip(&job, &why).await,
                Err(download::Error::Failed(why)) => self.fail(&job, &why, false).await,
                Err(download::Error::Later(why)) => self.fail(&job, &why, true).await,
                Err(download::Error::NoRoom(why)) => {
                    set.abort_all();
                    return Ok(Some(why));
                }
            }
        }
    }

    async fn skip(&self, job: &MediaJob, why: &str) {
        tracing::info!(channel = job.channel_id, post = job.message_id, %why, "media skipped");
        if let Err(e) = self.store.media_skipped(job, why).await {
            tracing::warn!(error = %e, "cannot record a skipped file");
        }
    }

    /// Records a failure: for now (`later`, tried again with growing delays, up to
    /// [`MAX_ATTEMPTS`]) or for good.
    async fn fail(&self, job: &MediaJob, why: &str, later: bool) {
        let retry = (later && job.attempts + 1 < MAX_ATTEMPTS)
            .then(|| crate::time::unix_now() + (RETRY_FIRST << job.attempts.min(7)).min(3_600));
        tracing::warn!(channel = job.channel_id, post = job.message_id, %why, again = retry.is_some(), "a file could not be fetched");
        if let Err(e) = self.store.media_failed(job, why, retry).await {
            tracing::warn!(error = %e, "cannot record a failed file");
        }
    }

    /// Readiness: why downloads are paused, if they are.
    fn report(&self, paused: Option<&str>) {
        if let Some(h) = self.conn.guard.health() {
            h.set_check(
                "media",
                paused.map(|why| crate::health::ExtraCheck {
                    component_type: "component",
                    status: crate::health::Status::Warn,
                    observed_value: None,
                    observed_unit: None,
                    output: format!("media downloads are paused: {why}"),
                }),
            );
        }
    }
}
