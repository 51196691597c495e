//! Set-based appends: a whole batch's plans driven in lockstep, one statement per kind of
//! step for all of them, instead of one statement per step of each append. This is how the
//! PostgreSQL writer works, where each statement is a network round trip: a batch of 500
//! appends costs a handful of round trips instead of about 2,300.
//!
//! The rules stay `switchboard_core::append`'s: every append still has its own
//! [`AppendPlan`], asked for one [`Step`] at a time and fed its own [`Answer`]; only the
//! statements are shared, and answers the batch already holds are fed without one: the head
//! of every conversation an agent or a notice targets, and the open conversation of every
//! consumer who writes, are read once for the batch (the writer never changes a
//! conversation's consumer, status or agent, and opens one only for a consumer who has none);
//! the idempotency lookup of a consumer's message reads the consumer's open conversation with
//! it where the batch did not. So a message into an open conversation costs two statements
//! for its generation: the lookup, the insert.
//!
//! Lockstep is the same as running the appends one after another ([`super::apply`]) only if
//! no append reads what another append driven with it writes. So the batch is cut into
//! *generations*: an append goes into the generation after the last one holding an append
//! with the same consumer (the conversation a notice or an agent targets is resolved to its
//! consumer through the heads) or the same idempotency id. A message into a conversation
//! that is open as the batch starts (an agent's into the conversation it targets, a
//! consumer's into their own) joins the generation of its consumer's latest append instead
//! of following it: its plan reads only its idempotency id and that conversation, which no
//! append of the batch changes, so all of them share one insert, the conversation's seqs
//! still in queue order. A consumer who writes ten messages in a batch thus costs one
//! generation, not ten: one update of the conversation's row, not ten (a second update of a
//! row the transaction wrote makes PostgreSQL check its foreign keys again). Within a
//! generation every append touches its own consumer's conversations and its own idempotency
//! id, so lockstep order cannot change an answer; across generations the batch order holds (a
//! consumer's messages keep their order, a resend finds the message its original stored in
//! an earlier generation). Appends of different consumers may commit their new conversations
//! in another order than submitted; nothing depends on the ids' order. Messages into one
//! conversation take their seqs in batch order.
//!
//! Another connection can change what a plan read (a close, an anonymous consumer's merge):
//! a close is seen by the insert, which re-checks the status, as in the one-by-one path, and
//! the plan looks for the open conversation again; two plans that then open a conversation
//! for one consumer in one statement (two messages of a consumer whose conversation closed
//! under the batch) break its unique index, and the writer retries the batch's appends one
//! by one.
//!
//! A message's push (an outbox row) and its conversation's first response are written by the
//! statement that inserts it.

use std::collections::HashMap;

use switchboard_core::append::{Answer, AppendPlan, AppendRequest, OriginOf, Step};
use switchboard_protocol::{ConversationId, Millis, Side};

use super::{Append, AppendError, Appended, ConversationHead, NewConversation, NewMessage, Origin};
use crate::StoreError;
use crate::model::StoredMessage;

/// An idempotency lookup: the message an author stored under a client id.
pub(crate) struct DuplicateKey<'a> {
    pub(crate) brand_id: &'a str,
    pub(crate) side: Side,
    pub(crate) author_id: i64,
    pub(crate) client_id: &'a str,
    /// A consumer whose open conversation the same statement reads too: the plan's next
    /// step when the id is new (see [`Slot::open`]).
    pub(crate) open_of: Option<i64>,
}

/// A consumer's open conversation and its agent.
pub(crate) type OpenConversation = (ConversationId, Option<i64>);

/// The statements of a batch, each for many appends at once, inside the writer's open
/// transaction. Every method answers one entry per input entry, in the input's order.
pub(crate) trait BatchTx {
    /// The message each author already stored under each client id, and the open
    /// conversation of the key's `open_of` consumer (`None` without one).
    async fn find_duplicates(
        &mut self,
        keys: &[DuplicateKey<'_>],
    ) -> Result<Vec<(Option<StoredMessage>, Option<OpenConversation>)>, StoreError>;
    /// The keyed system notice stored under each key in each conversation.
    async fn find_keyed_notices(
        &mut self,
        keys: &[(ConversationId, &str)],
    ) -> Result<Vec<Option<StoredMessage>>, StoreError>;
    /// Consumer, status and agent of each conversation of its brand.
    async fn conversation_heads(
        &mut self,
        targets: &[(&str, ConversationId)],
    ) -> Result<Vec<Option<ConversationHead>>, StoreError>;
    /// Each consumer's open conversation and its agent.
    async fn open_conversations_of(
        &mut self,
        consumers: &[(&str, i64)],
    ) -> Result<Vec<Option<OpenConversation>>, StoreError>;
    /// App, channel and skill of each consumer's latest conversation.
    async fn latest_origins(&mut self, consumers: &[(&str, i64)]) -> Result<Vec<Option<Origin>>, StoreError>;
    /// Inserts open conversations, each with its `opened` event; the consumers are distinct.
    async fn insert_conversations(
        &mut self,
        new: &[(NewConversation<'_>, Millis)],
    ) -> Result<Vec<ConversationId>, StoreError>;
    /// Takes the next seq of each conversation and inserts each message; `None` where `into`
    /// is `Open` and the conversation is not. Messages into one conversation take
    /// consecutive seqs in input order. For each message stored, as its [`Inserting`] says:
    /// its time becomes its conversation's first agent response unless one is recorded, and
    /// a push is queued if the conversation's consumer registered a device.
    async fn insert_messages(
        &mut self,
        new: &[(NewMessage<'_>, Millis)],
        inserting: &[Inserting],
    ) -> Result<Vec<Option<StoredMessage>>, StoreError>;
}

/// What else a stored message does ([`BatchTx::insert_messages`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Inserting {
    /// The conversation's first agent response, unless it has one.
    pub(crate) first_response: bool,
    /// News for the consumer: a push to their devices (`Outcome::announce`).
    pub(crate) announce: bool,
}

/// What a generation is keyed by: two appends sharing a key never run in one generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key<'a> {
    Consumer(i64),
    /// A targeted conversation that does not exist (the append will be refused).
    Missing(ConversationId),
    /// An agent's idempotency id.
    AgentClientId(i64, &'a str),
    /// A consumer's idempotency id, for a message that joins its consumer's latest
    /// generation (one that follows it is covered by the consumer key).
    ConsumerClientId(i64, &'a str),
}

/// One append being decided.
struct Slot<'a> {
    job: usize,
    append: &'a Append,
    now: Millis,
    plan: AppendPlan,
    step: Step,
    /// What the statements returned that the plan does not keep.
    message: Option<StoredMessage>,
    origin: Option<Origin>,
    /// The step's answer, once this wave's statements ran.
    answer: Option<Answer>,
    /// The head of the conversation the append targets, read once for the batch (the writer
    /// never changes a conversation's consumer, status or agent): answers the plan's
    /// `ReadHead` of that conversation without a statement.
    head: Option<(ConversationId, Option<ConversationHead>)>,
    /// The consumer's open conversation, read as the batch started (a consumer's message whose
    /// consumer had one) or by the idempotency lookup's statement: answers the plan's
    /// `FindOpen` that follows it without a statement. Used once: a second lookup (the
    /// conversation closed under the insert) reads again.
    open: Option<(i64, Option<OpenConversation>)>,
    finished: bool,
}

impl Slot<'_> {
    /// Feeds the plan the answers the slot already holds, until it asks for a statement.
    fn answer_known_steps(&mut self) {
        loop {
            let answer = match self.step {
                Step::ReadHead(id) => match self.head {
                    Some((target, head)) if target == id => {
                        self.head = None;
                        Answer::Head(head)
                    }
                    _ => return,
                },
                Step::FindOpen(consumer) => match self.open {
                    Some((of, open)) if of == consumer => {
                        self.open = None;
                        Answer::Open(open)
                    }
                    _ => return,
                },
                _ => return,
            };
            self.step = self.plan.next(answer);
        }
    }
}

fn brand_of(append: &Append) -> &str {
    match append {
        Append::Consumer(a) => &a.brand_id,
        Append::Agent(a) => &a.brand_id,
        Append::System(a) => &a.brand_id,
    }
}

fn request_of(append: &Append) -> AppendRequest {
    match append {
        Append::Consumer(a) => AppendRequest::Consumer { consumer: a.consumer_id },
        Append::Agent(a) => {
            AppendRequest::Agent { agent: a.agent_id, may_write_unassigned: a.may_write_unassigned, target: a.target }
        }
        Append::System(a) => AppendRequest::System { conversation: a.conversation_id, keyed: a.key.is_some() },
    }
}

/// The conversation an append targets, if it names one rather than a consumer.
fn target_of(append: &Append) -> Option<ConversationId> {
    match append {
        Append::Agent(a) => match a.target {
            super::AgentTarget::Conversation(id) => Some(id),
            super::AgentTarget::Consumer(_) => None,
        },
        Append::System(a) => Some(a.conversation_id),
        Append::Consumer(_) => None,
    }
}

/// Applies `jobs` (appends and their times, in submission order) inside the writer's
/// transaction, set-based. Refusals are per-job results; a database error (or the conflict
/// described in the module docs) is returned for the whole batch.
pub(crate) async fn apply_batch(
    tx: &mut impl BatchTx,
    jobs: &[(&Append, Millis)],
) -> Result<Vec<Result<Appended, AppendError>>, StoreError> {
    // The head of every targeted conversation: its consumer keys the generations, and the
    // plan's read of it is answered from here.
    let targeted: Vec<(usize, &str, ConversationId)> = jobs
        .iter()
        .enumerate()
        .filter_map(|(job, (append, _))| target_of(append).map(|id| (job, brand_of(append), id)))
        .collect();
    let mut head_of_target: HashMap<usize, Option<ConversationHead>> = HashMap::new();
    if !targeted.is_empty() {
        let targets: Vec<(&str, ConversationId)> = targeted.iter().map(|&(_, brand, id)| (brand, id)).collect();
        let heads = tx.conversation_heads(&targets).await?;
        for (&(job, _, _), head) in targeted.iter().zip(heads) {
            head_of_target.insert(job, head);
        }
    }

    // The consumers who have an open conversation as the batch starts: their messages go
    // into it, and the plans' look for it is answered from here.
    let mut consumers: Vec<(&str, i64)> = jobs
        .iter()
        .filter_map(|(append, _)| match append {
            Append::Consumer(a) => Some((a.brand_id.as_str(), a.consumer_id)),
            _ => None,
        })
        .collect();
    consumers.sort_unstable();
    consumers.dedup();
    let mut open_at_start: HashMap<i64, OpenConversation> = HashMap::new();
    if !consumers.is_empty() {
        for (&(_, consumer), open) in consumers.iter().zip(tx.open_conversations_of(&consumers).await?) {
            if let Some(open) = open {
                open_at_start.insert(consumer, open);
            }
        }
    }

    // Generations: each job after the last one sharing a key with it.
    let mut last_generation: HashMap<Key<'_>, usize> = HashMap::new();
    let mut generations: Vec<Vec<usize>> = Vec::new();
    for (job, (append, _)) in jobs.iter().enumerate() {
        let mut keys: Vec<Key<'_>> = Vec::with_capacity(2);
        // The consumer whose latest generation the append joins rather than follows.
        let mut joins: Option<Key<'_>> = None;
        match append {
            // Into the conversation open as the batch starts: the plan reads its idempotency
            // id and that conversation, which no append of the batch changes (the writer
            // never closes one, and none opens another while it is open).
            Append::Consumer(a) if open_at_start.contains_key(&a.consumer_id) => {
                keys.push(Key::ConsumerClientId(a.consumer_id, &a.client_id));
                joins = Some(Key::Consumer(a.consumer_id));
            }
            Append::Consumer(a) => keys.push(Key::Consumer(a.consumer_id)),
            Append::Agent(a) => {
                keys.push(Key::AgentClientId(a.agent_id, &a.client_id));
                if let super::AgentTarget::Consumer(consumer) = a.target {
                    keys.push(Key::Consumer(consumer));
                }
            }
            Append::System(_) => {}
        }
        if let Some(target) = target_of(append) {
            match head_of_target.get(&job).copied().flatten() {
                // Into an open conversation: the agent's plan reads its own idempotency id
                // and the head read above, nothing the consumer's appends write; joining
                // their latest generation keeps the conversation's seqs in queue order.
                Some(head) if head.open && matches!(append, Append::Agent(_)) => {
                    joins = Some(Key::Consumer(head.consumer))
                }
                Some(head) => keys.push(Key::Consumer(head.consumer)),
                None => keys.push(Key::Missing(target)),
            }
        }
        let after = keys.iter().filter_map(|key| last_generation.get(key)).map(|g| g + 1);
        let with = joins.iter().filter_map(|key| last_generation.get(key)).copied();
        let generation = after.chain(with).max().unwrap_or(0);
        // A joining append may land later than its consumer's latest generation (another key
        // put it there): what follows the consumer then follows it too.
        for key in keys.into_iter().chain(joins) {
            last_generation.insert(key, generation);
        }
        if generations.len() <= generation {
            generations.resize_with(generation + 1, Vec::new);
        }
        generations[generation].push(job);
    }
    metrics::histogram!(crate::metrics::WRITE_BATCH_GENERATIONS).record(generations.len() as f64);

    let mut results: Vec<Option<Result<Appended, AppendError>>> = (0..jobs.len()).map(|_| None).collect();
    for generation in generations {
        let mut slots: Vec<Slot<'_>> = generation
            .into_iter()
            .map(|job| {
                let (append, now) = jobs[job];
                let mut plan = AppendPlan::new(request_of(append));
                let step = plan.first();
                let head = target_of(append).map(|id| (id, head_of_target.get(&job).copied().flatten()));
                let open = match append {
                    Append::Consumer(a) => open_at_start.get(&a.consumer_id).map(|open| (a.consumer_id, Some(*open))),
                    _ => None,
                };
                Slot {
                    job,
                    append,
                    now,
                    plan,
                    step,
                    message: None,
                    origin: None,
                    answer: None,
                    head,
                    open,
                    finished: false,
                }
            })
            .collect();
        while run_wave(tx, &mut slots, &mut results).await? {}
    }
    results
        .into_iter()
        .map(|result| result.ok_or_else(|| StoreError::Corrupt("an append of the batch was never decided".into())))
        .collect()
}

/// Runs one step of every undecided plan of a generation: one statement per kind of step.
/// `false` once every plan is decided.
async fn run_wave<'a>(
    tx: &mut impl BatchTx,
    slots: &mut [Slot<'a>],
    results: &mut [Option<Result<Appended, AppendError>>],
) -> Result<bool, StoreError> {
    // Indices into `slots` of each kind of step, with the statements' inputs.
    let mut duplicates: (Vec<usize>, Vec<DuplicateKey<'a>>) = Default::default();
    let mut notices: (Vec<usize>, Vec<(ConversationId, &'a str)>) = Default::default();
    let mut heads: (Vec<usize>, Vec<(&'a str, ConversationId)>) = Default::default();
    let mut opens: (Vec<usize>, Vec<(&'a str, i64)>) = Default::default();
    let mut latests: (Vec<usize>, Vec<(&'a str, i64)>) = Default::default();
    let mut new_conversations: (Vec<usize>, Vec<(NewConversation<'a>, Millis)>) = Default::default();
    let mut new_messages: (Vec<usize>, Vec<(NewMessage<'a>, Millis)>) = Default::default();
    let mut inserting: Vec<Inserting> = Vec::new();

    for (index, slot) in slots.iter_mut().enumerate() {
        if slot.finished {
            continue;
        }
        slot.answer_known_steps();
        let append: &'a Append = slot.append;
        let brand_id = brand_of(append);
        match slot.step {
            Step::Done(outcome) => {
                slot.finished = true;
                let Some(message) = slot.message.take() else {
                    return Err(StoreError::Corrupt("an append finished without a message".into()));
                };
                // An announced message's push was queued by its insert.
                results[slot.job] = Some(Ok(Appended {
                    message,
                    consumer_id: outcome.consumer,
                    agent_id: outcome.agent,
                    opened: outcome.opened,
                    duplicate: outcome.duplicate,
                }));
            }
            Step::Refuse(refusal) => {
                slot.finished = true;
                results[slot.job] = Some(Err(refusal.into()));
            }
            // A new id is followed by the consumer's open conversation where the consumer is
            // known (a consumer's own message, an agent's to a consumer): read both at once.
            Step::FindDuplicate => match append {
                Append::Consumer(a) => {
                    duplicates.0.push(index);
                    duplicates.1.push(DuplicateKey {
                        brand_id,
                        side: Side::Consumer,
                        author_id: a.consumer_id,
                        client_id: &a.client_id,
                        // Read as the batch started (see `Slot::open`).
                        open_of: if slot.open.is_some() { None } else { Some(a.consumer_id) },
                    });
                }
                Append::Agent(a) => {
                    duplicates.0.push(index);
                    duplicates.1.push(DuplicateKey {
                        brand_id,
                        side: Side::Agent,
                        author_id: a.agent_id,
                        client_id: &a.client_id,
                        open_of: match a.target {
                            super::AgentTarget::Consumer(consumer) => Some(consumer),
                            super::AgentTarget::Conversation(_) => None,
                        },
                    });
                }
                Append::System(a) => {
                    notices.0.push(index);
                    notices.1.push((a.conversation_id, a.key.as_deref().unwrap_or_default()));
                }
            },
            Step::ReadHead(conversation_id) => {
                heads.0.push(index);
                heads.1.push((brand_id, conversation_id));
            }
            Step::FindOpen(consumer_id) => {
                opens.0.push(index);
                opens.1.push((brand_id, consumer_id));
            }
            Step::FindLatest(consumer_id) => {
                latests.0.push(index);
                latests.1.push((brand_id, consumer_id));
            }
            Step::Open { consumer: consumer_id, assign, origin: from } => {
                let (app_id, channel, skill_id, priority): (&'a str, &'a str, Option<i64>, i64) =
                    match (from, append, &slot.origin) {
                        (OriginOf::Request, Append::Consumer(a), _) => (&a.app_id, &a.channel, a.skill_id, a.priority),
                        (OriginOf::Latest, _, Some(_)) => ("", "", None, 0),
                        _ => return Err(StoreError::Corrupt("no origin for a new conversation".into())),
                    };
                new_conversations.0.push(index);
                new_conversations.1.push((
                    NewConversation { brand_id, consumer_id, app_id, channel, skill_id, agent_id: assign, priority },
                    slot.now,
                ));
            }
            Step::Insert { conversation: conversation_id, into, first_response: first } => {
                let new = NewMessage::of(append, brand_id, conversation_id, into);
                new_messages.0.push(index);
                new_messages.1.push((new, slot.now));
                inserting.push(Inserting { first_response: first, announce: slot.plan.announces() });
            }
        }
    }

    // A follow-up's origin lives in its slot, owned; the new conversation borrows it for the
    // statement only.
    let origins: Vec<Option<Origin>> =
        new_conversations.0.iter().map(|&index| slots[index].origin.take()).collect::<Vec<_>>();
    if !duplicates.0.is_empty() {
        let found = tx.find_duplicates(&duplicates.1).await?;
        for ((&index, key), (message, open)) in duplicates.0.iter().zip(&duplicates.1).zip(found) {
            let slot = &mut slots[index];
            slot.answer = Some(Answer::Duplicate(message.as_ref().map(|m| m.conversation_id)));
            slot.message = message;
            if let Some(consumer) = key.open_of {
                slot.open = Some((consumer, open));
            }
        }
    }
    if !notices.0.is_empty() {
        for (&index, message) in notices.0.iter().zip(tx.find_keyed_notices(&notices.1).await?) {
            let slot = &mut slots[index];
            slot.answer = Some(Answer::Duplicate(message.as_ref().map(|m| m.conversation_id)));
            slot.message = message;
        }
    }
    if !heads.0.is_empty() {
        for (&index, head) in heads.0.iter().zip(tx.conversation_heads(&heads.1).await?) {
            slots[index].answer = Some(Answer::Head(head));
        }
    }
    if !opens.0.is_empty() {
        for (&index, open) in opens.0.iter().zip(tx.open_conversations_of(&opens.1).await?) {
            slots[index].answer = Some(Answer::Open(open));
        }
    }
    if !latests.0.is_empty() {
        for (&index, origin) in latests.0.iter().zip(tx.latest_origins(&latests.1).await?) {
            let slot = &mut slots[index];
            slot.answer = Some(Answer::Latest(origin.is_some()));
            slot.origin = origin;
        }
    }
    if !new_conversations.0.is_empty() {
        let new: Vec<(NewConversation<'_>, Millis)> = new_conversations
            .1
            .iter()
            .zip(&origins)
            .map(|((conversation, now), origin)| {
                let mut conversation = NewConversation { ..*conversation };
                if let Some(origin) = origin {
                    conversation.app_id = &origin.app_id;
                    conversation.channel = &origin.channel;
                    conversation.skill_id = origin.skill_id;
                }
                (conversation, *now)
            })
            .collect();
        for (&index, id) in new_conversations.0.iter().zip(tx.insert_conversations(&new).await?) {
            slots[index].answer = Some(Answer::Opened(id));
        }
    }
    if !new_messages.0.is_empty() {
        let stored = tx.insert_messages(&new_messages.1, &inserting).await?;
        for (&index, message) in new_messages.0.iter().zip(stored) {
            let slot = &mut slots[index];
            slot.answer = Some(Answer::Inserted(message.is_some()));
            slot.message = message;
        }
    }
    for slot in slots.iter_mut() {
        if let Some(answer) = slot.answer.take() {
            slot.step = slot.plan.next(answer);
        }
    }
    // Plans decided by this wave's answers are collected by the next call.
    Ok(slots.iter().any(|slot| !slot.finished))
}
