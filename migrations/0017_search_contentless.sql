-- The search index without a second copy of every post. Migration 0016 kept each post's words
-- in `search_words`, the index's declared content: a table as large as the posts' text,
-- written with every stored post (about a quarter of ingest's time, and of the database's
-- size). The words are a function of the text (src/text, `index_words`), so the index needs no
-- copy of them: it is now contentless (FTS5 `content=''`), which declares that it keeps no
-- content, so FTS5's own checks still tell the truth ('integrity-check' checks the index
-- itself; 'rebuild' says it cannot, instead of rebuilding something else).
--
-- A contentless index forgets a post's words only when told them again ('delete' with the
-- words it holds), and only tgparser can cut words. So the triggers below keep, for every post
-- whose words the index does not hold as they are now, a row in `search_pending` with the text
-- whose words the index does hold (`indexed`; NULL = none): another program's new post, an
-- edit by anyone (tgparser's own included), a deleted post. tgparser settles the queue
-- (removes the held words, adds the present ones) in the same transaction for its own writes,
-- and other programs' rows at its next write or start.
--
-- tgparser writes a new post's words itself, just before the post: while it stores its rows,
-- `search_index.ingest_words` is 1 (inside its transaction only; never committed as 1) and the
-- insert trigger queues nothing.
--
-- This migration leaves the index empty and asks for it to be built (`version` 0), as 0016
-- did: the daemon, or any tgparser command that opens the store for writing, builds it in
-- batches, each committed with its progress.
DROP TRIGGER messages_fts_insert;
DROP TRIGGER messages_fts_update;
DROP TRIGGER messages_fts_delete;
DROP TRIGGER search_words_insert;
DROP TRIGGER search_words_delete;
DROP TRIGGER search_words_update;
DROP TABLE messages_terms;
DROP TABLE messages_fts;
DROP TABLE search_words;
DROP TABLE search_pending;

CREATE VIRTUAL TABLE messages_fts USING fts5 (
    words,
    content = '',
    columnsize = 0,
    tokenize = "unicode61 remove_diacritics 2 categories 'L* N* M* Co So'"
);
CREATE VIRTUAL TABLE messages_terms USING fts5vocab ('messages_fts', 'instance');

-- Posts whose words the index does not hold as they are now, by key; `indexed`, the text whose
-- words it holds under that key (NULL = none). The triggers never replace a row: the first
-- change after the index was right is the one that says what it holds. (They skip a key
-- already queued with NOT IN, not OR IGNORE: an outer upsert's conflict handling overrides a
-- trigger's.)
CREATE TABLE search_pending (
    search_key      INTEGER PRIMARY KEY,
    indexed         TEXT
);

ALTER TABLE search_index ADD COLUMN ingest_words INTEGER NOT NULL DEFAULT 0;
UPDATE search_index SET version = 0, pending_from = NULL;

-- A row inserted without a key (by hand, a script) gets the next free key of its second
-- (coalesce() evaluates lazily: the lookup runs only for such a row). tgparser's own rows come
-- with their keys and their words: the WHEN clause skips the whole body for them, cheaper
-- than a body that does nothing.
CREATE TRIGGER messages_search_insert AFTER INSERT ON messages
WHEN new.search_key IS NULL OR (SELECT ingest_words FROM search_index WHERE id = 1) = 0 BEGIN
    UPDATE messages SET search_key = (
        SELECT coalesce(max(search_key) + 1, new.date << 20) FROM messages
        WHERE search_key BETWEEN new.date << 20 AND (new.date << 20) + 1048575
    ) WHERE pk = new.pk AND new.search_key IS NULL;
    INSERT INTO search_pending (search_key, indexed)
    SELECT k, NULL FROM (SELECT coalesce(new.search_key, (SELECT search_key FROM messages WHERE pk = new.pk)) AS k)
    WHERE k NOT IN (SELECT search_key FROM search_pending);
END;
-- The key too: the index holds words under a key, so a post moved to another key leaves its
-- words behind until they are removed.
CREATE TRIGGER messages_search_update AFTER UPDATE OF text, search_key ON messages
WHEN old.search_key IS NOT NULL
     AND (old.text IS NOT new.text OR old.search_key IS NOT new.search_key) BEGIN
    INSERT INTO search_pending (search_key, indexed) SELECT old.search_key, old.text
    WHERE old.search_key NOT IN (SELECT search_key FROM search_pending);
    INSERT INTO search_pending (search_key, indexed) SELECT new.search_key, NULL
    WHERE new.search_key IS NOT NULL AND new.search_key NOT IN (SELECT search_key FROM search_pending);
END;
CREATE TRIGGER messages_search_delete AFTER DELETE ON messages WHEN old.search_key IS NOT NULL BEGIN
    INSERT INTO search_pending (search_key, indexed) SELECT old.search_key, old.text
    WHERE old.search_key NOT IN (SELECT search_key FROM search_pending);
END;
