//! The audit log over REST (admins): who did what to the brand's settings and data, and
//! when, newest first in keyset pages, with filters. Entries are written by `crate::audit`.

use switchboard_protocol::Millis;
use switchboard_store::{ActorKind, AuditFilter};

use super::*;

/// Filters of the audit log.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// One action (`user.create`), or every action on a resource (`user.`).
    pub action: Option<String>,
    /// `user`, `api_token`, `operator`, `system` or `cli`.
    pub actor_kind: Option<String>,
    /// The user's or API token's id.
    pub actor_id: Option<i64>,
    /// At or after (ms since the epoch).
    pub from: Option<Millis>,
    /// Before (ms since the epoch).
    pub to: Option<Millis>,
    /// `next` of the previous page.
    pub cursor: Option<String>,
    /// 1–200, default 50.
    pub limit: Option<u32>,
}

/// One entry of the audit log.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    pub at: Millis,
    /// `user` (signed in), `api_token`, `operator`, `system` (the retention purge) or `cli`
    /// (a command of the binary).
    pub actor_kind: String,
    /// The user's or API token's id.
    pub actor_id: Option<i64>,
    /// The user's or token's name, `operator`, `retention`, `cli`.
    pub actor_name: String,
    /// What was done, as `resource.verb`: `user.create`, `user.update`, `token.create`,
    /// `token.delete`, `skill.create`, `skill.update`, `skill.delete`, `app.create`,
    /// `app.update`, `app.key_add`, `app.key_delete`, `app.identity_update`, `brand.create`, `brand.update`,
    /// `masking.update`, `automatic_message.put`, `automatic_message.delete`, `hours.update`,
    /// `export.conversations`, `export.conversation`, `consumer.erase`, `retention.purge`.
    pub action: String,
    /// What it was done to, e.g. `user 12`.
    pub target: Option<String>,
    /// The particulars (what changed, counts, an export's filters); never a secret. `null`
    /// when there are none (a deletion).
    #[schema(value_type = Option<Object>)]
    pub detail: Option<Value>,
}

impl From<switchboard_store::AuditEntry> for AuditEntry {
    fn from(entry: switchboard_store::AuditEntry) -> AuditEntry {
        AuditEntry {
            id: entry.id,
            at: entry.at,
            actor_kind: entry.actor_kind.as_str().to_owned(),
            actor_id: entry.actor_id,
            actor_name: entry.actor_name,
            action: entry.action,
            target: entry.target,
            detail: entry.detail.and_then(|text| serde_json::from_str(&text).ok()),
        }
    }
}

/// A page of the audit log, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditLog {
    pub entries: Vec<AuditEntry>,
    /// Cursor of the next page; absent on the last.
    pub next: Option<String>,
}

/// The brand's audit log (admins): every change to staff, tokens, skills, apps and keys,
/// brand settings, masking rules, automatic messages and business hours, every export,
/// erasure and retention purge, with who did it (the user, or the API token), when and to
/// what. Newest first; follow `next` for older entries.
#[utoipa::path(get, path = "/api/v1/audit", tag = "privacy", params(AuditQuery),
    responses((status = 200, body = AuditLog), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(super) async fn audit_log(
    State(state): State<AppState>,
    AdminAuth(caller): AdminAuth,
    Q(query): Q<AuditQuery>,
) -> ApiResult<Json<AuditLog>> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::bad_request(format!("limit must be 1 to 200 (got {limit})")));
    }
    let actor_kind = match query.actor_kind.as_deref() {
        Some(text) => Some(ActorKind::parse(text).ok_or_else(|| {
            ApiError::bad_request(format!(
                "actor_kind must be one of user, api_token, operator, system, cli (got {text:?})"
            ))
        })?),
        None => None,
    };
    if let Some(action) = &query.action {
        check_len("action", action, 1, 64)?;
    }
    let before = match query.cursor.as_deref() {
        Some(text) => Some(text.parse::<i64>().map_err(|_| ApiError::bad_request("cursor is not valid"))?),
        None => None,
    };
    let filter =
        AuditFilter { action: query.action, actor_kind, actor_id: query.actor_id, from: query.from, to: query.to };
    let page = state.store.audit_log(&caller.brand_id, &filter, before, limit).await?;
    Ok(Json(AuditLog { entries: types::all(page.entries), next: page.next.map(|id| id.to_string()) }))
}
