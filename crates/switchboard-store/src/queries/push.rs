//! Push sending's reads and writes: each app's provider credentials (`app_push_settings`),
//! the devices a consumer registered (`push_tokens`) with how far each was told, what a push
//! announces (the message, the delivery mark, the unread count), and the settlement of one
//! consumer's pending pushes in one transaction (outbox entries completed or retried, devices
//! marked or removed). The dispatcher in the server drives these; the outbox itself is
//! `outbox`.

use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};
use switchboard_protocol::{ConversationId, Millis};

use super::outbox::{MAX_IDS_PER_STATEMENT, placeholders, retry};
use crate::model::*;
use crate::{Store, StoreError};

const SETTINGS_COLUMNS: &str = "brand_id, app_id, fcm_project_id, fcm_service_account, apns_key_id, apns_team_id,
    apns_bundle_id, apns_private_key, apns_environment, updated_at";

impl Store {
    // ----- settings -----------------------------------------------------------------------

    /// The app's push credentials; `None` when neither provider was ever configured.
    pub async fn push_settings(&self, brand_id: &str, app_id: &str) -> Result<Option<PushSettings>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {SETTINGS_COLUMNS} FROM app_push_settings WHERE brand_id = $1 AND app_id = $2"
        )))
        .bind(brand_id)
        .bind(app_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| settings_from_row(&row)).transpose()
    }

    /// Sets (`Some`) or removes (`None`) the app's FCM credentials; `NotFound` if the brand has
    /// no such app.
    pub async fn set_fcm_settings(
        &self,
        brand_id: &str,
        app_id: &str,
        fcm: Option<&FcmSettings>,
        now: Millis,
    ) -> Result<PushSettings, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO app_push_settings (brand_id, app_id, fcm_project_id, fcm_service_account, updated_at)
             SELECT brand_id, id, $3, $4, $5 FROM apps WHERE brand_id = $1 AND id = $2
             ON CONFLICT (brand_id, app_id) DO UPDATE SET fcm_project_id = excluded.fcm_project_id,
               fcm_service_account = excluded.fcm_service_account, updated_at = excluded.updated_at
             RETURNING {SETTINGS_COLUMNS}"
        )))
        .bind(brand_id)
        .bind(app_id)
        .bind(fcm.map(|fcm| fcm.project_id.as_str()))
        .bind(fcm.map(|fcm| fcm.service_account_json.as_str()))
        .bind(now)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        settings_from_row(&row)
    }

    /// Sets (`Some`) or removes (`None`) the app's APNs credentials; `NotFound` if the brand
    /// has no such app.
    pub async fn set_apns_settings(
        &self,
        brand_id: &str,
        app_id: &str,
        apns: Option<&ApnsSettings>,
        now: Millis,
    ) -> Result<PushSettings, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO app_push_settings (brand_id, app_id, apns_key_id, apns_team_id, apns_bundle_id,
               apns_private_key, apns_environment, updated_at)
             SELECT brand_id, id, $3, $4, $5, $6, $7, $8 FROM apps WHERE brand_id = $1 AND id = $2
             ON CONFLICT (brand_id, app_id) DO UPDATE SET apns_key_id = excluded.apns_key_id,
               apns_team_id = excluded.apns_team_id, apns_bundle_id = excluded.apns_bundle_id,
               apns_private_key = excluded.apns_private_key, apns_environment = excluded.apns_environment,
               updated_at = excluded.updated_at
             RETURNING {SETTINGS_COLUMNS}"
        )))
        .bind(brand_id)
        .bind(app_id)
        .bind(apns.map(|apns| apns.key_id.as_str()))
        .bind(apns.map(|apns| apns.team_id.as_str()))
        .bind(apns.map(|apns| apns.bundle_id.as_str()))
        .bind(apns.map(|apns| apns.private_key.as_str()))
        .bind(apns.map(|apns| apns.environment.as_str()))
        .bind(now)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        settings_from_row(&row)
    }

    // ----- devices ------------------------------------------------------------------------

    /// The devices a push to the consumer goes to, oldest registration first.
    pub async fn push_targets(&self, brand_id: &str, consumer_id: i64) -> Result<Vec<PushTarget>, StoreError> {
        let rows = sqlx::query(
            "SELECT provider, token, app_id, pushed_outbox_id FROM push_tokens
             WHERE brand_id = $1 AND consumer_id = $2 ORDER BY updated_at, provider, token",
        )
        .bind(brand_id)
        .bind(consumer_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(PushTarget {
                    provider: row.try_get(0)?,
                    token: row.try_get(1)?,
                    app_id: row.try_get(2)?,
                    pushed_outbox_id: row.try_get(3)?,
                })
            })
            .collect()
    }

    /// Unregisters a device token of the brand (a consumer logged out on that device, or the
    /// provider said it is gone). `false` if the brand had no such token.
    pub async fn remove_push_token(&self, brand_id: &str, provider: &str, token: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM push_tokens WHERE brand_id = $1 AND provider = $2 AND token = $3")
            .bind(brand_id)
            .bind(provider)
            .bind(token)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    // ----- what a push says ---------------------------------------------------------------

    /// The message an outbox entry announces, with the delivery mark of its conversation and
    /// the consumer's unread count; `None` if the message or conversation is gone or is not
    /// the consumer's.
    pub async fn push_subject(
        &self,
        brand_id: &str,
        consumer_id: i64,
        conversation_id: ConversationId,
        seq: i64,
    ) -> Result<Option<PushSubject>, StoreError> {
        let row = sqlx::query(
            "SELECT m.conversation_id, m.seq, m.side, m.author_id, m.author_name, m.text, m.client_id, m.created_at,
               c.consumer_delivered_seq,
               (SELECT COUNT(*) FROM conversations u JOIN messages n ON n.conversation_id = u.id
                WHERE u.brand_id = $1 AND u.consumer_id = $2 AND n.side <> 'c' AND n.seq > u.consumer_read_seq) AS unread
             FROM conversations c JOIN messages m ON m.conversation_id = c.id
             WHERE c.brand_id = $1 AND c.consumer_id = $2 AND c.id = $3 AND m.brand_id = $1 AND m.seq = $4",
        )
        .bind(brand_id)
        .bind(consumer_id)
        .bind(conversation_id)
        .bind(seq)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(PushSubject {
            message: crate::message_from_row(&row)?,
            consumer_delivered_seq: row.try_get("consumer_delivered_seq")?,
            unread: row.try_get("unread")?,
        }))
    }

    // ----- settlement ---------------------------------------------------------------------

    /// Records what became of a consumer's pending pushes, in one transaction: entries
    /// removed or moved to a later due time, devices marked as told up to an entry (a mark
    /// never goes back), devices the provider rejected unregistered.
    pub async fn settle_push(&self, brand_id: &str, settlement: &PushSettlement) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for chunk in settlement.completed.chunks(MAX_IDS_PER_STATEMENT) {
            let sql = format!("DELETE FROM outbox WHERE brand_id = $1 AND id IN ({})", placeholders(2, chunk.len()));
            let mut query = sqlx::query(AssertSqlSafe(sql)).bind(brand_id);
            for id in chunk {
                query = query.bind(*id);
            }
            query.execute(&mut *tx).await?;
        }
        if let Some((id, due_at, error)) = &settlement.retry {
            retry(&mut *tx, brand_id, *id, *due_at, error).await?;
        }
        for (provider, token, outbox_id) in &settlement.pushed {
            sqlx::query(
                "UPDATE push_tokens SET pushed_outbox_id = $4
                 WHERE brand_id = $1 AND provider = $2 AND token = $3 AND pushed_outbox_id < $4",
            )
            .bind(brand_id)
            .bind(provider)
            .bind(token)
            .bind(*outbox_id)
            .execute(&mut *tx)
            .await?;
        }
        for (provider, token) in &settlement.removed {
            sqlx::query("DELETE FROM push_tokens WHERE brand_id = $1 AND provider = $2 AND token = $3")
                .bind(brand_id)
                .bind(provider)
                .bind(token)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

fn settings_from_row(row: &AnyRow) -> Result<PushSettings, StoreError> {
    let fcm = match (row.try_get::<Option<String>, _>("fcm_project_id")?, row.try_get("fcm_service_account")?) {
        (Some(project_id), Some(service_account_json)) => Some(FcmSettings { project_id, service_account_json }),
        _ => None,
    };
    let apns = match (
        row.try_get::<Option<String>, _>("apns_key_id")?,
        row.try_get::<Option<String>, _>("apns_team_id")?,
        row.try_get::<Option<String>, _>("apns_bundle_id")?,
        row.try_get::<Option<String>, _>("apns_private_key")?,
        row.try_get::<Option<String>, _>("apns_environment")?,
    ) {
        (Some(key_id), Some(team_id), Some(bundle_id), Some(private_key), Some(environment)) => Some(ApnsSettings {
            key_id,
            team_id,
            bundle_id,
            private_key,
            environment: ApnsEnvironment::parse(&environment)
                .ok_or_else(|| StoreError::Corrupt(format!("apns_environment {environment:?}")))?,
        }),
        _ => None,
    };
    Ok(PushSettings {
        brand_id: row.try_get("brand_id")?,
        app_id: row.try_get("app_id")?,
        fcm,
        apns,
        updated_at: row.try_get("updated_at")?,
    })
}
