-- Deliveries to retry: one row per device whose push service asked us to try
-- later (429, 5xx, timeout). Successful deliveries leave no row.
CREATE TABLE delivery_retries (
    id TEXT PRIMARY KEY,
    message_id TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    attempts INTEGER NOT NULL,
    next_at BIGINT NOT NULL,
    leased_until BIGINT,
    last_error TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX delivery_retries_due ON delivery_retries (next_at);

-- Why the last failed delivery of a message failed (e.g. "413 from fcm.googleapis.com").
ALTER TABLE messages ADD COLUMN last_failure TEXT;
CREATE INDEX devices_last_seen ON devices (last_seen_at);
