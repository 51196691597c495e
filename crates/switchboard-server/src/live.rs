//! Live state of a node: one routing engine per brand (from `switchboard-core`), and the
//! fan-out of events to the sockets that follow them. The routers are a projection of the
//! store, rebuilt from it at start; decisions are persisted before anyone is told.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use switchboard_bus::{Envelope, Topic};
use switchboard_core::routing::{
    ANY_SKILL, AgentProfile, AgentView, Assignment, QueuedConversation, Router, TransferRefusal,
};
use switchboard_protocol::{
    AgentState, ConversationEventKind, ConversationId, ConversationStatus, ConversationSummary, ErrorCode, ServerFrame,
};
use switchboard_store::{Append, Consumer, Conversation, Role, StoreError, SystemAppend, User};

use crate::error::{ApiError, ApiResult};
use crate::{AppState, now_ms};

/// Where a transfer sends a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferTarget {
    /// The queue of a skill (`None`: no particular skill).
    Skill(Option<i64>),
    /// Back to the queue it came from.
    Queue,
    /// A named agent, ahead of the queue.
    Agent(i64),
}

/// The routing picture of one brand at a moment (dashboards).
#[derive(Debug, Clone)]
pub struct Floor {
    /// Waiting conversations in serving order.
    pub queued: Vec<QueuedConversation>,
    /// Agents with state and load.
    pub agents: Vec<AgentView>,
    /// Estimated wait of a conversation arriving now, per skill id seen in `skills`.
    pub estimated_wait: HashMap<i64, Option<u32>>,
}

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

    /// The brand's queue and agents now; `skills` are the skill ids to estimate waits for.
    pub fn floor(&self, brand_id: &str, skills: &[i64]) -> Floor {
        self.with_router(brand_id, |router| Floor {
            queued: router.queued(),
            agents: router.agents(),
            estimated_wait: skills.iter().map(|skill| (*skill, router.estimated_wait_for_new(*skill))).collect(),
        })
    }
}

fn profile_of(user: &User) -> AgentProfile {
    AgentProfile {
        max_concurrent: u32::try_from(user.max_concurrent.max(0)).unwrap_or(u32::MAX),
        skills: user.skills.clone(),
    }
}

/// The summary agents see: with the consumer's profile and the skill's name.
pub fn agent_summary(
    conversation: &Conversation,
    consumer: Option<&Consumer>,
    skills: &[switchboard_store::Skill],
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

impl AppState {
    /// Publishes a frame to all devices of a consumer, except connection `origin`.
    pub fn to_consumer(&self, brand_id: &str, consumer: i64, origin: u64, frame: &ServerFrame) {
        self.bus.publish(&Topic::Consumer { brand: brand_id.into(), consumer }, Envelope::new(origin, frame.to_json()));
    }

    /// Tells the brand's managers (dashboards) that the floor changed.
    pub fn floor_changed(&self, brand_id: &str) {
        self.bus.publish(&Topic::Brand { brand: brand_id.into() }, Envelope::new(0, ServerFrame::Floor.to_json()));
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
        self.floor_changed(&user.brand_id);
    }

    /// An agent changed availability.
    pub async fn agent_state_changed(&self, brand_id: &str, agent: i64, state: AgentState) {
        let assignments = self.live.with_router(brand_id, |router| router.set_agent_state(agent, state, now_ms()));
        self.apply_assignments(brand_id, assignments).await;
        self.floor_changed(brand_id);
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
        self.floor_changed(&conversation.brand_id);
    }

    /// An agent opened a conversation by writing to a consumer (proactive follow-up): it is
    /// already assigned to them in the store.
    pub fn conversation_opened_by_agent(&self, brand_id: &str, conversation: ConversationId, agent: i64) {
        metrics::counter!(crate::metrics::CONVERSATIONS_OPENED).increment(1);
        self.live.with_router(brand_id, |router| router.restore_assignment(conversation, agent));
        self.floor_changed(brand_id);
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
        self.floor_changed(&conversation.brand_id);
    }

    /// Moves an open conversation to a skill's queue, back to its queue, or to a named agent.
    /// `actor` must hold it or be a manager. Everyone concerned hears of it: the previous
    /// agent (`transferred`), the new one (`assigned`), the consumer (`assigned` or `queued`),
    /// and a system notice in the conversation says what happened.
    pub async fn transfer(
        &self,
        actor: &User,
        conversation_id: ConversationId,
        target: TransferTarget,
    ) -> ApiResult<Conversation> {
        let brand_id = actor.brand_id.as_str();
        let conversation = self
            .store
            .conversation(brand_id, conversation_id)
            .await?
            .ok_or_else(|| ApiError::code(ErrorCode::ConversationNotFound))?;
        if conversation.agent_id != Some(actor.id) && actor.role < Role::Manager {
            return Err(ApiError::code(ErrorCode::NotAssigned));
        }
        if conversation.status != ConversationStatus::Open {
            return Err(ApiError::code(ErrorCode::ConversationClosed));
        }
        let previous = conversation.agent_id;
        let now = now_ms();
        let (updated, notice, assignments, new_agent) = match target {
            TransferTarget::Agent(agent_id) => {
                let agent =
                    self.store.user(brand_id, agent_id).await?.filter(|user| !user.disabled).ok_or_else(|| {
                        ApiError::new(ErrorCode::TransferRefused, format!("no active agent has id {agent_id}"))
                    })?;
                let assignments = self
                    .live
                    .with_router(brand_id, |router| router.transfer_to_agent(conversation_id, agent_id, now))
                    .map_err(|refusal| refused(&agent, refusal))?;
                if !self.store.assign(brand_id, conversation_id, agent_id, now).await? {
                    // Closed meanwhile: undo in the router and say so.
                    let freed = self.live.with_router(brand_id, |router| router.release(conversation_id, None, now));
                    self.apply_assignments(brand_id, freed).await;
                    return Err(ApiError::code(ErrorCode::ConversationClosed));
                }
                let updated = self.store.conversation(brand_id, conversation_id).await?.unwrap_or(conversation);
                (updated, format!("Transferred to {}", agent.name), assignments, Some(agent))
            }
            TransferTarget::Skill(_) | TransferTarget::Queue => {
                let (skill_id, notice) = match target {
                    TransferTarget::Skill(Some(skill_id)) => {
                        let skill = self
                            .store
                            .skills(brand_id)
                            .await?
                            .into_iter()
                            .find(|skill| skill.id == skill_id)
                            .ok_or_else(|| ApiError::bad_request(format!("no skill has id {skill_id}")))?;
                        (Some(skill_id), format!("Transferred to {}", skill.name))
                    }
                    TransferTarget::Skill(None) => (None, "Transferred to the general queue".to_owned()),
                    _ => (conversation.skill_id, "Returned to the queue".to_owned()),
                };
                let updated = self
                    .store
                    .requeue(brand_id, conversation_id, skill_id)
                    .await?
                    .ok_or_else(|| ApiError::code(ErrorCode::ConversationClosed))?;
                let entry = QueuedConversation { avoid: previous, ..queue_entry(&updated) };
                let assignments = self.live.with_router(brand_id, |router| router.requeue(entry, now));
                (updated, notice, assignments, None)
            }
        };
        metrics::counter!(crate::metrics::TRANSFERS).increment(1);
        if let Some(previous) = previous.filter(|previous| Some(*previous) != new_agent.as_ref().map(|a| a.id)) {
            let frame = ServerFrame::Conv {
                c: conversation_id,
                ev: ConversationEventKind::Transferred,
                agent: new_agent.as_ref().map(|agent| agent.name.clone()),
                eta: None,
                by: None,
                conv: None,
            };
            self.to_agent(brand_id, previous, 0, &frame);
        }
        self.post_notice(&updated, notice).await;
        match new_agent {
            Some(agent) => {
                if let Err(error) = self.announce_assignment(brand_id, conversation_id, agent.id).await {
                    tracing::error!(%error, conversation_id, "could not announce a transfer");
                }
                self.apply_assignments(brand_id, assignments).await;
            }
            None => {
                let assigned_now = assignments.iter().any(|a| a.conversation == conversation_id);
                self.apply_assignments(brand_id, assignments).await;
                if !assigned_now {
                    let frame = ServerFrame::Conv {
                        c: conversation_id,
                        ev: ConversationEventKind::Queued,
                        agent: None,
                        eta: self.live.estimated_wait(brand_id, conversation_id),
                        by: None,
                        conv: None,
                    };
                    self.to_consumer(brand_id, updated.consumer_id, 0, &frame);
                }
            }
        }
        self.floor_changed(brand_id);
        Ok(self.store.conversation(brand_id, conversation_id).await?.unwrap_or(updated))
    }

    /// Stores a system notice in a conversation and shows it to the consumer and the agent
    /// holding it. A failure is logged: the move it describes already happened.
    async fn post_notice(&self, conversation: &Conversation, text: String) {
        let append = Append::System(SystemAppend {
            brand_id: conversation.brand_id.clone(),
            conversation_id: conversation.id,
            text,
        });
        match self.store.append(append, now_ms()).await {
            Ok(appended) => {
                let frame = ServerFrame::Msg(appended.message.to_wire());
                self.to_consumer(&conversation.brand_id, conversation.consumer_id, 0, &frame);
                if let Some(agent) = conversation.agent_id {
                    self.to_agent(&conversation.brand_id, agent, 0, &frame);
                }
            }
            Err(error) => tracing::error!(%error, conversation = conversation.id, "could not store a system notice"),
        }
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
            conv: Some(Box::new(agent_summary(&conversation, consumer.as_ref(), &self.store.skills(brand_id).await?))),
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
        avoid: None,
    }
}

fn refused(agent: &User, refusal: TransferRefusal) -> ApiError {
    let name = &agent.name;
    let message = match refusal {
        TransferRefusal::UnknownAgent => format!("{name} cannot take conversations"),
        TransferRefusal::NotOnline(state) => {
            format!("{name} is {} (only online agents take transfers)", state.as_str())
        }
        TransferRefusal::AtCapacity { load, max } => {
            format!("{name} has no free capacity ({load} of {max} conversations)")
        }
        TransferRefusal::AlreadyAssigned => format!("the conversation is already with {name}"),
    };
    ApiError::new(ErrorCode::TransferRefused, message)
}
