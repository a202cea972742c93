-- Channels whose stored posts must be read again from history to find the edits and
-- deletions Telegram no longer has as events: queued when a catch-up answers
-- `channelDifferenceTooLong` (core.telegram.org/constructor/updates.channelDifferenceTooLong:
-- "every message should still be checked using messages.getHistory"), or by an operator
-- (`tgparser channels recheck`). Read newest first, a page at a time; `before_id` moves down in
-- the transaction that stores each page, so a crash resumes where it stopped.
CREATE TABLE rechecks (
    channel_id      INTEGER PRIMARY KEY REFERENCES channels (id) ON DELETE CASCADE,
    -- Stored posts with ids below this are still to be read again (0: from the newest).
    before_id       INTEGER NOT NULL,
    queued_at       INTEGER NOT NULL,
    -- Why: `too_long` (a catch-up too long to hand out) or `operator`.
    reason          TEXT NOT NULL,
    -- So far: stored posts read again, of them edited (a new version), stored posts found
    -- deleted, and posts found that were never stored (stored now).
    checked         INTEGER NOT NULL DEFAULT 0,
    edited          INTEGER NOT NULL DEFAULT 0,
    deleted         INTEGER NOT NULL DEFAULT 0,
    found           INTEGER NOT NULL DEFAULT 0,
    -- When it ended (unix seconds); NULL while it runs. The row stays, as the channel's last
    -- recheck, until another is queued.
    finished_at     INTEGER
);
