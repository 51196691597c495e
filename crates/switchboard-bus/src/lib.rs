//! Live event fan-out. The server publishes a frame, already serialized, to a topic (one
//! consumer's devices, one agent's sockets, one brand's managers); every socket subscribed
//! to the topic delivers it. The bus is allowed to drop (a slow subscriber lags and is told
//! to resync from the store); the store never drops.
//!
//! The bus is in-process: one node's sockets subscribe to it. A node of a fleet also joins
//! NATS ([`Bus::join_fleet`], module [`nats`]): what it publishes goes to the other nodes too,
//! and what they publish reaches its subscribers, behind the same `publish`/`subscribe`
//! surface; nothing outside this crate knows whether a fleet is there.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::broadcast;

pub mod nats;
pub mod testing;

/// The NATS client the fleet uses, for the server's own subjects.
pub use async_nats;

/// The origin of the marker payload that tells a subscriber it lost events (a dropped
/// forward to or from the fleet): its `recv` answers [`Received::Lagged`]. No connection has
/// this id.
const LAG_MARKER: u64 = u64::MAX;

/// Who an event is for. Every topic names its brand, so no subscription can cross brands.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Topic {
    /// All live devices of one consumer.
    Consumer { brand: Arc<str>, consumer: i64 },
    /// All live sockets of one agent (or manager).
    Agent { brand: Arc<str>, agent: i64 },
    /// Brand-wide events for dashboards.
    Brand { brand: Arc<str> },
}

/// A serialized frame, shared by every subscriber, with the connection it came from so
/// that connection can skip its own echo.
pub type Payload = Arc<Envelope>;

/// One published event.
#[derive(Debug, PartialEq, Eq)]
pub struct Envelope {
    /// Connection id of the socket whose command caused the event (0: none).
    pub origin: u64,
    /// The serialized frame.
    pub text: Box<str>,
}

impl Envelope {
    /// A payload from `origin`.
    pub fn new(origin: u64, text: impl Into<Box<str>>) -> Payload {
        Arc::new(Envelope { origin, text: text.into() })
    }
}

impl Topic {
    /// The brand the topic belongs to.
    pub fn brand(&self) -> &Arc<str> {
        match self {
            Topic::Consumer { brand, .. } | Topic::Agent { brand, .. } | Topic::Brand { brand } => brand,
        }
    }

    /// Frames a subscriber may fall behind before it lags (and must resync). A broadcast
    /// channel allocates all its slots when created, so the many consumer topics are kept
    /// small (memory per idle connection); an agent or a dashboard follows many
    /// conversations and gets more room for bursts.
    fn capacity(&self) -> usize {
        match self {
            Topic::Consumer { .. } => 16,
            Topic::Agent { .. } => 512,
            Topic::Brand { .. } => 1024,
        }
    }
}

/// One topic's channel and who listens to it.
#[derive(Debug)]
struct TopicEntry {
    sender: broadcast::Sender<Payload>,
    /// Subscribers by the connection they serve (0: none in particular), with counts. When
    /// every subscriber is the publishing connection, nobody else would read the payload:
    /// it is not sent, so a socket's own echoes never take room in its topic.
    origins: HashMap<u64, u32>,
}

/// The in-process bus. Cheap to share behind an `Arc`.
#[derive(Debug, Default)]
pub struct Bus {
    /// One broadcast channel per topic with at least one subscriber. A std `Mutex` because
    /// it is held only for map operations, never across an `.await`. Entries are removed
    /// by the last subscriber's `Drop`.
    topics: Mutex<HashMap<Topic, TopicEntry>>,
    /// The fleet, once this node has joined one: forwards what is published here and is
    /// told which topics have subscribers here.
    remote: OnceLock<nats::Remote>,
}

impl Bus {
    /// An empty bus.
    pub fn new() -> Arc<Bus> {
        Arc::new(Bus::default())
    }

    /// Sends `payload` to every current subscriber of `topic` (on every node of the fleet,
    /// when there is one); returns how many there were on this node. Without subscribers the
    /// payload is dropped: readers catch up from the store.
    pub fn publish(&self, topic: &Topic, payload: Payload) -> usize {
        if let Some(remote) = self.remote.get() {
            remote.forward(topic, &payload);
        }
        self.publish_local(topic, payload)
    }

    /// [`Bus::publish`] to this node's subscribers only (what arrives from the fleet).
    fn publish_local(&self, topic: &Topic, payload: Payload) -> usize {
        let topics = self.topics.lock().unwrap_or_else(|poison| poison.into_inner());
        match topics.get(topic) {
            Some(entry) if payload.origin != 0 && entry.origins.keys().all(|origin| *origin == payload.origin) => 0,
            Some(entry) => entry.sender.send(payload).unwrap_or(0),
            None => 0,
        }
    }

    /// Subscribes to `topic` until the returned [`Subscription`] is dropped.
    pub fn subscribe(self: &Arc<Self>, topic: Topic) -> Subscription {
        self.subscribe_as(topic, 0)
    }

    /// Subscribes to `topic` on behalf of connection `origin` (which skips the payloads it
    /// published itself; the bus does not even send those when nobody else listens).
    pub fn subscribe_as(self: &Arc<Self>, topic: Topic, origin: u64) -> Subscription {
        let mut topics = self.topics.lock().unwrap_or_else(|poison| poison.into_inner());
        let entry = topics.entry(topic.clone()).or_insert_with(|| {
            if let Some(remote) = self.remote.get() {
                remote.watch(&topic);
            }
            TopicEntry { sender: broadcast::channel(topic.capacity()).0, origins: HashMap::new() }
        });
        *entry.origins.entry(origin).or_default() += 1;
        let receiver = entry.sender.subscribe();
        Subscription { receiver, topic, origin, bus: Arc::clone(self) }
    }

    /// Whether `topic` has a live subscriber on this node: for a consumer's topic, whether one
    /// of their devices is connected here (the push dispatcher sends no push then). Other
    /// nodes' sockets are not known: a bus that spans nodes must answer for the fleet.
    pub fn has_subscribers(&self, topic: &Topic) -> bool {
        self.topics.lock().unwrap_or_else(|poison| poison.into_inner()).contains_key(topic)
    }

    /// Topics with live subscribers (for metrics and tests).
    pub fn topic_count(&self) -> usize {
        self.topics.lock().unwrap_or_else(|poison| poison.into_inner()).len()
    }

    /// Tells this node's subscribers of `topic` that they lost events (they resync).
    fn lag_local(&self, topic: &Topic) {
        let topics = self.topics.lock().unwrap_or_else(|poison| poison.into_inner());
        if let Some(entry) = topics.get(topic) {
            let _ = entry.sender.send(Envelope::new(LAG_MARKER, ""));
        }
    }

    /// Tells every subscriber on this node that it lost events (after the fleet's bus was
    /// unreachable for a while: whatever the other nodes published then is gone).
    fn lag_all_local(&self) {
        let topics = self.topics.lock().unwrap_or_else(|poison| poison.into_inner());
        for entry in topics.values() {
            let _ = entry.sender.send(Envelope::new(LAG_MARKER, ""));
        }
    }

    /// The topics with subscribers on this node (what a node joining a fleet watches).
    fn local_topics(&self) -> Vec<Topic> {
        self.topics.lock().unwrap_or_else(|poison| poison.into_inner()).keys().cloned().collect()
    }
}

/// What a subscriber receives next.
#[derive(Debug, PartialEq, Eq)]
pub enum Received {
    /// The next payload.
    Event(Payload),
    /// Payloads were dropped because this subscriber fell behind: resync from the store.
    Lagged,
}

/// A live subscription. Dropping it unsubscribes; the last subscriber of a topic removes it.
#[derive(Debug)]
pub struct Subscription {
    receiver: broadcast::Receiver<Payload>,
    topic: Topic,
    origin: u64,
    bus: Arc<Bus>,
}

impl Subscription {
    /// Waits for the next event. Never ends: the bus outlives its subscriptions.
    pub async fn recv(&mut self) -> Received {
        match self.receiver.recv().await {
            Ok(payload) if payload.origin == LAG_MARKER => Received::Lagged,
            Ok(payload) => Received::Event(payload),
            Err(broadcast::error::RecvError::Lagged(_)) => Received::Lagged,
            // Cannot happen while this subscription lives: the sender stays in the bus map
            // until the last subscriber of the topic is dropped. Report it as a lag (the
            // client resyncs) and wait on a fresh receiver.
            Err(broadcast::error::RecvError::Closed) => {
                let fresh = self.bus.subscribe_as(self.topic.clone(), self.origin);
                self.receiver = fresh.receiver.resubscribe();
                Received::Lagged
            }
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut topics = self.bus.topics.lock().unwrap_or_else(|poison| poison.into_inner());
        let Some(entry) = topics.get_mut(&self.topic) else { return };
        if let Some(count) = entry.origins.get_mut(&self.origin) {
            *count -= 1;
            if *count == 0 {
                entry.origins.remove(&self.origin);
            }
        }
        // Our own receiver is still alive here, so "1" means we are the last.
        if entry.sender.receiver_count() <= 1 {
            topics.remove(&self.topic);
            if let Some(remote) = self.bus.remote.get() {
                remote.unwatch(&self.topic);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn consumer(id: i64) -> Topic {
        Topic::Consumer { brand: "a".into(), consumer: id }
    }

    #[tokio::test]
    async fn every_subscriber_of_a_topic_gets_the_event_and_others_do_not() {
        let bus = Bus::new();
        let mut phone = bus.subscribe(consumer(1));
        let mut tablet = bus.subscribe(consumer(1));
        let mut stranger = bus.subscribe(Topic::Consumer { brand: "b".into(), consumer: 1 });
        assert_eq!(bus.publish(&consumer(1), Envelope::new(0, "hi")), 2);
        assert_eq!(phone.recv().await, Received::Event(Envelope::new(0, "hi")));
        assert_eq!(tablet.recv().await, Received::Event(Envelope::new(0, "hi")));
        let nothing = tokio::time::timeout(std::time::Duration::from_millis(20), stranger.recv()).await;
        assert!(nothing.is_err(), "brand b's consumer 1 must not see brand a's event");
    }

    #[tokio::test]
    async fn last_subscriber_removes_the_topic_and_slow_ones_lag() {
        let bus = Bus::new();
        let mut slow = bus.subscribe(consumer(1));
        for i in 0..consumer(1).capacity() + 1 {
            bus.publish(&consumer(1), Envelope::new(0, i.to_string()));
        }
        assert_eq!(slow.recv().await, Received::Lagged);
        assert!(bus.has_subscribers(&consumer(1)));
        drop(slow);
        assert_eq!(bus.topic_count(), 0);
        assert!(!bus.has_subscribers(&consumer(1)), "nobody listens once the last subscriber is gone");
        assert_eq!(bus.publish(&consumer(1), Envelope::new(0, "lost")), 0);
    }

    /// A socket's own messages never fill its topic: a burst longer than the topic holds,
    /// from a consumer's only device, leaves nothing to lag behind; a second device still
    /// gets every one.
    #[tokio::test]
    async fn own_echoes_take_no_room_in_the_topic() {
        let bus = Bus::new();
        let mut phone = bus.subscribe_as(consumer(1), 7);
        for i in 0..consumer(1).capacity() * 2 {
            assert_eq!(bus.publish(&consumer(1), Envelope::new(7, i.to_string())), 0, "echo of the only subscriber");
        }
        bus.publish(&consumer(1), Envelope::new(0, "from the agent"));
        assert_eq!(phone.recv().await, Received::Event(Envelope::new(0, "from the agent")));
        let mut tablet = bus.subscribe_as(consumer(1), 8);
        assert_eq!(bus.publish(&consumer(1), Envelope::new(7, "to the tablet")), 2);
        assert_eq!(tablet.recv().await, Received::Event(Envelope::new(7, "to the tablet")));
        drop(tablet);
        assert_eq!(bus.publish(&consumer(1), Envelope::new(7, "alone again")), 0);
    }
}
