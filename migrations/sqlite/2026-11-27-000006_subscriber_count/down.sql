ALTER TABLE broadcast_groups DROP COLUMN subscriber_count;
