-- The whole product's schema. Forward-only: later migrations add, never rename or drop.
-- Times are Unix seconds, UTC. Telegram ids are stored as Telegram sends them (channel ids bare,
-- without the -100 prefix of the Bot API).

-- Which key seals the vault's records, plus a canary sealed under it: a wrong key is detected at
-- start, before anything is written.
CREATE TABLE vault_meta (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    key_id      TEXT    NOT NULL,
    canary      BLOB    NOT NULL,
    created_at  INTEGER NOT NULL,
    rotated_at  INTEGER
);

-- Channels the parser follows.
CREATE TABLE channels (
    id                  INTEGER PRIMARY KEY,              -- Telegram channel id (bare)
    access_hash         INTEGER,
    username            TEXT,                             -- without '@'
    title               TEXT    NOT NULL DEFAULT '',
    about               TEXT,
    participants_count  INTEGER,
    kind                TEXT    NOT NULL DEFAULT 'broadcast'
                        CHECK (kind IN ('broadcast', 'megagroup', 'gigagroup')),
    state               TEXT    NOT NULL DEFAULT 'active'
                        CHECK (state IN ('active', 'paused', 'private', 'removed', 'failed')),
    -- Backfill runs newest -> oldest. `backfill_cursor` is the smallest message id stored by it;
    -- the next page starts below it. Committed with its page, so it never moves backwards.
    backfill_state      TEXT    NOT NULL DEFAULT 'pending'
                        CHECK (backfill_state IN ('pending', 'running', 'done')),
    backfill_since      INTEGER,                          -- stop at posts older than this date
    backfill_limit      INTEGER CHECK (backfill_limit IS NULL OR backfill_limit > 0),
    backfill_cursor     INTEGER,
    backfill_top_id     INTEGER,                          -- newest id when backfill began
    backfill_done_count INTEGER NOT NULL DEFAULT 0,
    pts                 INTEGER,                          -- channel pts the follower has applied
    last_post_at        INTEGER,
    last_error          TEXT,
    added_at            INTEGER NOT NULL,
    added_by            INTEGER,                          -- bot user id, or NULL for the CLI
    updated_at          INTEGER NOT NULL
);
CREATE UNIQUE INDEX channels_username ON channels (username COLLATE NOCASE)
    WHERE username IS NOT NULL;

-- Posts of those channels; one row per (channel, message), current version.
CREATE TABLE messages (
    pk              INTEGER PRIMARY KEY,                  -- rowid for the FTS index
    channel_id      INTEGER NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    id              INTEGER NOT NULL,                     -- Telegram message id
    kind            TEXT    NOT NULL DEFAULT 'post' CHECK (kind IN ('post', 'service')),
    date            INTEGER NOT NULL,
    edit_date       INTEGER,
    text            TEXT    NOT NULL DEFAULT '',
    entities        TEXT CHECK (entities IS NULL OR json_valid(entities)),  -- JSON, UTF-16 offsets
    views           INTEGER,
    forwards        INTEGER,
    replies         INTEGER,
    reactions       TEXT CHECK (reactions IS NULL OR json_valid(reactions)),
    grouped_id      INTEGER,                              -- album
    reply_to_msg_id INTEGER,
    reply_to_top_id INTEGER,
    fwd_from        TEXT CHECK (fwd_from IS NULL OR json_valid(fwd_from)),
    post_author     TEXT,
    pinned          INTEGER NOT NULL DEFAULT 0 CHECK (pinned IN (0, 1)),
    silent          INTEGER NOT NULL DEFAULT 0 CHECK (silent IN (0, 1)),
    noforwards      INTEGER NOT NULL DEFAULT 0 CHECK (noforwards IN (0, 1)),
    media_kind      TEXT CHECK (media_kind IS NULL OR media_kind IN (
                        'photo', 'video', 'audio', 'voice', 'video_note', 'document', 'sticker',
                        'animation', 'webpage', 'poll', 'geo', 'venue', 'contact', 'dice', 'game',
                        'invoice', 'story', 'giveaway', 'paid', 'unsupported')),
    media           TEXT CHECK (media IS NULL OR json_valid(media)),        -- metadata, no bytes
    action          TEXT CHECK (action IS NULL OR json_valid(action)),      -- service messages
    convert_error   TEXT,                                 -- what could not be read, if anything
    version         INTEGER NOT NULL DEFAULT 1,           -- bumped on every edit
    deleted_at      INTEGER,                              -- soft delete: text is kept
    fetched_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    UNIQUE (channel_id, id)
);
CREATE INDEX messages_channel_date ON messages (channel_id, date);
CREATE INDEX messages_date ON messages (date);
CREATE INDEX messages_grouped ON messages (channel_id, grouped_id) WHERE grouped_id IS NOT NULL;

-- Every earlier version of an edited post: the text as it was before each edit.
CREATE TABLE message_versions (
    channel_id  INTEGER NOT NULL,
    message_id  INTEGER NOT NULL,
    version     INTEGER NOT NULL CHECK (version >= 1),
    text        TEXT    NOT NULL,
    entities    TEXT CHECK (entities IS NULL OR json_valid(entities)),
    edit_date   INTEGER,                                  -- when this version was written
    recorded_at INTEGER NOT NULL,
    PRIMARY KEY (channel_id, message_id, version),
    FOREIGN KEY (channel_id, message_id) REFERENCES messages (channel_id, id) ON DELETE CASCADE
) WITHOUT ROWID;

-- An edit keeps the text it replaces as a version, whoever writes it (the parser or an operator).
CREATE TRIGGER messages_version_on_edit BEFORE UPDATE OF text ON messages
WHEN old.text IS NOT new.text BEGIN
    INSERT OR IGNORE INTO message_versions
        (channel_id, message_id, version, text, entities, edit_date, recorded_at)
    VALUES (old.channel_id, old.id, old.version, old.text, old.entities,
            coalesce(old.edit_date, old.date), CAST(strftime('%s', 'now') AS INTEGER));
END;

-- Full-text index over the current text. External content: the text lives once, in messages.
CREATE VIRTUAL TABLE messages_fts USING fts5 (
    text,
    content = 'messages',
    content_rowid = 'pk',
    tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts (rowid, text) VALUES (new.pk, new.text);
END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.pk, old.text);
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF text ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.pk, old.text);
    INSERT INTO messages_fts (rowid, text) VALUES (new.pk, new.text);
END;

-- People who talk to the bot.
CREATE TABLE bot_users (
    user_id     INTEGER PRIMARY KEY,
    role        TEXT    NOT NULL DEFAULT 'user' CHECK (role IN ('admin', 'user', 'denied')),
    username    TEXT,
    first_name  TEXT,
    chat_id     INTEGER,                                  -- private chat for alerts
    blocked_bot INTEGER NOT NULL DEFAULT 0 CHECK (blocked_bot IN (0, 1)),
    added_by    INTEGER,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

-- Keyword alerts.
CREATE TABLE subscriptions (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES bot_users (user_id) ON DELETE CASCADE,
    chat_id     INTEGER NOT NULL,
    kind        TEXT    NOT NULL CHECK (kind IN ('words', 'regex')),
    pattern     TEXT    NOT NULL CHECK (length(pattern) BETWEEN 1 AND 512),
    channel_id  INTEGER REFERENCES channels (id) ON DELETE CASCADE,  -- NULL: every channel
    active      INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE UNIQUE INDEX subscriptions_natural
    ON subscriptions (user_id, kind, pattern, coalesce(channel_id, 0));

-- Messages the bot owes someone. At-least-once; `dedupe_key` makes a retry a no-op.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    dedupe_key      TEXT    NOT NULL UNIQUE,
    chat_id         INTEGER NOT NULL,
    kind            TEXT    NOT NULL CHECK (kind IN ('alert', 'digest', 'notice')),
    payload         TEXT    NOT NULL CHECK (json_valid(payload)),
    state           TEXT    NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'sent', 'failed', 'dropped')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    sent_at         INTEGER
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE state = 'pending';
CREATE INDEX outbox_chat ON outbox (chat_id, state);

-- The MTProto session, as rows. Auth keys are sealed by the vault (associated data binds the DC).
CREATE TABLE session_dcs (
    dc_id       INTEGER PRIMARY KEY,
    ipv4        TEXT    NOT NULL,                         -- address:port
    ipv6        TEXT    NOT NULL,                         -- [address]:port
    auth_key    BLOB,                                     -- vault record, never the key itself
    updated_at  INTEGER NOT NULL
);

CREATE TABLE session_state (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    home_dc     INTEGER NOT NULL,
    pts         INTEGER NOT NULL DEFAULT 0,
    qts         INTEGER NOT NULL DEFAULT 0,
    date        INTEGER NOT NULL DEFAULT 0,
    seq         INTEGER NOT NULL DEFAULT 0,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE session_channel_state (
    channel_id  INTEGER PRIMARY KEY,
    pts         INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

-- The MTProto client's peer cache: what it needs to address users and channels again.
CREATE TABLE session_peers (
    kind         TEXT    NOT NULL CHECK (kind IN ('user', 'chat', 'channel')),
    peer_id      INTEGER NOT NULL,                        -- bare Telegram id
    access_hash  INTEGER,
    is_bot       INTEGER CHECK (is_bot IS NULL OR is_bot IN (0, 1)),
    is_self      INTEGER CHECK (is_self IS NULL OR is_self IN (0, 1)),
    channel_kind TEXT CHECK (channel_kind IS NULL OR
                 channel_kind IN ('broadcast', 'megagroup', 'gigagroup', 'community')),
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (kind, peer_id)
) WITHOUT ROWID;
CREATE INDEX session_peers_self ON session_peers (is_self) WHERE is_self = 1;

-- What was done and by whom. Never holds a secret.
CREATE TABLE audit_log (
    id      INTEGER PRIMARY KEY,
    at      INTEGER NOT NULL,
    actor   TEXT    NOT NULL,                             -- 'daemon', 'cli', 'bot:<user id>'
    action  TEXT    NOT NULL,
    detail  TEXT CHECK (detail IS NULL OR json_valid(detail))
);
CREATE INDEX audit_log_at ON audit_log (at);
