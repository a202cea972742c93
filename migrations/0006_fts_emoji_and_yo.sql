-- Search that matches how people type:
-- * emoji are searchable: the tokenizer counts Unicode symbols (category So) as token
--   characters, so "🚀" finds posts with 🚀 (before, emoji were separators and never matched);
-- * Russian "ё" is indexed as "е": most people type "ученые" for "учёные", and unicode61's
--   remove_diacritics folds Latin accents only. Queries are folded the same way
--   (Store::search). One letter for one letter, so match positions (snippets) stay right.
-- The index is external-content: what is indexed must be exactly what is later deleted, so
-- every trigger folds the text the same way. The index is rebuilt from `messages` here.
DROP TRIGGER messages_fts_insert;
DROP TRIGGER messages_fts_delete;
DROP TRIGGER messages_fts_update;
DROP TABLE messages_fts;

CREATE VIRTUAL TABLE messages_fts USING fts5 (
    text,
    content = 'messages',
    content_rowid = 'pk',
    tokenize = "unicode61 remove_diacritics 2 categories 'L* N* Co So'"
);
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts (rowid, text)
    VALUES (new.pk, replace(replace(new.text, 'ё', 'е'), 'Ё', 'Е'));
END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, text)
    VALUES ('delete', old.pk, replace(replace(old.text, 'ё', 'е'), 'Ё', 'Е'));
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF text ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, text)
    VALUES ('delete', old.pk, replace(replace(old.text, 'ё', 'е'), 'Ё', 'Е'));
    INSERT INTO messages_fts (rowid, text)
    VALUES (new.pk, replace(replace(new.text, 'ё', 'е'), 'Ё', 'Е'));
END;
INSERT INTO messages_fts (rowid, text)
    SELECT pk, replace(replace(text, 'ё', 'е'), 'Ё', 'Е') FROM messages;
