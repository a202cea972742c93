-- Which folds the search index applies to a post's text, so a text with no "ё" or "Ё" skips
-- them. The index takes "ё" as "е" (migration 0006) with SQL's replace(), one pass per letter,
-- and on Cyrillic text each pass compares most characters: the first byte of "ё" starts half
-- the Cyrillic alphabet in UTF-8, and that of "Ё" the other half. Both passes were about a tenth
-- of the writer's work per stored post, and most posts have neither letter.
--
-- `fts_fold` bits: 1 = the text holds "ё", 2 = it holds "Ё". The parser sets it from the text it
-- stores. NULL (rows stored before, or written by hand) folds both, as before, so no row needs
-- reindexing. The index's words are a function of (text, fts_fold), and the triggers below
-- reindex when either changes, so the 'delete' of an old version always removes exactly the
-- words its insert added, whatever the value.
ALTER TABLE messages ADD COLUMN fts_fold INTEGER;

DROP TRIGGER messages_fts_insert;
DROP TRIGGER messages_fts_delete;
DROP TRIGGER messages_fts_update;

CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
    UPDATE messages SET search_key = (
        SELECT coalesce(max(search_key) + 1, new.date << 20) FROM messages
        WHERE search_key BETWEEN new.date << 20 AND (new.date << 20) + 1048575
    ) WHERE pk = new.pk AND new.search_key IS NULL;
    INSERT INTO messages_fts (rowid, text)
    VALUES (
        coalesce(new.search_key, (SELECT search_key FROM messages WHERE pk = new.pk)),
        CASE new.fts_fold
            WHEN 0 THEN new.text
            WHEN 1 THEN replace(new.text, 'ё', 'е')
            WHEN 2 THEN replace(new.text, 'Ё', 'Е')
            ELSE replace(replace(new.text, 'ё', 'е'), 'Ё', 'Е')
        END
    );
END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, text)
    VALUES (
        'delete', old.search_key,
        CASE old.fts_fold
            WHEN 0 THEN old.text
            WHEN 1 THEN replace(old.text, 'ё', 'е')
            WHEN 2 THEN replace(old.text, 'Ё', 'Е')
            ELSE replace(replace(old.text, 'ё', 'е'), 'Ё', 'Е')
        END
    );
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF text, fts_fold ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, text)
    VALUES (
        'delete', old.search_key,
        CASE old.fts_fold
            WHEN 0 THEN old.text
            WHEN 1 THEN replace(old.text, 'ё', 'е')
            WHEN 2 THEN replace(old.text, 'Ё', 'Е')
            ELSE replace(replace(old.text, 'ё', 'е'), 'Ё', 'Е')
        END
    );
    INSERT INTO messages_fts (rowid, text)
    VALUES (
        new.search_key,
        CASE new.fts_fold
            WHEN 0 THEN new.text
            WHEN 1 THEN replace(new.text, 'ё', 'е')
            WHEN 2 THEN replace(new.text, 'Ё', 'Е')
            ELSE replace(replace(new.text, 'ё', 'е'), 'Ё', 'Е')
        END
    );
END;
