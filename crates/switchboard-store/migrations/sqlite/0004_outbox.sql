-- The outbox: work that must follow a committed change and reach the world outside the
-- database (a push to a consumer's device, later webhooks), written in the same transaction
-- as the change, so a crash between the commit and the send loses nothing. A dispatcher
-- claims due rows for a lease, and deletes each once done or moves its due time on a retry.
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    brand_id TEXT NOT NULL REFERENCES brands(id),
    kind TEXT NOT NULL,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id),
    seq INTEGER NOT NULL,
    consumer_id INTEGER NOT NULL REFERENCES consumers(id),
    created_at INTEGER NOT NULL,
    due_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    claimed_until INTEGER,
    last_error TEXT
);
CREATE INDEX outbox_due ON outbox (kind, due_at);
CREATE INDEX outbox_consumer ON outbox (brand_id, consumer_id);
