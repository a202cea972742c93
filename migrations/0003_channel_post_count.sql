-- Stored posts per channel, kept by triggers: counting them on every read was O(posts) and
-- slowed every page of a large backfill.
ALTER TABLE channels ADD COLUMN post_count INTEGER NOT NULL DEFAULT 0;
UPDATE channels SET post_count = (SELECT count(*) FROM messages m WHERE m.channel_id = channels.id);
CREATE TRIGGER messages_count_insert AFTER INSERT ON messages BEGIN
    UPDATE channels SET post_count = post_count + 1 WHERE id = new.channel_id;
END;
CREATE TRIGGER messages_count_delete AFTER DELETE ON messages BEGIN
    UPDATE channels SET post_count = post_count - 1 WHERE id = old.channel_id;
END;
