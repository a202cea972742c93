-- Outbox delivery states. A row is marked `sending` (committed) before its Bot API call and
-- `sent` right after the answer, so after a crash the only rows whose delivery is unknown are
-- those still `sending`. Alerts folded into a digest are `folded`, pointing at the digest row.
-- SQLite cannot change a CHECK constraint in place: the table is rebuilt.
CREATE TABLE outbox_new (
    id              INTEGER PRIMARY KEY,
    dedupe_key      TEXT    NOT NULL UNIQUE,
    chat_id         INTEGER NOT NULL,
    kind            TEXT    NOT NULL CHECK (kind IN ('alert', 'digest', 'notice')),
    payload         TEXT    NOT NULL CHECK (json_valid(payload)),
    state           TEXT    NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'sending', 'sent', 'failed', 'folded', 'dropped')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    sent_at         INTEGER,
    sent_message_id INTEGER,                                  -- the Bot API message id
    folded_into     INTEGER REFERENCES outbox_new (id),       -- the digest that carried it
    created_ms      INTEGER                                   -- ms clock at enqueue, for latency
);
INSERT INTO outbox_new (id, dedupe_key, chat_id, kind, payload, state, attempts, next_attempt_at,
                        last_error, created_at, sent_at)
    SELECT id, dedupe_key, chat_id, kind, payload, state, attempts, next_attempt_at, last_error,
           created_at, sent_at FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_new RENAME TO outbox;
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE state IN ('pending', 'sending');
CREATE INDEX outbox_chat ON outbox (chat_id, state);
