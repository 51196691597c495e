//! Writing the audit log: every admin mutation (staff, skills, apps and keys, tokens, brand
//! settings, masking, automatic messages, business hours) and every data action (exports,
//! erasure, retention purges) adds an entry naming who did it — the signed-in user, or the API
//! token by its id and name, the operator, the system — what, when and to what.
//!
//! An entry is written after the change it records succeeded. A failure to write it does not
//! undo the change (it is done); it is logged as an error and counted
//! (`metrics::AUDIT_WRITE_FAILURES`), so an operator alerting on that metric knows the log has
//! a gap.

use serde_json::Value;
use switchboard_store::{ActorKind, NewAuditEntry};

use crate::AppState;
use crate::auth::Caller;

/// Who acted, as the audit log records them.
#[derive(Debug, Clone)]
pub struct AuditActor {
    pub kind: ActorKind,
    pub id: Option<i64>,
    pub name: String,
}

impl AuditActor {
    /// A REST caller: their API token if they used one, else the signed-in user.
    pub fn of(caller: &Caller) -> AuditActor {
        match caller.api_token_id {
            Some(token_id) => AuditActor { kind: ActorKind::ApiToken, id: Some(token_id), name: caller.name.clone() },
            None => AuditActor { kind: ActorKind::User, id: Some(caller.staff_id), name: caller.name.clone() },
        }
    }

    /// The deployment's operator (the operator token).
    pub fn operator() -> AuditActor {
        AuditActor { kind: ActorKind::Operator, id: None, name: "operator".to_owned() }
    }

    /// The server's own jobs.
    pub fn system(name: &str) -> AuditActor {
        AuditActor { kind: ActorKind::System, id: None, name: name.to_owned() }
    }
}

/// Records that `caller` did `action` (to `target`), with `detail` (JSON; no secrets, no
/// message text). Never fails the request: see the module's note.
pub async fn record(state: &AppState, caller: &Caller, action: &str, target: Option<String>, detail: Value) {
    record_as(state, &caller.brand_id, &AuditActor::of(caller), action, target, detail).await;
}

/// Records an action of any actor in `brand_id`'s log.
pub async fn record_as(
    state: &AppState,
    brand_id: &str,
    actor: &AuditActor,
    action: &str,
    target: Option<String>,
    detail: Value,
) {
    let entry = NewAuditEntry {
        brand_id: brand_id.to_owned(),
        at: crate::now_ms(),
        actor_kind: actor.kind,
        actor_id: actor.id,
        actor_name: actor.name.clone(),
        action: action.to_owned(),
        target,
        detail: (!detail.is_null()).then(|| detail.to_string()),
    };
    if let Err(error) = state.store.record_audit(&entry).await {
        metrics::counter!(crate::metrics::AUDIT_WRITE_FAILURES).increment(1);
        tracing::error!(%error, brand_id, action, "the audit log entry could not be written");
    }
}
