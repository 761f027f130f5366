-- A group's number of subscribers, kept with the group: the directory lists
-- many groups per request and must not count a town's subscriptions each
-- time (COUNT … GROUP BY took seconds for a 200,000-subscriber city).
-- Maintained where subscriptions are added or removed, in the same
-- transaction; an import recounts.
ALTER TABLE broadcast_groups ADD COLUMN subscriber_count BIGINT NOT NULL DEFAULT 0;
UPDATE broadcast_groups SET subscriber_count =
    (SELECT COUNT(*) FROM subscriptions WHERE subscriptions.group_id = broadcast_groups.id);
