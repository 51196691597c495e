-- Push tokens registered by consumer devices (APNs or FCM), per app. A token belongs to one
-- consumer at a time: registering it again moves it.
CREATE TABLE push_tokens (
    token TEXT NOT NULL,
    provider TEXT NOT NULL,
    brand_id TEXT NOT NULL REFERENCES brands(id),
    app_id TEXT NOT NULL,
    consumer_id INTEGER NOT NULL REFERENCES consumers(id),
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (provider, token)
);
CREATE INDEX push_tokens_consumer ON push_tokens (brand_id, consumer_id);
