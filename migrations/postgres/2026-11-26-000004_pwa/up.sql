-- Notifications for one device that are not a group's message (the
-- resident's "send me a test notification"; later replies to that device).
-- A durable outbox like fan-out jobs: claimed with a lease, retried with
-- backoff, deleted once delivered or given up. Gone with the device.
CREATE TABLE device_notices (
    id TEXT PRIMARY KEY,
    device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    urgency TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at BIGINT NOT NULL,
    leased_until BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX device_notices_due ON device_notices (next_at);

-- A group's subscriber count per day (UTC), for the dashboard's chart.
-- Aggregates only: who subscribed is never recorded.
CREATE TABLE subscriber_counts (
    group_id TEXT NOT NULL REFERENCES broadcast_groups(id) ON DELETE CASCADE,
    day TEXT NOT NULL,
    subscribers BIGINT NOT NULL,
    PRIMARY KEY (group_id, day)
);
