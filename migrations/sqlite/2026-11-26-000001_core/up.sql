-- Herold core schema. Ids are random opaque text made by the application;
-- times are UTC milliseconds since the epoch (BIGINT), identical on both backends.

CREATE TABLE tenants (
    id TEXT PRIMARY KEY,
    slug TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    -- NULL while an invitation is pending: such a user cannot log in yet.
    password_hash TEXT,
    invite_hash TEXT UNIQUE,
    invite_expires_at BIGINT,
    is_platform_admin BOOLEAN NOT NULL DEFAULT 0,
    failed_logins INTEGER NOT NULL DEFAULT 0,
    locked_until BIGINT,
    created_at BIGINT NOT NULL
);

CREATE TABLE organizations (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,
    status_reason TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX organizations_by_tenant_status ON organizations (tenant_id, status, created_at);

CREATE TABLE memberships (
    organization_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (organization_id, user_id)
);
CREATE INDEX memberships_by_user ON memberships (user_id);

CREATE TABLE city_admins (
    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);
CREATE INDEX city_admins_by_user ON city_admins (user_id);

CREATE TABLE broadcast_groups (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    organization_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    category TEXT NOT NULL,
    verified BOOLEAN NOT NULL DEFAULT 0,
    status TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX broadcast_groups_by_tenant ON broadcast_groups (tenant_id, status, category);
CREATE INDEX broadcast_groups_by_org ON broadcast_groups (organization_id);

CREATE TABLE messages (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    group_id TEXT NOT NULL REFERENCES broadcast_groups(id) ON DELETE CASCADE,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    url TEXT,
    urgency TEXT NOT NULL,
    ttl_seconds INTEGER NOT NULL,
    publish_at BIGINT NOT NULL,
    hidden BOOLEAN NOT NULL DEFAULT 0,
    hidden_reason TEXT,
    -- 'user:<id>' or 'token:<id>'; kept as text so a removed user leaves history intact.
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    recipients BIGINT NOT NULL DEFAULT 0,
    delivered BIGINT NOT NULL DEFAULT 0,
    gone BIGINT NOT NULL DEFAULT 0,
    failed BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX messages_feed ON messages (group_id, publish_at, id);

-- The durable outbox of the delivery pipeline: written in the same transaction
-- as its message, claimed by delivery workers with a lease.
CREATE TABLE fanout_jobs (
    id TEXT PRIMARY KEY,
    message_id TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    run_at BIGINT NOT NULL,
    state TEXT NOT NULL,
    cursor TEXT,
    leased_until BIGINT,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    finished_at BIGINT
);
CREATE INDEX fanout_jobs_due ON fanout_jobs (state, run_at);

-- A resident is exactly this: a push endpoint, its two keys, a token hash and two times.
CREATE TABLE devices (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    endpoint TEXT NOT NULL,
    p256dh TEXT NOT NULL,
    auth TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL
);

CREATE TABLE subscriptions (
    device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    group_id TEXT NOT NULL REFERENCES broadcast_groups(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (device_id, group_id)
);
CREATE INDEX subscriptions_by_group ON subscriptions (group_id, device_id);

CREATE TABLE refresh_tokens (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    family_id TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX refresh_tokens_by_family ON refresh_tokens (family_id);

CREATE TABLE reports (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    message_id TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    -- Cleared when the device erases itself; the report stays for the town.
    device_id TEXT REFERENCES devices(id) ON DELETE SET NULL,
    reason TEXT NOT NULL,
    details TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,
    resolution TEXT,
    created_at BIGINT NOT NULL,
    resolved_at BIGINT,
    resolved_by TEXT
);
CREATE INDEX reports_by_tenant ON reports (tenant_id, status, created_at);

CREATE TABLE audit_log (
    id TEXT PRIMARY KEY,
    tenant_id TEXT,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target_type TEXT NOT NULL,
    target_id TEXT NOT NULL,
    reason TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX audit_log_by_tenant ON audit_log (tenant_id, created_at);

-- Installation-wide secrets shared by every instance (VAPID key pair, JWT key).
CREATE TABLE server_secrets (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
