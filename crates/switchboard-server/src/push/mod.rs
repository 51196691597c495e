//! Push notifications: the dispatcher that reads the outbox and sends pushes through Firebase
//! Cloud Messaging (`fcm`) and the Apple Push Notification service (`apns`); `provider` holds
//! what both share.
//!
//! The store's writer adds a `push` outbox entry in the transaction of every message that is
//! news for a consumer with a registered device, so no push is lost to a crash between the
//! commit and the send. The dispatcher (one task per node, started by [`crate::start`])
//! claims due entries for a lease (on PostgreSQL with `SKIP LOCKED`, so nodes share the work
//! without sharing an entry), waiting [`PushConfig::coalesce`] after a message so that a burst
//! is announced once; groups them by consumer; reads what the batch needs in a few statements
//! per brand (the newest messages, unread counts, devices); two batches are in flight at once
//! (one waits on the providers while the next is read). For each consumer it:
//!
//! 1. sends nothing if one of their devices is connected to this node (it got the message
//!    live) or a device already confirmed delivery of the newest message (a device connected
//!    to another node of a fleet confirms within milliseconds);
//! 2. otherwise sends one push for the newest message — the text masked for the consumer's
//!    other devices, or only "You have a new message" when the brand masks pushes — with the
//!    consumer's unread count as the badge, to each device not yet told of it;
//! 3. settles: entries done, devices marked as told (never twice for one message), devices
//!    the provider rejected unregistered, and the newest entry retried with backoff (at least
//!    the provider's `Retry-After`) if a provider asked to wait — for the whole batch in one
//!    transaction.
//!
//! A node that stops finishes (or gives back) its claims; one that dies leaves them to come
//! back when the lease ends: delivery is at least once, and a push repeated after a crash
//! replaces the first on the device (collapse id per conversation).

pub mod apns;
pub mod fcm;
pub mod provider;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use switchboard_bus::{Bus, Topic};
use switchboard_core::masking::Audience;
use switchboard_protocol::{ConversationId, Side};
use switchboard_store::{OutboxEntry, PushSettlement, PushSubject, PushTarget, Store, StoreError};
use tokio::sync::watch;

use crate::fanout::{Fanout, shown};
use crate::metrics as names;
use crate::now_ms;
use provider::{Answer, FailReason, MASKED_TEXT, Notification, Outcome};

/// How long an app's settings and a brand's push choices are used before they are read
/// again (a change made on this node applies at once).
const CACHE_TTL: Duration = Duration::from_secs(10);

/// Claimed batches being sent at once: one waits on the providers while the next is read.
const BATCHES_IN_FLIGHT: usize = 2;

/// The outbox kind the dispatcher serves.
pub const OUTBOX_KIND: &str = "push";

/// Settings of push sending (the binary builds this from its configuration).
#[derive(Debug, Clone)]
pub struct PushConfig {
    /// Run the dispatcher. Off, pending pushes wait in the outbox.
    pub enabled: bool,
    /// FCM's API (`https://fcm.googleapis.com`).
    pub fcm_url: String,
    /// The OAuth2 token endpoint FCM's access tokens come from (also the JWT's audience).
    pub fcm_token_url: String,
    /// APNs for production builds.
    pub apns_url: String,
    /// APNs for development builds.
    pub apns_sandbox_url: String,
    /// CA certificates trusted besides the platform's (a proxy in front of the providers, or
    /// tests' fake providers).
    pub extra_roots: Vec<reqwest::Certificate>,
    /// How long after a message its push waits, so that messages sent together make one
    /// push.
    pub coalesce: Duration,
    /// How long a claim holds: longer than the slowest batch can take.
    pub lease: Duration,
    /// How often the outbox is looked at when it had nothing due.
    pub poll: Duration,
    /// Most entries claimed at once (their consumers' pushes go out concurrently).
    pub batch: u32,
    /// Longest a provider request may take.
    pub request_timeout: Duration,
    /// Attempts before a push is given up.
    pub max_attempts: i64,
    /// The first retry's delay; each further one doubles, up to [`PushConfig::max_backoff`].
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    /// How long a stopping node waits for pushes in flight before giving their claims back.
    pub shutdown_grace: Duration,
}

impl Default for PushConfig {
    fn default() -> Self {
        PushConfig {
            enabled: true,
            fcm_url: "https://fcm.googleapis.com".into(),
            fcm_token_url: "https://oauth2.googleapis.com/token".into(),
            apns_url: "https://api.push.apple.com".into(),
            apns_sandbox_url: "https://api.sandbox.push.apple.com".into(),
            extra_roots: Vec::new(),
            coalesce: Duration::from_secs(1),
            lease: Duration::from_secs(120),
            poll: Duration::from_millis(250),
            batch: 256,
            request_timeout: Duration::from_secs(15),
            max_attempts: 8,
            first_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(600),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

impl PushConfig {
    /// The delay before attempt `attempts + 1` (2 s, 4 s, 8 s … up to the maximum), at least
    /// what the provider asked for.
    pub fn backoff(&self, attempts: i64, asked: Option<Duration>) -> Duration {
        let exponent = u32::try_from(attempts.clamp(0, 20)).unwrap_or(20);
        let backoff = self.first_backoff.saturating_mul(1 << exponent).min(self.max_backoff);
        asked.map_or(backoff, |asked| asked.max(backoff))
    }
}

/// Checks a provider's base URL: `https://`, or `http://` to a loopback address only (a fake
/// provider in tests or benchmarks; APNs is then spoken as cleartext HTTP/2). Returns it
/// without a trailing `/`; the error says what is wrong with it.
pub fn check_provider_url(url: &str) -> Result<String, String> {
    let parsed = reqwest::Url::parse(url).map_err(|error| format!("{url:?} is not a URL ({error})"))?;
    let host = parsed.host_str().filter(|host| !host.is_empty()).ok_or_else(|| format!("{url:?} has no host"))?;
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match parsed.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => return Err(format!("{url:?} must be https:// (http:// is allowed for loopback addresses only)")),
        other => return Err(format!("{url:?} must be https://, not {other}://")),
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(format!("{url:?} must have no query or fragment"));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// Reads CA certificates (PEM) to trust besides the platform's; at least one.
pub fn parse_extra_roots(pem: &[u8]) -> Result<Vec<reqwest::Certificate>, String> {
    let roots =
        reqwest::Certificate::from_pem_bundle(pem).map_err(|error| format!("not PEM certificates ({error})"))?;
    if roots.is_empty() {
        return Err("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into());
    }
    Ok(roots)
}

/// One app's senders, built from its stored settings.
struct AppSenders {
    fcm: Option<Result<fcm::FcmApp, String>>,
    apns: Option<Result<apns::ApnsApp, String>>,
}

/// An app by (brand, app id).
type AppKey = (String, String);

/// A brand's push choices.
struct BrandPush {
    name: String,
    masked: bool,
}

/// Push sending for one node: the HTTP clients, each app's senders (with their cached
/// tokens), and the dispatcher. Shared by the dispatcher task and the REST API (test pushes,
/// settings changes).
pub struct Push {
    config: PushConfig,
    store: Store,
    bus: Arc<Bus>,
    fanout: Fanout,
    fcm_http: reqwest::Client,
    apns_http: reqwest::Client,
    /// Each app's senders by (brand, app), with when they were read. A std `Mutex`: held
    /// only for map operations, never across an `.await`; a sender is shared by `Arc` so a
    /// push in flight keeps the one it started with when the settings change.
    apps: Mutex<HashMap<AppKey, (Instant, Arc<AppSenders>)>>,
    /// Each brand's name and masking choice, with when they were read (same kind of lock).
    brands: Mutex<HashMap<String, (Instant, Arc<BrandPush>)>>,
}

impl std::fmt::Debug for Push {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Push").field("enabled", &self.config.enabled).finish_non_exhaustive()
    }
}

/// A failure that leaves a consumer's entries claimed (they come back after the lease).
#[derive(Debug, thiserror::Error)]
enum DispatchError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Push {
    /// Builds the senders' HTTP clients.
    pub fn new(config: PushConfig, store: Store, bus: Arc<Bus>, fanout: Fanout) -> anyhow::Result<Push> {
        let fcm_http = provider::http_client(&config, false)?;
        let apns_http = provider::http_client(&config, true)?;
        Ok(Push {
            config,
            store,
            bus,
            fanout,
            fcm_http,
            apns_http,
            apps: Mutex::new(HashMap::new()),
            brands: Mutex::new(HashMap::new()),
        })
    }

    /// The settings.
    pub fn config(&self) -> &PushConfig {
        &self.config
    }

    /// The app's push settings changed on this node: the next push uses the new ones.
    pub fn settings_changed(&self, brand_id: &str, app_id: &str) {
        self.apps.lock().unwrap_or_else(|poison| poison.into_inner()).remove(&(brand_id.to_owned(), app_id.to_owned()));
    }

    /// The brand's settings changed on this node (name, push masking).
    pub fn brand_changed(&self, brand_id: &str) {
        self.brands.lock().unwrap_or_else(|poison| poison.into_inner()).remove(brand_id);
    }

    async fn app(&self, brand_id: &str, app_id: &str) -> Result<Arc<AppSenders>, StoreError> {
        let key = (brand_id.to_owned(), app_id.to_owned());
        if let Some((read_at, senders)) = self.apps.lock().unwrap_or_else(|poison| poison.into_inner()).get(&key)
            && read_at.elapsed() < CACHE_TTL
        {
            return Ok(Arc::clone(senders));
        }
        let settings = self.store.push_settings(brand_id, app_id).await?;
        let senders = Arc::new(AppSenders {
            fcm: settings.as_ref().and_then(|s| s.fcm.as_ref()).map(fcm::FcmApp::new),
            apns: settings.as_ref().and_then(|s| s.apns.as_ref()).map(apns::ApnsApp::new),
        });
        self.apps
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .insert(key, (Instant::now(), Arc::clone(&senders)));
        Ok(senders)
    }

    async fn brand(&self, brand_id: &str) -> Result<Arc<BrandPush>, StoreError> {
        if let Some((read_at, brand)) = self.brands.lock().unwrap_or_else(|poison| poison.into_inner()).get(brand_id)
            && read_at.elapsed() < CACHE_TTL
        {
            return Ok(Arc::clone(brand));
        }
        let brand = self.store.brand(brand_id).await?.ok_or(StoreError::NotFound)?;
        let brand = Arc::new(BrandPush { name: brand.name, masked: brand.push_masked });
        self.brands
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .insert(brand_id.to_owned(), (Instant::now(), Arc::clone(&brand)));
        Ok(brand)
    }

    /// Sends `notification` to one device of an app through its provider.
    async fn send(&self, senders: &AppSenders, provider: &str, token: &str, notification: &Notification) -> Answer {
        let not_configured = |what: &str| Answer::failed(FailReason::NotConfigured, None, what.to_owned());
        match provider {
            "fcm" => match &senders.fcm {
                Some(Ok(app)) => app.send(&self.fcm_http, &self.config, token, notification).await,
                Some(Err(error)) => not_configured(&format!("the app's FCM settings are unusable: {error}")),
                None => not_configured("the app has no FCM settings"),
            },
            "apns" => match &senders.apns {
                Some(Ok(app)) => app.send(&self.apns_http, &self.config, token, notification).await,
                Some(Err(error)) => not_configured(&format!("the app's APNs settings are unusable: {error}")),
                None => not_configured("the app has no APNs settings"),
            },
            other => not_configured(&format!("unknown provider {other:?}")),
        }
    }

    /// Sends a test notification to one device through the app's current settings (read
    /// afresh) and returns the provider's answer. The device token is not registered or
    /// changed, whatever the answer.
    pub async fn send_test(
        &self,
        brand_id: &str,
        app_id: &str,
        provider: &str,
        token: &str,
    ) -> Result<Answer, StoreError> {
        self.settings_changed(brand_id, app_id);
        let senders = self.app(brand_id, app_id).await?;
        let brand = self.brand(brand_id).await?;
        let notification = Notification {
            title: brand.name.clone(),
            body: "Test notification from Switchboard".into(),
            message: None,
            badge: 0,
        };
        let answer = self.send(&senders, provider, token, &notification).await;
        tracing::info!(brand_id, app_id, provider, status = ?answer.status, reason = %answer.reason, "test push");
        Ok(answer)
    }

    /// What a push announcing `subject` says.
    async fn notification(&self, brand_id: &str, subject: &PushSubject) -> Result<Notification, StoreError> {
        let brand = self.brand(brand_id).await?;
        let message = Some((subject.message.conversation_id, subject.message.seq));
        let badge = u32::try_from(subject.unread.max(0)).unwrap_or(u32::MAX);
        if brand.masked {
            return Ok(Notification { title: brand.name.clone(), body: MASKED_TEXT.into(), message, badge });
        }
        let masker = self.fanout.masker(brand_id).await?;
        let text = shown(&subject.message, &masker, Audience::OtherDevices).text;
        let title = match (&subject.message.side, &subject.message.author_name) {
            (Side::Agent, Some(name)) => name.clone(),
            _ => brand.name.clone(),
        };
        Ok(Notification { title, body: Notification::preview(&text), message, badge })
    }

    /// Starts the dispatcher; it ends when `shutdown` turns true (its handle then resolves).
    pub fn spawn(self: &Arc<Push>, shutdown: watch::Receiver<bool>) -> Option<tokio::task::JoinHandle<()>> {
        if !self.config.enabled {
            tracing::info!("push sending is off: pending pushes stay in the outbox");
            return None;
        }
        let push = Arc::clone(self);
        Some(tokio::spawn(async move { push.run(shutdown).await }))
    }

    async fn run(self: Arc<Push>, mut shutdown: watch::Receiver<bool>) {
        let lease_ms = i64::try_from(self.config.lease.as_millis()).unwrap_or(i64::MAX);
        let coalesce_ms = i64::try_from(self.config.coalesce.as_millis()).unwrap_or(0);
        // Batches being sent: the next claim is made while a batch waits on providers, at most
        // [`BATCHES_IN_FLIGHT`] at once. Each task holds a permit until its batch is settled;
        // the set is drained (every batch settled or given back) before the dispatcher ends.
        let permits = Arc::new(tokio::sync::Semaphore::new(BATCHES_IN_FLIGHT));
        let mut batches = tokio::task::JoinSet::new();
        while !*shutdown.borrow() {
            let permit = tokio::select! {
                permit = Arc::clone(&permits).acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
                _ = shutdown.wait_for(|stop| *stop) => break,
            };
            // Reap finished batches (their results are nothing: they log their own errors).
            while batches.try_join_next().is_some() {}
            let now = now_ms();
            let claimed =
                self.store.claim_outbox(OUTBOX_KIND, now, now - coalesce_ms, lease_ms, self.config.batch).await;
            let entries = match claimed {
                Ok(entries) => entries,
                Err(error) => {
                    tracing::warn!(%error, "push dispatcher: cannot read the outbox");
                    Vec::new()
                }
            };
            if entries.is_empty() {
                drop(permit);
                tokio::select! {
                    () = tokio::time::sleep(self.config.poll) => {}
                    _ = shutdown.wait_for(|stop| *stop) => break,
                }
                continue;
            }
            let push = Arc::clone(&self);
            let mut batch_shutdown = shutdown.clone();
            batches.spawn(async move {
                push.dispatch_batch(entries, &mut batch_shutdown).await;
                drop(permit);
            });
        }
        while batches.join_next().await.is_some() {}
        tracing::info!("push dispatcher stopped");
    }

    /// Sends the pushes of one claimed batch, one consumer at a time each, all consumers at
    /// once. If the node stops meanwhile, pushes in flight get [`PushConfig::shutdown_grace`]
    /// to finish; the claims of those that did not are given back.
    async fn dispatch_batch(&self, entries: Vec<OutboxEntry>, shutdown: &mut watch::Receiver<bool>) {
        let mut groups: BTreeMap<(String, i64), Vec<OutboxEntry>> = BTreeMap::new();
        for entry in entries {
            groups.entry((entry.brand_id.clone(), entry.consumer_id)).or_default().push(entry);
        }
        // The messages that came right after the claimed ones, to the same consumers, go in
        // the same push.
        let mut by_brand: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
        for (brand_id, consumer_id) in groups.keys() {
            by_brand.entry(brand_id.as_str()).or_default().push(*consumer_id);
        }
        let lease_ms = i64::try_from(self.config.lease.as_millis()).unwrap_or(i64::MAX);
        let mut later = Vec::new();
        for (brand_id, consumers) in by_brand {
            match self.store.claim_outbox_of_consumers(OUTBOX_KIND, brand_id, &consumers, now_ms(), lease_ms).await {
                Ok(entries) => later.extend(entries),
                Err(error) => tracing::warn!(%error, brand_id, "push dispatcher: cannot claim the rest of a burst"),
            }
        }
        for entry in later {
            groups.entry((entry.brand_id.clone(), entry.consumer_id)).or_default().push(entry);
        }
        // What each consumer's newest message says, and their devices: a few statements per
        // brand for the whole batch. A brand whose reads fail keeps its entries claimed (they
        // come back after the lease).
        let mut prefetched: HashMap<(String, i64), (Option<PushSubject>, Vec<PushTarget>)> = HashMap::new();
        let brands: Vec<String> = groups
            .keys()
            .map(|(brand_id, _)| brand_id.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        for brand_id in brands {
            let of_brand: Vec<(&(String, i64), &Vec<OutboxEntry>)> =
                groups.iter().filter(|((brand, _), _)| *brand == brand_id).collect();
            let wanted: Vec<(i64, ConversationId, i64)> = of_brand
                .iter()
                .filter_map(|((_, consumer), entries)| newest(entries).map(|e| (*consumer, e.conversation_id, e.seq)))
                .collect();
            let consumers: Vec<i64> = of_brand.iter().map(|((_, consumer), _)| *consumer).collect();
            let read = async {
                let subjects = self.store.push_subjects(&brand_id, &wanted).await?;
                let targets = self.store.push_targets_of(&brand_id, &consumers).await?;
                Ok::<_, StoreError>((subjects, targets))
            };
            match read.await {
                Ok((mut subjects, mut targets)) => {
                    for consumer in consumers {
                        let found = (subjects.remove(&consumer), targets.remove(&consumer).unwrap_or_default());
                        prefetched.insert((brand_id.clone(), consumer), found);
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, brand_id, "push dispatcher: cannot read a batch: retried after the lease");
                    groups.retain(|(brand, _), _| *brand != brand_id);
                }
            }
        }
        let mut unsettled: HashMap<(String, i64), Vec<i64>> =
            groups.iter().map(|(key, entries)| (key.clone(), entries.iter().map(|entry| entry.id).collect())).collect();
        let mut work: FuturesUnordered<_> = groups
            .into_iter()
            .map(|(key, entries)| {
                let (subject, targets) = prefetched.remove(&key).unwrap_or_default();
                async move {
                    let settlement = self.dispatch_consumer(&key.0, key.1, entries, subject, targets).await;
                    (key, settlement)
                }
            })
            .collect();
        // What became of each consumer's pushes, written together at the end of the batch
        // (one transaction, one commit).
        let mut settled: Vec<(String, PushSettlement)> = Vec::new();
        let mut deadline: Option<tokio::time::Instant> = None;
        loop {
            let next = match deadline {
                None => tokio::select! {
                    next = work.next() => next,
                    _ = shutdown.wait_for(|stop| *stop) => {
                        deadline = Some(tokio::time::Instant::now() + self.config.shutdown_grace);
                        continue;
                    }
                },
                Some(deadline) => match tokio::time::timeout_at(deadline, work.next()).await {
                    Ok(next) => next,
                    Err(_) => break,
                },
            };
            match next {
                Some((key, Ok(settlement))) => {
                    unsettled.remove(&key);
                    settled.push((key.0, settlement));
                }
                Some((key, Err(error))) => {
                    // Left claimed: the entries come back after the lease.
                    unsettled.remove(&key);
                    tracing::warn!(%error, brand_id = %key.0, consumer_id = key.1, "push not settled: retried after the lease");
                }
                None => break,
            }
        }
        // Dropping the futures cancels their requests; their entries go back to the outbox.
        drop(work);
        if !settled.is_empty()
            && let Err(error) = self.store.settle_pushes(&settled).await
        {
            tracing::error!(%error, consumers = settled.len(), "pushes sent but not settled: they are sent again after the lease");
        }
        for ((brand_id, _), ids) in unsettled {
            if let Err(error) = self.store.release_outbox(&brand_id, &ids).await {
                tracing::warn!(%error, brand_id, "push claims not given back: they return after the lease");
            }
        }
    }

    /// One consumer's pending pushes: at most one push per device, for the newest message.
    /// Returns what became of them, for the batch to record.
    async fn dispatch_consumer(
        &self,
        brand_id: &str,
        consumer_id: i64,
        entries: Vec<OutboxEntry>,
        subject: Option<PushSubject>,
        targets: Vec<PushTarget>,
    ) -> Result<PushSettlement, DispatchError> {
        let Some(newest) = newest(&entries).cloned() else {
            return Ok(PushSettlement::default());
        };
        let all: Vec<i64> = entries.iter().map(|entry| entry.id).collect();
        let done = |reason: &'static str| {
            metrics::counter!(names::PUSH_SKIPPED, "reason" => reason).increment(all.len() as u64);
            PushSettlement { completed: all.clone(), ..PushSettlement::default() }
        };

        // 1. Is the consumer here, or did a device already get the message?
        if self.bus.has_subscribers(&Topic::Consumer { brand: brand_id.into(), consumer: consumer_id }) {
            return Ok(done("connected"));
        }
        let Some(subject) = subject else {
            return Ok(done("gone"));
        };
        if subject.consumer_delivered_seq >= newest.seq {
            return Ok(done("delivered"));
        }
        let targets: Vec<PushTarget> =
            targets.into_iter().filter(|target| target.pushed_outbox_id < newest.id).collect();
        if targets.is_empty() {
            return Ok(done("no_device"));
        }

        // 2. One push per device, all at once.
        let notification = self.notification(brand_id, &subject).await?;
        let mut senders: HashMap<&str, Arc<AppSenders>> = HashMap::new();
        for target in &targets {
            if !senders.contains_key(target.app_id.as_str()) {
                senders.insert(&target.app_id, self.app(brand_id, &target.app_id).await?);
            }
        }
        let answers = futures_util::future::join_all(targets.iter().map(|target| {
            let senders = &senders[target.app_id.as_str()];
            self.send(senders, &target.provider, &target.token, &notification)
        }))
        .await;

        // 3. Settle.
        let mut settlement = PushSettlement::default();
        let mut wait: Option<Option<Duration>> = None;
        let mut wait_reason = String::new();
        let delay_seconds = Duration::from_millis(u64::try_from(now_ms() - subject.message.created_at).unwrap_or(0));
        for (target, answer) in targets.iter().zip(&answers) {
            let provider = provider_label(&target.provider);
            match answer.outcome {
                Outcome::Sent => {
                    metrics::counter!(names::PUSH_SENT, "provider" => provider).increment(1);
                    metrics::histogram!(names::PUSH_DELAY_SECONDS).record(delay_seconds.as_secs_f64());
                    settlement.pushed.push((target.provider.clone(), target.token.clone(), newest.id));
                }
                Outcome::Unregistered => {
                    metrics::counter!(names::PUSH_TOKENS_REMOVED, "provider" => provider).increment(1);
                    tracing::info!(brand_id, consumer_id, provider, reason = %answer.reason, "device token unregistered");
                    settlement.removed.push((target.provider.clone(), target.token.clone()));
                }
                Outcome::Failed(reason) => {
                    metrics::counter!(names::PUSH_FAILED, "provider" => provider, "reason" => reason.label())
                        .increment(1);
                    tracing::warn!(brand_id, consumer_id, app_id = %target.app_id, provider, status = ?answer.status,
                        reason = %answer.reason, "push refused");
                    // Given up for this device: a retry must not send it again.
                    settlement.pushed.push((target.provider.clone(), target.token.clone(), newest.id));
                }
                Outcome::Retry { after } => {
                    wait = Some(match wait {
                        Some(Some(longest)) => Some(after.map_or(longest, |after| after.max(longest))),
                        _ => after,
                    });
                    wait_reason = format!("{provider}: {}", answer.reason);
                }
            }
        }
        let covered = entries.len().saturating_sub(1) as u64;
        match wait {
            Some(asked) if newest.attempts + 1 < self.config.max_attempts => {
                let delay = self.config.backoff(newest.attempts, asked);
                let due = now_ms() + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 2);
                for target in targets.iter().zip(&answers).filter(|(_, a)| matches!(a.outcome, Outcome::Retry { .. })) {
                    metrics::counter!(names::PUSH_RETRIED, "provider" => provider_label(&target.0.provider))
                        .increment(1);
                }
                tracing::info!(brand_id, consumer_id, attempts = newest.attempts + 1, delay_ms = delay.as_millis() as u64,
                    reason = %wait_reason, "push retried later");
                settlement.completed = all.into_iter().filter(|id| *id != newest.id).collect();
                settlement.retry = Some((newest.id, due, wait_reason));
            }
            Some(_) => {
                for target in targets.iter().zip(&answers).filter(|(_, a)| matches!(a.outcome, Outcome::Retry { .. })) {
                    metrics::counter!(names::PUSH_FAILED, "provider" => provider_label(&target.0.provider),
                        "reason" => FailReason::GaveUp.label())
                    .increment(1);
                }
                tracing::warn!(brand_id, consumer_id, attempts = newest.attempts + 1, reason = %wait_reason,
                    "push given up after its last attempt");
                settlement.completed = all;
            }
            None => settlement.completed = all,
        }
        metrics::counter!(names::PUSH_COALESCED).increment(covered);
        Ok(settlement)
    }
}

/// The entry for the newest message of a consumer's pending ones.
fn newest(entries: &[OutboxEntry]) -> Option<&OutboxEntry> {
    entries.iter().max_by_key(|entry| (entry.created_at, entry.id))
}

/// A provider as a metric label (a fixed set).
fn provider_label(provider: &str) -> &'static str {
    match provider {
        "fcm" => "fcm",
        "apns" => "apns",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_urls_are_https_or_loopback_http() {
        assert_eq!(check_provider_url("https://fcm.googleapis.com/").unwrap(), "https://fcm.googleapis.com");
        assert!(check_provider_url("http://127.0.0.1:9000").is_ok());
        assert!(check_provider_url("http://[::1]:9000").is_ok());
        assert!(check_provider_url("http://localhost:9000").is_ok());
        let refused = |url: &str, says: &str| {
            let error = check_provider_url(url).unwrap_err();
            assert!(error.contains(says), "{url}: {error}");
        };
        refused("http://api.push.apple.com", "loopback addresses only");
        refused("ftp://x", "must be https://");
        refused("fcm.googleapis.com", "not a URL");
        refused("https://x/?a=b", "no query");
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum_and_honours_retry_after() {
        let config = PushConfig::default();
        assert_eq!(config.backoff(0, None), Duration::from_secs(2));
        assert_eq!(config.backoff(3, None), Duration::from_secs(16));
        assert_eq!(config.backoff(30, None), config.max_backoff);
        assert_eq!(config.backoff(0, Some(Duration::from_secs(30))), Duration::from_secs(30));
        assert_eq!(config.backoff(3, Some(Duration::from_secs(1))), Duration::from_secs(16));
    }
}
