-- Trust and moderation: what kind of organization registered, town-wide
-- alerts (a message of kind 'alert' fanned out to every device of a town),
-- organization API tokens, one report per device and message.

ALTER TABLE organizations ADD COLUMN kind TEXT NOT NULL DEFAULT 'other';
ALTER TABLE messages ADD COLUMN kind TEXT NOT NULL DEFAULT 'message';
-- 'group': the message's group's subscribers; 'tenant': every device that
-- follows any group of the message's town, each once.
ALTER TABLE fanout_jobs ADD COLUMN scope TEXT NOT NULL DEFAULT 'group';

CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    group_id TEXT NOT NULL REFERENCES broadcast_groups(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at BIGINT
);
CREATE INDEX api_tokens_by_org ON api_tokens (organization_id, created_at);

CREATE UNIQUE INDEX reports_one_per_device ON reports (message_id, device_id);
CREATE INDEX messages_by_tenant_kind ON messages (tenant_id, kind, publish_at);
