-- Issue 15 (secure by default).
-- 1. Staff emails are unique per brand, not across brands (one brand's admin could learn
--    another brand's staff addresses from "a user with this email exists"). Login looks an
--    email up across brands (users_email), then checks the password of each account.
-- 2. API tokens may expire, and record when they were last used.
ALTER TABLE users DROP CONSTRAINT users_email_key;
CREATE UNIQUE INDEX users_brand_email ON users (brand_id, email);
CREATE INDEX users_email ON users (email);
ALTER TABLE api_tokens ADD COLUMN expires_at BIGINT;
ALTER TABLE api_tokens ADD COLUMN last_used_at BIGINT;
