-- Core schema (PostgreSQL). Times are unix seconds. Kept in step with ../sqlite/0001_core.sql.
CREATE TABLE recipients (
    address        TEXT PRIMARY KEY,
    phone          TEXT,
    verified_until BIGINT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);

CREATE TABLE exemptions (
    id         TEXT PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('address', 'domain')),
    value      TEXT NOT NULL,
    reason     TEXT NOT NULL,
    expires_at BIGINT,
    created_at BIGINT NOT NULL,
    UNIQUE (kind, value)
);

CREATE TABLE peers (
    domain     TEXT PRIMARY KEY,
    provider   TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE held_messages (
    id          TEXT PRIMARY KEY,
    idem_key    TEXT NOT NULL UNIQUE,
    queue_id    TEXT,
    sender      TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    size        BIGINT NOT NULL,
    key_id      TEXT NOT NULL,
    wrapped_key BYTEA,
    nonce       BYTEA,
    ciphertext  BYTEA,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    purged_at   BIGINT
);
CREATE INDEX held_messages_expiry ON held_messages (expires_at) WHERE purged_at IS NULL;

CREATE TABLE challenges (
    id         TEXT PRIMARY KEY,
    recipient  TEXT NOT NULL,
    state      TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX challenges_one_pending ON challenges (recipient) WHERE state = 'pending';

CREATE TABLE holds (
    message_id   TEXT NOT NULL REFERENCES held_messages (id),
    recipient    TEXT NOT NULL,
    outcome      TEXT NOT NULL,
    state        TEXT NOT NULL,
    challenge_id TEXT REFERENCES challenges (id),
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (message_id, recipient)
);
CREATE INDEX holds_recipient ON holds (recipient, state);

CREATE TABLE decisions (
    id          BIGSERIAL PRIMARY KEY,
    message_ref TEXT NOT NULL,
    queue_id    TEXT,
    sender      TEXT NOT NULL,
    recipient   TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    reasons     TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX decisions_message ON decisions (message_ref);
CREATE INDEX decisions_queue ON decisions (queue_id);
