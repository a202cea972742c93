-- Who wrote each message of a supergroup, and the senders' names as Telegram last gave them.
-- A channel's own posts have no sender (NULL).
ALTER TABLE messages ADD COLUMN from_id INTEGER;  -- a user id; a chat or channel as -100<id>

CREATE TABLE users (
    id          INTEGER PRIMARY KEY,                      -- Telegram user id
    first_name  TEXT,
    last_name   TEXT,
    username    TEXT,                                     -- without '@'
    updated_at  INTEGER NOT NULL
);

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
    u.username                                           AS from_username
FROM messages m
JOIN channels c ON c.id = m.channel_id
LEFT JOIN users u ON u.id = m.from_id;
