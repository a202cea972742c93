-- Whether the parsing account is a member of each channel. Telegram pushes a channel's updates
-- only to its members (and not reliably even then), so every channel is also polled; joining
-- only makes it faster. 'join': to be joined (channels followed before this column existed
-- are joined at the next start when `telegram.join` is on); 'joined'; 'requested': a join
-- request waits for an admin; 'too_many': Telegram's channel limit was reached; 'no_join':
-- the operator asked not to join (`channels add --no-join`, or `telegram.join = false`).
ALTER TABLE channels ADD COLUMN membership TEXT NOT NULL DEFAULT 'join'
    CHECK (membership IN ('join', 'joined', 'requested', 'too_many', 'no_join'));

DROP VIEW v_channel_stats;
CREATE VIEW v_channel_stats AS
SELECT
    c.id                                                   AS channel_id,
    c.username                                             AS channel_username,
    c.title                                                AS channel_title,
    c.state,
    c.membership,
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

-- `channels add --no-join` (or `/add … nojoin`) while the daemon runs.
ALTER TABLE channel_requests ADD COLUMN no_join INTEGER NOT NULL DEFAULT 0 CHECK (no_join IN (0, 1));
