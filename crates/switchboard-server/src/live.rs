//! Live state of a node: one routing engine per brand (from `switchboard-core`), and the
//! fan-out of events to the sockets that follow them. The routers are a projection of the
//! store, rebuilt from it at start; decisions are persisted before anyone is told.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use switchboard_bus::{Envelope, Topic};
use switchboard_core::routing::{ANY_SKILL, AgentProfile, Assignment, QueuedConversation, Router};
use switchboard_protocol::{AgentState, ConversationEventKind, ConversationId, ConversationSummary, ServerFrame};
use switchboard_store::{Consumer, Conversation, Role, StoreError, User};

use crate::{AppState, now_ms};

/// The routing engines of this node, by brand id.
#[derive(Debug, Default)]
pub struct Live {
    /// A std `Mutex`: routing decisions are pure and quick, and the lock is never held
    /// across an `.await` (callers take the decisions out and persist them afterwards).
    routers: Mutex<HashMap<String, Router>>,
}

impl Live {
    fn with_router<T>(&self, brand_id: &str, f: impl FnOnce(&mut Router) -> T) -> T {
        let mut routers = self.routers.lock().unwrap_or_else(|poison| poison.into_inner());
        f(routers.entry(brand_id.to_owned()).or_default())
    }

    /// The agent holding a conversation, per the router.
    pub fn assignee(&self, brand_id: &str, conversation: ConversationId) -> Option<i64> {
        self.with_router(brand_id, |router| router.assignee(conversation))
    }

    /// Estimated seconds to an agent for a queued conversation.
    pub fn estimated_wait(&self, brand_id: &str, conversation: ConversationId) -> Option<u32> {
        self.with_router(brand_id, |router| router.estimated_wait_secs(conversation))
    }
}

fn profile_of(user: &User) -> AgentProfile {
    AgentProfile {
        max_concurrent: u32::try_from(user.max_concurrent.max(0)).unwrap_or(u32::MAX),
        skills: user.skills.clone(),
    }
}

/// The summary agents see: with the consumer's profile.
pub fn agent_summary(conversation: &Conversation, consumer: Option<&Consumer>) -> ConversationSummary {
    let mut summary = consumer_summary(conversation);
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

impl AppState {
    /// Publishes a frame to all devices of a consumer, except connection `origin`.
    pub fn to_consumer(&self, brand_id: &str, consumer: i64, origin: u64, frame: &ServerFrame) {
        self.bus.publish(&Topic::Consumer { brand: brand_id.into(), consumer }, Envelope::new(origin, frame.to_json()));
    }

    /// Publishes a frame to all sockets of an agent, except connection `origin`.
    pub fn to_agent(&self, brand_id: &str, agent: i64, origin: u64, frame: &ServerFrame) {
        self.bus.publish(&Topic::Agent { brand: brand_id.into(), agent }, Envelope::new(origin, frame.to_json()));
    }

    /// Whether a staff member may read a conversation of their brand: managers and admins any;
    /// agents those assigned to them, and the past conversations of a consumer whose open
    /// conversation they hold (the workspace shows the whole history).
    pub async fn staff_may_read(
        &self,
        user_id: i64,
        role: Role,
        conversation: &Conversation,
    ) -> Result<bool, StoreError> {
        if role >= Role::Manager || conversation.agent_id == Some(user_id) {
            return Ok(true);
        }
        let serving = self.store.open_conversation(&conversation.brand_id, conversation.consumer_id).await?;
        Ok(serving.is_some_and(|open| open.agent_id == Some(user_id)))
    }

    /// Rebuilds every brand's router from the store: agents with their state and capacity,
    /// assigned conversations, and the queue (oldest first).
    pub async fn rebuild_routing(&self) -> Result<(), StoreError> {
        for brand_id in self.store.brand_ids().await? {
            let users = self.store.users(&brand_id).await?;
            let open = self.store.open_conversations(&brand_id).await?;
            let now = now_ms();
            let assignments = self.live.with_router(&brand_id, |router| {
                for user in users.iter().filter(|user| !user.disabled) {
                    router.upsert_agent(user.id, profile_of(user), now);
                }
                for conversation in &open {
                    if let Some(agent) = conversation.agent_id {
                        router.restore_assignment(conversation.id, agent);
                    }
                }
                let mut assignments = Vec::new();
                for user in users.iter().filter(|user| !user.disabled) {
                    assignments.extend(router.set_agent_state(user.id, user.state, now));
                }
                for conversation in open.iter().filter(|c| c.agent_id.is_none()) {
                    assignments.extend(router.enqueue(queue_entry(conversation), now));
                }
                assignments
            });
            self.apply_assignments(&brand_id, assignments).await;
        }
        Ok(())
    }

    /// Tells the router about a user's new settings (after create or update).
    pub async fn agent_changed(&self, user: &User) {
        let now = now_ms();
        let assignments = self.live.with_router(&user.brand_id, |router| {
            let mut assignments = router.upsert_agent(user.id, profile_of(user), now);
            let state = if user.disabled { AgentState::Offline } else { user.state };
            assignments.extend(router.set_agent_state(user.id, state, now));
            assignments
        });
        self.apply_assignments(&user.brand_id, assignments).await;
    }

    /// An agent changed availability.
    pub async fn agent_state_changed(&self, brand_id: &str, agent: i64, state: AgentState) {
        let assignments = self.live.with_router(brand_id, |router| router.set_agent_state(agent, state, now_ms()));
        self.apply_assignments(brand_id, assignments).await;
    }

    /// A consumer's message opened a conversation: queue it and tell the consumer where it
    /// stands (assigned, or queued with an estimated wait).
    pub async fn conversation_opened(&self, conversation: &Conversation, origin: u64) {
        metrics::counter!(crate::metrics::CONVERSATIONS_OPENED).increment(1);
        // The consumer's other devices learn of the new conversation (the sending device
        // knows from its ack).
        let opened = ServerFrame::Conv {
            c: conversation.id,
            ev: ConversationEventKind::Opened,
            agent: None,
            eta: None,
            by: None,
            conv: Some(Box::new(consumer_summary(conversation))),
        };
        self.to_consumer(&conversation.brand_id, conversation.consumer_id, origin, &opened);
        let assignments =
            self.live.with_router(&conversation.brand_id, |router| router.enqueue(queue_entry(conversation), now_ms()));
        let assigned_now = assignments.iter().any(|a| a.conversation == conversation.id);
        self.apply_assignments(&conversation.brand_id, assignments).await;
        if !assigned_now {
            let eta = self.live.estimated_wait(&conversation.brand_id, conversation.id);
            let frame = ServerFrame::Conv {
                c: conversation.id,
                ev: ConversationEventKind::Queued,
                agent: None,
                eta,
                by: None,
                conv: None,
            };
            self.to_consumer(&conversation.brand_id, conversation.consumer_id, 0, &frame);
        }
    }

    /// An agent opened a conversation by writing to a consumer (proactive follow-up): it is
    /// already assigned to them in the store.
    pub fn conversation_opened_by_agent(&self, brand_id: &str, conversation: ConversationId, agent: i64) {
        metrics::counter!(crate::metrics::CONVERSATIONS_OPENED).increment(1);
        self.live.with_router(brand_id, |router| router.restore_assignment(conversation, agent));
    }

    /// A conversation closed: free its agent, tell both sides, serve the queue.
    pub async fn conversation_closed(&self, conversation: &Conversation, origin: u64) {
        let now = now_ms();
        let handled = conversation.closed_at.map(|closed| closed - conversation.opened_at);
        let assignments =
            self.live.with_router(&conversation.brand_id, |router| router.release(conversation.id, handled, now));
        let frame = ServerFrame::Conv {
            c: conversation.id,
            ev: ConversationEventKind::Closed,
            agent: None,
            eta: None,
            by: conversation.closed_by,
            conv: None,
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
        self.apply_assignments(&conversation.brand_id, assignments).await;
    }

    /// Persists routing decisions and announces them. An assignment the store refuses (the
    /// conversation closed meanwhile) is released again.
    pub async fn apply_assignments(&self, brand_id: &str, assignments: Vec<Assignment>) {
        // In decision order: the router serves the queue oldest first.
        let mut pending = VecDeque::from(assignments);
        while let Some(Assignment { conversation, agent }) = pending.pop_front() {
            let now = now_ms();
            match self.store.assign(brand_id, conversation, agent, now).await {
                Ok(true) => {}
                Ok(false) => {
                    pending.extend(self.live.with_router(brand_id, |router| router.release(conversation, None, now)));
                    continue;
                }
                Err(error) => {
                    // The router and the store disagree until the next rebuild; the
                    // conversation stays with the agent in memory only. Logged loudly.
                    tracing::error!(%error, conversation, agent, "could not persist assignment");
                    continue;
                }
            }
            metrics::counter!(crate::metrics::ASSIGNMENTS).increment(1);
            if let Err(error) = self.announce_assignment(brand_id, conversation, agent).await {
                tracing::error!(%error, conversation, agent, "could not announce assignment");
            }
        }
    }

    async fn announce_assignment(
        &self,
        brand_id: &str,
        conversation_id: ConversationId,
        agent: i64,
    ) -> Result<(), StoreError> {
        let Some(conversation) = self.store.conversation(brand_id, conversation_id).await? else {
            return Ok(());
        };
        let consumer = self.store.consumer(brand_id, conversation.consumer_id).await?;
        let agent_name = self.store.user(brand_id, agent).await?.map(|user| user.name);
        let to_consumer = ServerFrame::Conv {
            c: conversation.id,
            ev: ConversationEventKind::Assigned,
            agent: agent_name.clone(),
            eta: None,
            by: None,
            conv: None,
        };
        self.to_consumer(brand_id, conversation.consumer_id, 0, &to_consumer);
        let to_agent = ServerFrame::Conv {
            c: conversation.id,
            ev: ConversationEventKind::Assigned,
            agent: agent_name,
            eta: None,
            by: None,
            conv: Some(Box::new(agent_summary(&conversation, consumer.as_ref()))),
        };
        self.to_agent(brand_id, agent, 0, &to_agent);
        Ok(())
    }
}

fn queue_entry(conversation: &Conversation) -> QueuedConversation {
    QueuedConversation {
        conversation: conversation.id,
        skill: conversation.skill_id.unwrap_or(ANY_SKILL),
        priority: i32::try_from(conversation.priority).unwrap_or(0),
        enqueued_at: conversation.opened_at,
    }
}
