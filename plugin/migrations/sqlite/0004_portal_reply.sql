-- Secure replies from the portal (sqlite). Kept in step with ../postgres/0004_portal_reply.sql.
-- Times are unix seconds.

-- A reply a verified portal recipient wrote to the sender of a message they read on the portal. The whole
-- reply mail (MIME, built once when it was written) is sealed like a held copy, the reply id as the
-- associated data. States: pending → sending (claimed) → committing (data being submitted) → sent
-- (Stalwart's queue id kept); a refused or unreachable release listener puts it back to pending with
-- backoff; a lost reply after the data, or a crash then, makes it uncertain (never re-sent automatically).
CREATE TABLE portal_replies (
    id              TEXT PRIMARY KEY,
    message_id      TEXT NOT NULL REFERENCES held_messages (id),
    -- The reply form's id: a form posted twice (double click, reload) is one reply.
    form_id         TEXT NOT NULL,
    recipient       TEXT NOT NULL,
    sender          TEXT NOT NULL,
    state           TEXT NOT NULL,
    size            BIGINT NOT NULL,
    attachments     BIGINT NOT NULL,
    sha256          TEXT NOT NULL,
    key_id          TEXT NOT NULL,
    wrapped_key     BLOB,
    nonce           BLOB,
    ciphertext      BLOB,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    queue_id        TEXT,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE UNIQUE INDEX portal_replies_form ON portal_replies (message_id, recipient, form_id);
CREATE INDEX portal_replies_thread ON portal_replies (message_id, recipient, created_at);
CREATE INDEX portal_replies_recipient ON portal_replies (recipient, created_at);
CREATE INDEX portal_replies_due ON portal_replies (state, next_attempt_at);
