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

    /// Moves an anonymous consumer's data to an authenticated consumer of the same brand (the
    /// anonymous → authenticated upgrade), in one transaction: their conversations, the
    /// authorship of their messages, their push tokens and pending pushes; then the anonymous
    /// identity is removed (its device secret no longer opens anything). If both have an
    /// open conversation, the anonymous one is closed first (by the system, with a `closed`
    /// entry in its event log), since a consumer has at most one open conversation.
    ///
    /// `None` if `anonymous` is not an anonymous consumer of the brand or is `into` itself.
    pub async fn merge_anonymous_consumer(
        &self,
        brand_id: &str,
        anonymous: i64,
        into: i64,
        now: Millis,
    ) -> Result<Option<ConsumerMerge>, StoreError> {
        if anonymous == into {
            return Ok(None);
        }
        let mut tx = self.pool.begin().await?;
        let found = sqlx::query(
            "SELECT COUNT(*) FROM consumers WHERE brand_id = $1
             AND ((id = $2 AND external_id LIKE 'anon:%') OR (id = $3 AND external_id NOT LIKE 'anon:%'))",
        )
        .bind(brand_id)
        .bind(anonymous)
        .bind(into)
        .fetch_one(&mut *tx)
        .await?;
        if found.try_get::<i64, _>(0)? != 2 {
            return Ok(None);
        }
        // Both open: the anonymous one closes, so the moved rows keep one open per consumer.
        let closed = sqlx::query(
            "UPDATE conversations SET status = 'closed', closed_at = $4, closed_by = 's'
             WHERE brand_id = $1 AND consumer_id = $2 AND status = 'open'
             AND EXISTS (SELECT 1 FROM conversations AS other
                         WHERE other.brand_id = $1 AND other.consumer_id = $3 AND other.status = 'open')
             RETURNING id",
        )
        .bind(brand_id)
        .bind(anonymous)
        .bind(into)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let closed: Option<i64> = closed.map(|row| row.try_get(0)).transpose()?;
        if let Some(id) = closed {
            crate::queries::record_event(&mut tx, brand_id, id, "closed", None, None, now).await?;
        }
        let conversations =
            sqlx::query("UPDATE conversations SET consumer_id = $3 WHERE brand_id = $1 AND consumer_id = $2")
                .bind(brand_id)
                .bind(anonymous)
                .bind(into)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        // A client id the consumer also used under the new identity keeps the old author:
        // idempotency ids are unique per author.
        let messages = sqlx::query(
            "UPDATE messages SET author_id = $3
             WHERE brand_id = $1 AND side = 'c' AND author_id = $2
             AND NOT EXISTS (SELECT 1 FROM messages AS twin WHERE twin.brand_id = $1 AND twin.side = 'c'
                             AND twin.author_id = $3 AND twin.client_id = messages.client_id)",
        )
        .bind(brand_id)
        .bind(anonymous)
        .bind(into)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let push_tokens =
            sqlx::query("UPDATE push_tokens SET consumer_id = $3 WHERE brand_id = $1 AND consumer_id = $2")
                .bind(brand_id)
                .bind(anonymous)
                .bind(into)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        sqlx::query("UPDATE outbox SET consumer_id = $3 WHERE brand_id = $1 AND consumer_id = $2")
            .bind(brand_id)
            .bind(anonymous)
            .bind(into)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM consumers WHERE brand_id = $1 AND id = $2")
            .bind(brand_id)
            .bind(anonymous)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(ConsumerMerge { conversations, messages, push_tokens, closed }))
    }
}

/// What [`Store::merge_anonymous_consumer`] moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerMerge {
    pub conversations: u64,
    pub messages: u64,
    pub push_tokens: u64,
    /// The anonymous identity's open conversation, closed because the authenticated one had
    /// one open too.
    pub closed: Option<i64>,
}
