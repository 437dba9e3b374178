-- Audit log, delivery evidence and admin settings (sqlite). Times are unix seconds. Kept in step with
-- ../postgres/0003_audit.sql.

-- Append-only, hash-chained: hash = SHA-256 over the canonical encoding of the record (see
-- src/audit/record.rs) including prev_hash. seq is dense, starting at 1.
CREATE TABLE audit_log (
    seq            BIGINT PRIMARY KEY,
    at             BIGINT NOT NULL,
    kind           TEXT NOT NULL,
    message_ref    TEXT,
    message_sha256 TEXT,
    sender         TEXT,
    recipient      TEXT,
    details        TEXT NOT NULL,
    prev_hash      TEXT NOT NULL,
    hash           TEXT NOT NULL
);
CREATE INDEX audit_log_message ON audit_log (message_ref, seq);
CREATE INDEX audit_log_at ON audit_log (at);

-- The chain head: one row, updated in the same transaction as every append, which serialises appends
-- across connections and gateway instances (row lock on PostgreSQL, the write lock on SQLite).
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- Stalwart queue ids (lower-case hex, as the hook gives them) of releases, for correlating webhook
-- events of released messages (the hook's own queue ids are in decisions.queue_id).
CREATE TABLE queue_links (
    queue_id    TEXT PRIMARY KEY,
    message_ref TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

-- Webhook events already recorded (dedup key = SHA-256 of type, createdAt and data).
CREATE TABLE webhook_seen (
    key         TEXT PRIMARY KEY,
    received_at BIGINT NOT NULL
);

-- Webhook events whose queue id matches nothing yet (a release whose delivery events arrive before the
-- release is recorded); moved into the audit log when the queue id becomes known.
CREATE TABLE webhook_unmatched (
    key         TEXT PRIMARY KEY,
    queue_id    TEXT NOT NULL,
    event       TEXT NOT NULL,
    received_at BIGINT NOT NULL
);
CREATE INDEX webhook_unmatched_queue ON webhook_unmatched (queue_id);

-- Settings per sender domain (admin API).
CREATE TABLE domain_settings (
    domain         TEXT PRIMARY KEY,
    retention_days BIGINT,
    groups         TEXT NOT NULL,
    updated_at     BIGINT NOT NULL
);
