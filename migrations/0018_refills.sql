-- Ranges of a channel's posts to fetch from history: ids the update stream skipped (a new post
-- whose id jumps past the newest stored one, a difference too long to hand out). Kept in the
-- database, in the same transaction as the post that revealed the range, so a crash or a kill
-- before the refill ran cannot leave the hole behind for good; removed when the range is
-- stored, or given up on (the channel gone private, or Telegram refusing the range
-- `refusals` times).
CREATE TABLE refills (
    channel_id      INTEGER NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    -- Posts with ids strictly between these; `before_id` 0: up to the newest.
    after_id        INTEGER NOT NULL,
    before_id       INTEGER NOT NULL,
    queued_at       INTEGER NOT NULL,
    refusals        INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (channel_id, after_id, before_id)
) WITHOUT ROWID;

-- One row the daemon rewrites to see whether the database takes writes again after a write
-- failed (a full disk, another program's write lock): readiness fails, with the cause, until
-- one commits.
CREATE TABLE write_probe (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    at              INTEGER NOT NULL
);
INSERT INTO write_probe (id, at) VALUES (1, 0);
