//! Fan-out: the only place that turns what happened (a stored message, a desk decision, a
//! close) into frames and chooses the topics they go to. Recipients come from stored state
//! (the conversation row, or the agent the writer read with the append), never from a
//! router, so the same code serves one node and many.
//!
//! Every frame goes through `switchboard-bus`; a socket skips the frames its own commands
//! caused (`origin`), and the bus drops those before they take room in a topic that has no
//! other subscriber.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use switchboard_bus::{Bus, Envelope, Topic};
use switchboard_core::desk::{AssignReason, DeskEvent};
use switchboard_core::masking::{Audience, Masker};
use switchboard_protocol::{ConversationEventKind, ConversationId, ConversationSummary, Message, ServerFrame, Side};
use switchboard_store::{Appended, Consumer, Conversation, Skill, Store, StoreError, StoredMessage};

/// How long a brand's compiled masking rules are used before they are read again: a change
/// made on this node applies at once ([`Fanout::masking_changed`]); one made on another node
/// of a fleet applies within this time.
const MASKER_TTL: Duration = Duration::from_secs(10);

/// Publishes frames for one node. Cheap to clone.
#[derive(Clone)]
pub struct Fanout {
    bus: Arc<Bus>,
    store: Store,
    maskers: Arc<Mutex<Maskers>>,
}

/// Each brand's masking rules, compiled, with when they were read.
type Maskers = HashMap<String, (Instant, Arc<Masker>)>;

/// A stored message as `audience` may see it (the brand's masking rules applied).
pub fn shown(message: &StoredMessage, masker: &Masker, audience: Audience) -> Message {
    let mut wire = message.to_wire();
    if let std::borrow::Cow::Owned(masked) = masker.mask(&wire.text, audience) {
        wire.text = masked;
    }
    wire
}

impl std::fmt::Debug for Fanout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fanout").finish_non_exhaustive()
    }
}

impl Fanout {
    /// Fan-out over `bus`, reading names and summaries from `store`.
    pub fn new(bus: Arc<Bus>, store: Store) -> Fanout {
        Fanout { bus, store, maskers: Arc::default() }
    }

    /// The brand's masking rules, compiled (read from the store at most every [`MASKER_TTL`]).
    pub async fn masker(&self, brand_id: &str) -> Result<Arc<Masker>, StoreError> {
        {
            let maskers = self.maskers.lock().unwrap_or_else(|poison| poison.into_inner());
            if let Some((read_at, masker)) = maskers.get(brand_id)
                && read_at.elapsed() < MASKER_TTL
            {
                return Ok(Arc::clone(masker));
            }
        }
        let rules = self.store.masking_rules(brand_id).await?;
        // Rules are checked before they are saved: stored rules that do not compile are a
        // corrupt row, and nothing is shown rather than shown unmasked.
        let masker = Arc::new(
            Masker::new(&rules)
                .map_err(|error| StoreError::Corrupt(format!("masking rules of {brand_id}: {error}")))?,
        );
        let mut maskers = self.maskers.lock().unwrap_or_else(|poison| poison.into_inner());
        maskers.insert(brand_id.to_owned(), (Instant::now(), Arc::clone(&masker)));
        Ok(masker)
    }

    /// The brand's masking rules changed on this node: the next message uses the new ones.
    pub fn masking_changed(&self, brand_id: &str) {
        self.maskers.lock().unwrap_or_else(|poison| poison.into_inner()).remove(brand_id);
    }

    /// Publishes a frame to all devices of a consumer, except connection `origin`.
    pub fn to_consumer(&self, brand_id: &str, consumer: i64, origin: u64, frame: &ServerFrame) {
        self.bus.publish(&Topic::Consumer { brand: brand_id.into(), consumer }, Envelope::new(origin, frame.to_json()));
    }

    /// Publishes a frame to all sockets of an agent, except connection `origin`.
    pub fn to_agent(&self, brand_id: &str, agent: i64, origin: u64, frame: &ServerFrame) {
        self.bus.publish(&Topic::Agent { brand: brand_id.into(), agent }, Envelope::new(origin, frame.to_json()));
    }

    /// Tells the brand's managers (dashboards) that the floor changed.
    pub fn floor_changed(&self, brand_id: &str) {
        self.bus.publish(&Topic::Brand { brand: brand_id.into() }, Envelope::new(0, ServerFrame::Floor.to_json()));
    }

    /// A stored message: to the consumer's devices, the agent holding the conversation and,
    /// when a manager wrote into someone else's conversation, the manager's other sockets.
    ///
    /// Each side gets the text masked for it (the brand's rules: hidden from agents, from the
    /// consumer's other devices). Without the rules (a storage error) nothing is published:
    /// the recipients catch up by `sync`, which masks too.
    pub async fn message(&self, brand_id: &str, appended: &Appended, origin: u64) {
        let masker = match self.masker(brand_id).await {
            Ok(masker) => masker,
            Err(error) => {
                tracing::warn!(%error, brand_id, "message not fanned out: the masking rules could not be read");
                return;
            }
        };
        let frame = ServerFrame::Msg(shown(&appended.message, &masker, Audience::OtherDevices));
        self.to_consumer(brand_id, appended.consumer_id, origin, &frame);
        let frame = ServerFrame::Msg(shown(&appended.message, &masker, Audience::Agents));
        if let Some(agent) = appended.agent_id {
            self.to_agent(brand_id, agent, origin, &frame);
        }
        let author = appended.message.author_id.filter(|_| appended.message.side == Side::Agent);
        if let Some(author) = author.filter(|author| appended.agent_id != Some(*author)) {
            self.to_agent(brand_id, author, origin, &frame);
        }
    }

    /// A consumer's message opened a conversation: their other devices learn of it (the
    /// sending device knows from its ack).
    pub fn opened(&self, conversation: &Conversation, origin: u64) {
        metrics::counter!(crate::metrics::CONVERSATIONS_OPENED).increment(1);
        let frame = ServerFrame::Conv {
            c: conversation.id,
            ev: ConversationEventKind::Opened,
            agent: None,
            eta: None,
            by: None,
            conv: Some(Box::new(consumer_summary(conversation))),
            until: None,
        };
        self.to_consumer(&conversation.brand_id, conversation.consumer_id, origin, &frame);
    }

    /// An agent's message opened a conversation assigned to them: the consumer learns who.
    pub fn opened_by_agent(&self, brand_id: &str, appended: &Appended, agent_name: &str, origin: u64) {
        metrics::counter!(crate::metrics::CONVERSATIONS_OPENED).increment(1);
        let frame =
            conv(appended.message.conversation_id, ConversationEventKind::Assigned, Some(agent_name.to_owned()), None);
        self.to_consumer(brand_id, appended.consumer_id, origin, &frame);
        self.floor_changed(brand_id);
    }

    /// A conversation closed: both sides hear of it, the consumer gets the survey.
    pub fn closed(&self, conversation: &Conversation, origin: u64) {
        let frame = ServerFrame::Conv {
            c: conversation.id,
            ev: ConversationEventKind::Closed,
            agent: None,
            eta: None,
            by: conversation.closed_by,
            conv: None,
            until: None,
        };
        self.to_consumer(&conversation.brand_id, conversation.consumer_id, origin, &frame);
        if let Some(agent) = conversation.agent_id {
            self.to_agent(&conversation.brand_id, agent, origin, &frame);
        }
        if conversation.survey_open {
            self.to_consumer(
                &conversation.brand_id,
                conversation.consumer_id,
                0,
                &ServerFrame::Survey { c: conversation.id },
            );
        }
        self.floor_changed(&conversation.brand_id);
    }

    /// Tells the people concerned what the desk decided (after it was persisted).
    pub async fn desk_event(&self, brand_id: &str, event: &DeskEvent, origin: u64) {
        if let Err(error) = self.try_desk_event(brand_id, event, origin).await {
            tracing::error!(%error, ?event, "could not announce a desk event");
        }
    }

    async fn try_desk_event(&self, brand_id: &str, event: &DeskEvent, origin: u64) -> Result<(), StoreError> {
        match *event {
            DeskEvent::Assigned { conversation, consumer, agent, from, reason } => {
                let Some(row) = self.store.conversation(brand_id, conversation).await? else { return Ok(()) };
                let name = self.store.user(brand_id, agent).await?.map(|user| user.name);
                self.to_consumer(
                    brand_id,
                    consumer,
                    origin,
                    &conv(conversation, ConversationEventKind::Assigned, name.clone(), None),
                );
                let profile = self.store.consumer(brand_id, consumer).await?;
                let skills = self.store.skills(brand_id).await?;
                let to_agent = ServerFrame::Conv {
                    c: conversation,
                    ev: ConversationEventKind::Assigned,
                    agent: name.clone(),
                    eta: None,
                    by: None,
                    conv: Some(Box::new(agent_summary(&row, profile.as_ref(), &skills))),
                    until: None,
                };
                self.to_agent(brand_id, agent, origin, &to_agent);
                // The agent who had it hears where it went: to a colleague by name, or back
                // to the queue (whoever the queue then gave it to).
                if let Some(previous) = from.filter(|previous| *previous != agent) {
                    let to = (reason == AssignReason::Transferred).then_some(name).flatten();
                    self.to_agent(
                        brand_id,
                        previous,
                        0,
                        &conv(conversation, ConversationEventKind::Transferred, to, None),
                    );
                }
            }
            DeskEvent::Queued { conversation, consumer, eta, from, .. } => {
                self.to_consumer(
                    brand_id,
                    consumer,
                    origin,
                    &conv(conversation, ConversationEventKind::Queued, None, eta),
                );
                if let Some(previous) = from {
                    self.to_agent(
                        brand_id,
                        previous,
                        0,
                        &conv(conversation, ConversationEventKind::Transferred, None, None),
                    );
                }
            }
            DeskEvent::WaitChanged { conversation, consumer, eta } => {
                self.to_consumer(brand_id, consumer, 0, &conv(conversation, ConversationEventKind::Queued, None, eta));
            }
            DeskEvent::Offered { conversation, consumer, agent, until } => {
                let Some(row) = self.store.conversation(brand_id, conversation).await? else { return Ok(()) };
                let profile = self.store.consumer(brand_id, consumer).await?;
                let skills = self.store.skills(brand_id).await?;
                let frame = ServerFrame::Conv {
                    c: conversation,
                    ev: ConversationEventKind::Offered,
                    agent: None,
                    eta: None,
                    by: None,
                    conv: Some(Box::new(agent_summary(&row, profile.as_ref(), &skills))),
                    until: Some(until),
                };
                self.to_agent(brand_id, agent, 0, &frame);
            }
            DeskEvent::OfferWithdrawn { conversation, agent, .. } => {
                self.to_agent(brand_id, agent, 0, &conv(conversation, ConversationEventKind::Withdrawn, None, None));
            }
            // Dashboards refresh on the floor hint the engine sends after any event.
            DeskEvent::Presence { .. } | DeskEvent::Reprioritized { .. } => {}
        }
        Ok(())
    }
}

fn conv(c: ConversationId, ev: ConversationEventKind, agent: Option<String>, eta: Option<u32>) -> ServerFrame {
    ServerFrame::Conv { c, ev, agent, eta, by: None, conv: None, until: None }
}

/// The summary agents see: with the consumer's profile and the skill's name.
pub fn agent_summary(
    conversation: &Conversation,
    consumer: Option<&Consumer>,
    skills: &[Skill],
) -> ConversationSummary {
    let mut summary = consumer_summary(conversation);
    summary.skill =
        conversation.skill_id.and_then(|id| skills.iter().find(|skill| skill.id == id)).map(|skill| skill.name.clone());
    summary.consumer = consumer.map(|consumer| switchboard_protocol::ConsumerProfile {
        id: consumer.id,
        name: consumer.name.clone(),
        email: consumer.email.clone(),
        phone: consumer.phone.clone(),
        device: consumer.device.clone(),
    });
    summary
}

/// The summary consumers see.
pub fn consumer_summary(conversation: &Conversation) -> ConversationSummary {
    ConversationSummary {
        c: conversation.id,
        status: conversation.status,
        opened: conversation.opened_at,
        closed: conversation.closed_at,
        last_seq: conversation.last_seq,
        csat: conversation.csat_score.and_then(|score| u8::try_from(score).ok()),
        survey: conversation.survey_open,
        consumer: None,
        skill: None,
    }
}
