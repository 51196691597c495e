-- A conversation an agent started by writing to a consumer (a proactive follow-up) names that
-- agent: holding it does not by itself let the agent read the consumer's other conversations,
-- unless the brand allows it (brands.follow_up_history, off by default).
ALTER TABLE conversations ADD COLUMN follow_up_by BIGINT;
ALTER TABLE brands ADD COLUMN follow_up_history INTEGER NOT NULL DEFAULT 0;
