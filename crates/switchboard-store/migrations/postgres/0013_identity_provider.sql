-- An app's link to the brand's identity provider, for consumer authentication: a JWKS URL
-- whose keys are fetched (beside the keys uploaded to app_keys), and the OAuth2 authorization
-- code flow (the provider's token endpoint and the app's client credentials). The client
-- secret is never returned by the API.
CREATE TABLE app_identity (
    brand_id TEXT NOT NULL REFERENCES brands(id),
    app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    jwks_url TEXT,
    token_url TEXT,
    client_id TEXT,
    client_secret TEXT,
    redirect_uri TEXT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (brand_id, app_id)
);
