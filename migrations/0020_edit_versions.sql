-- A post's text changed by another program (sqlite3, Datasette) kept its `version`; the
-- parser's next edit of that post then recorded the same version again, and an upsert's
-- conflict handling overrides the trigger's OR IGNORE (the outer statement's policy wins), so
-- the whole batch failed, and again at every try: the parser stopped storing anything. Now every
-- text change raises the version, whoever writes it, and a version already recorded is never
-- recorded twice (an archive already in that state goes on, without the text in between).
DROP TRIGGER messages_version_on_edit;
CREATE TRIGGER messages_version_on_edit BEFORE UPDATE OF text ON messages
WHEN old.text IS NOT new.text
     AND NOT EXISTS (SELECT 1 FROM message_versions
                     WHERE channel_id = old.channel_id AND message_id = old.id
                       AND version = old.version) BEGIN
    INSERT INTO message_versions
        (channel_id, message_id, version, text, entities, edit_date, recorded_at)
    VALUES (old.channel_id, old.id, old.version, old.text, old.entities,
            coalesce(old.edit_date, old.date), CAST(strftime('%s', 'now') AS INTEGER));
END;

CREATE TRIGGER messages_version_raise AFTER UPDATE OF text ON messages
WHEN old.text IS NOT new.text AND new.version <= old.version BEGIN
    UPDATE messages SET version = old.version + 1 WHERE pk = new.pk;
END;
