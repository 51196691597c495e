//! Reads behind exports: what a brand needs beside the conversation rows of `floor.rs` to
//! make a file it can use on its own, such as its own ids for the consumers (the JWT `sub`,
//! or `anon:<id>`) rather than Switchboard's internal row ids. Same SQL subset as
//! `queries/`.

use std::collections::HashMap;

use sqlx::Row;
use switchboard_protocol::Millis;

use crate::{Store, StoreError};

impl Store {
    /// The brand's own id (`external_id`) of every consumer with a conversation opened or
    /// closed in `[from, to)`, by internal consumer id: the same range as
    /// `conversations_touching`, in one query.
    pub async fn consumer_external_ids_touching(
        &self,
        brand_id: &str,
        from: Millis,
        to: Millis,
    ) -> Result<HashMap<i64, String>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, external_id FROM consumers WHERE brand_id = $1 AND id IN (
               SELECT consumer_id FROM conversations WHERE brand_id = $1
                 AND ((opened_at >= $2 AND opened_at < $3) OR (closed_at >= $2 AND closed_at < $3)))",
        )
        .bind(brand_id)
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| Ok((row.try_get("id")?, row.try_get("external_id")?))).collect()
    }
}
