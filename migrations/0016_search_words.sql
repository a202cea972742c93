-- Search and alerts in every script. The index no longer tokenizes the stored text itself
-- (unicode61 read a run of Chinese, Japanese or Thai letters as one word, split Thai and
-- Devanagari words at their vowel signs, and knew no ß = ss or Arabic variants): tgparser
-- writes each post's words, cut and folded the same way queries and the alert matcher cut and
-- fold them (src/text), into a contentless index. So the index declares no content it does
-- not hold: FTS5's own integrity check tells the truth, and 'rebuild' (which needs content)
-- is refused instead of silently dropping the folds.
--
-- `contentless_delete = 1`: a post deleted from `messages` leaves the index by its key alone
-- (the trigger below), whoever deletes it. The categories make every character tgparser puts
-- in a word a token character (letters, marks, numbers, private use, emoji), so the tokenizer
-- keeps each word whole; its own folding (case, Latin diacritics) leaves tgparser's folded
-- words as they are, and folds what a person types into sqlite3 or Datasette the same way.
--
-- The words are written by tgparser when it stores a post (store/ingest.rs). This migration
-- leaves the new index empty and `search_index` asks for it to be built: the daemon (or any
-- tgparser command that opens the store for writing) builds it from `messages` in batches,
-- each committed with its progress, so an interrupted build resumes where it stopped.
DROP TRIGGER messages_fts_insert;
DROP TRIGGER messages_fts_delete;
DROP TRIGGER messages_fts_update;
DROP TABLE messages_terms;
DROP TABLE messages_fts;
ALTER TABLE messages DROP COLUMN fts_fold;

CREATE VIRTUAL TABLE messages_fts USING fts5 (
    words,
    content = '',
    contentless_delete = 1,
    tokenize = "unicode61 remove_diacritics 2 categories 'L* N* M* Co So'"
);

CREATE VIRTUAL TABLE messages_terms USING fts5vocab ('messages_fts', 'instance');

-- A row inserted without a key (by hand, a script) gets the next free key of its second.
CREATE TRIGGER messages_search_key AFTER INSERT ON messages WHEN new.search_key IS NULL BEGIN
    UPDATE messages SET search_key = (
        SELECT coalesce(max(search_key) + 1, new.date << 20) FROM messages
        WHERE search_key BETWEEN new.date << 20 AND (new.date << 20) + 1048575
    ) WHERE pk = new.pk;
END;

CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
    DELETE FROM messages_fts WHERE rowid = old.search_key;
END;

-- The state of the index: `version`, the word rules it holds (src/text WORDS_VERSION; 0 =
-- none yet); `pending_from`, the smallest search key not yet indexed by a build under way
-- (NULL = the index is complete).
CREATE TABLE search_index (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    version         INTEGER NOT NULL,
    pending_from    INTEGER
);
INSERT INTO search_index (id, version, pending_from) VALUES (1, 0, NULL);
