//! The arithmetic of the manager's dashboard and history reports, without IO: range rules,
//! hour buckets in the viewer's time zone, duration percentiles and histograms, CSAT
//! summaries, per-skill staffing and the brand's totals. The server reads the rows (store)
//! and the floor (engine), hands them here with `now` as a parameter, and turns the results
//! into its REST types.

use switchboard_protocol::{AgentState, Millis};

use crate::ids::SkillId;
use crate::routing::QueueSummary;

/// One hour in milliseconds.
pub const HOUR_MS: Millis = 3_600_000;
/// One day in milliseconds.
pub const DAY_MS: Millis = 24 * HOUR_MS;
/// Longest report range, in days.
pub const MAX_REPORT_DAYS: i64 = 92;
/// 9999-12-31T23:59:59.999Z: the last moment reports accept.
pub const LAST_MILLISECOND: Millis = 253_402_300_799_999;
/// Largest time zone offset a report accepts, in minutes (UTC+14 / UTC−14).
pub const MAX_TZ_OFFSET_MINUTES: i64 = 14 * 60;
/// How far back the dashboard's "today" may start.
pub const MAX_DASHBOARD_SPAN_MS: Millis = 2 * DAY_MS;

/// Why a report range or a dashboard start was refused. The texts are the API's messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    /// `from` or `to` outside 1970..=9999.
    #[error("from and to must be between 1970 and 9999 (milliseconds since the epoch)")]
    OutOfBounds,
    /// `to` not after `from`.
    #[error("to must be after from")]
    Empty,
    /// More than [`MAX_REPORT_DAYS`].
    #[error("a report covers at most {MAX_REPORT_DAYS} days")]
    TooLong,
    /// A time zone offset beyond ±14 hours.
    #[error("tz_offset must be -840 to 840 minutes")]
    TzOffset,
    /// A dashboard start in the future or more than 48 hours ago.
    #[error("since must be within the last 48 hours (the start of today)")]
    DashboardSince,
}

/// A checked report range: `from` inclusive, `to` exclusive, and the viewer's offset from UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportRange {
    from: Millis,
    to: Millis,
    tz_offset_minutes: i64,
}

impl ReportRange {
    /// Checks a requested range: within 1970..=9999, `to` after `from`, at most
    /// [`MAX_REPORT_DAYS`] long, and a time zone offset (minutes east of UTC, default 0)
    /// within ±840.
    pub fn new(from: Millis, to: Millis, tz_offset_minutes: Option<i64>) -> Result<ReportRange, RangeError> {
        if from < 0 || to > LAST_MILLISECOND {
            return Err(RangeError::OutOfBounds);
        }
        if to <= from {
            return Err(RangeError::Empty);
        }
        if to - from > MAX_REPORT_DAYS * DAY_MS {
            return Err(RangeError::TooLong);
        }
        let tz_offset_minutes = tz_offset_minutes.unwrap_or(0);
        if tz_offset_minutes.abs() > MAX_TZ_OFFSET_MINUTES {
            return Err(RangeError::TzOffset);
        }
        Ok(ReportRange { from, to, tz_offset_minutes })
    }

    /// Start, inclusive.
    pub fn from(self) -> Millis {
        self.from
    }

    /// End, exclusive.
    pub fn to(self) -> Millis {
        self.to
    }

    /// Whether `at` falls in the range.
    pub fn contains(self, at: Millis) -> bool {
        at >= self.from && at < self.to
    }

    /// The start of the viewer's hour that holds `at`.
    fn hour_of(self, at: Millis) -> Millis {
        let offset = self.tz_offset_minutes * 60_000;
        (at + offset).div_euclid(HOUR_MS) * HOUR_MS - offset
    }
}

/// The start of the dashboard's "today": `since` if given (it must lie within the last 48
/// hours), else midnight UTC of `now`.
pub fn dashboard_since(since: Option<Millis>, now: Millis) -> Result<Millis, RangeError> {
    let since = since.unwrap_or(now - now.rem_euclid(DAY_MS));
    if since > now || now.saturating_sub(since) > MAX_DASHBOARD_SPAN_MS {
        return Err(RangeError::DashboardSince);
    }
    Ok(since)
}

/// CSAT answers: count per score 1–5.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CsatSummary {
    /// Answers counted.
    pub responses: i64,
    /// Mean score, rounded to two decimals; `None` without answers.
    pub average: Option<f64>,
    /// Answers per score, 1 first.
    pub distribution: [i64; 5],
}

impl CsatSummary {
    /// The summary of a count per score (index 0 is score 1).
    pub fn from_distribution(distribution: [i64; 5]) -> CsatSummary {
        let responses: i64 = distribution.iter().sum();
        let points: i64 = distribution.iter().zip(1..).map(|(count, score)| count * score).sum();
        let average = (responses > 0).then(|| (points as f64 / responses as f64 * 100.0).round() / 100.0);
        CsatSummary { responses, average, distribution }
    }
}

/// A histogram bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    /// What the bar counts, e.g. `1–5 min`.
    pub label: String,
    /// How many values fell in it.
    pub count: u32,
}

/// A duration distribution, in seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Durations {
    /// Values counted.
    pub count: u32,
    /// Mean, truncated; `None` without values.
    pub avg_secs: Option<i64>,
    /// Median (nearest rank).
    pub p50_secs: Option<i64>,
    /// 90th percentile (nearest rank).
    pub p90_secs: Option<i64>,
    /// One bar per edge (values below it and at or above the previous one), then `last`.
    pub histogram: Vec<Bucket>,
}

/// The histogram of first-response times: (upper edge in seconds, label), then the rest.
pub const FIRST_RESPONSE_BUCKETS: (&[(i64, &str)], &str) =
    (&[(60, "< 1 min"), (300, "1–5 min"), (900, "5–15 min"), (3_600, "15–60 min"), (14_400, "1–4 h")], "> 4 h");
/// The histogram of resolution times: (upper edge in seconds, label), then the rest.
pub const RESOLUTION_BUCKETS: (&[(i64, &str)], &str) =
    (&[(300, "< 5 min"), (900, "5–15 min"), (3_600, "15–60 min"), (14_400, "1–4 h"), (86_400, "4–24 h")], "> 1 day");

impl Durations {
    /// Percentiles and a histogram of `secs`: a value goes to the first edge it is below,
    /// else to the `last` bar.
    pub fn of(mut secs: Vec<i64>, edges: &[(i64, &str)], last: &str) -> Durations {
        secs.sort_unstable();
        let pick = |q: f64| secs.get(((secs.len() as f64 - 1.0) * q).round() as usize).copied();
        let mut histogram: Vec<Bucket> =
            edges.iter().map(|(_, label)| Bucket { label: (*label).to_owned(), count: 0 }).collect();
        histogram.push(Bucket { label: last.to_owned(), count: 0 });
        for value in &secs {
            let index = edges.iter().position(|(edge, _)| value < edge).unwrap_or(edges.len());
            histogram[index].count += 1;
        }
        Durations {
            count: u32::try_from(secs.len()).unwrap_or(u32::MAX),
            avg_secs: (!secs.is_empty()).then(|| secs.iter().sum::<i64>() / secs.len() as i64),
            p50_secs: pick(0.5),
            p90_secs: pick(0.9),
            histogram,
        }
    }
}

/// Conversations opened and closed in one of the viewer's hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HourBucket {
    /// Start of the hour (ms since the epoch).
    pub hour: Millis,
    /// Conversations opened in it.
    pub opened: u32,
    /// Conversations closed in it.
    pub closed: u32,
}

/// What a report needs of one conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConversationTimes {
    /// When it opened.
    pub opened_at: Millis,
    /// When an agent first answered.
    pub first_response_at: Option<Millis>,
    /// When it closed.
    pub closed_at: Option<Millis>,
    /// The consumer's CSAT score; anything outside 1–5 is ignored.
    pub csat_score: Option<i64>,
    /// It closed because the consumer stopped answering.
    pub auto_closed: bool,
}

/// A history report over a [`ReportRange`].
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Start, inclusive.
    pub from: Millis,
    /// End, exclusive.
    pub to: Millis,
    /// Conversations opened in the range.
    pub opened: u32,
    /// Conversations closed in the range.
    pub closed: u32,
    /// Of those, auto-closed (the consumer stopped answering).
    pub auto_closed: u32,
    /// One bucket per viewer's hour that overlaps the range, the first one starting at or
    /// before `from`.
    pub hourly: Vec<HourBucket>,
    /// Opened → first agent message, for conversations first answered in the range.
    pub first_response: Durations,
    /// Opened → closed, for conversations closed in the range.
    pub resolution: Durations,
    /// Answers of conversations closed in the range.
    pub csat: CsatSummary,
}

impl Report {
    /// The report of the conversations that touch `range` (opened, answered or closed in it;
    /// others are simply not counted). Each figure counts what happened inside the range: a
    /// conversation opened before it and closed in it counts as closed, not opened.
    pub fn of(range: ReportRange, conversations: impl IntoIterator<Item = ConversationTimes>) -> Report {
        let first_hour = range.hour_of(range.from);
        let mut hourly: Vec<HourBucket> = (0..)
            .map(|i| first_hour + i * HOUR_MS)
            .take_while(|hour| *hour < range.to)
            .map(|hour| HourBucket { hour, opened: 0, closed: 0 })
            .collect();
        let bucket = |at: Millis| usize::try_from((range.hour_of(at) - first_hour) / HOUR_MS).ok();
        let (mut opened, mut closed, mut auto_closed) = (0, 0, 0);
        let (mut first_responses, mut resolutions) = (Vec::new(), Vec::new());
        let mut csat = [0; 5];
        for conversation in conversations {
            if range.contains(conversation.opened_at) {
                opened += 1;
                if let Some(slot) = bucket(conversation.opened_at).and_then(|i| hourly.get_mut(i)) {
                    slot.opened += 1;
                }
            }
            if let Some(at) = conversation.first_response_at.filter(|at| range.contains(*at)) {
                first_responses.push((at - conversation.opened_at) / 1000);
            }
            if let Some(at) = conversation.closed_at.filter(|at| range.contains(*at)) {
                closed += 1;
                auto_closed += u32::from(conversation.auto_closed);
                if let Some(slot) = bucket(at).and_then(|i| hourly.get_mut(i)) {
                    slot.closed += 1;
                }
                resolutions.push((at - conversation.opened_at) / 1000);
                let score = conversation.csat_score.and_then(|s| usize::try_from(s - 1).ok()).filter(|i| *i < 5);
                if let Some(score) = score {
                    csat[score] += 1;
                }
            }
        }
        let (edges, last) = FIRST_RESPONSE_BUCKETS;
        let first_response = Durations::of(first_responses, edges, last);
        let (edges, last) = RESOLUTION_BUCKETS;
        let resolution = Durations::of(resolutions, edges, last);
        Report {
            from: range.from,
            to: range.to,
            opened,
            closed,
            auto_closed,
            hourly,
            first_response,
            resolution,
            csat: CsatSummary::from_distribution(csat),
        }
    }
}

// ----- dashboard -------------------------------------------------------------------------

/// Agents by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateCounts {
    /// Online.
    pub online: u32,
    /// Away.
    pub away: u32,
    /// Back soon.
    pub back_soon: u32,
    /// Offline (or not connected).
    pub offline: u32,
}

/// A staff member as the dashboard counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Staffed<'a> {
    /// Their skills.
    pub skills: &'a [SkillId],
    /// Their capacity (zero: they take no conversations).
    pub max_concurrent: i64,
    /// A disabled user is not counted.
    pub disabled: bool,
    /// Availability as routing uses it (offline when not connected).
    pub state: AgentState,
    /// Conversations held now.
    pub load: u32,
}

/// One skill's staffing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Staffing {
    /// Agents with the skill by state.
    pub agents: StateCounts,
    /// Conversations held by the online agents with the skill.
    pub load: u32,
    /// Their capacity.
    pub capacity: u32,
}

impl Staffing {
    /// The staffing of `skill` (`None`: every agent) among active staff who take
    /// conversations.
    pub fn of<'a>(skill: Option<SkillId>, staff: impl IntoIterator<Item = Staffed<'a>>) -> Staffing {
        let mut staffing = Staffing::default();
        for member in staff.into_iter().filter(|member| !member.disabled && member.max_concurrent > 0) {
            if skill.is_some_and(|skill| !member.skills.contains(&skill)) {
                continue;
            }
            let counts = &mut staffing.agents;
            match member.state {
                AgentState::Online => counts.online += 1,
                AgentState::Away => counts.away += 1,
                AgentState::BackSoon => counts.back_soon += 1,
                AgentState::Offline => counts.offline += 1,
            }
            if member.state == AgentState::Online {
                staffing.load += member.load;
                staffing.capacity += u32::try_from(member.max_concurrent).unwrap_or(0);
            }
        }
        staffing
    }
}

/// How long the oldest of a queue has waited at `now`, in whole seconds.
pub fn wait_secs(oldest: Option<Millis>, now: Millis) -> Option<i64> {
    oldest.map(|oldest| (now - oldest) / 1000)
}

/// An agent's average first response in whole seconds, from the sum over the conversations
/// they first answered; `None` when they answered none.
pub fn avg_first_response_secs(responded: i64, first_response_ms: i64) -> Option<i64> {
    (responded > 0).then(|| first_response_ms / responded / 1000)
}

/// Brand-wide figures of the live floor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FloorTotals {
    /// Conversations waiting in any queue.
    pub queued: u32,
    /// Open conversations.
    pub open: i64,
    /// Conversations held by agents.
    pub assigned: u32,
    /// Conversations resolved since the start of the day.
    pub resolved_today: i64,
    /// The longest wait of any queue now.
    pub longest_wait_secs: Option<i64>,
}

impl FloorTotals {
    /// Sums the queues, the open conversations per skill, the agents' loads and their
    /// resolved counts.
    pub fn of(
        queues: impl IntoIterator<Item = QueueSummary>,
        open_per_skill: impl IntoIterator<Item = i64>,
        loads: impl IntoIterator<Item = u32>,
        resolved_per_agent: impl IntoIterator<Item = i64>,
        now: Millis,
    ) -> FloorTotals {
        let (mut queued, mut oldest) = (0usize, None::<Millis>);
        for queue in queues {
            queued += queue.depth;
            oldest = match (oldest, queue.oldest) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        FloorTotals {
            queued: u32::try_from(queued).unwrap_or(u32::MAX),
            open: open_per_skill.into_iter().sum(),
            assigned: loads.into_iter().sum(),
            resolved_today: resolved_per_agent.into_iter().sum(),
            longest_wait_secs: wait_secs(oldest, now),
        }
    }
}

/// One entry of a conversation's event log, as transfers are derived from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoggedEvent<'a> {
    /// `opened`, `assigned`, `queued`, `closed`, … (the store's event kinds).
    pub kind: &'a str,
    pub agent_id: Option<i64>,
    pub skill_id: Option<i64>,
    pub at: Millis,
}

/// Where a transfer sent a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferTo {
    /// Straight to this agent.
    Agent(i64),
    /// Into the queue of this skill (`None`: no particular skill).
    Queue(Option<i64>),
}

/// A move of a conversation away from the agent holding it: to a colleague, or back to a
/// queue (a transfer to a skill, a "back to queue", or the agent's grace period ending).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transfer {
    pub at: Millis,
    /// The agent who held it.
    pub from_agent: i64,
    pub to: TransferTo,
}

/// The transfers in a conversation's event log (oldest first): every `assigned` to another
/// agent and every `queued` while an agent held it. The first assignment is not a transfer,
/// nor is an assignment out of a queue (that is routing).
pub fn transfers<'a>(events: impl IntoIterator<Item = LoggedEvent<'a>>) -> Vec<Transfer> {
    let mut holder: Option<i64> = None;
    let mut moves = Vec::new();
    for event in events {
        match event.kind {
            "assigned" => {
                if let (Some(from_agent), Some(to)) = (holder, event.agent_id)
                    && from_agent != to
                {
                    moves.push(Transfer { at: event.at, from_agent, to: TransferTo::Agent(to) });
                }
                holder = event.agent_id;
            }
            "queued" => {
                if let Some(from_agent) = holder.take() {
                    moves.push(Transfer { at: event.at, from_agent, to: TransferTo::Queue(event.skill_id) });
                }
            }
            "closed" | "auto_closed" => holder = None,
            _ => {}
        }
    }
    moves
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Millis = 1_764_104_400_000; // 2025-11-25T21:00:00Z, a full UTC hour.

    fn times(opened_at: Millis, closed_at: Option<Millis>) -> ConversationTimes {
        ConversationTimes { opened_at, first_response_at: None, closed_at, csat_score: None, auto_closed: false }
    }

    #[test]
    fn durations_give_percentiles_and_buckets() {
        let d = Durations::of(vec![30, 90, 400, 10, 20_000], &[(60, "< 1 min"), (300, "1–5 min")], "> 5 min");
        assert_eq!((d.count, d.p50_secs, d.p90_secs), (5, Some(90), Some(20_000)));
        assert_eq!(d.histogram.iter().map(|b| b.count).collect::<Vec<_>>(), vec![2, 1, 2]);
        assert_eq!(Durations::of(Vec::new(), &[], "all").avg_secs, None);
    }

    #[test]
    fn ranges_are_checked_with_the_api_messages() {
        let check = |from, to, tz| ReportRange::new(from, to, tz).map(|_| ()).map_err(|e| e.to_string());
        assert_eq!(check(0, HOUR_MS, None), Ok(()));
        assert_eq!(check(-1, HOUR_MS, None).unwrap_err(), RangeError::OutOfBounds.to_string());
        assert_eq!(check(0, LAST_MILLISECOND + 1, None), Err(RangeError::OutOfBounds.to_string()));
        assert_eq!(check(HOUR_MS, HOUR_MS, None), Err("to must be after from".to_owned()));
        assert_eq!(check(0, 92 * DAY_MS, None), Ok(()));
        assert_eq!(check(0, 92 * DAY_MS + 1, None), Err("a report covers at most 92 days".to_owned()));
        assert_eq!(check(0, HOUR_MS, Some(840)), Ok(()));
        assert_eq!(check(0, HOUR_MS, Some(-841)), Err("tz_offset must be -840 to 840 minutes".to_owned()));
    }

    #[test]
    fn a_conversation_opened_before_the_range_and_closed_in_it_counts_as_closed() {
        let range = ReportRange::new(T0, T0 + 2 * HOUR_MS, None).unwrap();
        let report = Report::of(
            range,
            [
                times(T0 - HOUR_MS, Some(T0 + 10 * 60_000)),
                times(T0 + 5 * 60_000, None),
                times(T0 + HOUR_MS, Some(T0 + 3 * HOUR_MS)),
            ],
        );
        assert_eq!((report.opened, report.closed), (2, 1));
        let hourly: Vec<(u32, u32)> = report.hourly.iter().map(|b| (b.opened, b.closed)).collect();
        assert_eq!(hourly, vec![(1, 1), (1, 0)]);
        assert_eq!(report.resolution.count, 1);
        assert_eq!(report.resolution.avg_secs, Some(70 * 60));
    }

    #[test]
    fn hour_buckets_start_at_the_viewers_full_hours() {
        // UTC+1: the viewer's hours are full UTC hours too.
        let range = ReportRange::new(T0 + 30 * 60_000, T0 + 2 * HOUR_MS, Some(60)).unwrap();
        let report = Report::of(range, [times(T0 + 40 * 60_000, None)]);
        let hours: Vec<Millis> = report.hourly.iter().map(|b| b.hour).collect();
        assert_eq!(hours, vec![T0, T0 + HOUR_MS]);
        assert_eq!(report.hourly[0].opened, 1);

        // UTC−5:30: the viewer's hours start at half past UTC hours.
        let range = ReportRange::new(T0, T0 + 2 * HOUR_MS, Some(-330)).unwrap();
        let report = Report::of(range, [times(T0 + 20 * 60_000, None), times(T0 + 40 * 60_000, None)]);
        let half = 30 * 60_000;
        let hours: Vec<Millis> = report.hourly.iter().map(|b| b.hour).collect();
        assert_eq!(hours, vec![T0 - half, T0 + half, T0 + HOUR_MS + half]);
        let opened: Vec<u32> = report.hourly.iter().map(|b| b.opened).collect();
        assert_eq!(opened, vec![1, 1, 0]);
    }

    #[test]
    fn csat_out_of_range_is_ignored() {
        let range = ReportRange::new(T0, T0 + HOUR_MS, None).unwrap();
        let closed = |score| ConversationTimes { csat_score: Some(score), ..times(T0, Some(T0 + 60_000)) };
        let report = Report::of(range, [closed(5), closed(4), closed(0), closed(6), closed(-3)]);
        assert_eq!(report.closed, 5);
        assert_eq!(report.csat.distribution, [0, 0, 0, 1, 1]);
        assert_eq!((report.csat.responses, report.csat.average), (2, Some(4.5)));
        assert_eq!(CsatSummary::from_distribution([0; 5]).average, None);
    }

    #[test]
    fn auto_closed_conversations_are_counted_among_the_closed() {
        let range = ReportRange::new(T0, T0 + HOUR_MS, None).unwrap();
        let auto = ConversationTimes { auto_closed: true, ..times(T0, Some(T0 + 60_000)) };
        let before = ConversationTimes { auto_closed: true, ..times(T0 - HOUR_MS, Some(T0 - 1)) };
        let report = Report::of(range, [auto, times(T0, Some(T0 + 1)), before]);
        assert_eq!((report.closed, report.auto_closed), (2, 1), "only what closed in the range");
    }

    #[test]
    fn staffing_counts_active_agents_of_the_skill_and_online_capacity() {
        const SALES: &[SkillId] = &[1];
        const BOTH: &[SkillId] = &[1, 2];
        let member = |skills: &'static [SkillId], state, load| Staffed {
            skills,
            max_concurrent: 3,
            disabled: false,
            state,
            load,
        };
        let staff = [
            member(SALES, AgentState::Online, 2),
            member(BOTH, AgentState::Away, 1),
            member(BOTH, AgentState::Online, 1),
            Staffed { disabled: true, ..member(BOTH, AgentState::Online, 0) },
            Staffed { max_concurrent: 0, ..member(BOTH, AgentState::Online, 0) },
        ];
        let support = Staffing::of(Some(2), staff);
        assert_eq!(support.agents, StateCounts { online: 1, away: 1, back_soon: 0, offline: 0 });
        assert_eq!((support.load, support.capacity), (1, 3));
        let everyone = Staffing::of(None, staff);
        assert_eq!((everyone.agents.online, everyone.load, everyone.capacity), (2, 3, 6));
    }

    #[test]
    fn totals_and_averages() {
        let queues =
            [QueueSummary { depth: 2, oldest: Some(T0) }, QueueSummary { depth: 1, oldest: Some(T0 - 60_000) }];
        let totals = FloorTotals::of(queues, [3, 4], [1, 2], [5], T0 + 1_000);
        assert_eq!(
            totals,
            FloorTotals { queued: 3, open: 7, assigned: 3, resolved_today: 5, longest_wait_secs: Some(61) }
        );
        assert_eq!(FloorTotals::of([], [], [], [], T0).longest_wait_secs, None);
        assert_eq!(avg_first_response_secs(0, 0), None);
        assert_eq!(avg_first_response_secs(2, 90_000), Some(45));
        assert_eq!(dashboard_since(None, T0 + 5), Ok(T0 - T0.rem_euclid(DAY_MS)));
        assert_eq!(dashboard_since(Some(T0 + 6), T0 + 5), Err(RangeError::DashboardSince));
        assert_eq!(dashboard_since(Some(T0 - 2 * DAY_MS - 1), T0), Err(RangeError::DashboardSince));
    }

    #[test]
    fn transfers_are_the_moves_away_from_a_holding_agent() {
        let event = |kind, agent_id, skill_id, at| LoggedEvent { kind, agent_id, skill_id, at };
        let log = [
            event("opened", None, Some(1), 1),
            event("assigned", Some(10), None, 2),
            event("assigned", Some(10), None, 3),
            event("assigned", Some(11), None, 4),
            event("queued", None, Some(2), 5),
            event("queued", None, Some(3), 6),
            event("assigned", Some(12), None, 7),
            event("closed", Some(12), Some(2), 8),
        ];
        assert_eq!(
            transfers(log),
            vec![
                Transfer { at: 4, from_agent: 10, to: TransferTo::Agent(11) },
                Transfer { at: 5, from_agent: 11, to: TransferTo::Queue(Some(2)) },
            ],
            "re-assigning the holder, a queue move while waiting, and routing out of a queue are not transfers"
        );
        assert_eq!(transfers([]), vec![]);
    }
}
