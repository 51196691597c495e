-- Push sending: each app's provider credentials, the brand's choice to mask pushes, and how
-- far each device has been told, so a push is never sent twice for one message.

-- 1: every push says only "You have a new message" (no text, no author).
ALTER TABLE brands ADD COLUMN push_masked BIGINT NOT NULL DEFAULT 0;

-- The newest outbox entry (id) a push to this device covered, or was given up for: the
-- dispatcher skips entries at or below it, so a retry after a partial failure (one device
-- answered, another asked to wait) or a late entry never pushes a device twice.
ALTER TABLE push_tokens ADD COLUMN pushed_outbox_id BIGINT NOT NULL DEFAULT 0;

-- An app's push credentials. Secrets (the service account JSON, the .p8 key) are never
-- returned by the API. A provider whose columns are NULL is not configured.
CREATE TABLE app_push_settings (
    brand_id TEXT NOT NULL REFERENCES brands(id),
    app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    fcm_project_id TEXT,
    fcm_service_account TEXT,
    apns_key_id TEXT,
    apns_team_id TEXT,
    apns_bundle_id TEXT,
    apns_private_key TEXT,
    -- 'production' or 'sandbox' (development builds).
    apns_environment TEXT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (brand_id, app_id)
);
