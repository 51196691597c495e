//! The fleet's bus: NATS core subjects between the nodes, behind the in-process [`Bus`].
//!
//! A node that joins ([`Bus::join_fleet`]) forwards every payload published on it to the
//! topic's subject, and subscribes to the subjects of the brands it has subscribers of; what
//! arrives from the other nodes is handed to its own subscribers. Subjects:
//!
//! | topic | subject |
//! | --- | --- |
//! | a consumer's devices | `sb.<brand>.c.<consumer id>` |
//! | an agent's sockets | `sb.<brand>.a.<agent id>` |
//! | a brand's dashboards | `sb.<brand>.b` |
//!
//! A node holds one NATS subscription per brand with subscribers on it (`sb.<brand>.>`), not
//! one per topic: a node with 100,000 consumer sockets keeps a handful of subscriptions, and
//! drops what arrives for topics it has no subscriber of (one map lookup). A brand spread over
//! every node makes every node read all its events: the cost grows with the fleet, which is
//! meant to be a few nodes. The client connects with `no_echo`, so a node never receives its
//! own payloads back (its subscribers had them locally).
//!
//! NATS core is at most once, like the in-process bus, and the store is the truth: a
//! subscriber that may have missed something is told [`crate::Received::Lagged`] and
//! resyncs by seq. That happens when a forward had to be dropped (the node's queue to NATS
//! full: the topic's subscribers on other nodes get an empty payload, the lag marker, once
//! the queue drains), when the connection to NATS was lost and is back (every subscriber on
//! the node: the other nodes' events of that time are gone), and when the server reports this
//! client as a slow consumer.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_nats::{Client, ConnectOptions, Event, Subscriber};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::{Bus, Envelope, Payload, Topic};

/// Payloads waiting to be handed to the NATS client, per node; beyond it a forward is dropped
/// and its topic's remote subscribers are told to resync.
const FORWARD_QUEUE: usize = 65_536;

/// A subject outside the topics' `sb.` space that nobody subscribes to: [`Fleet::sync`]'s
/// round trip.
const SYNC_SUBJECT: &str = "_sb_sync";

/// How long joining waits for the first connection to NATS.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Joining a fleet failed.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// The URL is not a NATS address.
    #[error("nats_url {url:?} is not a NATS address: {reason}")]
    BadUrl { url: String, reason: String },
    /// NATS did not answer.
    #[error("cannot connect to NATS at {url}: {reason}")]
    Connect { url: String, reason: String },
    /// This bus is in a fleet already.
    #[error("this node has joined a fleet already")]
    AlreadyJoined,
}

/// What the bus hands the fleet's tasks.
enum Command {
    /// A topic has its first subscriber on this node.
    Watch(Topic),
    /// A topic's last subscriber on this node is gone.
    Unwatch(Topic),
    /// Answer once every command before this one is done and NATS has seen it.
    Sync(oneshot::Sender<()>),
}

/// The bus's side of the fleet: cheap, non-blocking calls into the fleet's tasks.
#[derive(Debug)]
pub(crate) struct Remote {
    forwards: mpsc::Sender<(Topic, Bytes)>,
    commands: mpsc::UnboundedSender<Command>,
    /// Topics whose forwards were dropped since the publisher last caught up.
    lost: Arc<Mutex<HashSet<Topic>>>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Watch(topic) => f.debug_tuple("Watch").field(topic).finish(),
            Command::Unwatch(topic) => f.debug_tuple("Unwatch").field(topic).finish(),
            Command::Sync(_) => f.write_str("Sync"),
        }
    }
}

impl Remote {
    /// Queues `payload` for the other nodes; a full queue drops it and marks the topic lost.
    pub(crate) fn forward(&self, topic: &Topic, payload: &Payload) {
        let bytes = Bytes::copy_from_slice(payload.text.as_bytes());
        if let Err(mpsc::error::TrySendError::Full(_)) = self.forwards.try_send((topic.clone(), bytes)) {
            self.lost.lock().unwrap_or_else(|poison| poison.into_inner()).insert(topic.clone());
        }
    }

    pub(crate) fn watch(&self, topic: &Topic) {
        let _ = self.commands.send(Command::Watch(topic.clone()));
    }

    pub(crate) fn unwatch(&self, topic: &Topic) {
        let _ = self.commands.send(Command::Unwatch(topic.clone()));
    }
}

/// A node's membership of a fleet: its NATS connection and the tasks serving it. The tasks
/// end when the bus is dropped; [`Fleet::close`] ends them at once.
#[derive(Debug)]
pub struct Fleet {
    client: Client,
    commands: mpsc::UnboundedSender<Command>,
    tasks: Vec<JoinHandle<()>>,
}

impl Fleet {
    /// Whether the node is connected to NATS now (for readiness and metrics).
    pub fn connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// Waits until every subscription change made before the call has reached NATS, so a
    /// payload published after it on any node reaches those subscribers (tests use it).
    pub async fn sync(&self) {
        let (done, wait) = oneshot::channel();
        if self.commands.send(Command::Sync(done)).is_ok() {
            let _ = wait.await;
        }
    }

    /// The node's NATS connection, for the fleet's other subjects (the engines' requests,
    /// cache invalidations): one connection per node.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Leaves the fleet: ends the tasks and the connection.
    pub async fn close(self) {
        for task in &self.tasks {
            task.abort();
        }
        let _ = self.client.drain().await;
    }
}

impl Bus {
    /// Joins the fleet whose NATS server is at `url` (`nats://host:port`, or `tls://host:port`
    /// for TLS; several separated by commas), under the name `node` (shown by NATS's
    /// monitoring). A `tls://` server's certificate must be signed by an authority the system
    /// trusts or, with `ca_file`, by the one in that PEM file (then only by it). Fails if NATS
    /// cannot be reached within 10 s; once joined, a lost connection is retried for ever, and
    /// the node's subscribers are told to resync when it is back.
    pub async fn join_fleet(
        self: &Arc<Self>,
        url: &str,
        node: &str,
        ca_file: Option<&Path>,
    ) -> Result<Fleet, FleetError> {
        let addresses = url
            .split(',')
            .map(|address| address.trim().parse::<async_nats::ServerAddr>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| FleetError::BadUrl { url: url.to_owned(), reason: error.to_string() })?;
        let (events, mut event_rx) = mpsc::unbounded_channel::<Event>();
        let mut options = ConnectOptions::new();
        if let Some(ca_file) = ca_file {
            options = options.add_root_certificates(ca_file.to_path_buf());
        }
        let options =
            options.name(node).no_echo().connection_timeout(CONNECT_TIMEOUT).max_reconnects(None).event_callback(
                move |event| {
                    let events = events.clone();
                    async move {
                        let _ = events.send(event);
                    }
                },
            );
        let client = tokio::time::timeout(CONNECT_TIMEOUT, options.connect(addresses))
            .await
            .map_err(|_| FleetError::Connect { url: url.to_owned(), reason: "no answer within 10 s".into() })?
            .map_err(|error| FleetError::Connect { url: url.to_owned(), reason: error.to_string() })?;

        let (forwards, forward_rx) = mpsc::channel(FORWARD_QUEUE);
        let (commands, mut command_rx) = mpsc::unbounded_channel();
        let lost = Arc::new(Mutex::new(HashSet::new()));
        let remote = Remote { forwards, commands: commands.clone(), lost: Arc::clone(&lost) };
        // Topics subscribed before joining are watched first (the commands queue in order).
        for topic in self.local_topics() {
            remote.watch(&topic);
        }
        self.remote.set(remote).map_err(|_| FleetError::AlreadyJoined)?;

        let publisher = tokio::spawn(publish(client.clone(), forward_rx, lost));
        let bus = Arc::downgrade(self);
        let subscriptions_client = client.clone();
        let subscriptions = tokio::spawn(async move {
            let mut brands = Brands { client: subscriptions_client, bus, watched: HashMap::new() };
            let mut disconnected = false;
            loop {
                tokio::select! {
                    command = command_rx.recv() => match command {
                        Some(Command::Watch(topic)) => brands.watch(topic.brand()).await,
                        Some(Command::Unwatch(topic)) => brands.unwatch(topic.brand()),
                        Some(Command::Sync(done)) => {
                            // A round trip through the server, after the subscriptions on the
                            // same connection: a request nobody answers comes back as "no
                            // responders" once the server has read everything sent before it.
                            let _ = brands.client.request(SYNC_SUBJECT, Bytes::new()).await;
                            let _ = done.send(());
                        }
                        None => break,
                    },
                    Some(event) = event_rx.recv() => {
                        let Some(bus) = brands.bus.upgrade() else { break };
                        match event {
                            Event::Disconnected => {
                                tracing::warn!("lost the connection to NATS: events of other nodes wait until it is back");
                                disconnected = true;
                            }
                            Event::Connected if disconnected => {
                                tracing::info!("connected to NATS again: subscribers resync from the store");
                                disconnected = false;
                                bus.lag_all_local();
                            }
                            Event::SlowConsumer(_) => {
                                tracing::warn!("NATS dropped events for this node (slow consumer): subscribers resync");
                                bus.lag_all_local();
                            }
                            other => tracing::debug!(event = %other, "NATS"),
                        }
                    }
                }
            }
        });
        Ok(Fleet { client, commands, tasks: vec![publisher, subscriptions] })
    }
}

/// The publishing task: hands queued payloads to the client in order, and once the queue is
/// empty sends the lag marker (an empty payload) to each topic whose forwards were dropped.
async fn publish(client: Client, mut forwards: mpsc::Receiver<(Topic, Bytes)>, lost: Arc<Mutex<HashSet<Topic>>>) {
    while let Some((topic, bytes)) = forwards.recv().await {
        if let Err(error) = client.publish(subject(&topic), bytes).await {
            tracing::debug!(%error, "a forward to NATS failed");
            lost.lock().unwrap_or_else(|poison| poison.into_inner()).insert(topic);
        }
        if forwards.is_empty() {
            let topics: Vec<Topic> = lost.lock().unwrap_or_else(|poison| poison.into_inner()).drain().collect();
            for topic in topics {
                let _ = client.publish(subject(&topic), Bytes::new()).await;
            }
        }
    }
}

/// The brands this node subscribes to on NATS, with how many of their topics have
/// subscribers here.
struct Brands {
    client: Client,
    bus: Weak<Bus>,
    watched: HashMap<Arc<str>, (usize, JoinHandle<()>)>,
}

impl Brands {
    async fn watch(&mut self, brand: &Arc<str>) {
        if let Some((count, _)) = self.watched.get_mut(brand) {
            *count += 1;
            return;
        }
        match self.client.subscribe(format!("sb.{}.>", token(brand))).await {
            Ok(subscriber) => {
                let reader = tokio::spawn(receive(subscriber, self.bus.clone()));
                self.watched.insert(Arc::clone(brand), (1, reader));
            }
            Err(error) => tracing::error!(%error, %brand, "cannot subscribe to the brand's events on NATS"),
        }
    }

    fn unwatch(&mut self, brand: &Arc<str>) {
        if let Some((count, _)) = self.watched.get_mut(brand) {
            *count -= 1;
            if *count == 0
                && let Some((_, reader)) = self.watched.remove(brand)
            {
                // Dropping the subscriber (with its task) unsubscribes.
                reader.abort();
            }
        }
    }
}

/// Hands what other nodes publish for a brand to this node's subscribers.
async fn receive(mut subscriber: Subscriber, bus: Weak<Bus>) {
    while let Some(message) = subscriber.next().await {
        let Some(bus) = bus.upgrade() else { break };
        let Some(topic) = topic_of(message.subject.as_str()) else {
            tracing::debug!(subject = %message.subject, "a NATS subject that is no topic");
            continue;
        };
        if message.payload.is_empty() {
            bus.lag_local(&topic);
            continue;
        }
        match std::str::from_utf8(&message.payload) {
            // The origin is another node's connection: none of ours skips it.
            Ok(text) => {
                bus.publish_local(&topic, Envelope::new(0, text));
            }
            Err(_) => tracing::warn!(subject = %message.subject, "a NATS payload that is not UTF-8 was dropped"),
        }
    }
}

/// A brand id as one subject token (other subject spaces of the fleet name brands the same
/// way as the topics do).
pub fn brand_token(brand: &str) -> String {
    token(brand)
}

/// The subject of a topic.
fn subject(topic: &Topic) -> String {
    match topic {
        Topic::Consumer { brand, consumer } => format!("sb.{}.c.{consumer}", token(brand)),
        Topic::Agent { brand, agent } => format!("sb.{}.a.{agent}", token(brand)),
        Topic::Brand { brand } => format!("sb.{}.b", token(brand)),
    }
}

/// The topic of a subject, if it is one.
fn topic_of(subject: &str) -> Option<Topic> {
    let mut parts = subject.split('.');
    if parts.next()? != "sb" {
        return None;
    }
    let brand: Arc<str> = untoken(parts.next()?)?.into();
    let topic = match (parts.next()?, parts.next()) {
        ("c", Some(id)) => Topic::Consumer { brand, consumer: id.parse().ok()? },
        ("a", Some(id)) => Topic::Agent { brand, agent: id.parse().ok()? },
        ("b", None) => return Some(Topic::Brand { brand }),
        _ => return None,
    };
    parts.next().is_none().then_some(topic)
}

/// A brand id as one subject token: bytes outside `[A-Za-z0-9_-]` (dots, wildcards,
/// whitespace and `%` itself) are written `%XX`.
fn token(brand: &str) -> String {
    let mut out = String::with_capacity(brand.len());
    for byte in brand.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The brand id of a subject token written by [`token`].
fn untoken(token: &str) -> Option<String> {
    let bytes = token.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = token.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_topic_has_a_subject_that_names_it_back() {
        for brand in ["demo", "acme.eu", "a b*c>d%e", "ünï"] {
            let brand: Arc<str> = brand.into();
            for topic in [
                Topic::Consumer { brand: Arc::clone(&brand), consumer: 42 },
                Topic::Agent { brand: Arc::clone(&brand), agent: -1 },
                Topic::Brand { brand: Arc::clone(&brand) },
            ] {
                let subject = subject(&topic);
                assert_eq!(subject.split('.').nth(1).map(|t| t.contains(['.', '*', '>', ' '])), Some(false));
                assert_eq!(topic_of(&subject), Some(topic), "{subject}");
            }
        }
        for not_a_topic in
            ["sb", "sb.demo", "sb.demo.c", "sb.demo.c.x", "sb.demo.b.1", "sb.demo.c.1.2", "xx.demo.b", "sb.%G0.b"]
        {
            assert_eq!(topic_of(not_a_topic), None, "{not_a_topic}");
        }
    }
}
