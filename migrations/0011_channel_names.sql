-- The usernames and titles a channel had before: t.me links in old alerts, exports and notes
-- still lead to it. One row per change, holding what the channel was called until `until`.
CREATE TABLE channel_names (
    channel_id  INTEGER NOT NULL,
    username    TEXT,                                     -- without '@'; NULL: it had none
    title       TEXT    NOT NULL,
    until       INTEGER NOT NULL                          -- when it changed (Unix seconds)
);
CREATE INDEX channel_names_channel ON channel_names (channel_id, until);
CREATE INDEX channel_names_username ON channel_names (username COLLATE NOCASE)
    WHERE username IS NOT NULL;
