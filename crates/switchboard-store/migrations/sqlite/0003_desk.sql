-- The conversation desk: the agents' grace period (a brand setting), how each skill routes
-- (assign directly, or offer to one agent at a time with a timeout) and the priority its new
-- conversations start with, and the event log of
-- conversation lifecycle changes, written in the same transaction as the change it records.
ALTER TABLE brands ADD COLUMN agent_grace_secs INTEGER NOT NULL DEFAULT 60;
-- The skill of new conversations whose app names none (NULL: no particular skill).
ALTER TABLE brands ADD COLUMN default_skill_id INTEGER;
ALTER TABLE skills ADD COLUMN routing TEXT NOT NULL DEFAULT 'assign';
ALTER TABLE skills ADD COLUMN offer_timeout_secs INTEGER NOT NULL DEFAULT 30;
ALTER TABLE skills ADD COLUMN default_priority INTEGER NOT NULL DEFAULT 0;

CREATE TABLE conversation_events (
    id INTEGER PRIMARY KEY,
    brand_id TEXT NOT NULL REFERENCES brands(id),
    conversation_id INTEGER NOT NULL REFERENCES conversations(id),
    kind TEXT NOT NULL,
    agent_id INTEGER,
    skill_id INTEGER,
    at INTEGER NOT NULL
);
CREATE INDEX conversation_events_conversation ON conversation_events (brand_id, conversation_id, id);
CREATE INDEX conversation_events_kind ON conversation_events (brand_id, kind, at);

-- Entry points: the skills a consumer device of the app may ask to start its conversations in
-- (besides the app's default skill).
CREATE TABLE app_entry_skills (
    brand_id TEXT NOT NULL REFERENCES brands(id),
    app_id TEXT NOT NULL,
    skill_id INTEGER NOT NULL REFERENCES skills(id),
    PRIMARY KEY (brand_id, app_id, skill_id)
);
