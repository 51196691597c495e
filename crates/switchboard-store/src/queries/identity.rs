//! Each app's link to the brand's identity provider (`app_identity`): the JWKS URL its
//! consumer tokens' keys are fetched from, and the OAuth2 code flow's token endpoint and
//! client credentials. The server fetches and exchanges; the store only keeps the settings.

use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};
use switchboard_protocol::Millis;

use crate::model::{CodeFlowSettings, IdentitySettings};
use crate::{Store, StoreError};

const COLUMNS: &str = "jwks_url, token_url, client_id, client_secret, redirect_uri, updated_at";

impl Store {
    /// The app's identity-provider settings; the default (nothing set) when never configured.
    pub async fn identity_settings(&self, brand_id: &str, app_id: &str) -> Result<IdentitySettings, StoreError> {
        let row = sqlx::query(
            "SELECT jwks_url, token_url, client_id, client_secret, redirect_uri, updated_at FROM app_identity
             WHERE brand_id = $1 AND app_id = $2",
        )
        .bind(brand_id)
        .bind(app_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map_or_else(|| Ok(IdentitySettings::default()), |row| settings_from_row(&row))
    }

    /// Replaces the app's identity-provider settings; `NotFound` if the brand has no such app.
    pub async fn set_identity_settings(
        &self,
        brand_id: &str,
        app_id: &str,
        settings: &IdentitySettings,
        now: Millis,
    ) -> Result<IdentitySettings, StoreError> {
        let code = settings.code_flow.as_ref();
        let row = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO app_identity (brand_id, app_id, jwks_url, token_url, client_id, client_secret, redirect_uri,
               updated_at)
             SELECT brand_id, id, $3, $4, $5, $6, $7, $8 FROM apps WHERE brand_id = $1 AND id = $2
             ON CONFLICT (brand_id, app_id) DO UPDATE SET jwks_url = excluded.jwks_url,
               token_url = excluded.token_url, client_id = excluded.client_id,
               client_secret = excluded.client_secret, redirect_uri = excluded.redirect_uri,
               updated_at = excluded.updated_at
             RETURNING {COLUMNS}"
        )))
        .bind(brand_id)
        .bind(app_id)
        .bind(settings.jwks_url.as_deref())
        .bind(code.map(|code| code.token_url.as_str()))
        .bind(code.map(|code| code.client_id.as_str()))
        .bind(code.map(|code| code.client_secret.as_str()))
        .bind(code.and_then(|code| code.redirect_uri.as_deref()))
        .bind(now)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        settings_from_row(&row)
    }
}

fn settings_from_row(row: &AnyRow) -> Result<IdentitySettings, StoreError> {
    let token_url: Option<String> = row.try_get("token_url")?;
    let client_id: Option<String> = row.try_get("client_id")?;
    let client_secret: Option<String> = row.try_get("client_secret")?;
    let code_flow = match (token_url, client_id, client_secret) {
        (Some(token_url), Some(client_id), Some(client_secret)) => {
            Some(CodeFlowSettings { token_url, client_id, client_secret, redirect_uri: row.try_get("redirect_uri")? })
        }
        _ => None,
    };
    Ok(IdentitySettings { jwks_url: row.try_get("jwks_url")?, code_flow })
}
