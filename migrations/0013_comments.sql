-- Comments. A channel followed `--with-comments` has its discussion group followed too, as a
-- channel row of its own (`discussion_of` names the channel it discusses). Telegram forwards
-- each post to the group, and a comment is a group message that replies to that copy;
-- `v_comments` links every comment to its post.
ALTER TABLE channels ADD COLUMN with_comments INTEGER NOT NULL DEFAULT 0 CHECK (with_comments IN (0, 1));
ALTER TABLE channels ADD COLUMN discussion_of INTEGER;
ALTER TABLE channel_requests ADD COLUMN with_comments INTEGER NOT NULL DEFAULT 0 CHECK (with_comments IN (0, 1));

CREATE VIEW v_comments AS
SELECT
    g.discussion_of                                      AS channel_id,
    CAST(json_extract(t.fwd_from, '$.channel_post') AS INTEGER) AS post_id,
    m.channel_id                                         AS group_id,
    m.id,
    strftime('%Y-%m-%dT%H:%M:%SZ', m.date, 'unixepoch')  AS date,
    m.text,
    m.from_id,
    nullif(trim(coalesce(u.first_name, '') || ' ' || coalesce(u.last_name, '')), '') AS from_name,
    u.username                                           AS from_username,
    m.deleted_at IS NOT NULL                             AS deleted
FROM messages m
JOIN channels g ON g.id = m.channel_id AND g.discussion_of IS NOT NULL
JOIN messages t ON t.channel_id = m.channel_id
    AND t.id = coalesce(m.reply_to_top_id, m.reply_to_msg_id)
    AND json_extract(t.fwd_from, '$.channel_post') IS NOT NULL
LEFT JOIN users u ON u.id = m.from_id;
