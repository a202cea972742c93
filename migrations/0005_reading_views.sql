-- Views for people reading the database (sqlite3, Datasette, pandas): dates as ISO-8601 UTC,
-- channel names joined in, t.me links built. They read the tables; they store nothing.

-- Every post with its channel, current text, link and deleted flag.
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
         ELSE 'https://t.me/c/' || m.channel_id || '/' || m.id END AS link
FROM messages m
JOIN channels c ON c.id = m.channel_id;

-- Every version of every post, oldest first: the earlier texts kept on edits, then the current
-- one (`current` = 1).
CREATE VIEW v_post_history AS
SELECT channel_id, message_id, version, text,
       strftime('%Y-%m-%dT%H:%M:%SZ', edit_date, 'unixepoch') AS written_at,
       0 AS current
FROM message_versions
UNION ALL
SELECT channel_id, id AS message_id, version, text,
       strftime('%Y-%m-%dT%H:%M:%SZ', coalesce(edit_date, date), 'unixepoch') AS written_at,
       1 AS current
FROM messages;

-- Per channel: posts, first and last post date, backfill progress, lag, edits and deletions.
CREATE VIEW v_channel_stats AS
SELECT
    c.id                                                   AS channel_id,
    c.username                                             AS channel_username,
    c.title                                                AS channel_title,
    c.state,
    c.post_count                                           AS posts,
    (SELECT strftime('%Y-%m-%dT%H:%M:%SZ', min(date), 'unixepoch') FROM messages WHERE channel_id = c.id) AS first_post,
    (SELECT strftime('%Y-%m-%dT%H:%M:%SZ', max(date), 'unixepoch') FROM messages WHERE channel_id = c.id) AS last_post,
    c.backfill_state,
    CASE
        WHEN c.backfill_state = 'done' THEN 100.0
        WHEN c.backfill_top_id > 0 AND c.backfill_cursor IS NOT NULL
            THEN min(99.9, max(0.0, round((c.backfill_top_id - c.backfill_cursor + 1) * 100.0 / c.backfill_top_id, 1)))
        ELSE 0.0
    END                                                    AS backfill_percent,
    CAST(strftime('%s', 'now') AS INTEGER) - c.last_post_at AS lag_seconds,
    (SELECT count(*) FROM message_versions v WHERE v.channel_id = c.id) AS edits,
    (SELECT count(*) FROM messages d WHERE d.channel_id = c.id AND d.deleted_at IS NOT NULL) AS deletions
FROM channels c;
