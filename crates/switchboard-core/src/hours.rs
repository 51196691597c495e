//! Business hours: when a skill (or, by default, its brand) is open, in its own time zone.
//!
//! [`BusinessHours`] is the raw shape, as the REST API and the store hold it (JSON): an IANA
//! time zone, weekly [`Shift`]s and dated exceptions ([`DateRule`]). [`BusinessHours::validate`]
//! checks it once, at the boundary, and compiles it into a [`Schedule`], which answers the
//! questions the desk asks: [`Schedule::is_open`], [`Schedule::next_change`],
//! [`Schedule::next_open`], [`Schedule::open_millis_between`] (the estimated wait skips closed
//! periods with it) and [`Schedule::describe_at`] (the admin's "what would happen now" view). A
//! skill and brand that set no hours use [`Schedule::always`]. Like the rest of core this is
//! sans-IO: every instant is a [`Millis`] parameter, and the time-zone rules come from the tz
//! database bundled into the binary by jiff (`tzdb-bundle-always`; the lookup goes to
//! `TimeZoneDatabase::bundled()` explicitly, so no file is read even if another crate in the
//! build turned on jiff's system-database features).
//!
//! # The rules
//! - A shift or special range runs from `start` to `end` on the local wall clock. `start` is
//!   `00:00` to `23:59`, `end` is `00:00` to `24:00`; `end` before `start` is an overnight
//!   shift ending the next day (`22:00`–`06:00`), `24:00` is the midnight that ends the day, and
//!   `end` equal to `start` is rejected as zero-length (a whole day is `00:00`–`24:00`).
//! - Shifts and ranges are half-open, `[start, end)`: open at `start`, closed at `end`.
//!   Touching or overlapping open periods (an exception next to a neighbour's overnight shift,
//!   `00:00`–`24:00` on consecutive days) merge: the state only changes where it really flips.
//! - **An exception replaces the shifts that start on its date**, and its ranges start on that
//!   date. So a Friday `22:00`–`06:00` shift still runs into a Saturday holiday's morning, and a
//!   holiday's own overnight special range runs into the next day. Empty `hours` = closed all day.
//! - Wall-clock times become instants by the rule "the first instant at which the local clock
//!   reads that time or later". In the spring-forward gap a time that does not exist (02:30 in
//!   Europe/Berlin on the last Sunday of March) is the first instant after the gap (03:00 CEST);
//!   this is where we differ from jiff's "compatible" disambiguation, which would pick 03:30.
//!   In the fall-back fold a time that occurs twice is its earlier occurrence, as "compatible"
//!   does. A shift entirely inside a gap has no length that day and is skipped.
//! - [`Schedule::next_change`] looks at most [`SEARCH_DAYS`] local days ahead.

use std::collections::BTreeMap;
use std::fmt;

use jiff::civil::Date;
use jiff::tz::{AmbiguousOffset, TimeZone, TimeZoneDatabase};
use jiff::{Timestamp, ToSpan, ZonedDateTime};
use serde::{Deserialize, Serialize};

use crate::Millis;

/// Most shifts on one weekday, and most ranges on one exception date.
pub const MAX_SHIFTS_PER_DAY: usize = 20;

/// Most exceptions (holidays and special dates) in one [`BusinessHours`].
pub const MAX_EXCEPTIONS: usize = 500;

/// How many local days ahead [`Schedule::next_change`] looks before answering `None`.
pub const SEARCH_DAYS: i32 = 400;

const MINUTES_PER_DAY: u16 = 24 * 60;

/// Business hours as configured: the REST and storage shape (JSON).
///
/// ```json
/// { "time_zone": "Europe/Berlin",
///   "weekly": [{ "day": "monday", "start": "09:00", "end": "17:00" }],
///   "exceptions": [{ "date": "2026-12-25", "name": "Christmas", "hours": [] }] }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusinessHours {
    /// IANA time zone name, e.g. `"Europe/Berlin"`.
    pub time_zone: String,
    /// The regular week; several shifts a day are allowed, in any order.
    #[serde(default)]
    pub weekly: Vec<Shift>,
    /// Holidays and special dates; each replaces the shifts starting on its date.
    #[serde(default)]
    pub exceptions: Vec<DateRule>,
}

/// One regular opening on a weekday, `start` to `end` (`"HH:MM"`, see the module docs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shift {
    /// The day the shift starts.
    pub day: Weekday,
    /// `"00:00"` to `"23:59"`.
    pub start: String,
    /// `"00:00"` to `"24:00"`; at or before `start` it is on the next day.
    pub end: String,
}

/// A dated exception: a holiday (`hours` empty) or special hours replacing that day's shifts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DateRule {
    /// `"YYYY-MM-DD"`, a local date in the schedule's time zone.
    pub date: String,
    /// What it is called ("Christmas"), for the admin's eyes only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The openings starting on that date; empty means closed all day.
    pub hours: Vec<TimeRange>,
}

/// An opening on an exception date, with the same `start`/`end` rules as a [`Shift`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeRange {
    /// `"00:00"` to `"23:59"`.
    pub start: String,
    /// `"00:00"` to `"24:00"`; at or before `start` it is on the next day.
    pub end: String,
}

/// A day of the week; serialized lowercase (`"monday"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Weekday {
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
    Sunday,
}

impl Weekday {
    /// Monday to Sunday.
    pub const ALL: [Weekday; 7] = [
        Weekday::Monday,
        Weekday::Tuesday,
        Weekday::Wednesday,
        Weekday::Thursday,
        Weekday::Friday,
        Weekday::Saturday,
        Weekday::Sunday,
    ];

    /// The lowercase name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Weekday::Monday => "monday",
            Weekday::Tuesday => "tuesday",
            Weekday::Wednesday => "wednesday",
            Weekday::Thursday => "thursday",
            Weekday::Friday => "friday",
            Weekday::Saturday => "saturday",
            Weekday::Sunday => "sunday",
        }
    }

    /// 0 for Monday to 6 for Sunday.
    fn index(self) -> usize {
        self as usize
    }

    fn of(date: Date) -> Weekday {
        Weekday::ALL[usize::from(date.weekday().to_monday_zero_offset().unsigned_abs())]
    }
}

impl fmt::Display for Weekday {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where in a [`BusinessHours`] an error is, as its message names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    /// The `number`-th shift (from 1, in the order given) on `day`.
    Shift { day: Weekday, number: usize },
    /// The `number`-th range (from 1) of the exception for `date`.
    Exception { date: String, number: usize },
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Shift { day, number } => write!(f, "shift {number} on {day}"),
            Place::Exception { date, number } => write!(f, "hours {number} on {date}"),
        }
    }
}

/// Why a [`BusinessHours`] is not a valid schedule; each message names the value at fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HoursError {
    #[error("time zone {0:?} is not in the tz database")]
    UnknownTimeZone(String),
    #[error("{place}: start {value:?} is not a time (HH:MM, 00:00 to 23:59)")]
    BadStart { place: Place, value: String },
    #[error("{place}: end {value:?} is not a time (HH:MM, 00:00 to 24:00)")]
    BadEnd { place: Place, value: String },
    #[error("exception {number}: date {value:?} is not a date (YYYY-MM-DD)")]
    BadDate { number: usize, value: String },
    #[error("{place}: starts and ends at {value:?} (a whole day is 00:00 to 24:00)")]
    ZeroLength { place: Place, value: String },
    #[error("{place} ({range}) overlaps {other} ({other_range})")]
    Overlap { place: Place, range: String, other: Place, other_range: String },
    #[error("{day} has {count} shifts, more than the limit of {MAX_SHIFTS_PER_DAY}")]
    TooManyShifts { day: Weekday, count: usize },
    #[error("{date} has {count} ranges, more than the limit of {MAX_SHIFTS_PER_DAY}")]
    TooManyRanges { date: String, count: usize },
    #[error("{count} exceptions, more than the limit of {MAX_EXCEPTIONS}")]
    TooManyExceptions { count: usize },
    #[error("exceptions {first} and {second} are both for {date}")]
    DuplicateDate { date: String, first: usize, second: usize },
}

impl BusinessHours {
    /// Checks everything and compiles the schedule, resolving the time zone once.
    pub fn validate(&self) -> Result<Schedule, HoursError> {
        let time_zone = bundled_tz_database()
            .get(&self.time_zone)
            .map_err(|_| HoursError::UnknownTimeZone(self.time_zone.clone()))?;

        let mut weekly: [Vec<Range>; 7] = Default::default();
        // Per weekday: the place and text of each shift, for overlap messages.
        let mut weekly_places: [Vec<(Place, String)>; 7] = Default::default();
        for shift in &self.weekly {
            let day = shift.day.index();
            let place = Place::Shift { day: shift.day, number: weekly[day].len() + 1 };
            let range = Range::parse(&place, &shift.start, &shift.end)?;
            weekly[day].push(range);
            weekly_places[day].push((place, format!("{}–{}", shift.start, shift.end)));
        }
        for day in Weekday::ALL {
            let count = weekly[day.index()].len();
            if count > MAX_SHIFTS_PER_DAY {
                return Err(HoursError::TooManyShifts { day, count });
            }
        }
        check_weekly_overlaps(&weekly, &weekly_places)?;

        if self.exceptions.len() > MAX_EXCEPTIONS {
            return Err(HoursError::TooManyExceptions { count: self.exceptions.len() });
        }
        // Date → (exception number, ranges).
        let mut exceptions: BTreeMap<Date, (usize, Vec<Range>)> = BTreeMap::new();
        for (idx, rule) in self.exceptions.iter().enumerate() {
            let number = idx + 1;
            let date =
                parse_date(&rule.date).ok_or_else(|| HoursError::BadDate { number, value: rule.date.clone() })?;
            if let Some((first, _)) = exceptions.get(&date) {
                return Err(HoursError::DuplicateDate { date: rule.date.clone(), first: *first, second: number });
            }
            if rule.hours.len() > MAX_SHIFTS_PER_DAY {
                return Err(HoursError::TooManyRanges { date: rule.date.clone(), count: rule.hours.len() });
            }
            let mut ranges: Vec<(Range, Place, String)> = Vec::with_capacity(rule.hours.len());
            for (idx, hours) in rule.hours.iter().enumerate() {
                let place = Place::Exception { date: rule.date.clone(), number: idx + 1 };
                let range = Range::parse(&place, &hours.start, &hours.end)?;
                // Ranges of one date live in the same two-day minute line, so a plain interval
                // test finds overlaps (an overnight range included).
                if let Some((_, other, other_range)) = ranges.iter().find(|(earlier, ..)| range.overlaps(earlier)) {
                    return Err(HoursError::Overlap {
                        place,
                        range: format!("{}–{}", hours.start, hours.end),
                        other: other.clone(),
                        other_range: other_range.clone(),
                    });
                }
                ranges.push((range, place, format!("{}–{}", hours.start, hours.end)));
            }
            let mut ranges: Vec<Range> = ranges.into_iter().map(|(range, ..)| range).collect();
            ranges.sort_by_key(|range| range.start);
            exceptions.insert(date, (number, ranges));
        }

        for ranges in &mut weekly {
            ranges.sort_by_key(|range| range.start);
        }
        let exceptions = exceptions.into_iter().map(|(date, (_, ranges))| (date, ranges)).collect();
        Ok(Schedule { time_zone, rules: Rules::Hours { weekly, exceptions } })
    }
}

/// The bundled copy of the tz database, never the system's: core reads no file.
fn bundled_tz_database() -> &'static TimeZoneDatabase {
    static DATABASE: std::sync::OnceLock<TimeZoneDatabase> = std::sync::OnceLock::new();
    DATABASE.get_or_init(TimeZoneDatabase::bundled)
}

/// Overlaps between any two weekly shifts, on a circular week (Sunday night runs into Monday).
fn check_weekly_overlaps(weekly: &[Vec<Range>; 7], places: &[Vec<(Place, String)>; 7]) -> Result<(), HoursError> {
    const WEEK: u32 = 7 * MINUTES_PER_DAY as u32;
    let mut all: Vec<(u32, u32, &(Place, String))> = Vec::new();
    for (day, ranges) in weekly.iter().enumerate() {
        for (range, place) in ranges.iter().zip(&places[day]) {
            let start = day as u32 * u32::from(MINUTES_PER_DAY) + u32::from(range.start);
            all.push((start, u32::from(range.end - range.start), place));
        }
    }
    for (idx, &(start, length, (place, text))) in all.iter().enumerate() {
        for &(other_start, other_length, (other, other_text)) in &all[..idx] {
            // Two arcs of a circle overlap when either starts inside the other.
            let overlaps =
                (other_start + WEEK - start) % WEEK < length || (start + WEEK - other_start) % WEEK < other_length;
            if overlaps {
                return Err(HoursError::Overlap {
                    place: place.clone(),
                    range: text.clone(),
                    other: other.clone(),
                    other_range: other_text.clone(),
                });
            }
        }
    }
    Ok(())
}

/// Strictly `YYYY-MM-DD`, a real date (so 2027-02-29 is refused and 2028-02-29 is not).
fn parse_date(text: &str) -> Option<Date> {
    let bytes = text.as_bytes();
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    let year: i16 = digits(&text[0..4])?.try_into().ok()?;
    let month: i8 = digits(&text[5..7])?.try_into().ok()?;
    let day: i8 = digits(&text[8..10])?.try_into().ok()?;
    Date::new(year, month, day).ok()
}

/// Minutes since midnight of a strict `HH:MM`, up to and including `24:00`.
fn parse_time(text: &str) -> Option<u16> {
    let bytes = text.as_bytes();
    if bytes.len() != 5 || bytes[2] != b':' {
        return None;
    }
    let hours = digits(&text[0..2])?;
    let minutes = digits(&text[3..5])?;
    if minutes >= 60 || hours > 24 || (hours == 24 && minutes != 0) {
        return None;
    }
    Some((hours * 60 + minutes) as u16)
}

fn digits(text: &str) -> Option<u32> {
    text.bytes().all(|byte| byte.is_ascii_digit()).then(|| text.parse().ok())?
}

/// A compiled opening: minutes after midnight of the day it starts; `end` may reach into the
/// next day (up to 2 × 1440).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Range {
    start: u16,
    end: u16,
}

impl Range {
    fn parse(place: &Place, start: &str, end: &str) -> Result<Range, HoursError> {
        let start_minute = parse_time(start)
            .filter(|&minute| minute < MINUTES_PER_DAY)
            .ok_or_else(|| HoursError::BadStart { place: place.clone(), value: start.to_owned() })?;
        let end_minute =
            parse_time(end).ok_or_else(|| HoursError::BadEnd { place: place.clone(), value: end.to_owned() })?;
        if end_minute == start_minute {
            return Err(HoursError::ZeroLength { place: place.clone(), value: start.to_owned() });
        }
        let end_minute = if end_minute < start_minute { end_minute + MINUTES_PER_DAY } else { end_minute };
        Ok(Range { start: start_minute, end: end_minute })
    }

    fn overlaps(&self, other: &Range) -> bool {
        self.start < other.end && other.start < self.end
    }
}

/// A validated, compiled schedule with its time zone resolved; cheap to clone.
#[derive(Clone, Debug)]
pub struct Schedule {
    time_zone: TimeZone,
    rules: Rules,
}

#[derive(Clone, Debug)]
enum Rules {
    /// Open 24/7, the default when no hours are set.
    Always,
    Hours {
        /// Monday to Sunday, each sorted by start.
        weekly: [Vec<Range>; 7],
        /// Sorted by start; replaces `weekly` for the shifts starting on the date.
        exceptions: BTreeMap<Date, Vec<Range>>,
    },
}

/// What the schedule says at an instant, for the admin's "what would happen now" view.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// Open at that instant.
    pub open: bool,
    /// When that changes ([`Schedule::next_change`]); `None`: not within [`SEARCH_DAYS`].
    pub until: Option<Millis>,
    /// The local wall-clock time, `"2026-12-03 09:15 CET"`: date, 24-hour time to the minute
    /// and the zone's abbreviation at that instant (or its offset, `"+0530"`-style, for zones
    /// without one).
    pub local_time: String,
}

impl Schedule {
    /// Open all the time (UTC): the default when neither the skill nor its brand sets hours.
    pub fn always() -> Schedule {
        Schedule { time_zone: TimeZone::UTC, rules: Rules::Always }
    }

    /// Whether `at` falls in an opening (`[start, end)`).
    pub fn is_open(&self, at: Millis) -> bool {
        match &self.rules {
            Rules::Always => true,
            Rules::Hours { .. } => {
                let date = self.local_date(at);
                // An opening lasts under 48 local hours, so only those starting on the two
                // days before `at`'s local date or on it can hold `at`.
                let from = date.checked_sub(2.days()).unwrap_or(Date::MIN);
                self.raw_intervals(from, date).take_while(|&(start, _)| start <= at).any(|(_, end)| at < end)
            }
        }
    }

    /// The next instant after `at` at which [`Schedule::is_open`] flips, looking at most
    /// [`SEARCH_DAYS`] local days ahead; `None` when it does not flip in that time (24/7 or
    /// never open). The worst case, a schedule open all week, converts every shift of the
    /// [`SEARCH_DAYS`] days (well under a millisecond); callers may keep the answer until it passes.
    pub fn next_change(&self, at: Millis) -> Option<Millis> {
        if matches!(self.rules, Rules::Always) {
            return None;
        }
        let date = self.local_date(at);
        let from = date.checked_sub(2.days()).unwrap_or(Date::MIN);
        let through = date.checked_add(SEARCH_DAYS.days()).unwrap_or(Date::MAX);
        // No opening starting after `through` starts before this instant, so an opening found
        // to end before it really ends there.
        let horizon = through.tomorrow().ok().and_then(|day| self.instant(day, 0)).unwrap_or(Millis::MAX);
        for (start, end) in merged(self.raw_intervals(from, through)) {
            if end <= at {
                continue;
            }
            if start > at {
                return Some(start);
            }
            return (end < horizon).then_some(end);
        }
        None
    }

    /// `at` if open then, else when it next opens (within [`SEARCH_DAYS`]); `None`: never.
    pub fn next_open(&self, at: Millis) -> Option<Millis> {
        if self.is_open(at) { Some(at) } else { self.next_change(at) }
    }

    /// How many milliseconds of `[from, to)` are open; 0 when `to <= from`. The cost is linear
    /// in the local days the span covers (a few microseconds a day), so keep spans realistic.
    pub fn open_millis_between(&self, from: Millis, to: Millis) -> Millis {
        if to <= from {
            return 0;
        }
        if matches!(self.rules, Rules::Always) {
            return to.saturating_sub(from);
        }
        let first = self.local_date(from).checked_sub(2.days()).unwrap_or(Date::MIN);
        let last = self.local_date(to);
        merged(self.raw_intervals(first, last))
            .take_while(|&(start, _)| start < to)
            .map(|(start, end)| (end.min(to) - start.max(from)).max(0))
            .sum()
    }

    /// Open or not at `at`, until when, and the local time there (see [`Status`]).
    pub fn describe_at(&self, at: Millis) -> Status {
        let local = ZonedDateTime::new(timestamp(at), self.time_zone.clone());
        Status {
            open: self.is_open(at),
            until: self.next_change(at),
            local_time: local.strftime("%Y-%m-%d %H:%M %Z").to_string(),
        }
    }

    fn local_date(&self, at: Millis) -> Date {
        self.time_zone.to_datetime(timestamp(at)).date()
    }

    /// The openings (as `[start, end)` instants) starting on the local dates `from..=through`,
    /// in start order: within a date by sorting, across dates because the wall-clock to
    /// instant rule is monotonic. Neither merged nor free of overlaps.
    fn raw_intervals(&self, from: Date, through: Date) -> impl Iterator<Item = (Millis, Millis)> + '_ {
        let dates =
            std::iter::successors(Some(from), |date| date.tomorrow().ok()).take_while(move |&date| date <= through);
        dates.flat_map(move |date| {
            self.ranges_on(date).iter().filter_map(move |range| {
                let start = self.instant(date, range.start)?;
                let end = self.instant(date, range.end)?;
                // A range inside a spring-forward gap has no length that day.
                (start < end).then_some((start, end))
            })
        })
    }

    fn ranges_on(&self, date: Date) -> &[Range] {
        match &self.rules {
            Rules::Always => &[],
            Rules::Hours { weekly, exceptions } => match exceptions.get(&date) {
                Some(ranges) => ranges,
                None => &weekly[Weekday::of(date).index()],
            },
        }
    }

    /// The first instant at which the local clock reads `minute` minutes after midnight of
    /// `date` (possibly the next day's) or later: the earlier occurrence in a fold, the end of
    /// the gap in a gap. `None` beyond jiff's range (years ±9999).
    fn instant(&self, date: Date, minute: u16) -> Option<Millis> {
        let date = date.checked_add(i32::from(minute / MINUTES_PER_DAY).days()).ok()?;
        let minute = minute % MINUTES_PER_DAY;
        let local = date.at((minute / 60) as i8, (minute % 60) as i8, 0, 0);
        let ambiguous = self.time_zone.to_ambiguous_timestamp(local);
        let earlier = ambiguous.earlier().ok()?;
        let instant = match ambiguous.offset() {
            // `earlier` reads the time with the offset after the gap, which lands before the
            // transition; the transition itself is the first instant the clock passes it.
            AmbiguousOffset::Gap { .. } => self.time_zone.following(earlier).next()?.timestamp(),
            AmbiguousOffset::Unambiguous { .. } | AmbiguousOffset::Fold { .. } => earlier,
        };
        Some(instant.as_millisecond())
    }
}

/// `at` as a jiff timestamp, saturating at jiff's range (years ±9999).
fn timestamp(at: Millis) -> Timestamp {
    Timestamp::from_millisecond(at).unwrap_or(if at < 0 { Timestamp::MIN } else { Timestamp::MAX })
}

/// Merges touching and overlapping intervals of a start-ordered stream.
fn merged(intervals: impl Iterator<Item = (Millis, Millis)>) -> impl Iterator<Item = (Millis, Millis)> {
    let mut intervals = intervals.peekable();
    std::iter::from_fn(move || {
        let (start, mut end) = intervals.next()?;
        while let Some(&(next_start, next_end)) = intervals.peek() {
            if next_start > end {
                break;
            }
            end = end.max(next_end);
            intervals.next();
        }
        Some((start, end))
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const HOUR: Millis = 3_600_000;
    const DAY: Millis = 24 * HOUR;

    /// An RFC 3339 instant (with its offset) as epoch milliseconds.
    fn t(text: &str) -> Millis {
        text.parse::<Timestamp>().unwrap().as_millisecond()
    }

    fn shift(day: Weekday, start: &str, end: &str) -> Shift {
        Shift { day, start: start.to_owned(), end: end.to_owned() }
    }

    fn exception(date: &str, hours: &[(&str, &str)]) -> DateRule {
        DateRule {
            date: date.to_owned(),
            name: None,
            hours: hours
                .iter()
                .map(|(start, end)| TimeRange { start: (*start).to_owned(), end: (*end).to_owned() })
                .collect(),
        }
    }

    fn hours(time_zone: &str, weekly: Vec<Shift>, exceptions: Vec<DateRule>) -> BusinessHours {
        BusinessHours { time_zone: time_zone.to_owned(), weekly, exceptions }
    }

    fn schedule(time_zone: &str, weekly: Vec<Shift>, exceptions: Vec<DateRule>) -> Schedule {
        hours(time_zone, weekly, exceptions).validate().unwrap()
    }

    fn office_week(time_zone: &str, exceptions: Vec<DateRule>) -> Schedule {
        use Weekday::*;
        let weekly = [Monday, Tuesday, Wednesday, Thursday, Friday].map(|day| shift(day, "09:00", "17:00")).to_vec();
        schedule(time_zone, weekly, exceptions)
    }

    /// Open exactly on `[opens, closes)`, looking from half an hour before to half an hour after.
    fn assert_opening(schedule: &Schedule, opens: Millis, closes: Millis) {
        assert!(!schedule.is_open(opens - 1), "closed just before {opens}");
        assert!(schedule.is_open(opens), "open at {opens}");
        assert!(schedule.is_open(closes - 1), "open just before {closes}");
        assert!(!schedule.is_open(closes), "closed at {closes}");
        assert_eq!(schedule.next_change(opens - HOUR / 2), Some(opens));
        assert_eq!(schedule.next_change(opens), Some(closes));
        assert_eq!(schedule.open_millis_between(opens - HOUR / 2, closes + HOUR / 2), closes - opens);
    }

    #[test]
    fn berlin_spring_forward_starts_a_shift_in_the_gap_at_the_end_of_the_gap() {
        // 2026-03-29, last Sunday of March: 02:00 CET jumps to 03:00 CEST (01:00Z).
        let schedule = schedule("Europe/Berlin", vec![shift(Weekday::Sunday, "02:30", "10:00")], vec![]);
        assert_opening(&schedule, t("2026-03-29T03:00+02:00"), t("2026-03-29T10:00+02:00"));
        // The Sunday before and after, no gap: 02:30 is 02:30.
        assert_opening(&schedule, t("2026-03-22T02:30+01:00"), t("2026-03-22T10:00+01:00"));
        assert_opening(&schedule, t("2026-04-05T02:30+02:00"), t("2026-04-05T10:00+02:00"));
        assert_eq!(schedule.next_open(t("2026-03-29T00:00Z")), Some(t("2026-03-29T01:00Z")));
    }

    #[test]
    fn berlin_fall_back_uses_the_earlier_of_a_time_that_occurs_twice() {
        // 2026-10-25: 03:00 CEST falls back to 02:00 CET, so 02:00–03:00 happens twice.
        let schedule = schedule("Europe/Berlin", vec![shift(Weekday::Sunday, "02:30", "04:00")], vec![]);
        assert_opening(&schedule, t("2026-10-25T02:30+02:00"), t("2026-10-25T04:00+01:00"));
        assert_eq!(schedule.open_millis_between(t("2026-10-25T00:00Z"), t("2026-10-26T00:00Z")), 5 * HOUR / 2);
    }

    #[test]
    fn new_york_spring_forward_and_fall_back() {
        // 2026-03-08: 02:00 EST jumps to 03:00 EDT; a shift starting at 02:15 opens at 03:00.
        let spring = schedule("America/New_York", vec![shift(Weekday::Sunday, "02:15", "05:00")], vec![]);
        assert_opening(&spring, t("2026-03-08T03:00-04:00"), t("2026-03-08T05:00-04:00"));
        assert_eq!(spring.open_millis_between(t("2026-03-08T00:00Z"), t("2026-03-09T00:00Z")), 2 * HOUR);
        // 2026-11-01: 02:00 EDT falls back to 01:00 EST; 01:30 is the first, EDT, one.
        let fall = schedule("America/New_York", vec![shift(Weekday::Sunday, "01:30", "03:00")], vec![]);
        assert_opening(&fall, t("2026-11-01T01:30-04:00"), t("2026-11-01T03:00-05:00"));
        assert_eq!(fall.open_millis_between(t("2026-11-01T00:00Z"), t("2026-11-02T00:00Z")), 5 * HOUR / 2);
    }

    #[test]
    fn a_shift_inside_the_gap_is_skipped_that_day() {
        let schedule = schedule("Europe/Berlin", vec![shift(Weekday::Sunday, "02:00", "02:45")], vec![]);
        assert_eq!(schedule.open_millis_between(t("2026-03-28T00:00Z"), t("2026-03-30T00:00Z")), 0);
        assert_eq!(schedule.next_open(t("2026-03-28T00:00Z")), Some(t("2026-04-05T02:00+02:00")));
    }

    #[test]
    fn an_overnight_shift_spanning_the_dst_change_is_an_hour_shorter_or_longer() {
        let schedule = schedule("Europe/Berlin", vec![shift(Weekday::Saturday, "22:00", "06:00")], vec![]);
        assert_opening(&schedule, t("2026-03-28T22:00+01:00"), t("2026-03-29T06:00+02:00"));
        assert_eq!(schedule.open_millis_between(t("2026-03-28T12:00Z"), t("2026-03-29T12:00Z")), 7 * HOUR);
        assert_opening(&schedule, t("2026-10-24T22:00+02:00"), t("2026-10-25T06:00+01:00"));
        assert_eq!(schedule.open_millis_between(t("2026-10-24T12:00Z"), t("2026-10-25T12:00Z")), 9 * HOUR);
        let new_york = schedule_ny_overnight();
        assert_eq!(new_york.open_millis_between(t("2026-03-07T12:00Z"), t("2026-03-08T18:00Z")), 7 * HOUR);
    }

    fn schedule_ny_overnight() -> Schedule {
        schedule("America/New_York", vec![shift(Weekday::Saturday, "22:00", "06:00")], vec![])
    }

    #[test]
    fn midnight_boundaries() {
        // Open all Monday, closed all Tuesday (2026-11-30 is a Monday).
        let monday = schedule("Europe/Berlin", vec![shift(Weekday::Monday, "00:00", "24:00")], vec![]);
        assert_opening(&monday, t("2026-11-30T00:00+01:00"), t("2026-12-01T00:00+01:00"));
        assert!(!monday.is_open(t("2026-12-01T12:00+01:00")));
        assert_eq!(monday.next_change(t("2026-12-01T00:00+01:00")), Some(t("2026-12-07T00:00+01:00")));
        // Monday and Tuesday whole days touch at midnight: one opening, no change at 00:00.
        let two_days = schedule(
            "Europe/Berlin",
            vec![shift(Weekday::Monday, "00:00", "24:00"), shift(Weekday::Tuesday, "00:00", "24:00")],
            vec![],
        );
        assert_opening(&two_days, t("2026-11-30T00:00+01:00"), t("2026-12-02T00:00+01:00"));
    }

    #[test]
    fn an_overnight_shift_runs_from_friday_into_saturday() {
        let schedule = schedule("Europe/Berlin", vec![shift(Weekday::Friday, "22:00", "06:00")], vec![]);
        assert_opening(&schedule, t("2026-12-04T22:00+01:00"), t("2026-12-05T06:00+01:00"));
        assert_eq!(schedule.next_change(t("2026-12-04T12:00+01:00")), Some(t("2026-12-04T22:00+01:00")));
        assert!(!schedule.is_open(t("2026-12-04T03:00+01:00")), "friday morning belongs to thursday, which has none");
    }

    #[test]
    fn holidays_close_and_special_dates_replace_the_day() {
        let schedule = office_week(
            "Europe/Berlin",
            vec![exception("2026-12-24", &[("09:00", "12:00")]), exception("2026-12-25", &[])],
        );
        assert_opening(&schedule, t("2026-12-24T09:00+01:00"), t("2026-12-24T12:00+01:00"));
        assert!(!schedule.is_open(t("2026-12-25T10:00+01:00")));
        assert!(schedule.is_open(t("2026-12-23T16:00+01:00")), "the day before is a normal thursday");
    }

    #[test]
    fn an_overnight_shift_into_a_holiday_still_runs_its_morning() {
        // The rule: an exception replaces the shifts that start on its date.
        let weekly = vec![shift(Weekday::Thursday, "22:00", "06:00"), shift(Weekday::Friday, "22:00", "06:00")];
        let friday_off = schedule("Europe/Berlin", weekly.clone(), vec![exception("2026-12-25", &[])]);
        assert_opening(&friday_off, t("2026-12-24T22:00+01:00"), t("2026-12-25T06:00+01:00"));
        assert!(!friday_off.is_open(t("2026-12-25T23:00+01:00")), "friday's own night shift is off");
        let thursday_off = schedule("Europe/Berlin", weekly, vec![exception("2026-12-24", &[])]);
        assert!(!thursday_off.is_open(t("2026-12-25T03:00+01:00")));
        assert_opening(&thursday_off, t("2026-12-25T22:00+01:00"), t("2026-12-26T06:00+01:00"));
        // A special overnight range on the holiday runs into the next day in turn.
        let special = schedule("Europe/Berlin", vec![], vec![exception("2026-12-31", &[("20:00", "02:00")])]);
        assert_opening(&special, t("2026-12-31T20:00+01:00"), t("2027-01-01T02:00+01:00"));
    }

    #[test]
    fn an_exception_next_to_an_overnight_shift_merges_with_it() {
        let schedule = schedule(
            "Europe/Berlin",
            vec![shift(Weekday::Thursday, "22:00", "06:00")],
            vec![exception("2026-12-25", &[("05:00", "09:00")])],
        );
        assert_opening(&schedule, t("2026-12-24T22:00+01:00"), t("2026-12-25T09:00+01:00"));
    }

    #[test]
    fn leap_day() {
        // 2028-02-29 is a Tuesday.
        let special = schedule("Europe/Berlin", vec![], vec![exception("2028-02-29", &[("10:00", "14:00")])]);
        assert_opening(&special, t("2028-02-29T10:00+01:00"), t("2028-02-29T14:00+01:00"));
        let weekly = schedule("Europe/Berlin", vec![shift(Weekday::Tuesday, "09:00", "17:00")], vec![]);
        assert_eq!(weekly.next_open(t("2028-02-28T12:00+01:00")), Some(t("2028-02-29T09:00+01:00")));
        assert_opening(&weekly, t("2028-02-29T09:00+01:00"), t("2028-02-29T17:00+01:00"));
        // A Thursday shift: the leap day shifts the weekdays, Thursday is 2028-03-02.
        let thursday = schedule("Europe/Berlin", vec![shift(Weekday::Thursday, "09:00", "17:00")], vec![]);
        assert_eq!(thursday.next_open(t("2028-02-28T12:00+01:00")), Some(t("2028-03-02T09:00+01:00")));
        assert!(!thursday.is_open(t("2028-02-29T12:00+01:00")));
    }

    #[test]
    fn next_change_and_next_open_across_a_holiday_weekend() {
        // Friday 2026-12-25 and Monday 2026-12-28 off: from Thursday 17:00 to Tuesday 09:00.
        let schedule = office_week("Europe/Berlin", vec![exception("2026-12-25", &[]), exception("2026-12-28", &[])]);
        let thursday_close = t("2026-12-24T17:00+01:00");
        let tuesday_open = t("2026-12-29T09:00+01:00");
        assert_eq!(schedule.next_change(t("2026-12-24T16:00+01:00")), Some(thursday_close));
        assert_eq!(schedule.next_open(t("2026-12-24T16:00+01:00")), Some(t("2026-12-24T16:00+01:00")));
        for at in [thursday_close, t("2026-12-25T10:00+01:00"), t("2026-12-27T23:59+01:00"), tuesday_open - 1] {
            assert_eq!(schedule.next_change(at), Some(tuesday_open));
            assert_eq!(schedule.next_open(at), Some(tuesday_open));
        }
        assert_eq!(schedule.next_change(tuesday_open), Some(t("2026-12-29T17:00+01:00")));
        assert_eq!(schedule.open_millis_between(thursday_close, tuesday_open), 0);
    }

    #[test]
    fn open_millis_between_over_a_week_is_forty_hours() {
        let schedule = office_week("America/New_York", vec![]);
        let monday = t("2026-11-30T00:00-05:00");
        assert_eq!(schedule.open_millis_between(monday, monday + 7 * DAY), 40 * HOUR);
        assert_eq!(schedule.open_millis_between(monday + 12 * HOUR, monday + 13 * HOUR), HOUR);
        assert_eq!(schedule.open_millis_between(monday + 16 * HOUR, monday + DAY + 10 * HOUR), 2 * HOUR);
        assert_eq!(schedule.open_millis_between(monday + DAY, monday), 0);
        // Four weeks, one with the DST change in it: still 40 open hours a week.
        let march = t("2026-03-02T00:00-05:00");
        assert_eq!(schedule.open_millis_between(march, march + 28 * DAY), 160 * HOUR);
    }

    #[test]
    fn always_and_never() {
        let always = Schedule::always();
        assert!(always.is_open(0) && always.is_open(t("2026-12-03T09:15Z")));
        assert_eq!(always.next_change(0), None);
        assert_eq!(always.next_open(5), Some(5));
        assert_eq!(always.open_millis_between(0, DAY), DAY);
        let never = schedule("Europe/Berlin", vec![], vec![]);
        assert!(!never.is_open(0));
        assert_eq!(never.next_change(0), None);
        assert_eq!(never.next_open(0), None);
        assert_eq!(never.open_millis_between(0, 7 * DAY), 0);
        // Every day whole: open, and no change within the search horizon.
        let all_week = schedule("Europe/Berlin", Weekday::ALL.map(|day| shift(day, "00:00", "24:00")).to_vec(), vec![]);
        assert!(all_week.is_open(t("2026-03-29T02:30+02:00")));
        assert_eq!(all_week.next_change(t("2026-12-03T09:15Z")), None);
        // …unless a holiday comes within it.
        let with_holiday = schedule(
            "Europe/Berlin",
            Weekday::ALL.map(|day| shift(day, "00:00", "24:00")).to_vec(),
            vec![exception("2027-06-01", &[])],
        );
        assert_eq!(with_holiday.next_change(t("2026-12-03T09:15Z")), Some(t("2027-06-01T00:00+02:00")));
        // Extreme instants do not panic.
        for at in [Millis::MIN, Millis::MAX, 0] {
            let _ = with_holiday.describe_at(at);
            let _ = with_holiday.open_millis_between(at, at.saturating_add(DAY));
        }
    }

    #[test]
    fn describe_at_shows_the_local_time_and_until_when() {
        let schedule = office_week("Europe/Berlin", vec![]);
        let status = schedule.describe_at(t("2026-12-03T09:15+01:00"));
        let expected =
            Status { open: true, until: Some(t("2026-12-03T17:00+01:00")), local_time: "2026-12-03 09:15 CET".into() };
        assert_eq!(status, expected);
        let summer = schedule.describe_at(t("2026-07-04T20:00Z"));
        assert_eq!(
            summer,
            Status {
                open: false,
                until: Some(t("2026-07-06T09:00+02:00")),
                local_time: "2026-07-04 22:00 CEST".into()
            }
        );
        assert_eq!(Schedule::always().describe_at(0).local_time, "1970-01-01 00:00 UTC");
    }

    /// Validates and returns the error message.
    fn check_error(business_hours: BusinessHours, expected: &str) {
        assert_eq!(business_hours.validate().unwrap_err().to_string(), expected);
    }

    #[test]
    fn validation_errors_name_the_value_and_the_limit() {
        use Weekday::*;
        check_error(hours("Europe/Berln", vec![], vec![]), r#"time zone "Europe/Berln" is not in the tz database"#);
        check_error(
            hours("Europe/Berlin", vec![shift(Monday, "08:00", "09:00"), shift(Monday, "10:00", "25:00")], vec![]),
            r#"shift 2 on monday: end "25:00" is not a time (HH:MM, 00:00 to 24:00)"#,
        );
        for bad_start in ["24:00", "9:00", "09:60", "09-00", " 9:00", "+9:00"] {
            check_error(
                hours("UTC", vec![shift(Tuesday, bad_start, "10:00")], vec![]),
                &format!(r#"shift 1 on tuesday: start "{bad_start}" is not a time (HH:MM, 00:00 to 23:59)"#),
            );
        }
        for bad_end in ["24:01", "", "1000"] {
            check_error(
                hours("UTC", vec![shift(Tuesday, "09:00", bad_end)], vec![]),
                &format!(r#"shift 1 on tuesday: end "{bad_end}" is not a time (HH:MM, 00:00 to 24:00)"#),
            );
        }
        for bad_date in ["2027-02-29", "2026-1-05", "2026-13-01", "26-01-05", "2026/01/05", "+02026-01-05"] {
            check_error(
                hours("UTC", vec![], vec![exception("2026-12-25", &[]), exception(bad_date, &[])]),
                &format!(r#"exception 2: date "{bad_date}" is not a date (YYYY-MM-DD)"#),
            );
        }
        check_error(
            hours("UTC", vec![shift(Monday, "09:00", "09:00")], vec![]),
            r#"shift 1 on monday: starts and ends at "09:00" (a whole day is 00:00 to 24:00)"#,
        );
        check_error(
            hours("UTC", vec![shift(Monday, "09:00", "17:00"), shift(Monday, "12:00", "13:00")], vec![]),
            "shift 2 on monday (12:00–13:00) overlaps shift 1 on monday (09:00–17:00)",
        );
        // Sunday night runs into Monday morning.
        check_error(
            hours("UTC", vec![shift(Monday, "05:00", "09:00"), shift(Sunday, "22:00", "06:00")], vec![]),
            "shift 1 on sunday (22:00–06:00) overlaps shift 1 on monday (05:00–09:00)",
        );
        check_error(
            hours("UTC", vec![], vec![exception("2026-12-24", &[("20:00", "10:00"), ("23:00", "23:30")])]),
            "hours 2 on 2026-12-24 (23:00–23:30) overlaps hours 1 on 2026-12-24 (20:00–10:00)",
        );
        check_error(
            hours("UTC", vec![], vec![exception("2026-12-24", &[("09:00", "09:00")])]),
            r#"hours 1 on 2026-12-24: starts and ends at "09:00" (a whole day is 00:00 to 24:00)"#,
        );
        let quarter_hours = |count: usize| {
            (0..count)
                .map(|idx| {
                    (format!("{:02}:{:02}", idx / 4, idx % 4 * 15), format!("{:02}:{:02}", idx / 4, idx % 4 * 15 + 10))
                })
                .collect::<Vec<_>>()
        };
        let many: Vec<Shift> =
            quarter_hours(21).into_iter().map(|(start, end)| shift(Wednesday, &start, &end)).collect();
        check_error(hours("UTC", many[..21].to_vec(), vec![]), "wednesday has 21 shifts, more than the limit of 20");
        assert!(hours("UTC", many[..20].to_vec(), vec![]).validate().is_ok());
        let ranges = quarter_hours(21);
        let ranges: Vec<(&str, &str)> = ranges.iter().map(|(start, end)| (start.as_str(), end.as_str())).collect();
        check_error(
            hours("UTC", vec![], vec![exception("2026-12-24", &ranges)]),
            "2026-12-24 has 21 ranges, more than the limit of 20",
        );
        let dates: Vec<DateRule> = (0..501)
            .map(|idx| {
                let date = Date::new(2026, 1, 1).unwrap().checked_add(idx.days()).unwrap();
                exception(&date.to_string(), &[])
            })
            .collect();
        assert!(hours("UTC", vec![], dates[..500].to_vec()).validate().is_ok());
        check_error(hours("UTC", vec![], dates), "501 exceptions, more than the limit of 500");
        check_error(
            hours(
                "UTC",
                vec![],
                vec![
                    exception("2026-12-25", &[]),
                    exception("2026-12-26", &[]),
                    exception("2026-12-25", &[("10:00", "12:00")]),
                ],
            ),
            "exceptions 1 and 3 are both for 2026-12-25",
        );
    }

    #[test]
    fn validation_accepts_the_edges() {
        use Weekday::*;
        let edges = hours(
            "europe/berlin",
            vec![
                shift(Monday, "00:00", "24:00"),
                shift(Tuesday, "23:59", "00:00"),
                shift(Wednesday, "12:00", "13:00"),
                shift(Wednesday, "13:00", "14:00"),
            ],
            vec![exception("2028-02-29", &[("00:00", "24:00")])],
        );
        assert!(edges.validate().is_ok(), "time zone names are case-insensitive; touching shifts are fine");
    }

    #[test]
    fn serde_round_trip_of_the_json_shape() {
        let json = r#"{
            "time_zone": "Europe/Berlin",
            "weekly": [
                { "day": "monday", "start": "09:00", "end": "17:00" },
                { "day": "friday", "start": "22:00", "end": "06:00" },
                { "day": "sunday", "start": "00:00", "end": "24:00" }
            ],
            "exceptions": [
                { "date": "2026-12-25", "name": "Christmas", "hours": [] },
                { "date": "2028-02-29", "hours": [{ "start": "10:00", "end": "14:00" }] }
            ]
        }"#;
        let parsed: BusinessHours = serde_json::from_str(json).unwrap();
        let expected = hours(
            "Europe/Berlin",
            vec![
                shift(Weekday::Monday, "09:00", "17:00"),
                shift(Weekday::Friday, "22:00", "06:00"),
                shift(Weekday::Sunday, "00:00", "24:00"),
            ],
            vec![
                DateRule { name: Some("Christmas".into()), ..exception("2026-12-25", &[]) },
                exception("2028-02-29", &[("10:00", "14:00")]),
            ],
        );
        assert_eq!(parsed, expected);
        let written = serde_json::to_value(&parsed).unwrap();
        assert_eq!(written, serde_json::from_str::<serde_json::Value>(json).unwrap());
        assert_eq!(serde_json::from_value::<BusinessHours>(written).unwrap(), parsed);
        assert!(parsed.validate().is_ok());
        // The lists may be left out; unknown fields and capitalised days are refused.
        let minimal: BusinessHours = serde_json::from_str(r#"{ "time_zone": "UTC" }"#).unwrap();
        assert_eq!(minimal, hours("UTC", vec![], vec![]));
        assert!(serde_json::from_str::<BusinessHours>(r#"{ "time_zone": "UTC", "weekely": [] }"#).is_err());
        assert!(serde_json::from_str::<Shift>(r#"{ "day": "Monday", "start": "09:00", "end": "17:00" }"#).is_err());
        let status = Status { open: true, until: None, local_time: "2026-12-03 09:15 CET".into() };
        assert_eq!(
            serde_json::to_string(&status).unwrap(),
            r#"{"open":true,"until":null,"local_time":"2026-12-03 09:15 CET"}"#
        );
    }

    const ZONES: [&str; 6] =
        ["Europe/Berlin", "America/New_York", "UTC", "Australia/Lord_Howe", "Asia/Kathmandu", "America/St_Johns"];

    /// A random valid schedule: shifts and exceptions that would make it invalid are dropped.
    fn random_hours() -> impl Strategy<Value = BusinessHours> {
        let time = |quarters: u16| format!("{:02}:{:02}", quarters / 4, quarters % 4 * 15);
        let shifts = proptest::collection::vec((0..7usize, 0..96u16, 0..=96u16), 0..12);
        let exceptions =
            proptest::collection::vec((0..300i32, proptest::collection::vec((0..96u16, 0..=96u16), 0..3)), 0..5);
        (0..ZONES.len(), shifts, exceptions).prop_map(move |(zone, shifts, exceptions)| {
            let mut business_hours = hours(ZONES[zone], vec![], vec![]);
            for (day, start, end) in shifts {
                business_hours.weekly.push(shift(Weekday::ALL[day], &time(start), &time(end)));
                if business_hours.validate().is_err() {
                    business_hours.weekly.pop();
                }
            }
            for (offset, ranges) in exceptions {
                let date = Date::new(2026, 3, 1).unwrap().checked_add(offset.days()).unwrap();
                let ranges: Vec<(String, String)> =
                    ranges.into_iter().map(|(start, end)| (time(start), time(end))).collect();
                let ranges: Vec<(&str, &str)> =
                    ranges.iter().map(|(start, end)| (start.as_str(), end.as_str())).collect();
                business_hours.exceptions.push(exception(&date.to_string(), &ranges));
                if business_hours.validate().is_err() {
                    business_hours.exceptions.pop();
                }
            }
            business_hours
        })
    }

    /// Instants from 2026-03-01 to 2027-01-01, half of them within four days of a DST change
    /// of one of the [`ZONES`].
    fn instants() -> impl Strategy<Value = Millis> {
        let changes = ["2026-03-08", "2026-03-29", "2026-04-05", "2026-10-04", "2026-10-25", "2026-11-01"]
            .map(|date| t(&format!("{date}T00:00Z")));
        prop_oneof![
            t("2026-03-01T00:00Z")..t("2027-01-01T00:00Z"),
            (0..changes.len(), -4 * DAY..4 * DAY).prop_map(move |(change, offset)| changes[change] + offset),
        ]
    }

    proptest! {
        /// `is_open` holds still on `[at, next_change(at))` and flips at `next_change(at)`;
        /// `next_open` and `open_millis_between` agree with it.
        #[test]
        fn is_open_is_constant_until_next_change_and_flips_there(
            business_hours in random_hours(),
            at in instants(),
        ) {
            let schedule = business_hours.validate().unwrap();
            let open = schedule.is_open(at);
            match schedule.next_change(at) {
                Some(change) => {
                    prop_assert!(change > at);
                    for sample in [at, at + (change - at) / 3, at + (change - at) * 2 / 3, change - 1] {
                        prop_assert_eq!(schedule.is_open(sample), open, "at {} sample {} change {}", at, sample, change);
                    }
                    prop_assert_ne!(schedule.is_open(change), open, "no flip at {}", change);
                    prop_assert_eq!(schedule.next_open(at), Some(if open { at } else { change }));
                    prop_assert_eq!(schedule.open_millis_between(at, change), if open { change - at } else { 0 });
                }
                None => {
                    for days in 0..40 {
                        prop_assert_eq!(schedule.is_open(at + days * DAY + days * 997), open);
                    }
                    prop_assert_eq!(schedule.next_open(at), open.then_some(at));
                }
            }
            // Additive over adjacent spans.
            let middle = at + 3 * DAY + 12_345;
            let end = at + 9 * DAY;
            prop_assert_eq!(
                schedule.open_millis_between(at, middle) + schedule.open_millis_between(middle, end),
                schedule.open_millis_between(at, end)
            );
        }
    }
}
