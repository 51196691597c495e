//! This node's membership of a fleet (issue 14): several identical `serve` nodes on one
//! PostgreSQL database, with NATS between them. The bus's payloads cross nodes through
//! `switchboard_bus::nats`; each brand's engine runs on one node (`engine::remote`); and what
//! a node caches from the store is dropped on every node when an admin changes it, through
//! [`changed`] (subject `sbi`).

use std::sync::Weak;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use switchboard_bus::nats::Fleet;

use crate::{AppState, Shared};

/// The subject every node hears cache invalidations on.
const INVALIDATIONS: &str = "sbi";

/// Something a node caches changed in the store.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Changed {
    /// An app's JWT verification keys.
    AppKeys { app_id: String },
    /// An app's identity-provider settings.
    AppIdentity { app_id: String },
    /// A brand's masking rules.
    Masking { brand_id: String },
    /// An app's push settings.
    PushSettings { brand_id: String, app_id: String },
    /// A brand's settings (name, push masking).
    Brand { brand_id: String },
}

/// `what` changed: this node drops what it cached at once, and so does every other node of
/// the fleet as soon as it hears of it.
pub fn changed(state: &AppState, what: Changed) {
    forget(state, &what);
    if let Some(fleet) = &state.fleet {
        match serde_json::to_vec(&what) {
            Ok(bytes) => {
                let client = fleet.client().clone();
                tokio::spawn(async move {
                    if let Err(error) = client.publish(INVALIDATIONS, bytes.into()).await {
                        tracing::warn!(%error, "could not tell the other nodes of a change");
                    }
                });
            }
            Err(error) => tracing::error!(%error, "a change does not serialize"),
        }
    }
}

fn forget(state: &Shared, what: &Changed) {
    match what {
        Changed::AppKeys { app_id } => {
            state.app_keys.lock().unwrap_or_else(|p| p.into_inner()).remove(app_id);
        }
        Changed::AppIdentity { app_id } => {
            state.app_identity.lock().unwrap_or_else(|p| p.into_inner()).remove(app_id);
        }
        Changed::Masking { brand_id } => state.fanout.masking_changed(brand_id),
        Changed::PushSettings { brand_id, app_id } => state.push.settings_changed(brand_id, app_id),
        Changed::Brand { brand_id } => state.push.brand_changed(brand_id),
    }
}

/// Hears the other nodes' changes until the node stops.
pub(crate) async fn listen(fleet: &Fleet, state: Weak<Shared>) {
    let mut changes = match fleet.client().subscribe(INVALIDATIONS).await {
        Ok(changes) => changes,
        Err(error) => {
            tracing::error!(%error, "cannot hear the other nodes' changes: cached keys and settings expire on their own only");
            return;
        }
    };
    tokio::spawn(async move {
        while let Some(message) = changes.next().await {
            let Some(state) = state.upgrade() else { break };
            match serde_json::from_slice::<Changed>(&message.payload) {
                Ok(what) => forget(&state, &what),
                Err(error) => tracing::warn!(%error, "a change from another node does not decode"),
            }
        }
    });
}
