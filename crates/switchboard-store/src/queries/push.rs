//! Push sending's reads and writes: each app's provider credentials (`app_push_settings`),
//! the devices a consumer registered (`push_tokens`) with how far each was told, what a push
//! announces (the message, the delivery mark, the unread count), and the settlement of one
//! consumer's pending pushes in one transaction (outbox entries completed or retried, devices
//! marked or removed). The dispatcher in the server drives these; the outbox itself is
//! `outbox`.

use std::collections::HashMap;

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

    /// [`Store::push_subject`] for many consumers of a brand at once (a dispatcher's batch):
    /// for each `(consumer, conversation, seq)` whose message exists and is the consumer's,
    /// its subject, keyed by consumer. Three statements per 256 consumers, whatever the count.
    pub async fn push_subjects(
        &self,
        brand_id: &str,
        wanted: &[(i64, ConversationId, i64)],
    ) -> Result<HashMap<i64, PushSubject>, StoreError> {
        let mut subjects = HashMap::with_capacity(wanted.len());
        for chunk in wanted.chunks(MAX_IDS_PER_STATEMENT / 2) {
            // The messages and the delivery marks: one primary-key lookup per (conversation,
            // seq) pair, joined by UNION ALL (an OR of pairs is planned as a scan).
            let sql = (0..chunk.len())
                .map(|i| {
                    format!(
                        "SELECT m.conversation_id, m.seq, m.side, m.author_id, m.author_name, m.text, m.client_id,
                           m.created_at, c.consumer_delivered_seq, c.consumer_id
                         FROM conversations c JOIN messages m ON m.conversation_id = c.id
                         WHERE c.brand_id = $1 AND m.brand_id = $1 AND c.id = ${} AND m.seq = ${}",
                        2 + 2 * i,
                        3 + 2 * i
                    )
                })
                .collect::<Vec<_>>()
                .join(" UNION ALL ");
            let mut query = sqlx::query(AssertSqlSafe(sql)).bind(brand_id);
            for (_, conversation, seq) in chunk {
                query = query.bind(*conversation).bind(*seq);
            }
            let mut found: HashMap<(ConversationId, i64), (i64, StoredMessage, i64)> = HashMap::new();
            for row in query.fetch_all(&self.pool).await? {
                let message = crate::message_from_row(&row)?;
                let owner: i64 = row.try_get("consumer_id")?;
                found.insert(
                    (message.conversation_id, message.seq),
                    (owner, message, row.try_get("consumer_delivered_seq")?),
                );
            }
            // The unread counts of these consumers.
            let sql = format!(
                "SELECT u.consumer_id, COUNT(*) FROM conversations u JOIN messages n ON n.conversation_id = u.id
                 WHERE u.brand_id = $1 AND n.brand_id = $1 AND n.side <> 'c' AND n.seq > u.consumer_read_seq
                   AND u.consumer_id IN ({}) GROUP BY u.consumer_id",
                placeholders(2, chunk.len())
            );
            let mut query = sqlx::query(AssertSqlSafe(sql)).bind(brand_id);
            for (consumer, _, _) in chunk {
                query = query.bind(*consumer);
            }
            let mut unread: HashMap<i64, i64> = HashMap::new();
            for row in query.fetch_all(&self.pool).await? {
                unread.insert(row.try_get(0)?, row.try_get(1)?);
            }
            for (consumer, conversation, seq) in chunk {
                if let Some((owner, message, delivered)) = found.remove(&(*conversation, *seq))
                    && owner == *consumer
                {
                    let unread = unread.get(consumer).copied().unwrap_or(0);
                    subjects.insert(*consumer, PushSubject { message, consumer_delivered_seq: delivered, unread });
                }
            }
        }
        Ok(subjects)
    }

    /// [`Store::push_targets`] for many consumers of a brand at once, keyed by consumer.
    pub async fn push_targets_of(
        &self,
        brand_id: &str,
        consumers: &[i64],
    ) -> Result<HashMap<i64, Vec<PushTarget>>, StoreError> {
        let mut targets: HashMap<i64, Vec<PushTarget>> = HashMap::new();
        for chunk in consumers.chunks(MAX_IDS_PER_STATEMENT) {
            let sql = format!(
                "SELECT consumer_id, provider, token, app_id, pushed_outbox_id FROM push_tokens
                 WHERE brand_id = $1 AND consumer_id IN ({}) ORDER BY updated_at, provider, token",
                placeholders(2, chunk.len())
            );
            let mut query = sqlx::query(AssertSqlSafe(sql)).bind(brand_id);
            for consumer in chunk {
                query = query.bind(*consumer);
            }
            for row in query.fetch_all(&self.pool).await? {
                targets.entry(row.try_get(0)?).or_default().push(PushTarget {
                    provider: row.try_get(1)?,
                    token: row.try_get(2)?,
                    app_id: row.try_get(3)?,
                    pushed_outbox_id: row.try_get(4)?,
                });
            }
        }
        Ok(targets)
    }

    // ----- settlement ---------------------------------------------------------------------

    /// Records what became of a consumer's pending pushes, in one transaction: entries
    /// removed or moved to a later due time, devices marked as told up to an entry (a mark
    /// never goes back), devices the provider rejected unregistered.
    pub async fn settle_push(&self, brand_id: &str, settlement: &PushSettlement) -> Result<(), StoreError> {
        self.settle_pushes(&[(brand_id.to_owned(), settlement.clone())]).await
    }

    /// [`Store::settle_push`] for many consumers (a dispatcher's batch), each settlement with
    /// its brand, in one transaction (one commit, one fsync, for the whole batch).
    pub async fn settle_pushes(&self, settlements: &[(String, PushSettlement)]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for (brand_id, settlement) in settlements {
            settle_one(&mut tx, brand_id, settlement).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

async fn settle_one(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    brand_id: &str,
    settlement: &PushSettlement,
) -> Result<(), StoreError> {
    for chunk in settlement.completed.chunks(MAX_IDS_PER_STATEMENT) {
        let sql = format!("DELETE FROM outbox WHERE brand_id = $1 AND id IN ({})", placeholders(2, chunk.len()));
        let mut query = sqlx::query(AssertSqlSafe(sql)).bind(brand_id);
        for id in chunk {
            query = query.bind(*id);
        }
        query.execute(&mut **tx).await?;
    }
    if let Some((id, due_at, error)) = &settlement.retry {
        retry(&mut **tx, brand_id, *id, *due_at, error).await?;
    }
    // The devices' marks: one statement per 64 devices (a mark never goes back).
    for chunk in settlement.pushed.chunks(MAX_IDS_PER_STATEMENT / 4) {
        let values = (0..chunk.len())
            .map(|i| format!("(${}, ${}, ${})", 2 + 3 * i, 3 + 3 * i, 4 + 3 * i))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "UPDATE push_tokens SET pushed_outbox_id = v.column3 FROM (VALUES {values}) AS v
             WHERE push_tokens.brand_id = $1 AND push_tokens.provider = v.column1 AND push_tokens.token = v.column2
               AND push_tokens.pushed_outbox_id < v.column3"
        );
        let mut query = sqlx::query(AssertSqlSafe(sql)).bind(brand_id);
        for (provider, token, outbox_id) in chunk {
            query = query.bind(provider).bind(token).bind(*outbox_id);
        }
        query.execute(&mut **tx).await?;
    }
    for (provider, token) in &settlement.removed {
        sqlx::query("DELETE FROM push_tokens WHERE brand_id = $1 AND provider = $2 AND token = $3")
            .bind(brand_id)
            .bind(provider)
            .bind(token)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
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
