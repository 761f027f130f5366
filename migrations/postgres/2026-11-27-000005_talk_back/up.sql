-- Residents talk back: issue reports to an organization (with photos and a
-- conversation by push), blocks, and question hours with live answers.
-- Everything a device wrote goes with the device (ON DELETE CASCADE and
-- `store::delete_devices`), except publicly answered questions, which stay
-- in the session's record without the device link.

-- Whether a group takes issue reports, under which categories, and
-- whether the organization may publish reports on the group's public board.
CREATE TABLE group_intakes (
    group_id TEXT PRIMARY KEY REFERENCES broadcast_groups(id) ON DELETE CASCADE,
    open BOOLEAN NOT NULL,
    categories TEXT NOT NULL,
    board BOOLEAN NOT NULL,
    updated_at BIGINT NOT NULL
);

-- A resident's report. `author` is the device's pseudonym for this
-- organization (never the device id); the position and address are only
-- what the resident chose to share.
CREATE TABLE issues (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    organization_id TEXT NOT NULL REFERENCES organizations(id),
    group_id TEXT NOT NULL REFERENCES broadcast_groups(id),
    device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    author TEXT NOT NULL,
    category TEXT NOT NULL,
    body TEXT NOT NULL,
    lat DOUBLE PRECISION,
    lon DOUBLE PRECISION,
    address TEXT,
    lang TEXT NOT NULL,
    status TEXT NOT NULL,
    public BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX issues_by_org ON issues (organization_id, updated_at);
CREATE INDEX issues_by_device ON issues (device_id, updated_at);
CREATE INDEX issues_on_board ON issues (group_id, public, updated_at);

-- The conversation of an issue: texts and status changes, in order.
CREATE TABLE issue_posts (
    id TEXT PRIMARY KEY,
    issue_id TEXT NOT NULL REFERENCES issues(id) ON DELETE CASCADE,
    from_org BOOLEAN NOT NULL,
    user_id TEXT,
    body TEXT,
    status TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX issue_posts_by_issue ON issue_posts (issue_id, created_at);

-- Photos, re-encoded on arrival (no metadata), kept in the database so
-- that every instance can serve them and backups hold them.
CREATE TABLE issue_photos (
    id TEXT PRIMARY KEY,
    issue_id TEXT NOT NULL REFERENCES issues(id) ON DELETE CASCADE,
    content_type TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    data BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX issue_photos_by_issue ON issue_photos (issue_id, created_at);

-- A device an organization no longer hears from (reports, posts, questions).
CREATE TABLE device_blocks (
    id TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    author TEXT NOT NULL,
    reason TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX device_blocks_one_per_org ON device_blocks (organization_id, device_id);

-- Question hours. `message_id`: the scheduled message that tells the
-- group's subscribers when it opens. `version` counts changes, for the live
-- stream (each question carries the version of its last change).
CREATE TABLE qa_sessions (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    organization_id TEXT NOT NULL REFERENCES organizations(id),
    group_id TEXT NOT NULL REFERENCES broadcast_groups(id),
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    starts_at BIGINT NOT NULL,
    ends_at BIGINT NOT NULL,
    message_id TEXT,
    cancelled BOOLEAN NOT NULL DEFAULT FALSE,
    version BIGINT NOT NULL DEFAULT 0,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX qa_sessions_by_group ON qa_sessions (group_id, starts_at);

CREATE TABLE qa_questions (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES qa_sessions(id) ON DELETE CASCADE,
    device_id TEXT REFERENCES devices(id) ON DELETE SET NULL,
    author TEXT NOT NULL,
    body TEXT NOT NULL,
    lang TEXT NOT NULL,
    status TEXT NOT NULL,
    answer TEXT,
    answer_public BOOLEAN NOT NULL DEFAULT FALSE,
    answered_by TEXT,
    answered_at BIGINT,
    version BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);
CREATE INDEX qa_questions_by_session ON qa_questions (session_id, version);
CREATE INDEX qa_questions_by_device ON qa_questions (device_id);

-- One vote per device and question; counted, never shown per device.
CREATE TABLE qa_votes (
    question_id TEXT NOT NULL REFERENCES qa_questions(id) ON DELETE CASCADE,
    device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (question_id, device_id)
);
CREATE INDEX qa_votes_by_device ON qa_votes (device_id);
