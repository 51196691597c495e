-- Automation on the desk: automatic messages (templates per trigger, skill and language),
-- auto-close (a brand setting), the consumer's language, and the times the auto-close clock
-- is derived from, so that timers survive a restart.
ALTER TABLE brands ADD COLUMN default_language TEXT NOT NULL DEFAULT 'en';
-- NULL: conversations never auto-close.
ALTER TABLE brands ADD COLUMN auto_close_secs INTEGER;
-- NULL: no warning before an auto-close.
ALTER TABLE brands ADD COLUMN auto_close_warn_secs INTEGER;
ALTER TABLE brands ADD COLUMN auto_close_survey INTEGER NOT NULL DEFAULT 0;

ALTER TABLE conversations ADD COLUMN last_agent_at INTEGER;
ALTER TABLE conversations ADD COLUMN last_consumer_at INTEGER;
ALTER TABLE conversations ADD COLUMN auto_closed INTEGER NOT NULL DEFAULT 0;

-- BCP 47 tag from the consumer's device (or token), e.g. "de-AT".
ALTER TABLE consumers ADD COLUMN language TEXT;

-- System messages with a key (automatic messages) are stored once per key and conversation.
CREATE UNIQUE INDEX messages_system_key ON messages (conversation_id, client_id)
    WHERE side = 's' AND client_id IS NOT NULL;

CREATE TABLE automatic_messages (
    id INTEGER PRIMARY KEY,
    brand_id TEXT NOT NULL REFERENCES brands(id),
    trigger TEXT NOT NULL,
    -- NULL: brand-wide.
    skill_id INTEGER REFERENCES skills(id),
    language TEXT NOT NULL,
    enabled INTEGER NOT NULL,
    text TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX automatic_messages_key ON automatic_messages (brand_id, trigger, COALESCE(skill_id, 0), language);

-- An entry point's priority: conversations an app opens start at least at it (a skill's
-- default priority may raise it further). 0 normal, 1 high, 2 urgent.
ALTER TABLE apps ADD COLUMN default_priority INTEGER NOT NULL DEFAULT 0;

-- Business hours (JSON: switchboard_core::hours::BusinessHours), the brand's and a skill's
-- own; NULL: always open (a skill without its own follows the brand's). What happens to a
-- conversation opened while closed: 'queue' (waits for the opening) or 'close'.
ALTER TABLE brands ADD COLUMN business_hours TEXT;
ALTER TABLE brands ADD COLUMN off_hours TEXT NOT NULL DEFAULT 'queue';
ALTER TABLE skills ADD COLUMN business_hours TEXT;
