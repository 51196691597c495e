//! Masking rules: a brand's list (JSON of `switchboard_core::masking::RuleSpec`s), checked
//! by the caller before it is saved and parsed again when read.

use sqlx::Row;
use switchboard_core::masking::RuleSpec;

use crate::{Store, StoreError};

impl Store {
    /// The brand's masking rules, in their order.
    pub async fn masking_rules(&self, brand_id: &str) -> Result<Vec<RuleSpec>, StoreError> {
        let row = sqlx::query("SELECT masking_rules FROM brands WHERE id = $1")
            .bind(brand_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        let json: String = row.try_get(0)?;
        serde_json::from_str(&json).map_err(|error| StoreError::Corrupt(format!("masking rules: {error}")))
    }

    /// Replaces the brand's masking rules.
    pub async fn set_masking_rules(&self, brand_id: &str, rules: &[RuleSpec]) -> Result<(), StoreError> {
        let json = serde_json::to_string(rules).map_err(|error| StoreError::Corrupt(error.to_string()))?;
        let done = sqlx::query("UPDATE brands SET masking_rules = $2 WHERE id = $1")
            .bind(brand_id)
            .bind(json)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}
