//! Brands (tenants) and their routing skills.

use sqlx::Row;
use switchboard_protocol::Millis;

use super::*;
use crate::{Store, StoreError};

impl Store {
    // ----- brands -------------------------------------------------------------------------

    /// Creates a brand with default settings.
    pub async fn create_brand(&self, new: &NewBrand, now: Millis) -> Result<Brand, StoreError> {
        let row = sqlx::query(
            "INSERT INTO brands (id, name, csat_enabled, retention_days, created_at) VALUES ($1, $2, 1, $3, $4)
             RETURNING id, name, csat_enabled, retention_days, agent_grace_secs, default_skill_id, default_language, auto_close_secs,
             auto_close_warn_secs, auto_close_survey, follow_up_history, push_masked, created_at",
        )
        .bind(&new.id)
        .bind(&new.name)
        .bind(DEFAULT_RETENTION_DAYS)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        brand_from_row(&row)
    }

    /// A brand by id.
    pub async fn brand(&self, brand_id: &str) -> Result<Option<Brand>, StoreError> {
        let row = sqlx::query(
            "SELECT id, name, csat_enabled, retention_days, agent_grace_secs, default_skill_id, default_language, auto_close_secs,
             auto_close_warn_secs, auto_close_survey, follow_up_history, push_masked, created_at FROM brands WHERE id = $1",
        )
        .bind(brand_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| brand_from_row(&row)).transpose()
    }

    /// Ids of all brands (for rebuilding routing state at start).
    pub async fn brand_ids(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT id FROM brands ORDER BY id").fetch_all(&self.pool).await?;
        rows.iter().map(|row| Ok(row.try_get(0)?)).collect()
    }

    /// Changes brand settings.
    pub async fn update_brand(&self, brand_id: &str, patch: &BrandPatch) -> Result<Brand, StoreError> {
        let row = sqlx::query(
            "UPDATE brands SET name = COALESCE($2, name), csat_enabled = COALESCE($3, csat_enabled),
             retention_days = COALESCE($4, retention_days), agent_grace_secs = COALESCE($5, agent_grace_secs),
             default_skill_id = CASE WHEN $6 = 1 THEN $7 ELSE default_skill_id END,
             default_language = COALESCE($8, default_language),
             auto_close_secs = CASE WHEN $9 = 1 THEN $10 ELSE auto_close_secs END,
             auto_close_warn_secs = CASE WHEN $11 = 1 THEN $12 ELSE auto_close_warn_secs END,
             auto_close_survey = COALESCE($13, auto_close_survey),
             follow_up_history = COALESCE($14, follow_up_history),
             push_masked = COALESCE($15, push_masked)
             WHERE id = $1
             RETURNING id, name, csat_enabled, retention_days, agent_grace_secs, default_skill_id, default_language, auto_close_secs,
             auto_close_warn_secs, auto_close_survey, follow_up_history, push_masked, created_at",
        )
        .bind(brand_id)
        .bind(patch.name.as_deref())
        .bind(patch.csat_enabled.map(int))
        .bind(patch.retention_days)
        .bind(patch.agent_grace_secs)
        .bind(int(patch.default_skill_id.is_some()))
        .bind(patch.default_skill_id.flatten())
        .bind(patch.default_language.as_deref())
        .bind(int(patch.auto_close_secs.is_some()))
        .bind(patch.auto_close_secs.flatten())
        .bind(int(patch.auto_close_warn_secs.is_some()))
        .bind(patch.auto_close_warn_secs.flatten())
        .bind(patch.auto_close_survey.map(int))
        .bind(patch.follow_up_history.map(int))
        .bind(patch.push_masked.map(int))
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        brand_from_row(&row)
    }
    // ----- skills -------------------------------------------------------------------------

    /// Creates a skill; `Conflict` if the brand has one with this name.
    pub async fn create_skill(&self, brand_id: &str, name: &str, now: Millis) -> Result<Skill, StoreError> {
        let row = sqlx::query(
            "INSERT INTO skills (brand_id, name, created_at) VALUES ($1, $2, $3)
             RETURNING id, brand_id, name, routing, offer_timeout_secs, default_priority",
        )
        .bind(brand_id)
        .bind(name)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        skill_from_row(&row)
    }

    /// The brand's skills, by name.
    pub async fn skills(&self, brand_id: &str) -> Result<Vec<Skill>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, brand_id, name, routing, offer_timeout_secs, default_priority FROM skills WHERE brand_id = $1
             ORDER BY name",
        )
        .bind(brand_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(skill_from_row).collect()
    }

    /// Changes how a skill routes; `None` keeps a value. `NotFound` if the brand has no such
    /// skill.
    pub async fn update_skill(&self, brand_id: &str, skill_id: i64, patch: &SkillPatch) -> Result<Skill, StoreError> {
        let row = sqlx::query(
            "UPDATE skills SET routing = COALESCE($3, routing), offer_timeout_secs = COALESCE($4, offer_timeout_secs),
             default_priority = COALESCE($5, default_priority)
             WHERE brand_id = $1 AND id = $2 RETURNING id, brand_id, name, routing, offer_timeout_secs, default_priority",
        )
        .bind(brand_id)
        .bind(skill_id)
        .bind(patch.routing.map(SkillRouting::as_str))
        .bind(patch.offer_timeout_secs)
        .bind(patch.default_priority.map(|priority| i64::from(priority.to_core().rank())))
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        skill_from_row(&row)
    }

    /// Deletes a skill; agents lose it, apps routing to it fall back to no skill.
    pub async fn delete_skill(&self, brand_id: &str, skill_id: i64) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM app_entry_skills WHERE brand_id = $1 AND skill_id = $2")
            .bind(brand_id)
            .bind(skill_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE brands SET default_skill_id = NULL WHERE id = $1 AND default_skill_id = $2")
            .bind(brand_id)
            .bind(skill_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE apps SET default_skill_id = NULL WHERE brand_id = $1 AND default_skill_id = $2")
            .bind(brand_id)
            .bind(skill_id)
            .execute(&mut *tx)
            .await?;
        // The skill's own automatic messages go with it (the brand-wide ones stay).
        sqlx::query("DELETE FROM automatic_messages WHERE brand_id = $1 AND skill_id = $2")
            .bind(brand_id)
            .bind(skill_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "DELETE FROM user_skills WHERE skill_id = $2 AND skill_id IN (SELECT id FROM skills WHERE brand_id = $1)",
        )
        .bind(brand_id)
        .bind(skill_id)
        .execute(&mut *tx)
        .await?;
        let done = sqlx::query("DELETE FROM skills WHERE brand_id = $1 AND id = $2")
            .bind(brand_id)
            .bind(skill_id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await?;
        Ok(())
    }
}
