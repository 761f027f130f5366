DROP INDEX messages_by_tenant_kind;
DROP INDEX reports_one_per_device;
DROP TABLE api_tokens;
ALTER TABLE fanout_jobs DROP COLUMN scope;
ALTER TABLE messages DROP COLUMN kind;
ALTER TABLE organizations DROP COLUMN kind;
