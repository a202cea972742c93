-- The guard's pacing windows, saved every few seconds and at shutdown, so that a restarted
-- daemon knows the calls the last one made (Telegram counts an account's calls, not a
-- process's): each method's recent call times and FLOOD_WAIT pause, in Unix milliseconds.
CREATE TABLE guard_windows (
    method          TEXT    PRIMARY KEY,
    calls           TEXT    NOT NULL CHECK (json_valid(calls)),   -- JSON array, oldest first
    paused_until    INTEGER,
    updated_at      INTEGER NOT NULL
) WITHOUT ROWID;
