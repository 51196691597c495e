//! Apps (a brand's data sources) and the public keys their consumers' JWTs are signed with,
//! and the entry skills a device of an app may ask for.

use sqlx::{AssertSqlSafe, Row};
use switchboard_protocol::Millis;

use super::*;
use crate::{Store, StoreError};

impl Store {
    // ----- apps and keys ------------------------------------------------------------------

    /// Creates an app.
    pub async fn create_app(&self, new: &NewApp, now: Millis) -> Result<App, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO apps ({APP_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING {APP_COLUMNS}"
        )))
        .bind(&new.id)
        .bind(&new.brand_id)
        .bind(&new.name)
        .bind(&new.channel)
        .bind(int(new.allow_jwt))
        .bind(int(new.allow_anonymous))
        .bind(new.jwt_issuer.as_deref())
        .bind(new.jwt_audience.as_deref())
        .bind(new.default_skill_id)
        .bind(now)
        .bind(i64::from(new.default_priority.to_core().rank()))
        .fetch_one(&self.pool)
        .await?;
        app_from_row(&row)
    }

    /// An app of the brand.
    pub async fn app(&self, brand_id: &str, app_id: &str) -> Result<Option<App>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!("SELECT {APP_COLUMNS} FROM apps WHERE brand_id = $1 AND id = $2")))
            .bind(brand_id)
            .bind(app_id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(mut app) = row.map(|row| app_from_row(&row)).transpose()? else { return Ok(None) };
        app.entry_skill_ids = self.entry_skills(brand_id, Some(app_id)).await?.into_iter().map(|(_, s)| s).collect();
        Ok(Some(app))
    }

    /// `(app id, skill id)` of the brand's entry skills, of one app or all.
    async fn entry_skills(&self, brand_id: &str, app_id: Option<&str>) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT app_id, skill_id FROM app_entry_skills WHERE brand_id = $1 AND ($2 IS NULL OR app_id = $2)
             ORDER BY app_id, skill_id",
        )
        .bind(brand_id)
        .bind(app_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| Ok((row.try_get(0)?, row.try_get(1)?))).collect()
    }

    /// Replaces an app's entry skills. `NotFound` if a skill is not the brand's.
    pub async fn set_entry_skills(&self, brand_id: &str, app_id: &str, skills: &[i64]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM app_entry_skills WHERE brand_id = $1 AND app_id = $2")
            .bind(brand_id)
            .bind(app_id)
            .execute(&mut *tx)
            .await?;
        for skill_id in skills {
            let done = sqlx::query(
                "INSERT INTO app_entry_skills (brand_id, app_id, skill_id)
                 SELECT brand_id, $2, id FROM skills WHERE brand_id = $1 AND id = $3 ON CONFLICT DO NOTHING",
            )
            .bind(brand_id)
            .bind(app_id)
            .bind(skill_id)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 && !skills.is_empty() {
                let exists = sqlx::query("SELECT 1 FROM skills WHERE brand_id = $1 AND id = $2")
                    .bind(brand_id)
                    .bind(skill_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                if exists.is_none() {
                    return Err(StoreError::NotFound);
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// The brand's apps.
    pub async fn apps(&self, brand_id: &str) -> Result<Vec<App>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {APP_COLUMNS} FROM apps WHERE brand_id = $1 ORDER BY created_at, id"
        )))
        .bind(brand_id)
        .fetch_all(&self.pool)
        .await?;
        let mut apps = rows.iter().map(app_from_row).collect::<Result<Vec<_>, _>>()?;
        for (app_id, skill_id) in self.entry_skills(brand_id, None).await? {
            if let Some(app) = apps.iter_mut().find(|app| app.id == app_id) {
                app.entry_skill_ids.push(skill_id);
            }
        }
        Ok(apps)
    }

    /// Changes an app.
    pub async fn update_app(&self, brand_id: &str, app_id: &str, patch: &AppPatch) -> Result<App, StoreError> {
        let current = self.app(brand_id, app_id).await?.ok_or(StoreError::NotFound)?;
        let row = sqlx::query(AssertSqlSafe(format!(
            "UPDATE apps SET name = $3, allow_jwt = $4, allow_anonymous = $5, jwt_issuer = $6, jwt_audience = $7,
             default_skill_id = $8, default_priority = $9 WHERE brand_id = $1 AND id = $2 RETURNING {APP_COLUMNS}"
        )))
        .bind(brand_id)
        .bind(app_id)
        .bind(patch.name.clone().unwrap_or(current.name))
        .bind(int(patch.allow_jwt.unwrap_or(current.allow_jwt)))
        .bind(int(patch.allow_anonymous.unwrap_or(current.allow_anonymous)))
        .bind(patch.jwt_issuer.clone().unwrap_or(current.jwt_issuer))
        .bind(patch.jwt_audience.clone().unwrap_or(current.jwt_audience))
        .bind(patch.default_skill_id.unwrap_or(current.default_skill_id))
        .bind(i64::from(patch.default_priority.unwrap_or(current.default_priority).to_core().rank()))
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        let mut app = app_from_row(&row)?;
        app.entry_skill_ids = current.entry_skill_ids;
        Ok(app)
    }

    /// Adds a public key to an app.
    pub async fn add_app_key(
        &self,
        brand_id: &str,
        app_id: &str,
        format: &str,
        material: &str,
        now: Millis,
    ) -> Result<AppKey, StoreError> {
        self.app(brand_id, app_id).await?.ok_or(StoreError::NotFound)?;
        let id: i64 = sqlx::query(
            "INSERT INTO app_keys (brand_id, app_id, format, material, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(brand_id)
        .bind(app_id)
        .bind(format)
        .bind(material)
        .bind(now)
        .fetch_one(&self.pool)
        .await?
        .try_get(0)?;
        Ok(AppKey {
            id,
            app_id: app_id.to_owned(),
            format: format.to_owned(),
            material: material.to_owned(),
            created_at: now,
        })
    }

    /// The app's public keys.
    pub async fn app_keys(&self, brand_id: &str, app_id: &str) -> Result<Vec<AppKey>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, app_id, format, material, created_at FROM app_keys WHERE brand_id = $1 AND app_id = $2 ORDER BY id",
        )
        .bind(brand_id)
        .bind(app_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(AppKey {
                    id: row.try_get(0)?,
                    app_id: row.try_get(1)?,
                    format: row.try_get(2)?,
                    material: row.try_get(3)?,
                    created_at: row.try_get(4)?,
                })
            })
            .collect()
    }

    /// Removes a key.
    pub async fn delete_app_key(&self, brand_id: &str, app_id: &str, key_id: i64) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM app_keys WHERE brand_id = $1 AND app_id = $2 AND id = $3")
            .bind(brand_id)
            .bind(app_id)
            .bind(key_id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 { Err(StoreError::NotFound) } else { Ok(()) }
    }
}
