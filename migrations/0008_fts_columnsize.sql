-- The search index no longer keeps a token count per post (`columnsize = 0`): nothing reads it
-- (search is newest first, not ranked by bm25), and writing it was a B-tree insert into
-- messages_fts_docsize for every stored post, about 3% of the writer's work in a backfill.
-- snippet() still works: for the page of hits it shows, FTS5 counts the tokens from the text.
-- The index itself is unchanged; it is rebuilt from `messages` here (a large archive takes a
-- while: the daemon keeps extending systemd's start timeout while migrations run).
DROP TRIGGER messages_fts_insert;
DROP TRIGGER messages_fts_delete;
DROP TRIGGER messages_fts_update;
DROP TABLE messages_terms;
DROP TABLE messages_fts;

CREATE VIRTUAL TABLE messages_fts USING fts5 (
    text,
    content = 'messages',
    content_rowid = 'search_key',
    columnsize = 0,
    tokenize = "unicode61 remove_diacritics 2 categories 'L* N* Co So'"
);

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

CREATE VIRTUAL TABLE messages_terms USING fts5vocab ('messages_fts', 'instance');
