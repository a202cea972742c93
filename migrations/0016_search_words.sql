-- Search and alerts in every script. The index no longer tokenizes the stored text itself
-- (unicode61 read a run of Chinese, Japanese or Thai letters as one word, split Thai and
-- Devanagari words at their vowel signs, and knew no ß = ss or Arabic variants): tgparser cuts
-- each post's words and folds them the same way queries and the alert matcher do (src/text),
-- and `search_words` holds them, one row per post. The index is the external-content index of
-- `search_words`: it declares exactly what it indexes, so FTS5's own checks
-- ('integrity-check' with rank 1) tell the truth and its 'rebuild' rebuilds it as it was.
-- (Migrations 0006 to 0015 declared `messages.text` as the content while indexing folded text.)
--
-- The categories make every character tgparser puts in a word a token character (letters,
-- marks, numbers, private use, emoji), so the tokenizer keeps each word whole; its own folding
-- (case, Latin diacritics) leaves tgparser's folded words as they are, and folds what a person
-- types into sqlite3 or Datasette the same way.
--
-- A post stored without its words, or whose text changed, by tgparser or by anything else, is
-- queued in `search_pending` by the triggers below (tgparser writes a new post's words just
-- before the post, so its own new posts are not queued). tgparser indexes the queue in the
-- same transaction for its own edits (store/ingest.rs), and other programs' rows at its next
-- write or start. This
-- migration leaves the index empty and `search_index` asks for it to be built: the daemon (or
-- any tgparser command that opens the store for writing) builds it from `messages` in batches,
-- each committed with its progress, so an interrupted build resumes where it stopped.
DROP TRIGGER messages_fts_insert;
DROP TRIGGER messages_fts_delete;
DROP TRIGGER messages_fts_update;
DROP TABLE messages_terms;
DROP TABLE messages_fts;
ALTER TABLE messages DROP COLUMN fts_fold;

-- A post's words as the index holds them, separated by spaces; keyed like the index.
CREATE TABLE search_words (
    search_key      INTEGER PRIMARY KEY,
    words           TEXT    NOT NULL
);

CREATE VIRTUAL TABLE messages_fts USING fts5 (
    words,
    content = 'search_words',
    content_rowid = 'search_key',
    columnsize = 0,
    tokenize = "unicode61 remove_diacritics 2 categories 'L* N* M* Co So'"
);

CREATE TRIGGER search_words_insert AFTER INSERT ON search_words BEGIN
    INSERT INTO messages_fts (rowid, words) VALUES (new.search_key, new.words);
END;
CREATE TRIGGER search_words_delete AFTER DELETE ON search_words BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, words) VALUES ('delete', old.search_key, old.words);
END;
CREATE TRIGGER search_words_update AFTER UPDATE ON search_words BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, words) VALUES ('delete', old.search_key, old.words);
    INSERT INTO messages_fts (rowid, words) VALUES (new.search_key, new.words);
END;

CREATE VIRTUAL TABLE messages_terms USING fts5vocab ('messages_fts', 'instance');

-- Posts whose words the index lacks, by key. (The triggers skip a key already queued with
-- NOT IN, not OR IGNORE: an outer upsert's conflict handling overrides a trigger's.)
CREATE TABLE search_pending (search_key INTEGER PRIMARY KEY);

-- A row inserted without a key (by hand, a script) gets the next free key of its second
-- (coalesce() evaluates lazily: the lookup runs only for such a row).
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
    UPDATE messages SET search_key = (
        SELECT coalesce(max(search_key) + 1, new.date << 20) FROM messages
        WHERE search_key BETWEEN new.date << 20 AND (new.date << 20) + 1048575
    ) WHERE pk = new.pk AND new.search_key IS NULL;
    INSERT INTO search_pending (search_key)
    SELECT k FROM (SELECT coalesce(new.search_key, (SELECT search_key FROM messages WHERE pk = new.pk)) AS k)
    WHERE k NOT IN (SELECT search_key FROM search_pending)
      AND k NOT IN (SELECT search_key FROM search_words);
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF text ON messages
WHEN old.text IS NOT new.text BEGIN
    DELETE FROM search_words WHERE search_key = old.search_key;
    INSERT INTO search_pending (search_key) SELECT new.search_key
    WHERE new.search_key NOT IN (SELECT search_key FROM search_pending);
END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
    DELETE FROM search_words WHERE search_key = old.search_key;
    DELETE FROM search_pending WHERE search_key = old.search_key;
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
