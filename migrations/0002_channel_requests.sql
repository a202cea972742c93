-- `channels add` while the daemon runs: the command cannot use the daemon's MTProto session, so
-- it leaves a request here; the daemon resolves the channel, adds it and writes the outcome back.
CREATE TABLE channel_requests (
    id            INTEGER PRIMARY KEY,
    reference     TEXT    NOT NULL CHECK (length(reference) BETWEEN 1 AND 512),
    since         INTEGER,                                 -- backfill no further back than this
    last          INTEGER CHECK (last IS NULL OR last > 0), -- backfill only the newest N posts
    requested_by  TEXT    NOT NULL,                         -- 'cli' or 'bot:<user id>'
    requested_at  INTEGER NOT NULL,
    state         TEXT    NOT NULL DEFAULT 'pending'
                  CHECK (state IN ('pending', 'done', 'failed')),
    channel_id    INTEGER,                                  -- set when done
    outcome       TEXT,                                     -- what happened, for the requester
    finished_at   INTEGER
);
CREATE INDEX channel_requests_pending ON channel_requests (id) WHERE state = 'pending';
