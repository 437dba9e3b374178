-- Indexes of the notice planner's and the portal's lookups (throughput, issue 12). Kept in step with
-- ../sqlite/0008_notice_indexes.sql (identical text).
--
-- Each notice looked up the holds of its challenge (senders, messages, the sender's holds) by
-- scanning every hold kept, and every pass of the planner read every pending challenge to find the
-- unplanned ones and the expired ones: a cost that grew with the holds kept for the retention time.
CREATE INDEX holds_challenge ON holds (challenge_id);
CREATE INDEX challenges_unplanned ON challenges (state, notice_queued, created_at);
CREATE INDEX challenges_expiry ON challenges (state, expires_at);
-- The state prefix of both indexes above serves every lookup by state alone.
DROP INDEX challenges_state;
