-- The media archive. A channel archives the kinds of files its `media_kinds` lists (NULL: none,
-- as for every channel followed before this), up to `media_max_size` bytes each (NULL: the
-- configured maximum); `media_video_thumbs`: a video not downloaded gets its thumbnail.
ALTER TABLE channels ADD COLUMN media_kinds TEXT;
ALTER TABLE channels ADD COLUMN media_max_size INTEGER CHECK (media_max_size IS NULL OR media_max_size > 0);
ALTER TABLE channels ADD COLUMN media_video_thumbs INTEGER NOT NULL DEFAULT 0 CHECK (media_video_thumbs IN (0, 1));

-- One row per post with a file the channel archives (a post carries at most one; an album is
-- several posts). The file is stored once per content under the state directory,
-- `media/ab/cd/<sha256>.<ext>`: the same file in many posts (forwards, reposts) is one file,
-- found by Telegram's file id before download and by SHA-256 after.
CREATE TABLE media (
    channel_id      INTEGER NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    message_id      INTEGER NOT NULL,
    date            INTEGER NOT NULL,                     -- the post's: the newest are fetched first
    kind            TEXT    NOT NULL CHECK (kind IN ('photo', 'video', 'video_note', 'animation',
                        'audio', 'voice', 'sticker', 'document')),
    thumb           INTEGER NOT NULL DEFAULT 0 CHECK (thumb IN (0, 1)),  -- the thumbnail only
    file_id         INTEGER NOT NULL,                     -- Telegram's photo or document id
    dc_id           INTEGER,
    mime_type       TEXT,
    size            INTEGER,                              -- bytes, as Telegram gives it
    name            TEXT,                                 -- the file name, if it has one
    width           INTEGER,
    height          INTEGER,
    duration        REAL,                                 -- seconds
    state           TEXT    NOT NULL DEFAULT 'pending'
                        CHECK (state IN ('pending', 'done', 'skipped', 'failed')),
    reason          TEXT,                                 -- why skipped or failed
    attempts        INTEGER NOT NULL DEFAULT 0,
    retry_at        INTEGER,                              -- a pending file that failed waits until then
    sha256          TEXT,                                 -- of the stored file, lowercase hex
    path            TEXT,                                 -- relative to the state directory
    fetched_at      INTEGER,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (channel_id, message_id)
) WITHOUT ROWID;
CREATE INDEX media_queue ON media (date) WHERE state = 'pending';
CREATE INDEX media_file ON media (file_id, thumb);
CREATE INDEX media_sha ON media (sha256) WHERE sha256 IS NOT NULL;

-- How far the queue has read the archive: posts with a larger `messages.pk` are looked at next.
CREATE TABLE media_scan (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    last_pk         INTEGER NOT NULL
);
INSERT INTO media_scan (id, last_pk) SELECT 1, coalesce(max(pk), 0) FROM messages;

-- Posts as operators read them, now with their stored file (the path relative to the state
-- directory, and its state: `done` when the file is there).
DROP VIEW v_posts;
CREATE VIEW v_posts AS
SELECT
    m.channel_id,
    c.username                                           AS channel_username,
    c.title                                              AS channel_title,
    m.id,
    m.kind,
    strftime('%Y-%m-%dT%H:%M:%SZ', m.date, 'unixepoch')  AS date,
    strftime('%Y-%m-%dT%H:%M:%SZ', m.edit_date, 'unixepoch') AS edit_date,
    m.text,
    m.views,
    m.forwards,
    m.replies,
    m.reactions,
    m.grouped_id,
    m.reply_to_msg_id,
    m.post_author,
    m.pinned,
    m.media_kind,
    m.version,
    m.deleted_at IS NOT NULL                             AS deleted,
    strftime('%Y-%m-%dT%H:%M:%SZ', m.deleted_at, 'unixepoch') AS deleted_at,
    CASE WHEN c.username IS NOT NULL
         THEN 'https://t.me/' || c.username || '/' || m.id
         ELSE 'https://t.me/c/' || m.channel_id || '/' || m.id END AS link,
    m.from_id,
    nullif(trim(coalesce(u.first_name, '') || ' ' || coalesce(u.last_name, '')), '') AS from_name,
    u.username                                           AS from_username,
    f.path                                               AS media_path,
    f.state                                              AS media_state
FROM messages m
JOIN channels c ON c.id = m.channel_id
LEFT JOIN users u ON u.id = m.from_id
LEFT JOIN media f ON f.channel_id = m.channel_id AND f.message_id = m.id;
