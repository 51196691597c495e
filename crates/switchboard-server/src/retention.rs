//! The retention purge: a background job that deletes, brand by brand, the conversations
//! closed before the brand's retention horizon (`switchboard_core::retention`), with their
//! messages, event log, pending pushes and CSAT answers.
//!
//! It works in small batches, each its own short transaction of at most
//! [`RetentionConfig::batch_messages`] messages (`Store::purge_batch`), with a pause between
//! batches, so the message writer and every other writer get the database in between: a purge
//! of millions of messages never holds a lock for longer than one batch. Each batch adds what
//! it deleted to the brand's run (`retention_runs`) in its own transaction, so a crash or a
//! restart loses no count and the next run simply continues; a finished run is recorded in the
//! brand's audit log (`retention.purge`, actor `system`) with its counts.
//!
//! Nothing depends on the purge having run: every API leaves out conversations past
//! retention as soon as the horizon passes them (`AppState::retained`, the store's searches).
//! Time is a parameter of [`purge_brand`]; the job passes the wall clock.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use switchboard_protocol::Millis;
use switchboard_store::{RetentionRun, StoreError};

use crate::AppState;
use crate::audit::AuditActor;

/// How the purge runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionConfig {
    /// Time between two purges of every brand; `None`: no periodic purge (admins can still
    /// start one over REST).
    pub interval: Option<Duration>,
    /// Most messages one batch (one transaction) deletes.
    pub batch_messages: i64,
    /// Pause between two batches, for the other writers.
    pub pause: Duration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            interval: Some(Duration::from_secs(3600)),
            batch_messages: 500,
            pause: Duration::from_millis(20),
        }
    }
}

/// The brands being purged on this node, so a periodic purge and one an admin started never
/// run over the same brand at once. A std `Mutex`: held only to insert or remove a name,
/// never across `.await`.
#[derive(Debug, Default, Clone)]
pub struct Retention {
    running: Arc<Mutex<HashSet<String>>>,
}

/// Held while a brand is being purged; dropping it (purge done, failed or cancelled) frees
/// the brand for the next purge.
#[derive(Debug)]
pub struct PurgeGuard {
    running: Arc<Mutex<HashSet<String>>>,
    brand_id: String,
}

impl Drop for PurgeGuard {
    fn drop(&mut self) {
        self.running.lock().unwrap_or_else(|poison| poison.into_inner()).remove(&self.brand_id);
    }
}

impl Retention {
    /// Whether a purge of the brand is under way on this node.
    pub fn is_running(&self, brand_id: &str) -> bool {
        self.running.lock().unwrap_or_else(|poison| poison.into_inner()).contains(brand_id)
    }

    /// Claims the brand for a purge; `None` if one is under way on this node.
    pub fn try_start(&self, brand_id: &str) -> Option<PurgeGuard> {
        let mut running = self.running.lock().unwrap_or_else(|poison| poison.into_inner());
        running
            .insert(brand_id.to_owned())
            .then(|| PurgeGuard { running: Arc::clone(&self.running), brand_id: brand_id.to_owned() })
    }
}

/// Purges everything of `brand_id` past its retention at `now`, batch by batch, and records
/// the run in the audit log. `Ok(None)`: nothing was past retention, or a purge of the brand
/// is already under way on this node.
pub async fn purge_brand(state: &AppState, brand_id: &str, now: Millis) -> Result<Option<RetentionRun>, StoreError> {
    let Some(guard) = state.retention.try_start(brand_id) else { return Ok(None) };
    purge_claimed(state, brand_id, now, guard).await
}

/// [`purge_brand`] for a brand already claimed with [`Retention::try_start`].
pub async fn purge_claimed(
    state: &AppState,
    brand_id: &str,
    now: Millis,
    _guard: PurgeGuard,
) -> Result<Option<RetentionRun>, StoreError> {
    let config = state.config.retention;
    let horizon = state.store.retention_horizon(brand_id, now).await?;
    loop {
        if *state.shutdown.borrow() {
            // The run stays under way; the next start continues it.
            return Ok(None);
        }
        let batch = state.store.purge_batch(brand_id, horizon, config.batch_messages, now).await?;
        if batch.is_empty() {
            break;
        }
        for (kind, count) in [
            ("conversations", batch.conversations),
            ("messages", batch.messages),
            ("events", batch.events),
            ("outbox", batch.outbox),
        ] {
            metrics::counter!(crate::metrics::RETENTION_PURGED, "kind" => kind).increment(count.unsigned_abs());
        }
        tokio::time::sleep(config.pause).await;
    }
    let Some(run) = state.store.finish_retention_run(brand_id, crate::now_ms()).await? else { return Ok(None) };
    tracing::info!(
        brand_id,
        conversations = run.counts.conversations,
        messages = run.counts.messages,
        horizon = run.horizon,
        "retention purge finished"
    );
    let detail = json!({
        "horizon": run.horizon,
        "started_at": run.started_at,
        "conversations": run.counts.conversations,
        "messages": run.counts.messages,
        "events": run.counts.events,
        "outbox": run.counts.outbox,
        "csat": run.counts.csat,
        "profiles": run.counts.profiles,
    });
    let target = Some(format!("retention run {}", run.id));
    crate::audit::record_as(state, brand_id, &AuditActor::system("retention"), "retention.purge", target, detail).await;
    Ok(Some(run))
}

/// Starts the periodic purge of every brand, if configured. The task ends at shutdown.
pub fn spawn(state: AppState) {
    let Some(interval) = state.config.retention.interval else { return };
    let mut shutdown = state.shutdown.clone();
    tokio::spawn(async move {
        // The first purge a minute after the start (or sooner, with a short interval), so a
        // restart continues an interrupted run soon without slowing the start itself.
        let first = tokio::time::Instant::now() + interval.min(Duration::from_secs(60));
        let mut tick = tokio::time::interval_at(first, interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
            // In a fleet one node purges (the one holding the lease); the others skip.
            if !state.engines.hold_lease("retention").await {
                continue;
            }
            let brands = match state.store.brand_ids().await {
                Ok(brands) => brands,
                Err(error) => {
                    tracing::warn!(%error, "retention purge skipped: the brands could not be read");
                    continue;
                }
            };
            for brand_id in brands {
                if let Err(error) = purge_brand(&state, &brand_id, crate::now_ms()).await {
                    tracing::warn!(%error, brand_id, "retention purge stopped; the next one continues it");
                }
            }
        }
    });
}
