//! The audit log: who (a user, an API token, the operator, the system's retention job, or
//! a command of the binary) did what to a brand's settings or data, when, and to what.
//! Entries are only ever added (by the server, for every admin mutation and data action)
//! and read newest first in keyset pages by id.

use sqlx::Row;
use switchboard_protocol::Millis;

use super::search::{Bind, Sql};
use crate::{Store, StoreError};

/// Who did it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    /// A staff member signed in (a session).
    User,
    /// An API token.
    ApiToken,
    /// The deployment's operator (the operator token).
    Operator,
    /// The server itself (the retention purge).
    System,
    /// A command of the `switchboard` binary, run by whoever runs the host.
    Cli,
}

impl ActorKind {
    /// Stable form used in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::User => "user",
            ActorKind::ApiToken => "api_token",
            ActorKind::Operator => "operator",
            ActorKind::System => "system",
            ActorKind::Cli => "cli",
        }
    }

    /// Parses [`ActorKind::as_str`].
    pub fn parse(text: &str) -> Option<ActorKind> {
        [ActorKind::User, ActorKind::ApiToken, ActorKind::Operator, ActorKind::System, ActorKind::Cli]
            .into_iter()
            .find(|kind| kind.as_str() == text)
    }
}

/// An entry to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditEntry {
    pub brand_id: String,
    pub at: Millis,
    pub actor_kind: ActorKind,
    /// The user's id (users), the token's id (API tokens).
    pub actor_id: Option<i64>,
    /// The user's or token's name, `operator`, `retention`, `cli`.
    pub actor_name: String,
    /// What was done, `resource.verb`: `user.create`, `masking.update`, `export.conversations`,
    /// `consumer.erase`, `retention.purge`, …
    pub action: String,
    /// What it was done to, e.g. `user 12`.
    pub target: Option<String>,
    /// JSON with the particulars (never a secret or a message text).
    pub detail: Option<String>,
}

/// A stored entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditEntry {
    pub id: i64,
    pub brand_id: String,
    pub at: Millis,
    pub actor_kind: ActorKind,
    pub actor_id: Option<i64>,
    pub actor_name: String,
    pub action: String,
    pub target: Option<String>,
    pub detail: Option<String>,
}

/// Which entries to list; every filter set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// An action (`user.create`), or every action of a resource when it ends with a dot
    /// (`user.`).
    pub action: Option<String>,
    pub actor_kind: Option<ActorKind>,
    pub actor_id: Option<i64>,
    /// At or after.
    pub from: Option<Millis>,
    /// Before.
    pub to: Option<Millis>,
}

/// A page of the audit log, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    /// Where the next page starts (`before` this id); `None` on the last.
    pub next: Option<i64>,
}

const AUDIT_COLUMNS: &str = "id, brand_id, at, actor_kind, actor_id, actor_name, action, target, detail";

impl Store {
    /// Adds an entry to a brand's audit log; returns its id.
    pub async fn record_audit(&self, entry: &NewAuditEntry) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "INSERT INTO audit_log (brand_id, at, actor_kind, actor_id, actor_name, action, target, detail)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(&entry.brand_id)
        .bind(entry.at)
        .bind(entry.actor_kind.as_str())
        .bind(entry.actor_id)
        .bind(&entry.actor_name)
        .bind(&entry.action)
        .bind(entry.target.as_deref())
        .bind(entry.detail.as_deref())
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get(0)?)
    }

    /// A page of the brand's audit log matching `filter`, newest first, with ids below
    /// `before`; at most `limit` (1 to 500).
    pub async fn audit_log(
        &self,
        brand_id: &str,
        filter: &AuditFilter,
        before: Option<i64>,
        limit: u32,
    ) -> Result<AuditPage, StoreError> {
        let limit = i64::from(limit.clamp(1, 500));
        let mut sql = Sql::new(&format!("SELECT {AUDIT_COLUMNS} FROM audit_log WHERE "));
        sql.push("brand_id = ?", [Bind::Text(brand_id.to_owned())]);
        match filter.action.as_deref() {
            // A resource's actions: the range [`user.`, `user/`) (`/` follows `.`), which an
            // index walks, unlike `LIKE` with its wildcards to escape.
            Some(prefix) if prefix.ends_with('.') => {
                let upper = format!("{}/", &prefix[..prefix.len() - 1]);
                sql.push(" AND action >= ? AND action < ?", [Bind::Text(prefix.to_owned()), Bind::Text(upper)]);
            }
            Some(action) => {
                sql.push(" AND action = ?", [Bind::Text(action.to_owned())]);
            }
            None => {}
        }
        if let Some(kind) = filter.actor_kind {
            sql.push(" AND actor_kind = ?", [Bind::Text(kind.as_str().to_owned())]);
        }
        if let Some(actor_id) = filter.actor_id {
            sql.push(" AND actor_id = ?", [Bind::Int(actor_id)]);
        }
        if let Some(from) = filter.from {
            sql.push(" AND at >= ?", [Bind::Int(from)]);
        }
        if let Some(to) = filter.to {
            sql.push(" AND at < ?", [Bind::Int(to)]);
        }
        if let Some(before) = before {
            sql.push(" AND id < ?", [Bind::Int(before)]);
        }
        sql.push(" ORDER BY id DESC LIMIT ?", [Bind::Int(limit + 1)]);
        let rows = sql.query().fetch_all(&self.pool).await?;
        let mut entries = rows
            .iter()
            .map(|row| {
                let kind: String = row.try_get("actor_kind")?;
                Ok(AuditEntry {
                    id: row.try_get("id")?,
                    brand_id: row.try_get("brand_id")?,
                    at: row.try_get("at")?,
                    actor_kind: ActorKind::parse(&kind)
                        .ok_or_else(|| StoreError::Corrupt(format!("audit actor kind {kind:?}")))?,
                    actor_id: row.try_get("actor_id")?,
                    actor_name: row.try_get("actor_name")?,
                    action: row.try_get("action")?,
                    target: row.try_get("target")?,
                    detail: row.try_get("detail")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let next = if entries.len() as i64 > limit {
            entries.truncate(limit as usize);
            entries.last().map(|last| last.id)
        } else {
            None
        };
        Ok(AuditPage { entries, next })
    }
}
