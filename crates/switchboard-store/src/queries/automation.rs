//! Automatic-message templates of a brand: one per trigger, skill (or brand-wide) and language.

use sqlx::Row;
use sqlx::any::AnyRow;
use switchboard_protocol::Millis;

use super::int;
use crate::model::AutomaticMessage;
use crate::{Store, StoreError};

/// A template to save (replacing the one with the same trigger, skill and language).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAutomaticMessage {
    pub trigger: String,
    pub skill_id: Option<i64>,
    pub language: String,
    pub enabled: bool,
    pub text: String,
}

const COLUMNS: &str = "id, brand_id, trigger, skill_id, language, enabled, text, updated_at";

fn from_row(row: &AnyRow) -> Result<AutomaticMessage, StoreError> {
    Ok(AutomaticMessage {
        id: row.try_get("id")?,
        brand_id: row.try_get("brand_id")?,
        trigger: row.try_get("trigger")?,
        skill_id: row.try_get("skill_id")?,
        language: row.try_get("language")?,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        text: row.try_get("text")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl Store {
    /// The brand's templates, by trigger, skill (brand-wide first) and language.
    pub async fn automatic_messages(&self, brand_id: &str) -> Result<Vec<AutomaticMessage>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM automatic_messages WHERE brand_id = $1
             ORDER BY trigger, COALESCE(skill_id, 0), language"
        )))
        .bind(brand_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// Saves a template: replaces the brand's template with the same trigger, skill and
    /// language, or adds it. The skill must be the brand's.
    pub async fn put_automatic_message(
        &self,
        brand_id: &str,
        new: &NewAutomaticMessage,
        now: Millis,
    ) -> Result<AutomaticMessage, StoreError> {
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE automatic_messages SET enabled = $5, text = $6, updated_at = $7
             WHERE brand_id = $1 AND trigger = $2 AND COALESCE(skill_id, 0) = COALESCE($3, 0) AND language = $4
             RETURNING {COLUMNS}"
        )))
        .bind(brand_id)
        .bind(&new.trigger)
        .bind(new.skill_id)
        .bind(&new.language)
        .bind(int(new.enabled))
        .bind(&new.text)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let row = match updated {
            Some(row) => row,
            None => sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO automatic_messages (brand_id, trigger, skill_id, language, enabled, text, updated_at)
                     SELECT $1, $2, $3, $4, $5, $6, $7
                     WHERE $3 IS NULL OR EXISTS (SELECT 1 FROM skills WHERE brand_id = $1 AND id = $3)
                     RETURNING {COLUMNS}"
            )))
            .bind(brand_id)
            .bind(&new.trigger)
            .bind(new.skill_id)
            .bind(&new.language)
            .bind(int(new.enabled))
            .bind(&new.text)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound)?,
        };
        let saved = from_row(&row)?;
        tx.commit().await?;
        Ok(saved)
    }

    /// Removes a template; `false` if the brand has none with this id.
    pub async fn delete_automatic_message(&self, brand_id: &str, id: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM automatic_messages WHERE brand_id = $1 AND id = $2")
            .bind(brand_id)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
