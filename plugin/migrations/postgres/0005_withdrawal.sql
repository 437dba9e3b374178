-- Withdrawal by the sender and the collection receipt (issue 15). Kept in step between sqlite/ and
-- postgres/ (only the binary type differs). Times are unix seconds. The hold state 'withdrawn' needs no
-- schema change (holds.state has no CHECK constraint; the state machine is store/holds.rs).

-- When the recipient first opened the message on the portal ("read": no longer withdrawable). Holds read
-- before this migration get the time of their first portal record.
ALTER TABLE holds ADD COLUMN viewed_at BIGINT;
UPDATE holds SET viewed_at = (SELECT MIN(a.at) FROM audit_log a WHERE a.message_ref = holds.message_id
    AND a.recipient = holds.recipient AND a.kind IN ('portal_viewed', 'portal_downloaded'))
    WHERE state = 'portal';

-- The sender's notices of a held message: 0 = not yet looked at by the planner, 1 = done (the hold
-- confirmation queued, or not wanted). Messages held before this migration are done.
ALTER TABLE held_messages ADD COLUMN sender_noticed BIGINT NOT NULL DEFAULT 0;
UPDATE held_messages SET sender_noticed = 1;
CREATE INDEX held_messages_unnoticed ON held_messages (created_at) WHERE sender_noticed = 0;
-- SHA-256 of the sender's withdraw link token (the token itself is derived, never stored).
ALTER TABLE held_messages ADD COLUMN withdraw_token_hash TEXT;
CREATE UNIQUE INDEX held_messages_withdraw_token ON held_messages (withdraw_token_hash);
-- The subject, sealed like the content (associated data '<id>/subject'), kept for the sender's
-- confirmation and receipt after the content is gone; erased when the retention ends.
ALTER TABLE held_messages ADD COLUMN subject_key_id TEXT;
ALTER TABLE held_messages ADD COLUMN subject_wrapped_key BYTEA;
ALTER TABLE held_messages ADD COLUMN subject_nonce BYTEA;
ALTER TABLE held_messages ADD COLUMN subject_ciphertext BYTEA;

-- Per sender domain: 1 on, 0 off, NULL = the [portal] default.
ALTER TABLE domain_settings ADD COLUMN hold_confirmation BIGINT;
ALTER TABLE domain_settings ADD COLUMN collection_receipt BIGINT;
