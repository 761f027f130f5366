DROP INDEX devices_last_seen;
ALTER TABLE messages DROP COLUMN last_failure;
DROP TABLE delivery_retries;
