//! The rules of an append: which conversation a message goes into, who may write there, what
//! an idempotency id that was seen before means, and what to do when a conversation closes
//! under the append. Pure: the store's writer asks [`AppendPlan`] for the next [`Step`], runs
//! it (one statement in its transaction) and feeds the [`Answer`] back, until the plan says
//! [`Step::Done`] or [`Step::Refuse`]. The writer holds the message itself (text, client id,
//! author name); the plan only decides.
//!
//! The rules:
//! - an author's idempotency id seen before answers with the message stored then;
//! - a consumer writes into their open conversation, or opens one (on the app, channel and
//!   skill of their connection);
//! - an agent writes into a conversation they hold (a manager into any of the brand); into a
//!   closed one, or to a consumer with no open conversation, the message is a proactive
//!   follow-up: a new conversation, on the channel of the consumer's latest one, assigned to
//!   the writing agent — only to a consumer who wrote before;
//! - a system notice goes into the named conversation, open or closed; one with a key (an
//!   automatic message) is stored once per key and conversation;
//! - a conversation may close between the lookup and the insert (another connection committed
//!   a close): the append looks again, twice at most, then refuses rather than loop.

use crate::ids::{AgentId, ConsumerId, ConversationId};

/// How many times an append looks for the open conversation before it gives up on a
/// conversation that keeps closing under it.
pub const ROUNDS: u8 = 2;

/// Who writes, and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendRequest {
    /// A consumer writes into their open conversation, or a new one.
    Consumer { consumer: ConsumerId },
    /// An agent (or manager) writes.
    Agent {
        agent: AgentId,
        /// Managers may write into conversations assigned to someone else.
        may_write_unassigned: bool,
        target: AgentTarget,
    },
    /// A system notice in a conversation, open or closed. `keyed`: it carries a key unique
    /// in the conversation (an automatic message), looked up like an idempotency id.
    System { conversation: ConversationId, keyed: bool },
}

/// Where an agent writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentTarget {
    /// A conversation. If it is closed, the message starts a new conversation with the same
    /// consumer, assigned to the writing agent (proactive follow-up).
    Conversation(ConversationId),
    /// A consumer's open conversation, or a new one if they wrote before.
    Consumer(ConsumerId),
}

/// What the writer knows of a conversation row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub consumer: ConsumerId,
    pub open: bool,
    pub agent: Option<AgentId>,
}

/// The app, channel and skill a new conversation takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OriginOf {
    /// Those of the consumer's connection (the append request carries them).
    Request,
    /// Those of the consumer's latest conversation (a follow-up).
    Latest,
}

/// Which conversations a message may be inserted into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Into {
    /// Only an open one: the writer checks the status in the statement that takes the seq.
    Open,
    /// Open or closed: system notices.
    Any,
}

/// What the writer does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Look up the author's idempotency id. Answer: [`Answer::Duplicate`].
    FindDuplicate,
    /// Read a conversation's row. Answer: [`Answer::Head`].
    ReadHead(ConversationId),
    /// Find the consumer's open conversation. Answer: [`Answer::Open`].
    FindOpen(ConsumerId),
    /// Find the consumer's latest conversation (any status). Answer: [`Answer::Latest`].
    FindLatest(ConsumerId),
    /// Insert an open conversation. Answer: [`Answer::Opened`].
    Open { consumer: ConsumerId, assign: Option<AgentId>, origin: OriginOf },
    /// Take the next seq and insert the message; record the first agent response if asked.
    /// Answer: [`Answer::Inserted`].
    Insert { conversation: ConversationId, into: Into, first_response: bool },
    /// The append is decided.
    Done(Outcome),
    /// The append is refused: no message is stored.
    Refuse(Refusal),
}

/// What the writer read or wrote for the last step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The conversation of the message stored under this idempotency id, if any.
    Duplicate(Option<ConversationId>),
    Head(Option<Head>),
    /// The consumer's open conversation and its agent.
    Open(Option<(ConversationId, Option<AgentId>)>),
    /// Whether the consumer has any conversation (wrote before).
    Latest(bool),
    Opened(ConversationId),
    /// `false`: the conversation was not open (closed by another connection meanwhile).
    Inserted(bool),
}

/// A decided append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub conversation: ConversationId,
    pub consumer: ConsumerId,
    /// The agent holding the conversation as the append read it: where fan-out sends the
    /// message. `None` while it waits for one, and for duplicates (not read).
    pub agent: Option<AgentId>,
    /// The message opened the conversation.
    pub opened: bool,
    /// The idempotency id was seen before: the message stored then is the answer.
    pub duplicate: bool,
    /// The message is news for the consumer (an agent's or a notice, newly stored): the
    /// outbox announces it to their devices that are away (push), in the same transaction.
    pub announce: bool,
}

/// Why an append is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("conversation not found")]
    ConversationNotFound,
    #[error("the conversation is closed")]
    ConversationClosed,
    #[error("the consumer never wrote")]
    ConsumerNeverWrote,
    #[error("the conversation is not assigned to this agent")]
    NotAssigned,
    /// The writer answered a step with the wrong kind of answer (a bug in the writer).
    #[error("the writer answered {answer:?} where the append asked for {asked}")]
    Protocol { asked: &'static str, answer: Answer },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Start,
    /// Asked for the idempotency id.
    Duplicate,
    /// Asked for the head of the duplicate's conversation (an agent's: to learn the consumer).
    DuplicateHead(ConversationId),
    /// Asked for the head of the conversation an agent or a notice targets.
    TargetHead(ConversationId),
    /// Asked for the consumer's open conversation.
    FindOpen,
    FindLatest,
    Opening,
    Inserting {
        conversation: ConversationId,
        agent: Option<AgentId>,
        opened: bool,
    },
    Finished,
}

/// One append being decided. Start with [`AppendPlan::new`] and [`AppendPlan::first`], then
/// feed each step's answer to [`AppendPlan::next`].
#[derive(Debug, Clone)]
pub struct AppendPlan {
    request: AppendRequest,
    phase: Phase,
    consumer: Option<ConsumerId>,
    /// Open-conversation lookups made so far.
    rounds: u8,
}

impl AppendPlan {
    pub fn new(request: AppendRequest) -> AppendPlan {
        let consumer = match request {
            AppendRequest::Consumer { consumer } => Some(consumer),
            AppendRequest::Agent { target: AgentTarget::Consumer(consumer), .. } => Some(consumer),
            _ => None,
        };
        AppendPlan { request, phase: Phase::Start, consumer, rounds: 0 }
    }

    /// The first step.
    pub fn first(&mut self) -> Step {
        match self.request {
            AppendRequest::System { conversation, keyed: false } => {
                self.phase = Phase::TargetHead(conversation);
                Step::ReadHead(conversation)
            }
            _ => {
                self.phase = Phase::Duplicate;
                Step::FindDuplicate
            }
        }
    }

    /// The step after `answer` (the answer to the previous step).
    pub fn next(&mut self, answer: Answer) -> Step {
        let step = self.advance(answer);
        if matches!(step, Step::Done(_) | Step::Refuse(_)) {
            self.phase = Phase::Finished;
        }
        step
    }

    fn advance(&mut self, answer: Answer) -> Step {
        match (self.phase, answer) {
            (Phase::Duplicate, Answer::Duplicate(Some(conversation))) => match self.consumer {
                // A consumer's own message: the consumer is known.
                Some(consumer) if matches!(self.request, AppendRequest::Consumer { .. }) => Step::Done(Outcome {
                    conversation,
                    consumer,
                    agent: None,
                    opened: false,
                    duplicate: true,
                    announce: false,
                }),
                _ => {
                    self.phase = Phase::DuplicateHead(conversation);
                    Step::ReadHead(conversation)
                }
            },
            (Phase::DuplicateHead(conversation), Answer::Head(head)) => match head {
                Some(head) => Step::Done(Outcome {
                    conversation,
                    consumer: head.consumer,
                    agent: None,
                    opened: false,
                    duplicate: true,
                    announce: false,
                }),
                None => Step::Refuse(Refusal::ConversationNotFound),
            },
            (Phase::Duplicate, Answer::Duplicate(None)) => match self.request {
                AppendRequest::Agent { target: AgentTarget::Conversation(conversation), .. }
                | AppendRequest::System { conversation, .. } => {
                    self.phase = Phase::TargetHead(conversation);
                    Step::ReadHead(conversation)
                }
                _ => self.find_open(),
            },
            (Phase::TargetHead(conversation), Answer::Head(head)) => {
                let Some(head) = head else { return Step::Refuse(Refusal::ConversationNotFound) };
                self.consumer = Some(head.consumer);
                match self.request {
                    AppendRequest::System { .. } => self.insert(conversation, head.agent, false),
                    AppendRequest::Agent { .. } if head.open => {
                        if !self.may_write(head.agent) {
                            return Step::Refuse(Refusal::NotAssigned);
                        }
                        self.insert(conversation, head.agent, false)
                    }
                    // Closed: a follow-up to its consumer.
                    _ => self.find_open(),
                }
            }
            (Phase::FindOpen, Answer::Open(Some((conversation, agent)))) => {
                if !self.may_write(agent) {
                    return Step::Refuse(Refusal::NotAssigned);
                }
                self.insert(conversation, agent, false)
            }
            (Phase::FindOpen, Answer::Open(None)) => match self.request {
                AppendRequest::Agent { .. } => {
                    self.phase = Phase::FindLatest;
                    Step::FindLatest(self.consumer())
                }
                _ => {
                    self.phase = Phase::Opening;
                    Step::Open { consumer: self.consumer(), assign: None, origin: OriginOf::Request }
                }
            },
            (Phase::FindLatest, Answer::Latest(wrote_before)) => {
                let AppendRequest::Agent { agent, .. } = self.request else {
                    return self.protocol("a consumer's latest conversation", answer);
                };
                if !wrote_before {
                    return Step::Refuse(Refusal::ConsumerNeverWrote);
                }
                self.phase = Phase::Opening;
                Step::Open { consumer: self.consumer(), assign: Some(agent), origin: OriginOf::Latest }
            }
            (Phase::Opening, Answer::Opened(conversation)) => {
                let agent = match self.request {
                    AppendRequest::Agent { agent, .. } => Some(agent),
                    _ => None,
                };
                self.insert(conversation, agent, true)
            }
            (Phase::Inserting { conversation, agent, opened }, Answer::Inserted(true)) => Step::Done(Outcome {
                conversation,
                consumer: self.consumer(),
                agent,
                opened,
                duplicate: false,
                announce: self.announces(),
            }),
            (Phase::Inserting { .. }, Answer::Inserted(false)) => match self.request {
                // A notice goes into any conversation that exists: not inserted means gone.
                AppendRequest::System { .. } => Step::Refuse(Refusal::ConversationNotFound),
                _ if self.rounds >= ROUNDS => Step::Refuse(Refusal::ConversationClosed),
                _ => self.find_open(),
            },
            (phase, answer) => self.protocol(phase.asked(), answer),
        }
    }

    /// Whether a message this plan stores is announced to the consumer's devices
    /// ([`Outcome::announce`]): known from the request, so a writer that inserts and queues
    /// the push in one statement can ask before the insert.
    pub fn announces(&self) -> bool {
        !matches!(self.request, AppendRequest::Consumer { .. })
    }

    fn consumer(&self) -> ConsumerId {
        // Every phase that needs it comes after the consumer became known (from the request
        // or the target's head); 0 is never a consumer row id.
        self.consumer.unwrap_or_default()
    }

    fn may_write(&self, holder: Option<AgentId>) -> bool {
        match self.request {
            AppendRequest::Agent { agent, may_write_unassigned, .. } => holder == Some(agent) || may_write_unassigned,
            _ => true,
        }
    }

    fn find_open(&mut self) -> Step {
        self.rounds += 1;
        self.phase = Phase::FindOpen;
        Step::FindOpen(self.consumer())
    }

    fn insert(&mut self, conversation: ConversationId, agent: Option<AgentId>, opened: bool) -> Step {
        self.phase = Phase::Inserting { conversation, agent, opened };
        let (into, first_response) = match self.request {
            AppendRequest::Consumer { .. } => (Into::Open, false),
            AppendRequest::Agent { .. } => (Into::Open, true),
            AppendRequest::System { .. } => (Into::Any, false),
        };
        Step::Insert { conversation, into, first_response }
    }

    fn protocol(&self, asked: &'static str, answer: Answer) -> Step {
        Step::Refuse(Refusal::Protocol { asked, answer })
    }
}

impl Phase {
    fn asked(self) -> &'static str {
        match self {
            Phase::Start => "nothing yet (call first)",
            Phase::Duplicate => "the idempotency lookup",
            Phase::DuplicateHead(_) | Phase::TargetHead(_) => "a conversation's row",
            Phase::FindOpen => "the consumer's open conversation",
            Phase::FindLatest => "a consumer's latest conversation",
            Phase::Opening => "the new conversation's id",
            Phase::Inserting { .. } => "the insert's result",
            Phase::Finished => "nothing more (the append is decided)",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A brand's conversations as the writer would read them, with a hook that closes a
    /// conversation just before an insert (another connection's close).
    #[derive(Debug, Clone, Default)]
    struct World {
        /// (id, consumer, open, agent)
        conversations: Vec<(ConversationId, ConsumerId, bool, Option<AgentId>)>,
        /// Idempotency ids seen: the conversation of the stored message.
        duplicate: Option<ConversationId>,
        /// How many inserts find their conversation closed by someone else first.
        closes_before_insert: u8,
        inserted: Vec<ConversationId>,
        first_responses: Vec<ConversationId>,
    }

    impl World {
        fn head(&self, id: ConversationId) -> Option<Head> {
            self.conversations.iter().find(|c| c.0 == id).map(|c| Head { consumer: c.1, open: c.2, agent: c.3 })
        }

        fn run(&mut self, request: AppendRequest) -> Result<Outcome, Refusal> {
            let mut plan = AppendPlan::new(request);
            let mut step = plan.first();
            for _ in 0..32 {
                let answer = match step {
                    Step::Done(outcome) => return Ok(outcome),
                    Step::Refuse(refusal) => return Err(refusal),
                    Step::FindDuplicate => Answer::Duplicate(self.duplicate),
                    Step::ReadHead(id) => Answer::Head(self.head(id)),
                    Step::FindOpen(consumer) => {
                        Answer::Open(self.conversations.iter().find(|c| c.1 == consumer && c.2).map(|c| (c.0, c.3)))
                    }
                    Step::FindLatest(consumer) => Answer::Latest(self.conversations.iter().any(|c| c.1 == consumer)),
                    Step::Open { consumer, assign, .. } => {
                        assert!(
                            !self.conversations.iter().any(|c| c.1 == consumer && c.2),
                            "opened a second open conversation"
                        );
                        let id = 100 + self.conversations.len() as ConversationId;
                        self.conversations.push((id, consumer, true, assign));
                        Answer::Opened(id)
                    }
                    Step::Insert { conversation, into, first_response } => {
                        if self.closes_before_insert > 0 {
                            self.closes_before_insert -= 1;
                            if let Some(c) = self.conversations.iter_mut().find(|c| c.0 == conversation) {
                                c.2 = false;
                            }
                        }
                        let open = self.head(conversation).map(|head| head.open);
                        let stored = match into {
                            Into::Open => open == Some(true),
                            Into::Any => open.is_some(),
                        };
                        if stored {
                            self.inserted.push(conversation);
                            if first_response {
                                self.first_responses.push(conversation);
                            }
                        }
                        Answer::Inserted(stored)
                    }
                };
                step = plan.next(answer);
            }
            panic!("the plan did not finish in 32 steps");
        }
    }

    const BOB: AgentId = 7;
    const ALICE: AgentId = 8;

    fn agent(agent: AgentId, target: AgentTarget) -> AppendRequest {
        AppendRequest::Agent { agent, may_write_unassigned: false, target }
    }

    #[test]
    fn a_consumer_writes_into_their_open_conversation_or_opens_one() {
        let mut world = World::default();
        let first = world.run(AppendRequest::Consumer { consumer: 1 }).unwrap();
        assert!(first.opened && !first.duplicate);
        let second = world.run(AppendRequest::Consumer { consumer: 1 }).unwrap();
        assert_eq!((second.conversation, second.opened), (first.conversation, false));
        assert_eq!(world.inserted, vec![first.conversation, first.conversation]);
        assert!(world.first_responses.is_empty(), "consumers are not first responses");
        assert!(!first.announce && !second.announce, "a consumer's own message is no news to them");
    }

    #[test]
    fn a_seen_idempotency_id_answers_with_the_stored_message() {
        let mut world = World { conversations: vec![(5, 1, false, Some(BOB))], duplicate: Some(5), ..World::default() };
        let outcome = world.run(AppendRequest::Consumer { consumer: 1 }).unwrap();
        assert_eq!((outcome.conversation, outcome.duplicate, outcome.consumer), (5, true, 1));
        let outcome = world.run(agent(BOB, AgentTarget::Conversation(5))).unwrap();
        assert_eq!((outcome.conversation, outcome.duplicate, outcome.consumer), (5, true, 1));
        assert!(!outcome.announce, "a duplicate was announced when it was stored");
        assert!(world.inserted.is_empty(), "a duplicate writes nothing");
    }

    #[test]
    fn an_agent_writes_only_where_they_hold_the_conversation() {
        let mut world = World { conversations: vec![(5, 1, true, Some(BOB))], ..World::default() };
        assert_eq!(world.run(agent(ALICE, AgentTarget::Conversation(5))), Err(Refusal::NotAssigned));
        assert_eq!(world.run(agent(ALICE, AgentTarget::Consumer(1))), Err(Refusal::NotAssigned));
        let outcome = world.run(agent(BOB, AgentTarget::Conversation(5))).unwrap();
        assert_eq!((outcome.conversation, outcome.agent), (5, Some(BOB)));
        assert_eq!(world.first_responses, vec![5]);
        assert!(outcome.announce, "an agent's message is announced to the consumer's devices");
        // A manager writes into Bob's conversation; the message still goes to Bob.
        let manager =
            AppendRequest::Agent { agent: ALICE, may_write_unassigned: true, target: AgentTarget::Conversation(5) };
        assert_eq!(world.run(manager).unwrap().agent, Some(BOB));
        assert_eq!(world.run(agent(BOB, AgentTarget::Conversation(99))), Err(Refusal::ConversationNotFound));
    }

    #[test]
    fn writing_to_a_closed_conversation_is_a_follow_up_to_a_consumer_who_wrote() {
        let mut world = World { conversations: vec![(5, 1, false, Some(BOB))], ..World::default() };
        let outcome = world.run(agent(ALICE, AgentTarget::Conversation(5))).unwrap();
        assert!(outcome.opened);
        assert_ne!(outcome.conversation, 5);
        assert_eq!(world.head(outcome.conversation), Some(Head { consumer: 1, open: true, agent: Some(ALICE) }));
        assert_eq!(world.run(agent(ALICE, AgentTarget::Consumer(2))), Err(Refusal::ConsumerNeverWrote));
    }

    #[test]
    fn a_close_under_the_append_sends_it_round_again_then_refuses() {
        let mut world = World { conversations: vec![(5, 1, true, None)], closes_before_insert: 1, ..World::default() };
        let outcome = world.run(AppendRequest::Consumer { consumer: 1 }).unwrap();
        assert!(outcome.opened, "the second round opens a new conversation");
        let mut world = World { conversations: vec![(5, 1, true, None)], closes_before_insert: 9, ..World::default() };
        assert_eq!(world.run(AppendRequest::Consumer { consumer: 1 }), Err(Refusal::ConversationClosed));
        assert!(world.inserted.is_empty());
    }

    #[test]
    fn a_notice_goes_into_any_existing_conversation() {
        let mut world = World { conversations: vec![(5, 1, false, Some(BOB))], ..World::default() };
        let outcome = world.run(AppendRequest::System { conversation: 5, keyed: false }).unwrap();
        assert_eq!((outcome.conversation, outcome.agent, outcome.opened), (5, Some(BOB), false));
        assert_eq!(
            world.run(AppendRequest::System { conversation: 6, keyed: false }),
            Err(Refusal::ConversationNotFound)
        );
        // A keyed notice (an automatic message) seen before is not stored again.
        let before = world.inserted.len();
        world.duplicate = Some(5);
        let again = world.run(AppendRequest::System { conversation: 5, keyed: true }).unwrap();
        assert!(again.duplicate && !again.announce);
        assert_eq!(world.inserted.len(), before);
        world.duplicate = None;
        assert!(!world.run(AppendRequest::System { conversation: 5, keyed: true }).unwrap().duplicate);
    }

    #[test]
    fn a_wrong_answer_is_refused_not_a_panic() {
        let mut plan = AppendPlan::new(AppendRequest::Consumer { consumer: 1 });
        assert_eq!(plan.first(), Step::FindDuplicate);
        assert!(matches!(plan.next(Answer::Opened(3)), Step::Refuse(Refusal::Protocol { .. })));
        assert!(matches!(plan.next(Answer::Inserted(true)), Step::Refuse(Refusal::Protocol { .. })));
    }

    fn request() -> impl Strategy<Value = AppendRequest> {
        prop_oneof![
            (1..4i64).prop_map(|consumer| AppendRequest::Consumer { consumer }),
            (7..10i64, any::<bool>(), 100..106i64).prop_map(|(agent, may, c)| AppendRequest::Agent {
                agent,
                may_write_unassigned: may,
                target: AgentTarget::Conversation(c),
            }),
            (7..10i64, any::<bool>(), 1..4i64).prop_map(|(agent, may, consumer)| AppendRequest::Agent {
                agent,
                may_write_unassigned: may,
                target: AgentTarget::Consumer(consumer),
            }),
            (100..106i64, any::<bool>())
                .prop_map(|(conversation, keyed)| AppendRequest::System { conversation, keyed }),
        ]
    }

    proptest! {
        /// Whatever the order of appends and closes: a consumer has at most one open
        /// conversation, a message lands only in an open conversation (notices aside), an
        /// agent writes only where they hold it or may write unassigned, and every append
        /// finishes.
        #[test]
        fn appends_keep_the_rules(script in prop::collection::vec((request(), 0u8..3, prop::option::of(100..106i64)), 1..40)) {
            let mut world = World::default();
            for (request, closes, close_first) in script {
                if let Some(id) = close_first
                    && let Some(c) = world.conversations.iter_mut().find(|c| c.0 == id) {
                    c.2 = false;
                }
                world.closes_before_insert = closes;
                let before = world.clone();
                let result = world.run(request);
                for consumer in 1..4 {
                    let open = world.conversations.iter().filter(|c| c.1 == consumer && c.2).count();
                    prop_assert!(open <= 1, "consumer {consumer} has {open} open conversations");
                }
                if let Ok(outcome) = result {
                    let head = world.head(outcome.conversation).unwrap();
                    prop_assert_eq!(head.consumer, outcome.consumer);
                    if !matches!(request, AppendRequest::System { .. }) {
                        prop_assert!(head.open || outcome.duplicate);
                    }
                    if let AppendRequest::Agent { agent, may_write_unassigned: false, .. } = request {
                        prop_assert_eq!(head.agent, Some(agent), "wrote into someone else's conversation");
                    }
                    prop_assert_eq!(world.inserted.len(), before.inserted.len() + usize::from(!outcome.duplicate));
                } else {
                    prop_assert_eq!(world.inserted.len(), before.inserted.len(), "a refused append stored a message");
                }
            }
        }
    }
}
