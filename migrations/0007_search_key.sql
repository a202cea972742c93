-- Search newest first without sorting: the FTS index is keyed by `search_key`, a date-major key
-- (date in Unix seconds * 2^20 + a sequence number within that second), so FTS5 returns the
-- matches of a query newest first straight from its index and a search reads about a page of
-- rows, where keyed by `pk` (insertion order) it had to sort every match of a common word.
--
-- The writer (Store::ingest) assigns keys in its batch statements. A row inserted without one
-- (a script, a test) gets the next free key of its second from the insert trigger, so the index
-- never holds a row without a key. The key is fixed when the row is first stored.
ALTER TABLE messages ADD COLUMN search_key INTEGER;

UPDATE messages SET search_key = k.key
FROM (
    SELECT pk, (date << 20) + row_number() OVER (PARTITION BY date ORDER BY channel_id, id) - 1 AS key
    FROM messages
) AS k
WHERE messages.pk = k.pk;

CREATE UNIQUE INDEX messages_search_key ON messages (search_key);

DROP TRIGGER messages_fts_insert;
DROP TRIGGER messages_fts_delete;
DROP TRIGGER messages_fts_update;
DROP TABLE messages_fts;

CREATE VIRTUAL TABLE messages_fts USING fts5 (
    text,
    content = 'messages',
    content_rowid = 'search_key',
    tokenize = "unicode61 remove_diacritics 2 categories 'L* N* Co So'"
);

-- coalesce() evaluates lazily: the lookup runs only for a row inserted without a key.
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
    UPDATE messages SET search_key = (
        SELECT coalesce(max(search_key) + 1, new.date << 20) FROM messages
        WHERE search_key BETWEEN new.date << 20 AND (new.date << 20) + 1048575
    ) WHERE pk = new.pk AND new.search_key IS NULL;
    INSERT INTO messages_fts (rowid, text)
    VALUES (
        coalesce(new.search_key, (SELECT search_key FROM messages WHERE pk = new.pk)),
        replace(replace(new.text, 'ё', 'е'), 'Ё', 'Е')
    );
END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, text)
    VALUES ('delete', old.search_key, replace(replace(old.text, 'ё', 'е'), 'Ё', 'Е'));
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF text ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, text)
    VALUES ('delete', old.search_key, replace(replace(old.text, 'ё', 'е'), 'Ё', 'Е'));
    INSERT INTO messages_fts (rowid, text)
    VALUES (new.search_key, replace(replace(new.text, 'ё', 'е'), 'Ё', 'Е'));
END;

INSERT INTO messages_fts (rowid, text)
    SELECT search_key, replace(replace(text, 'ё', 'е'), 'Ё', 'Е') FROM messages;

-- Every indexed word occurrence (term, doc = search_key, col, offset), in term order. Search
-- reads it to turn a prefix query (`infla*`) into the words it stands for, which FTS5 can
-- return newest first; it also lists the archive's vocabulary for operators.
CREATE VIRTUAL TABLE messages_terms USING fts5vocab ('messages_fts', 'instance');
