-- Switchboard schema, SQLite dialect. Keep in step with ../postgres/0001_initial.sql:
-- the same tables, columns and indexes; only types and identity columns differ.
-- Times are milliseconds since the Unix epoch (UTC). Flags are 0/1 integers.

CREATE TABLE brands (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    csat_enabled INTEGER NOT NULL DEFAULT 1,
    retention_days INTEGER NOT NULL DEFAULT 396,
    created_at INTEGER NOT NULL
);

CREATE TABLE skills (
    id INTEGER PRIMARY KEY,
    brand_id TEXT NOT NULL REFERENCES brands(id),
    name TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (brand_id, name)
);

CREATE TABLE apps (
    id TEXT PRIMARY KEY,
    brand_id TEXT NOT NULL REFERENCES brands(id),
    name TEXT NOT NULL,
    channel TEXT NOT NULL,
    allow_jwt INTEGER NOT NULL DEFAULT 1,
    allow_anonymous INTEGER NOT NULL DEFAULT 0,
    jwt_issuer TEXT,
    jwt_audience TEXT,
    default_skill_id INTEGER REFERENCES skills(id),
    created_at INTEGER NOT NULL
);
CREATE INDEX apps_brand ON apps (brand_id);

CREATE TABLE app_keys (
    id INTEGER PRIMARY KEY,
    brand_id TEXT NOT NULL REFERENCES brands(id),
    app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    format TEXT NOT NULL,
    material TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX app_keys_app ON app_keys (app_id);

CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    brand_id TEXT NOT NULL REFERENCES brands(id),
    email TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    max_concurrent INTEGER NOT NULL DEFAULT 3,
    state TEXT NOT NULL DEFAULT 'offline',
    disabled INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);
CREATE INDEX users_brand ON users (brand_id);

CREATE TABLE user_skills (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    skill_id INTEGER NOT NULL REFERENCES skills(id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, skill_id)
);

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    brand_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);

CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY,
    brand_id TEXT NOT NULL REFERENCES brands(id),
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_by INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE consumers (
    id INTEGER PRIMARY KEY,
    brand_id TEXT NOT NULL REFERENCES brands(id),
    external_id TEXT NOT NULL,
    name TEXT,
    email TEXT,
    phone TEXT,
    device TEXT,
    created_at INTEGER NOT NULL,
    UNIQUE (brand_id, external_id)
);

CREATE TABLE conversations (
    id INTEGER PRIMARY KEY,
    brand_id TEXT NOT NULL REFERENCES brands(id),
    consumer_id INTEGER NOT NULL REFERENCES consumers(id),
    app_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    skill_id INTEGER,
    status TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    opened_at INTEGER NOT NULL,
    closed_at INTEGER,
    closed_by TEXT,
    agent_id INTEGER,
    assigned_at INTEGER,
    first_response_at INTEGER,
    last_seq INTEGER NOT NULL DEFAULT 0,
    last_message_at INTEGER NOT NULL,
    consumer_delivered_seq INTEGER NOT NULL DEFAULT 0,
    consumer_read_seq INTEGER NOT NULL DEFAULT 0,
    agent_delivered_seq INTEGER NOT NULL DEFAULT 0,
    agent_read_seq INTEGER NOT NULL DEFAULT 0,
    survey_open INTEGER NOT NULL DEFAULT 0,
    csat_score INTEGER,
    csat_comment TEXT
);
-- At most one open conversation per consumer per brand.
CREATE UNIQUE INDEX conversations_one_open ON conversations (brand_id, consumer_id) WHERE status = 'open';
CREATE INDEX conversations_consumer ON conversations (brand_id, consumer_id, opened_at);
CREATE INDEX conversations_brand_opened ON conversations (brand_id, opened_at);
CREATE INDEX conversations_open_agent ON conversations (brand_id, agent_id) WHERE status = 'open';

CREATE TABLE messages (
    conversation_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    brand_id TEXT NOT NULL,
    side TEXT NOT NULL,
    author_id INTEGER,
    author_name TEXT,
    text TEXT NOT NULL,
    client_id TEXT,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (conversation_id, seq)
) WITHOUT ROWID;
-- Idempotency: one message per author and client id.
CREATE UNIQUE INDEX messages_idempotency ON messages (brand_id, side, author_id, client_id) WHERE client_id IS NOT NULL;
