//! Consumers (the brand's customers): identity, profile, device and push tokens.

use sqlx::Row;
use switchboard_protocol::{DeviceInfo, Millis};

use super::*;
use crate::{Store, StoreError};

impl Store {
    // ----- consumers ----------------------------------------------------------------------

    /// The consumer with this external id (JWT `sub`), created if new; claims that are
    /// present replace the stored profile fields.
    pub async fn upsert_consumer(
        &self,
        brand_id: &str,
        external_id: &str,
        claims: &ConsumerClaims,
        now: Millis,
    ) -> Result<Consumer, StoreError> {
        let row = sqlx::query(
            "INSERT INTO consumers (brand_id, external_id, name, email, phone, created_at, language)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (brand_id, external_id) DO UPDATE SET
               name = COALESCE(excluded.name, consumers.name),
               email = COALESCE(excluded.email, consumers.email),
               phone = COALESCE(excluded.phone, consumers.phone),
               language = COALESCE(excluded.language, consumers.language)
             RETURNING id, brand_id, external_id, name, email, phone, device, language, created_at",
        )
        .bind(brand_id)
        .bind(external_id)
        .bind(claims.name.as_deref())
        .bind(claims.email.as_deref())
        .bind(claims.phone.as_deref())
        .bind(now)
        .bind(claims.language.as_deref())
        .fetch_one(&self.pool)
        .await?;
        consumer_from_row(&row)
    }

    /// A consumer by external id.
    pub async fn consumer_by_external_id(
        &self,
        brand_id: &str,
        external_id: &str,
    ) -> Result<Option<Consumer>, StoreError> {
        let row = sqlx::query(
            "SELECT id, brand_id, external_id, name, email, phone, device, language, created_at FROM consumers
             WHERE brand_id = $1 AND external_id = $2",
        )
        .bind(brand_id)
        .bind(external_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| consumer_from_row(&row)).transpose()
    }

    /// A consumer by id.
    pub async fn consumer(&self, brand_id: &str, consumer_id: i64) -> Result<Option<Consumer>, StoreError> {
        let row = sqlx::query(
            "SELECT id, brand_id, external_id, name, email, phone, device, language, created_at FROM consumers
             WHERE brand_id = $1 AND id = $2",
        )
        .bind(brand_id)
        .bind(consumer_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| consumer_from_row(&row)).transpose()
    }

    /// Records the device a consumer connected from.
    pub async fn set_consumer_device(
        &self,
        brand_id: &str,
        consumer_id: i64,
        device: &DeviceInfo,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(device).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::query("UPDATE consumers SET device = $3 WHERE brand_id = $1 AND id = $2")
            .bind(brand_id)
            .bind(consumer_id)
            .bind(json)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records the language a consumer's device speaks (a BCP 47 tag).
    pub async fn set_consumer_language(
        &self,
        brand_id: &str,
        consumer_id: i64,
        language: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE consumers SET language = $3 WHERE brand_id = $1 AND id = $2")
            .bind(brand_id)
            .bind(consumer_id)
            .bind(language)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Registers a device's push token for a consumer (a token moves to the consumer who
    /// registered it last).
    pub async fn register_push_token(
        &self,
        brand_id: &str,
        app_id: &str,
        consumer_id: i64,
        provider: &str,
        token: &str,
        now: Millis,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO push_tokens (token, provider, brand_id, app_id, consumer_id, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (provider, token) DO UPDATE SET brand_id = excluded.brand_id, app_id = excluded.app_id,
               consumer_id = excluded.consumer_id, updated_at = excluded.updated_at",
        )
        .bind(token)
        .bind(provider)
        .bind(brand_id)
        .bind(app_id)
        .bind(consumer_id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The push tokens of a consumer: (provider, token, app id).
    pub async fn push_tokens(
        &self,
        brand_id: &str,
        consumer_id: i64,
    ) -> Result<Vec<(String, String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT provider, token, app_id FROM push_tokens WHERE brand_id = $1 AND consumer_id = $2 ORDER BY updated_at",
        )
        .bind(brand_id)
        .bind(consumer_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?))).collect()
    }
}
