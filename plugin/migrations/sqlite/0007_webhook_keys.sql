-- Webhook dedup keys by the event's time (throughput, issue 12). Kept in step with
-- ../postgres/0007_webhook_keys.sql.
--
-- webhook_seen was keyed by the SHA-256 key alone: every event of a batch landed on a random page of
-- that index, so a commit wrote one page per event, and the table was never purged. Here the key
-- comes after the event's createdAt (unix seconds): a batch's keys are neighbours, and keys older than
-- the dedup window (7 days; Stalwart drops an unsent event after `discard-after`) are deleted by range.
-- WITHOUT ROWID: the primary key is the table, one b-tree instead of two.
--
-- The keys recorded before this migration stay in webhook_seen, which is only read (a re-sent batch
-- can still name them) and emptied once they are older than the window (store/audit.rs).
CREATE TABLE webhook_keys (
    created_at  BIGINT NOT NULL,
    key         TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (created_at, key)
) WITHOUT ROWID;
