//! REST for running the floor: the agent's inbox and the roster (who can take a transfer),
//! transfers, the manager's live dashboard and the history reports with CSV export. The
//! dashboard reads the routing engine (queue, agents, loads) and the store (today's
//! resolved conversations, first responses, CSAT); reports read the store only. The
//! arithmetic (range rules, hour buckets, percentiles, staffing, totals) is
//! `switchboard_core::report`; this module reads, converts to the REST types and formats CSV.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use switchboard_core::limits::Channel;
use switchboard_core::masking::Audience;
use switchboard_core::report::{self as core_report, ConversationTimes, RangeError, ReportRange, Staffed, Staffing};
use switchboard_core::routing::ANY_SKILL;
use switchboard_protocol::{AgentState, ErrorCode, Message, Millis, Side};
use switchboard_store::Role;
use utoipa::{IntoParams, ToSchema};

use crate::api::types::{self, Consumer, Conversation, ConversationPriority, Skill};
use crate::api::{Body, P, Q};
use crate::auth::{AgentAuth, Caller, ManagerAuth};
use crate::desk_ops::{self, Actor, Closing};
use crate::engine::TransferTarget;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::fanout::shown;
use crate::{AppState, now_ms};

/// Most conversations one report reads.
pub const MAX_REPORT_CONVERSATIONS: u32 = 100_000;

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/inbox", get(inbox))
        .route("/api/v1/roster", get(roster))
        .route("/api/v1/conversations/{conversation_id}/transfer", post(transfer))
        .route("/api/v1/conversations/{conversation_id}/close", post(close_conversation))
        .route("/api/v1/conversations/{conversation_id}/priority", post(set_priority))
        .route("/api/v1/queue", get(queue))
        .route("/api/v1/dashboard", get(dashboard))
        .route("/api/v1/reports", get(report))
        .route("/api/v1/reports/conversations.csv", get(report_csv))
}

// ----- inbox and roster --------------------------------------------------------------------

/// One conversation of the agent's inbox.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InboxItem {
    pub conversation: Conversation,
    pub consumer: Option<Consumer>,
    pub last_message: Option<Message>,
    /// Consumer messages after the agent's read mark.
    pub unread: i64,
    /// When the consumer's oldest unanswered message arrived; `null` when the agent spoke last.
    pub waiting_since: Option<Millis>,
    /// Longest message an agent may send here, in characters.
    pub char_limit: usize,
    /// Skill name, if routed to one.
    pub skill: Option<String>,
}

/// The agent's open conversations.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Inbox {
    /// Longest-waiting first; conversations nobody waits on last.
    pub items: Vec<InboxItem>,
}

/// The caller's open conversations with what the inbox shows: last message, unread count,
/// waiting time.
#[utoipa::path(get, path = "/api/v1/inbox", tag = "workspace", responses((status = 200, body = Inbox)))]
async fn inbox(State(state): State<AppState>, AgentAuth(caller): AgentAuth) -> ApiResult<Json<Inbox>> {
    let brand_id = &caller.brand_id;
    let skills = skill_names(&state.store.skills(brand_id).await?);
    let masker = state.fanout.masker(brand_id).await?;
    let mut items = Vec::new();
    for conversation in state.store.agent_conversations(brand_id, caller.staff_id).await? {
        let activity = state.store.activity(brand_id, conversation.id, conversation.agent_read_seq).await?;
        let consumer = state.store.consumer(brand_id, conversation.consumer_id).await?;
        let char_limit = Channel::parse(&conversation.channel).unwrap_or(Channel::InApp).max_chars(Side::Agent);
        items.push(InboxItem {
            skill: conversation.skill_id.and_then(|id| skills.get(&id).cloned()),
            consumer: consumer.map(Consumer::from),
            last_message: activity.last_message.map(|message| shown(&message, &masker, Audience::Agents)),
            unread: activity.unread,
            waiting_since: activity.waiting_since,
            char_limit,
            conversation: conversation.into(),
        });
    }
    items.sort_by_key(|item| (item.waiting_since.unwrap_or(Millis::MAX), item.conversation.opened_at));
    Ok(Json(Inbox { items }))
}

fn skill_names(skills: &[switchboard_store::Skill]) -> HashMap<i64, String> {
    skills.iter().map(|skill| (skill.id, skill.name.clone())).collect()
}

/// An agent as colleagues see them.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RosterAgent {
    pub id: i64,
    pub name: String,
    /// Availability as routing uses it: the chosen one while connected, else `offline`.
    pub state: AgentState,
    /// At least one of the agent's sockets (workspace tabs, API clients) is connected.
    pub connected: bool,
    /// Open conversations held now.
    pub load: u32,
    pub max_concurrent: i64,
    pub skills: Vec<i64>,
}

/// Who and where a conversation can be transferred to.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Roster {
    /// Active users who take conversations (capacity above zero), by name.
    pub agents: Vec<RosterAgent>,
    pub skills: Vec<Skill>,
}

/// Agents with state and load, and skills: the transfer picker.
#[utoipa::path(get, path = "/api/v1/roster", tag = "workspace", responses((status = 200, body = Roster)))]
async fn roster(State(state): State<AppState>, AgentAuth(caller): AgentAuth) -> ApiResult<Json<Roster>> {
    let users = state.store.users(&caller.brand_id).await?;
    let skills = state.store.skills(&caller.brand_id).await?;
    let floor = state.engines.floor(&caller.brand_id, Vec::new()).await;
    let views: HashMap<i64, &switchboard_core::desk::AgentFloor> =
        floor.agents.iter().map(|view| (view.agent, view)).collect();
    let mut agents: Vec<RosterAgent> = users
        .into_iter()
        .filter(|user| !user.disabled && user.max_concurrent > 0)
        .map(|user| RosterAgent {
            load: views.get(&user.id).map_or(0, |view| view.load),
            state: views.get(&user.id).map_or(AgentState::Offline, |view| view.presence.state),
            connected: views.get(&user.id).is_some_and(|view| view.presence.connected),
            id: user.id,
            name: user.name,
            max_concurrent: user.max_concurrent,
            skills: user.skills,
        })
        .collect();
    agents.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Json(Roster { agents, skills: types::all(skills) }))
}

// ----- transfer ----------------------------------------------------------------------------

/// Where to send the conversation: `skill_id`, or `agent_id`, or neither (back to its queue).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferRequest {
    pub skill_id: Option<i64>,
    pub agent_id: Option<i64>,
}

/// Transfers an open conversation to a skill's queue, to a named agent (who must be online
/// with free capacity), or back to its queue (`{}`; the agent who gives it back is not
/// offered it again). The holding agent or a manager may do it.
#[utoipa::path(post, path = "/api/v1/conversations/{conversation_id}/transfer", tag = "workspace",
    params(("conversation_id" = i64, Path)), request_body = TransferRequest,
    responses((status = 200, body = Conversation), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn transfer(
    State(state): State<AppState>,
    AgentAuth(caller): AgentAuth,
    P(conversation_id): P<i64>,
    Body(request): Body<TransferRequest>,
) -> ApiResult<Json<Conversation>> {
    let target = match (request.skill_id, request.agent_id) {
        (Some(_), Some(_)) => return Err(ApiError::bad_request("give skill_id or agent_id, not both")),
        (Some(skill), None) => TransferTarget::Skill(Some(skill)),
        (None, Some(agent)) => TransferTarget::Agent(agent),
        (None, None) => TransferTarget::Queue,
    };
    Ok(Json(desk_ops::transfer(&state, Actor::caller(&caller), conversation_id, target).await?.into()))
}

// ----- close -------------------------------------------------------------------------------

/// Closes an open conversation, as the agent's `close` frame does: the consumer's sockets
/// and the holding agent's hear `conv` `closed`, and the consumer is offered the CSAT survey
/// when the brand asks for scores. The holding agent or a manager may do it; a conversation
/// the caller may not read is `conversation_not_found`, one already closed
/// `conversation_closed`.
#[utoipa::path(post, path = "/api/v1/conversations/{conversation_id}/close", tag = "workspace",
    params(("conversation_id" = i64, Path)),
    responses((status = 200, body = Conversation), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn close_conversation(
    State(state): State<AppState>,
    AgentAuth(caller): AgentAuth,
    P(conversation_id): P<i64>,
) -> ApiResult<Json<Conversation>> {
    match desk_ops::close(&state, Actor::caller(&caller), conversation_id, 0).await? {
        Closing::Closed(conversation) => Ok(Json(conversation.into())),
        Closing::AlreadyClosed(_) => Err(ApiError::code(ErrorCode::ConversationClosed)),
    }
}

// ----- queue and priority ------------------------------------------------------------------

/// The new priority of a conversation.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PriorityRequest {
    pub priority: ConversationPriority,
}

/// Sets an open conversation's priority (managers). A waiting conversation takes its new
/// place in the queue at once (urgent, then high, then normal; each oldest first) and keeps
/// its waiting time.
#[utoipa::path(post, path = "/api/v1/conversations/{conversation_id}/priority", tag = "workspace",
    params(("conversation_id" = i64, Path)), request_body = PriorityRequest,
    responses((status = 200, body = Conversation), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn set_priority(
    State(state): State<AppState>,
    ManagerAuth(caller): ManagerAuth,
    P(conversation_id): P<i64>,
    Body(request): Body<PriorityRequest>,
) -> ApiResult<Json<Conversation>> {
    let actor = Actor::caller(&caller);
    Ok(Json(desk_ops::set_priority(&state, actor, conversation_id, request.priority.into()).await?.into()))
}

/// A conversation waiting for an agent.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WaitingConversation {
    pub conversation_id: i64,
    pub consumer: Option<Consumer>,
    /// `null`: no particular skill.
    pub skill_id: Option<i64>,
    pub skill: Option<String>,
    pub priority: ConversationPriority,
    /// When it started waiting (kept across transfers).
    pub waiting_since: Millis,
    /// Being offered to this agent now (skills in offer mode).
    pub offered_to: Option<i64>,
}

/// The waiting conversations.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Queue {
    /// In serving order (those being offered first), at most 200.
    pub waiting: Vec<WaitingConversation>,
    /// All waiting conversations, also beyond the 200 listed.
    pub total: u32,
}

/// The brand's waiting conversations in the order they will be served (managers).
#[utoipa::path(get, path = "/api/v1/queue", tag = "reports", responses((status = 200, body = Queue), (status = 403, body = ErrorBody)))]
async fn queue(State(state): State<AppState>, ManagerAuth(caller): ManagerAuth) -> ApiResult<Json<Queue>> {
    const LISTED: usize = 200;
    let brand_id = &caller.brand_id;
    let waiting = state.engines.queue(brand_id).await;
    let names = skill_names(&state.store.skills(brand_id).await?);
    let mut listed = Vec::new();
    for entry in waiting.iter().take(LISTED) {
        let Some(conversation) = state.store.conversation(brand_id, entry.conversation).await? else { continue };
        let skill_id = (entry.skill != ANY_SKILL).then_some(entry.skill);
        listed.push(WaitingConversation {
            conversation_id: entry.conversation,
            consumer: state.store.consumer(brand_id, conversation.consumer_id).await?.map(Consumer::from),
            skill: skill_id.and_then(|id| names.get(&id).cloned()),
            skill_id,
            priority: entry.priority.into(),
            waiting_since: entry.since,
            offered_to: entry.offered_to,
        });
    }
    Ok(Json(Queue { waiting: listed, total: u32::try_from(waiting.len()).unwrap_or(u32::MAX) }))
}

// ----- dashboard ---------------------------------------------------------------------------

/// "Since when" for today's figures.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DashboardQuery {
    /// Start of the manager's day (ms since the epoch); default: midnight UTC.
    pub since: Option<Millis>,
}

/// Agents of a skill by state.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct StateCounts {
    pub online: u32,
    pub away: u32,
    pub back_soon: u32,
    pub offline: u32,
}

impl From<core_report::StateCounts> for StateCounts {
    fn from(counts: core_report::StateCounts) -> StateCounts {
        let core_report::StateCounts { online, away, back_soon, offline } = counts;
        StateCounts { online, away, back_soon, offline }
    }
}

/// One skill's queue and staffing.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SkillFloor {
    /// `null`: conversations routed to no particular skill.
    pub id: Option<i64>,
    pub name: String,
    pub queue_depth: u32,
    pub longest_wait_secs: Option<i64>,
    /// For a conversation arriving now; `null` when no online agent has the skill.
    pub estimated_wait_secs: Option<u32>,
    /// Open conversations (queued or assigned).
    pub open: i64,
    /// Agents with this skill by state.
    pub agents: StateCounts,
    /// Conversations held by online agents with this skill, and their capacity.
    pub load: u32,
    pub capacity: u32,
}

/// One agent's day.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AgentFloor {
    pub id: i64,
    pub name: String,
    /// Availability as routing uses it: the chosen one while connected, else `offline`.
    pub state: AgentState,
    /// The availability the agent chose.
    pub chosen_state: AgentState,
    /// At least one of the agent's sockets is connected.
    pub connected: bool,
    /// While disconnected (or offline) with conversations: when they return to the queue.
    pub grace_until: Option<Millis>,
    pub load: u32,
    pub max_concurrent: i64,
    pub skills: Vec<i64>,
    pub resolved_today: i64,
    pub avg_first_response_secs: Option<i64>,
    /// Offers (skills in offer mode) this agent declined today.
    pub offers_declined_today: i64,
    /// Offers this agent let expire today.
    pub offers_expired_today: i64,
}

/// CSAT answers: count per score 1–5.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CsatSummary {
    pub responses: i64,
    pub average: Option<f64>,
    pub distribution: [i64; 5],
}

impl From<core_report::CsatSummary> for CsatSummary {
    fn from(csat: core_report::CsatSummary) -> CsatSummary {
        let core_report::CsatSummary { responses, average, distribution } = csat;
        CsatSummary { responses, average, distribution }
    }
}

/// Brand-wide figures.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FloorTotals {
    pub queued: u32,
    pub open: i64,
    pub assigned: u32,
    pub resolved_today: i64,
    pub longest_wait_secs: Option<i64>,
    /// Conversations auto-closed since the start of the day.
    pub auto_closed_today: i64,
    /// Conversations opened outside business hours since the start of the day.
    pub off_hours_today: i64,
}

impl From<core_report::FloorTotals> for FloorTotals {
    fn from(totals: core_report::FloorTotals) -> FloorTotals {
        let core_report::FloorTotals { queued, open, assigned, resolved_today, longest_wait_secs } = totals;
        // The event-log counts are the handler's.
        FloorTotals {
            queued,
            open,
            assigned,
            resolved_today,
            longest_wait_secs,
            auto_closed_today: 0,
            off_hours_today: 0,
        }
    }
}

/// The live floor.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Dashboard {
    pub generated_at: Millis,
    pub since: Millis,
    pub skills: Vec<SkillFloor>,
    pub agents: Vec<AgentFloor>,
    pub csat: CsatSummary,
    pub totals: FloorTotals,
}

/// The manager's live view: per skill queue depth, longest and estimated wait, open
/// conversations and staffing; per agent state, load, resolved today and average first
/// response; CSAT today.
#[utoipa::path(get, path = "/api/v1/dashboard", tag = "reports", params(DashboardQuery),
    responses((status = 200, body = Dashboard), (status = 403, body = ErrorBody)))]
async fn dashboard(
    State(state): State<AppState>,
    ManagerAuth(caller): ManagerAuth,
    Q(query): Q<DashboardQuery>,
) -> ApiResult<Json<Dashboard>> {
    let now = now_ms();
    let since = core_report::dashboard_since(query.since, now).map_err(range_error)?;
    let brand_id = &caller.brand_id;
    let skills = state.store.skills(brand_id).await?;
    let users = state.store.users(brand_id).await?;
    let open_by_skill: HashMap<Option<i64>, i64> = state.store.open_by_skill(brand_id).await?.into_iter().collect();
    let days: HashMap<i64, switchboard_store::AgentDay> =
        state.store.agent_days(brand_id, since).await?.into_iter().collect();
    let csat = core_report::CsatSummary::from_distribution(state.store.csat_since(brand_id, since).await?).into();
    let declined: HashMap<i64, i64> =
        state.store.events_per_agent(brand_id, "offer_declined", since).await?.into_iter().collect();
    let expired: HashMap<i64, i64> =
        state.store.events_per_agent(brand_id, "offer_expired", since).await?.into_iter().collect();
    let mut skill_ids: Vec<i64> = skills.iter().map(|skill| skill.id).collect();
    skill_ids.push(ANY_SKILL);
    let floor = state.engines.floor(brand_id, skill_ids).await;
    let views: HashMap<i64, &switchboard_core::desk::AgentFloor> =
        floor.agents.iter().map(|view| (view.agent, view)).collect();

    let staffed: Vec<Staffed<'_>> = users
        .iter()
        .map(|user| {
            let view = views.get(&user.id);
            Staffed {
                skills: &user.skills,
                max_concurrent: user.max_concurrent,
                disabled: user.disabled,
                state: view.map_or(AgentState::Offline, |view| view.presence.state),
                load: view.map_or(0, |view| view.load),
            }
        })
        .collect();

    let mut rows: Vec<(Option<i64>, String)> = skills.iter().map(|s| (Some(s.id), s.name.clone())).collect();
    let unrouted_waiting = floor.skills.get(&ANY_SKILL).is_some_and(|skill| skill.queue.depth > 0);
    if open_by_skill.contains_key(&None) || unrouted_waiting {
        rows.push((None, "Unrouted".to_owned()));
    }
    let skill_floors = rows
        .into_iter()
        .map(|(id, name)| {
            let key = id.unwrap_or(ANY_SKILL);
            let skill_floor = floor.skills.get(&key).copied();
            let queue = skill_floor.map(|skill| skill.queue).unwrap_or_default();
            let staffing = Staffing::of(id, staffed.iter().copied());
            SkillFloor {
                queue_depth: u32::try_from(queue.depth).unwrap_or(u32::MAX),
                longest_wait_secs: core_report::wait_secs(queue.oldest, now),
                estimated_wait_secs: skill_floor.and_then(|skill| skill.eta_new),
                open: open_by_skill.get(&id).copied().unwrap_or(0),
                agents: staffing.agents.into(),
                load: staffing.load,
                capacity: staffing.capacity,
                id,
                name,
            }
        })
        .collect();
    let agents: Vec<AgentFloor> = users
        .iter()
        .filter(|user| !user.disabled && (user.max_concurrent > 0 || user.role == Role::Agent))
        .map(|user| {
            let view = views.get(&user.id);
            let day = days.get(&user.id).copied().unwrap_or_default();
            AgentFloor {
                id: user.id,
                name: user.name.clone(),
                state: view.map_or(AgentState::Offline, |view| view.presence.state),
                chosen_state: view.map_or(user.state, |view| view.presence.chosen),
                connected: view.is_some_and(|view| view.presence.connected),
                grace_until: view.and_then(|view| view.presence.grace_until),
                load: view.map_or(0, |view| view.load),
                max_concurrent: user.max_concurrent,
                skills: user.skills.clone(),
                resolved_today: day.resolved,
                avg_first_response_secs: core_report::avg_first_response_secs(day.responded, day.first_response_ms),
                offers_declined_today: declined.get(&user.id).copied().unwrap_or(0),
                offers_expired_today: expired.get(&user.id).copied().unwrap_or(0),
            }
        })
        .collect();
    let totals = core_report::FloorTotals::of(
        floor.skills.values().map(|skill| skill.queue),
        open_by_skill.values().copied(),
        floor.agents.iter().map(|view| view.load),
        days.values().map(|day| day.resolved),
        now,
    )
    .into();
    let totals = FloorTotals {
        auto_closed_today: state.store.count_events(brand_id, "auto_closed", since, now + 1).await?,
        off_hours_today: state.store.count_events(brand_id, "off_hours", since, now + 1).await?,
        ..totals
    };
    Ok(Json(Dashboard { generated_at: now, since, skills: skill_floors, agents, csat, totals }))
}

// ----- reports -----------------------------------------------------------------------------

/// A report's range.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// Start, inclusive (ms since the epoch).
    pub from: Millis,
    /// End, exclusive; at most 92 days after `from`.
    pub to: Millis,
    /// The viewer's offset from UTC in minutes (east positive, e.g. 60 for CET): hour
    /// buckets start on the viewer's full hours. Default 0.
    pub tz_offset: Option<i64>,
}

impl ReportQuery {
    fn range(&self) -> ApiResult<ReportRange> {
        ReportRange::new(self.from, self.to, self.tz_offset).map_err(range_error)
    }
}

fn range_error(error: RangeError) -> ApiError {
    ApiError::bad_request(error.to_string())
}

/// Conversations opened and closed in one hour.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HourBucket {
    /// Start of the hour (ms since the epoch).
    pub hour: Millis,
    pub opened: u32,
    pub closed: u32,
}

impl From<core_report::HourBucket> for HourBucket {
    fn from(bucket: core_report::HourBucket) -> HourBucket {
        let core_report::HourBucket { hour, opened, closed } = bucket;
        HourBucket { hour, opened, closed }
    }
}

/// A histogram bar.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Bucket {
    pub label: String,
    pub count: u32,
}

/// A duration distribution.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Durations {
    pub count: u32,
    pub avg_secs: Option<i64>,
    pub p50_secs: Option<i64>,
    pub p90_secs: Option<i64>,
    pub histogram: Vec<Bucket>,
}

impl From<core_report::Durations> for Durations {
    fn from(durations: core_report::Durations) -> Durations {
        let core_report::Durations { count, avg_secs, p50_secs, p90_secs, histogram } = durations;
        let histogram =
            histogram.into_iter().map(|bucket| Bucket { label: bucket.label, count: bucket.count }).collect();
        Durations { count, avg_secs, p50_secs, p90_secs, histogram }
    }
}

/// A history report.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Report {
    pub from: Millis,
    pub to: Millis,
    /// Conversations opened in the range.
    pub opened: u32,
    /// Conversations closed in the range.
    pub closed: u32,
    /// Of those, auto-closed (the consumer stopped answering).
    pub auto_closed: u32,
    /// Conversations opened in the range outside their skill's business hours.
    pub off_hours_arrivals: u32,
    pub hourly: Vec<HourBucket>,
    /// Opened → first agent message, for conversations first answered in the range.
    pub first_response: Durations,
    /// Opened → closed, for conversations closed in the range.
    pub resolution: Durations,
    /// Answers of conversations closed in the range.
    pub csat: CsatSummary,
}

impl From<core_report::Report> for Report {
    fn from(report: core_report::Report) -> Report {
        let core_report::Report { from, to, opened, closed, auto_closed, hourly, first_response, resolution, csat } =
            report;
        Report {
            from,
            to,
            opened,
            closed,
            auto_closed,
            // Counted from the event log by the handler.
            off_hours_arrivals: 0,
            hourly: hourly.into_iter().map(HourBucket::from).collect(),
            first_response: first_response.into(),
            resolution: resolution.into(),
            csat: csat.into(),
        }
    }
}

async fn report_rows(
    state: &AppState,
    caller: &Caller,
    range: ReportRange,
) -> ApiResult<Vec<(switchboard_store::Conversation, Option<String>)>> {
    let rows = state
        .store
        .conversations_touching(&caller.brand_id, range.from(), range.to(), MAX_REPORT_CONVERSATIONS, now_ms())
        .await?;
    if rows.len() >= MAX_REPORT_CONVERSATIONS as usize {
        return Err(ApiError::bad_request(format!(
            "the range holds more than {MAX_REPORT_CONVERSATIONS} conversations; choose a shorter range"
        )));
    }
    Ok(rows)
}

/// Conversations per hour, first-response and resolution times, and CSAT over a range.
#[utoipa::path(get, path = "/api/v1/reports", tag = "reports", params(ReportQuery),
    responses((status = 200, body = Report), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn report(
    State(state): State<AppState>,
    ManagerAuth(caller): ManagerAuth,
    Q(query): Q<ReportQuery>,
) -> ApiResult<Json<Report>> {
    let range = query.range()?;
    let rows = report_rows(&state, &caller, range).await?;
    let times = rows.iter().map(|(conversation, _)| ConversationTimes {
        opened_at: conversation.opened_at,
        first_response_at: conversation.first_response_at,
        closed_at: conversation.closed_at,
        csat_score: conversation.csat_score,
        auto_closed: conversation.auto_closed,
    });
    let mut report: Report = core_report::Report::of(range, times).into();
    let arrivals = state.store.count_events(&caller.brand_id, "off_hours", range.from(), range.to()).await?;
    report.off_hours_arrivals = u32::try_from(arrivals).unwrap_or(u32::MAX);
    Ok(Json(report))
}

/// Conversations opened or closed in the range as CSV (one row each, UTC times, durations
/// in seconds), for spreadsheets.
#[utoipa::path(get, path = "/api/v1/reports/conversations.csv", tag = "reports", params(ReportQuery),
    responses((status = 200, body = String, content_type = "text/csv"), (status = 400, body = ErrorBody)))]
async fn report_csv(
    State(state): State<AppState>,
    ManagerAuth(caller): ManagerAuth,
    Q(query): Q<ReportQuery>,
) -> ApiResult<Response> {
    let rows = report_rows(&state, &caller, query.range()?).await?;
    let agents: HashMap<i64, String> =
        state.store.users(&caller.brand_id).await?.into_iter().map(|user| (user.id, user.name)).collect();
    let skills = skill_names(&state.store.skills(&caller.brand_id).await?);
    // The brand's own consumer ids (JWT `sub`, or `anon:<id>`), not our internal row ids.
    let consumer_ids = state.store.consumer_external_ids_touching(&caller.brand_id, query.from, query.to).await?;
    let mut out = String::from(
        "conversation_id,opened_at,closed_at,status,channel,app_id,skill,agent,consumer_id,consumer_name,closed_by,\
         first_response_secs,resolution_secs,csat_score,csat_comment\r\n",
    );
    for (c, consumer_name) in &rows {
        let fields = [
            c.id.to_string(),
            iso8601(Some(c.opened_at)),
            iso8601(c.closed_at),
            c.status.as_str().to_owned(),
            c.channel.clone(),
            c.app_id.clone(),
            c.skill_id.and_then(|id| skills.get(&id).cloned()).unwrap_or_default(),
            c.agent_id.and_then(|id| agents.get(&id).cloned()).unwrap_or_default(),
            consumer_ids.get(&c.consumer_id).cloned().unwrap_or_default(),
            consumer_name.clone().unwrap_or_default(),
            if c.auto_closed {
                "auto".to_owned()
            } else {
                c.closed_by.map(|side| closed_by(side).to_owned()).unwrap_or_default()
            },
            c.first_response_at.map(|at| ((at - c.opened_at) / 1000).to_string()).unwrap_or_default(),
            c.closed_at.map(|at| ((at - c.opened_at) / 1000).to_string()).unwrap_or_default(),
            c.csat_score.map(|score| score.to_string()).unwrap_or_default(),
            c.csat_comment.clone().unwrap_or_default(),
        ];
        let line: Vec<String> = fields.iter().map(|field| csv_field(field)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    let day = |ms: Millis| iso8601(Some(ms)).get(..10).unwrap_or_default().to_owned();
    let name = format!("conversations-{}-{}.csv", day(query.from), day(query.to - 1));
    let mut response = ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], out).into_response();
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        response.headers_mut().insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

fn closed_by(side: Side) -> &'static str {
    match side {
        Side::Consumer => "consumer",
        Side::Agent => "agent",
        Side::System => "system",
    }
}

/// RFC 3339 in UTC, seconds precision; empty for `None`.
pub(crate) fn iso8601(ms: Option<Millis>) -> String {
    let Some(ms) = ms else { return String::new() };
    let format = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .and_then(|at| at.format(&format).ok())
        .unwrap_or_default()
}

/// One CSV field (RFC 4180 quoting). Text that a spreadsheet would run as a formula
/// (`=`, `+`, `-`, `@`, or a TAB or CR before one, first) is prefixed with `'` (OWASP's
/// CSV-injection advice).
fn csv_field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) && value.parse::<f64>().is_err() {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if value.contains([',', '"', '\n', '\r']) { format!("\"{}\"", value.replace('"', "\"\"")) } else { value }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_field("-5"), "-5", "numbers stay numbers");
        assert_eq!(csv_field("\t=1+1"), "'\t=1+1");
        assert_eq!(csv_field("\r=1+1"), "\"'\r=1+1\"");
    }

    #[test]
    fn iso8601_is_utc_to_the_second() {
        assert_eq!(iso8601(Some(1_764_104_400_000)), "2025-11-25T21:00:00Z");
        assert_eq!(iso8601(None), "");
    }
}
