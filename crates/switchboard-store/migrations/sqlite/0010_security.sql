-- no-transaction
-- Issue 15 (secure by default). Runs outside sqlx's transaction because rebuilding `users`
-- needs foreign keys off (dropping the old table would otherwise cascade to sessions and
-- skills), which SQLite only allows outside a transaction; the rebuild itself is one
-- transaction.
--
-- 1. Staff emails are unique per brand, not across brands (one brand's admin could learn
--    another brand's staff addresses from "a user with this email exists"). SQLite cannot
--    drop a column's UNIQUE constraint, so the table is rebuilt (the 12-step procedure of
--    https://www.sqlite.org/lang_altertable.html#otheralter), keeping every row and id.
-- 2. API tokens may expire, and record when they were last used.
PRAGMA foreign_keys = OFF;
BEGIN;
CREATE TABLE users_new (
    id INTEGER PRIMARY KEY,
    brand_id TEXT NOT NULL REFERENCES brands(id),
    email TEXT NOT NULL,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    max_concurrent INTEGER NOT NULL DEFAULT 3,
    state TEXT NOT NULL DEFAULT 'offline',
    disabled INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);
INSERT INTO users_new (id, brand_id, email, name, role, password_hash, max_concurrent, state, disabled, created_at)
    SELECT id, brand_id, email, name, role, password_hash, max_concurrent, state, disabled, created_at FROM users;
DROP TABLE users;
ALTER TABLE users_new RENAME TO users;
CREATE INDEX users_brand ON users (brand_id);
CREATE UNIQUE INDEX users_brand_email ON users (brand_id, email);
CREATE INDEX users_email ON users (email);
ALTER TABLE api_tokens ADD COLUMN expires_at INTEGER;
ALTER TABLE api_tokens ADD COLUMN last_used_at INTEGER;
COMMIT;
PRAGMA foreign_keys = ON;
