-- Data governance: the reporting API's indexes, the audit log, and the retention purge's
-- record of its runs. Keep in step with ../postgres/0009_governance.sql.

-- The reporting API searches a brand's conversations newest first, by (opened_at, id), with
-- optional filters; one index per filter keeps the first page a short index walk however
-- many conversations the brand has. `id` is last so the keyset (opened_at, id) comes from
-- the index (SQLite appends the rowid on its own; PostgreSQL needs it spelled out).
CREATE INDEX conversations_search_opened ON conversations (brand_id, opened_at, id);
-- It covers what this one did.
DROP INDEX conversations_brand_opened;
CREATE INDEX conversations_search_agent ON conversations (brand_id, agent_id, opened_at, id);
CREATE INDEX conversations_search_skill ON conversations (brand_id, skill_id, opened_at, id);
CREATE INDEX conversations_search_status ON conversations (brand_id, status, opened_at, id);
CREATE INDEX conversations_search_csat ON conversations (brand_id, csat_score, opened_at, id);
CREATE INDEX conversations_search_channel ON conversations (brand_id, channel, opened_at, id);
-- The retention purge finds closed conversations by when they closed.
CREATE INDEX conversations_closed ON conversations (brand_id, closed_at) WHERE status = 'closed';
-- The purge and erasure remove a conversation's outbox rows.
CREATE INDEX outbox_conversation ON outbox (conversation_id);

-- Who did what to a brand's settings and data, and when. `actor_kind`: `user` (a session),
-- `api_token`, `operator`, `system` (the retention job) or `cli` (a command of the binary).
-- `detail` is JSON; it never holds a secret or a message text.
CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    brand_id TEXT NOT NULL REFERENCES brands(id),
    at INTEGER NOT NULL,
    actor_kind TEXT NOT NULL,
    actor_id INTEGER,
    actor_name TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT,
    detail TEXT
);
CREATE INDEX audit_log_brand ON audit_log (brand_id, id);
CREATE INDEX audit_log_action ON audit_log (brand_id, action, id);

-- One row per run of the retention purge over a brand, its counts moved forward in the
-- same transaction as each batch it deletes, so a restart continues the run where it
-- stopped and the counts stay exact. `finished_at` NULL: the run is under way.
CREATE TABLE retention_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    brand_id TEXT NOT NULL REFERENCES brands(id),
    started_at INTEGER NOT NULL,
    horizon INTEGER NOT NULL,
    finished_at INTEGER,
    conversations INTEGER NOT NULL DEFAULT 0,
    messages INTEGER NOT NULL DEFAULT 0,
    events INTEGER NOT NULL DEFAULT 0,
    outbox INTEGER NOT NULL DEFAULT 0,
    csat INTEGER NOT NULL DEFAULT 0,
    profiles INTEGER NOT NULL DEFAULT 0
);
-- At most one run under way per brand.
CREATE UNIQUE INDEX retention_runs_open ON retention_runs (brand_id) WHERE finished_at IS NULL;
CREATE INDEX retention_runs_brand ON retention_runs (brand_id, id);
