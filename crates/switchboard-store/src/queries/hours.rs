//! Business hours: the brand's and each skill's own (JSON of
//! `switchboard_core::hours::BusinessHours`), and what happens to conversations opened while
//! closed. They are validated before they are saved; what is read back is parsed again.

use sqlx::Row;
use switchboard_core::hours::BusinessHours;

use crate::{Store, StoreError};

/// A brand's business hours as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredHours {
    /// The brand's; `None`: always open.
    pub brand: Option<BusinessHours>,
    /// `queue` or `close`.
    pub off_hours: String,
    /// Skills with hours of their own, by id.
    pub skills: Vec<(i64, BusinessHours)>,
}

fn parse(json: Option<String>) -> Result<Option<BusinessHours>, StoreError> {
    json.map(|json| serde_json::from_str(&json).map_err(|e| StoreError::Corrupt(format!("business hours: {e}"))))
        .transpose()
}

fn text(hours: Option<&BusinessHours>) -> Result<Option<String>, StoreError> {
    hours.map(|hours| serde_json::to_string(hours).map_err(|e| StoreError::Corrupt(e.to_string()))).transpose()
}

impl Store {
    /// The brand's business hours and its skills'.
    pub async fn business_hours(&self, brand_id: &str) -> Result<StoredHours, StoreError> {
        let brand = sqlx::query("SELECT business_hours, off_hours FROM brands WHERE id = $1")
            .bind(brand_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        let rows = sqlx::query(
            "SELECT id, business_hours FROM skills WHERE brand_id = $1 AND business_hours IS NOT NULL ORDER BY id",
        )
        .bind(brand_id)
        .fetch_all(&self.pool)
        .await?;
        let mut skills = Vec::with_capacity(rows.len());
        for row in &rows {
            if let Some(hours) = parse(row.try_get(1)?)? {
                skills.push((row.try_get(0)?, hours));
            }
        }
        Ok(StoredHours { brand: parse(brand.try_get(0)?)?, off_hours: brand.try_get(1)?, skills })
    }

    /// Sets the brand's hours (`None`: always open) and its off-hours choice.
    pub async fn set_brand_hours(
        &self,
        brand_id: &str,
        hours: Option<&BusinessHours>,
        off_hours: &str,
    ) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE brands SET business_hours = $2, off_hours = $3 WHERE id = $1")
            .bind(brand_id)
            .bind(text(hours)?)
            .bind(off_hours)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Sets a skill's own hours (`None`: it follows the brand's). `NotFound` if the brand has
    /// no such skill.
    pub async fn set_skill_hours(
        &self,
        brand_id: &str,
        skill_id: i64,
        hours: Option<&BusinessHours>,
    ) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE skills SET business_hours = $3 WHERE brand_id = $1 AND id = $2")
            .bind(brand_id)
            .bind(skill_id)
            .bind(text(hours)?)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}
