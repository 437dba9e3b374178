-- Recipient 2FA (issue 5). Kept in step between sqlite/ and postgres/ (identical text). Times are unix
-- seconds; flags are integers 0/1. Link tokens, SMS codes and portal sessions are stored only as hashes.

-- A challenge is one recipient's pending verification, shared by every message held for them.
ALTER TABLE challenges ADD COLUMN token_hash TEXT;
ALTER TABLE challenges ADD COLUMN sender_token_hash TEXT;
ALTER TABLE challenges ADD COLUMN code_hash TEXT;
ALTER TABLE challenges ADD COLUMN code_expires_at BIGINT;
ALTER TABLE challenges ADD COLUMN tries BIGINT NOT NULL DEFAULT 0;
ALTER TABLE challenges ADD COLUMN notice_queued BIGINT NOT NULL DEFAULT 0;
ALTER TABLE challenges ADD COLUMN sender_asked BIGINT NOT NULL DEFAULT 0;
ALTER TABLE challenges ADD COLUMN verified_at BIGINT;
CREATE UNIQUE INDEX challenges_token ON challenges (token_hash);
CREATE UNIQUE INDEX challenges_sender_token ON challenges (sender_token_hash);
CREATE INDEX challenges_state ON challenges (state);

-- Release bookkeeping per held recipient. States: held → releasing → sending → committing → released
-- (Stalwart answered 250; its queue id kept), or → portal (TLS not secure at release time), or expired.
-- A hold found in 'committing' after a crash is 'uncertain': never re-sent automatically.
ALTER TABLE holds ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE holds ADD COLUMN next_attempt_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE holds ADD COLUMN release_queue_id TEXT;
ALTER TABLE holds ADD COLUMN last_error TEXT;
CREATE INDEX holds_state ON holds (state, next_attempt_at);

ALTER TABLE held_messages ADD COLUMN expiry_noticed BIGINT NOT NULL DEFAULT 0;

-- Notification mails waiting for (or done with) submission to Stalwart's nta-notify listener. Rendered at
-- send time from (kind, ref_id), so no link token is ever stored in clear.
CREATE TABLE outbox (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,
    ref_id          TEXT NOT NULL,
    rcpt            TEXT NOT NULL,
    state           TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error      TEXT,
    queue_id        TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    UNIQUE (kind, ref_id, rcpt)
);
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);

-- Sliding-window rate limits (SMS per recipient, per phone, per client IP).
CREATE TABLE rate_events (
    scope TEXT NOT NULL,
    key   TEXT NOT NULL,
    at    BIGINT NOT NULL
);
CREATE INDEX rate_events_key ON rate_events (scope, key, at);

-- Portal sessions after a successful code: bound to one recipient.
CREATE TABLE portal_sessions (
    token_hash   TEXT PRIMARY KEY,
    recipient    TEXT NOT NULL,
    challenge_id TEXT NOT NULL,
    expires_at   BIGINT NOT NULL
);
