//! The media queue and its files (`media`): which posts' files a channel archives, and what
//! became of each (pending, done, skipped or failed, and why). The queue is fed from the
//! archive itself: `media_scan` keeps how far the posts were read, so a post stored by the
//! backfill, a refill or live follow, before a crash or after, is queued once.

use super::{Store, StoreError};

/// Every kind of file a post can carry, as `messages.media_kind` names them.
pub const FILE_KINDS: [&str; 8] = [
    "photo",
    "video",
    "video_note",
    "animation",
    "audio",
    "voice",
    "sticker",
    "document",
];

/// A channel's media policy (`channels.media_*`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MediaPolicy {
    /// Kinds archived (`FILE_KINDS` names); empty: none.
    pub kinds: Vec<String>,
    /// Bytes at most per file; `None`: the configured maximum.
    pub max_size: Option<i64>,
    /// A video (or round video, or GIF) not downloaded gets its thumbnail.
    pub video_thumbs: bool,
}

impl MediaPolicy {
    /// What a channel added now archives: `[media]`'s kinds, with its maximum.
    pub fn for_new(config: &crate::config::MediaConfig) -> MediaPolicy {
        MediaPolicy {
            kinds: config.kinds.clone(),
            max_size: None,
            video_thumbs: !config.kinds.is_empty() && config.video_thumbnails,
        }
    }

    pub fn is_off(&self) -> bool {
        self.kinds.is_empty() && !self.video_thumbs
    }
}

/// A file to download, as the queue gives it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct MediaJob {
    pub channel_id: i64,
    pub message_id: i64,
    pub kind: String,
    pub thumb: bool,
    pub file_id: i64,
    pub dc_id: Option<i64>,
    pub mime_type: Option<String>,
    pub size: Option<i64>,
    pub attempts: i64,
}

/// Which posts' files (`media fetch`): a channel, a span of post dates (unix seconds, `since`
/// inclusive, `until` exclusive).
#[derive(Debug, Clone, Default)]
pub struct MediaSelection {
    pub channel_id: Option<i64>,
    pub since: Option<i64>,
    pub until: Option<i64>,
}

/// A selection's files by state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, sqlx::FromRow)]
pub struct MediaTally {
    pub done: i64,
    pub done_bytes: i64,
    pub pending: i64,
    pub pending_bytes: i64,
    /// Of those pending, the ones waiting to be tried again later.
    pub waiting: i64,
    pub failed: i64,
    pub skipped: i64,
}

/// One channel's files, for `media status`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MediaCount {
    pub channel_id: i64,
    pub name: String,
    pub done: i64,
    pub bytes: i64,
    pub pending: i64,
    pub failed: i64,
    pub skipped: i64,
}

/// What the queue does with a post's file under a policy: `Some(thumb)` queues it (the
/// thumbnail only when `thumb`), `Err(why)` records it skipped, `None` leaves it out.
pub fn decide(
    kind: &str,
    size: Option<i64>,
    policy: &MediaPolicy,
    default_max: i64,
) -> Option<Result<bool, String>> {
    let max = policy.max_size.unwrap_or(default_max);
    let video = matches!(kind, "video" | "video_note" | "animation");
    let wanted = policy.kinds.iter().any(|k| k == kind);
    if wanted && size.is_none_or(|s| s <= max) {
        return Some(Ok(false));
    }
    if video && policy.video_thumbs {
        return Some(Ok(true));
    }
    if wanted {
        return Some(Err(format!(
            "larger than the maximum ({} > {max} bytes)",
            size.unwrap_or(0)
        )));
    }
    None
}

/// A post's file as `messages.media` describes it: its id, DC, MIME type, size, name and
/// dimensions (a photo's from its largest size).
#[derive(Debug, Default)]
struct Described {
    file_id: Option<i64>,
    dc_id: Option<i64>,
    mime_type: Option<String>,
    size: Option<i64>,
    name: Option<String>,
    w: Option<i64>,
    h: Option<i64>,
    duration: Option<f64>,
}

fn describe(kind: &str, media: &str) -> Described {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(media) else {
        return Described::default();
    };
    let int = |v: &serde_json::Value, k: &str| v.get(k).and_then(|x| x.as_i64());
    let mut d = Described {
        file_id: int(&v, "id"),
        dc_id: int(&v, "dc_id"),
        mime_type: v
            .get("mime_type")
            .and_then(|x| x.as_str())
            .map(str::to_string),
        size: int(&v, "size"),
        name: v
            .get("file_name")
            .and_then(|x| x.as_str())
            .map(str::to_string),
        w: int(&v, "w"),
        h: int(&v, "h"),
        duration: v.get("duration").and_then(|x| x.as_f64()),
    };
    if kind == "photo" {
        d.mime_type = Some("image/jpeg".into());
        let largest = v.get("sizes").and_then(|s| s.as_array()).and_then(|s| {
            s.iter()
                .filter(|x| int(x, "size").is_some())
                .max_by_key(|x| int(x, "size"))
        });
        if let Some(l) = largest {
            (d.size, d.w, d.h) = (int(l, "size"), int(l, "w"), int(l, "h"));
        }
    }
    d
}

fn policy_of(kinds: Option<String>, max: Option<i64>, thumbs: bool) -> MediaPolicy {
    MediaPolicy {
        kinds: kinds
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(str::to_string)
            .collect(),
        max_size: max,
        video_thumbs: thumbs,
    }
}

type Candidate = (
    i64,
    i64,
    i64,
    i64,
    String,
    String,
    Option<String>,
    Option<i64>,
    bool,
);

impl Store {
    /// Queues the files of posts stored since the last look (at most `batch` posts read):
    /// the number of posts read (0: the queue is up to date).
    pub async fn media_enqueue_new(
        &self,
        batch: i64,
        default_max: i64,
    ) -> Result<usize, StoreError> {
        let mut tx = self.begin_write().await?;
        let last: i64 = sqlx::query_scalar("SELECT last_pk FROM media_scan WHERE id = 1")
            .fetch_optional(&mut *tx)
            .await?
            .unwrap_or(0);
        let top: Option<i64> = sqlx::query_scalar(
            "SELECT max(pk) FROM (SELECT pk FROM messages WHERE pk > ? ORDER BY pk LIMIT ?)",
        )
        .bind(last)
        .bind(batch)
        .fetch_one(&mut *tx)
        .await?;
        let Some(top) = top else {
            return Ok(0);
        };
        let rows: Vec<Candidate> = sqlx::query_as(
            "SELECT m.pk, m.channel_id, m.id, m.date, m.media_kind, m.media, c.media_kinds, c.media_max_size, c.media_video_thumbs \
             FROM messages m JOIN channels c ON c.id = m.channel_id \
             WHERE m.pk > ? AND m.pk <= ? AND m.media IS NOT NULL AND m.deleted_at IS NULL \
               AND (c.media_kinds IS NOT NULL OR c.media_video_thumbs = 1)",
        )
        .bind(last)
        .bind(top)
        .fetch_all(&mut *tx)
        .await?;
        for (_, ch, id, date, kind, media, kinds, max, thumbs) in rows {
            queue_one(
                &mut tx,
                ch,
                id,
                date,
                &kind,
                &media,
                &policy_of(kinds, max, thumbs),
                default_max,
            )
            .await?;
        }
        sqlx::query("INSERT INTO media_scan (id, last_pk) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET last_pk = excluded.last_pk")
            .bind(top)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok((top - last).max(1) as usize)
    }

    /// Queues every stored post's file of `channel` under its policy now (its media were just
    /// turned on): the number queued.
    pub async fn media_enqueue_channel(
        &self,
        channel: i64,
        default_max: i64,
    ) -> Result<usize, StoreError> {
        let mut tx = self.begin_write().await?;
        let (kinds, max, thumbs): (Option<String>, Option<i64>, bool) = sqlx::query_as(
            "SELECT media_kinds, media_max_size, media_video_thumbs FROM channels WHERE id = ?",
        )
        .bind(channel)
        .fetch_one(&mut *tx)
        .await?;
        let policy = policy_of(kinds, max, thumbs);
        let rows: Vec<(i64, i64, String, String)> = sqlx::query_as(
            "SELECT id, date, media_kind, media FROM messages \
             WHERE channel_id = ? AND media IS NOT NULL AND deleted_at IS NULL",
        )
        .bind(channel)
        .fetch_all(&mut *tx)
        .await?;
        let mut queued = 0;
        for (id, date, kind, media) in rows {
            queued += queue_one(
                &mut tx,
                channel,
                id,
                date,
                &kind,
                &media,
                &policy,
                default_max,
            )
            .await? as usize;
        }
        tx.commit().await?;
        Ok(queued)
    }

    /// Sets `channel`'s media policy.
    pub async fn set_media_policy(
        &self,
        channel: i64,
        policy: &MediaPolicy,
    ) -> Result<(), StoreError> {
        let kinds = (!policy.kinds.is_empty()).then(|| policy.kinds.join(","));
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE channels SET media_kinds = ?, media_max_size = ?, media_video_thumbs = ?, updated_at = ? WHERE id = ?")
            .bind(kinds)
            .bind(policy.max_size)
            .bind(policy.video_thumbs)
            .bind(crate::time::unix_now())
            .bind(channel)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Up to `n` files to fetch, the newest posts first; none waiting for a retry.
    pub async fn media_next(&self, n: i64) -> Result<Vec<MediaJob>, StoreError> {
        self.media_next_in(n, &MediaSelection::default(), None)
            .await
    }

    /// Up to `n` files of `sel` to download now, newest first. `tried_before`: those waiting to
    /// be tried again too, if last tried before then (`media fetch`, asked by a person, tries
    /// each once more).
    pub async fn media_next_in(
        &self,
        n: i64,
        sel: &MediaSelection,
        tried_before: Option<i64>,
    ) -> Result<Vec<MediaJob>, StoreError> {
        Ok(sqlx::query_as::<_, MediaJob>(
            "SELECT channel_id, message_id, kind, thumb, file_id, dc_id, mime_type, size, attempts FROM media \
             WHERE state = 'pending' AND (retry_at IS NULL OR retry_at <= ?1 OR updated_at < ?6) \
             AND (?3 IS NULL OR channel_id = ?3) AND (?4 IS NULL OR date >= ?4) AND (?5 IS NULL OR date < ?5) \
             ORDER BY date DESC LIMIT ?2",
        )
        .bind(crate::time::unix_now())
        .bind(n)
        .bind(sel.channel_id)
        .bind(sel.since)
        .bind(sel.until)
        .bind(tried_before.unwrap_or(i64::MIN))
        .fetch_all(self.reader())
        .await?)
    }

    /// Files of `sel` by state.
    pub async fn media_tally(&self, sel: &MediaSelection) -> Result<MediaTally, StoreError> {
        Ok(sqlx::query_as(
            "SELECT count(*) FILTER (WHERE state = 'done') AS done, \
                    coalesce(sum(size) FILTER (WHERE state = 'done'), 0) AS done_bytes, \
                    count(*) FILTER (WHERE state = 'pending') AS pending, \
                    coalesce(sum(size) FILTER (WHERE state = 'pending'), 0) AS pending_bytes, \
                    count(*) FILTER (WHERE state = 'pending' AND retry_at > ?4) AS waiting, \
                    count(*) FILTER (WHERE state = 'failed') AS failed, \
                    count(*) FILTER (WHERE state = 'skipped') AS skipped \
             FROM media WHERE (?1 IS NULL OR channel_id = ?1) AND (?2 IS NULL OR date >= ?2) AND (?3 IS NULL OR date < ?3)",
        )
        .bind(sel.channel_id)
        .bind(sel.since)
        .bind(sel.until)
        .bind(crate::time::unix_now())
        .fetch_one(self.reader())
        .await?)
    }

    /// The stored file of Telegram's file `file_id` (a photo's if `photo`: photo and document
    /// ids are apart; its thumbnail if `thumb`), if one is done: `(sha256, path, size)`.
    pub async fn media_by_file(
        &self,
        file_id: i64,
        photo: bool,
        thumb: bool,
    ) -> Result<Option<(String, String, i64)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT sha256, path, size FROM media WHERE file_id = ? AND (kind = 'photo') = ? AND thumb = ? \
             AND state = 'done' LIMIT 1",
        )
        .bind(file_id)
        .bind(photo)
        .bind(thumb)
        .fetch_optional(self.reader())
        .await?)
    }

    /// The file of a post is stored: Telegram's file `file_id` (it may have changed since the
    /// post was queued), at `path` (relative to the state directory), `size` bytes.
    pub async fn media_done(
        &self,
        job: &MediaJob,
        file_id: i64,
        sha256: &str,
        path: &str,
        size: i64,
    ) -> Result<(), StoreError> {
        let now = crate::time::unix_now();
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE media SET state = 'done', reason = NULL, file_id = ?, sha256 = ?, path = ?, size = ?, \
             fetched_at = ?, retry_at = NULL, updated_at = ? WHERE channel_id = ? AND message_id = ?",
        )
        .bind(file_id)
        .bind(sha256)
        .bind(path)
        .bind(size)
        .bind(now)
        .bind(now)
        .bind(job.channel_id)
        .bind(job.message_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A file will not be fetched (`why`: the post is gone, it has no thumbnail...).
    pub async fn media_skipped(&self, job: &MediaJob, why: &str) -> Result<(), StoreError> {
        self.media_end(job, "skipped", why).await
    }

    /// A file failed for good (`why`), or, with `retry_at`, for now.
    pub async fn media_failed(
        &self,
        job: &MediaJob,
        why: &str,
        retry_at: Option<i64>,
    ) -> Result<(), StoreError> {
        let Some(at) = retry_at else {
            return self.media_end(job, "failed", why).await;
        };
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE media SET reason = ?, attempts = attempts + 1, retry_at = ?, updated_at = ? WHERE channel_id = ? AND message_id = ?")
            .bind(why)
            .bind(at)
            .bind(crate::time::unix_now())
            .bind(job.channel_id)
            .bind(job.message_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn media_end(&self, job: &MediaJob, state: &str, why: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE media SET state = ?, reason = ?, attempts = attempts + 1, retry_at = NULL, updated_at = ? WHERE channel_id = ? AND message_id = ?")
            .bind(state)
            .bind(why)
            .bind(crate::time::unix_now())
            .bind(job.channel_id)
            .bind(job.message_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Bytes the stored files take (each content once).
    pub async fn media_bytes(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT coalesce(sum(size), 0) FROM (SELECT max(size) AS size FROM media WHERE state = 'done' GROUP BY sha256)",
        )
        .fetch_one(self.reader())
        .await?)
    }

    /// Per channel: files stored, their bytes, and those pending, failed and skipped.
    pub async fn media_counts(&self) -> Result<Vec<MediaCount>, StoreError> {
        #[derive(sqlx::FromRow)]
        struct Row {
            id: i64,
            username: Option<String>,
            title: String,
            done: i64,
            bytes: i64,
            pending: i64,
            failed: i64,
            skipped: i64,
        }
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT c.id, c.username, c.title, \
                    count(*) FILTER (WHERE m.state = 'done') AS done, \
                    coalesce(sum(m.size) FILTER (WHERE m.state = 'done'), 0) AS bytes, \
                    count(*) FILTER (WHERE m.state = 'pending') AS pending, \
                    count(*) FILTER (WHERE m.state = 'failed') AS failed, \
                    count(*) FILTER (WHERE m.state = 'skipped') AS skipped \
             FROM channels c JOIN media m ON m.channel_id = c.id GROUP BY c.id ORDER BY c.added_at, c.id",
        )
        .fetch_all(self.reader())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| MediaCount {
                channel_id: r.id,
                name: r.username.map(|u| format!("@{u}")).unwrap_or(r.title),
                done: r.done,
                bytes: r.bytes,
                pending: r.pending,
                failed: r.failed,
                skipped: r.skipped,
            })
            .collect())
    }
}

/// Queues one post's file under `policy`: whether it was queued.
#[allow(clippy::too_many_arguments)]
async fn queue_one(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    channel: i64,
    id: i64,
    date: i64,
    kind: &str,
    media: &str,
    policy: &MediaPolicy,
    default_max: i64,
) -> Result<bool, StoreError> {
    if !FILE_KINDS.contains(&kind) {
        return Ok(false);
    }
    let d = describe(kind, media);
    let Some(file_id) = d.file_id else {
        return Ok(false);
    };
    let (state, reason, thumb) = match decide(kind, d.size, policy, default_max) {
        None => return Ok(false),
        Some(Ok(thumb)) => ("pending", None, thumb),
        Some(Err(why)) => ("skipped", Some(why), false),
    };
    let done = sqlx::query(
        "INSERT OR IGNORE INTO media (channel_id, message_id, date, kind, thumb, file_id, dc_id, mime_type, size, name, width, height, duration, state, reason, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(channel)
    .bind(id)
    .bind(date)
    .bind(kind)
    .bind(thumb)
    .bind(file_id)
    .bind(d.dc_id)
    .bind(if thumb { Some("image/jpeg".to_string()) } else { d.mime_type })
    .bind(if thumb { None } else { d.size })
    .bind(if thumb { None } else { d.name })
    .bind(d.w)
    .bind(d.h)
    .bind(d.duration)
    .bind(state)
    .bind(reason)
    .bind(crate::time::unix_now())
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() > 0 && state == "pending")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_decides_what_is_fetched() {
        let p = MediaPolicy {
            kinds: vec!["photo".into(), "video".into()],
            max_size: Some(1_000),
            video_thumbs: true,
        };
        assert_eq!(decide("photo", Some(900), &p, 10), Some(Ok(false)));
        assert!(matches!(decide("photo", Some(2_000), &p, 10), Some(Err(_))));
        assert_eq!(
            decide("video", Some(2_000), &p, 10),
            Some(Ok(true)),
            "too big: its thumbnail"
        );
        assert_eq!(decide("animation", Some(10), &p, 10), Some(Ok(true)));
        assert_eq!(decide("document", Some(10), &p, 10), None);
        let off = MediaPolicy::default();
        assert!(off.is_off());
        assert_eq!(decide("photo", Some(1), &off, 10), None);
    }

    #[test]
    fn a_photo_is_described_by_its_largest_size() {
        let d = describe(
            "photo",
            r#"{"id":5,"dc_id":4,"sizes":[{"type":"i"},{"type":"m","w":320,"h":240,"size":900},{"type":"y","w":1280,"h":960,"size":90000}]}"#,
        );
        assert_eq!(
            (d.file_id, d.dc_id, d.size, d.w),
            (Some(5), Some(4), Some(90_000), Some(1280))
        );
        assert_eq!(describe("photo", "not json").file_id, None);
    }
}
