//! Retention: how long a brand keeps its transcripts, and which conversations are past it.
//!
//! A conversation is *past retention* once it has been closed for longer than the brand's
//! retention: it closed before the **horizon**, `now − retention`. Open conversations are
//! never past retention, however old (their messages are still being written). Every API
//! that returns conversations or messages leaves out those past retention, so they are gone
//! for everyone the moment the horizon passes them, even before the purge job
//! (`switchboard-server`'s `retention` module) has deleted them. Time is a parameter.

use switchboard_protocol::Millis;

use crate::report::DAY_MS;

/// Default retention: 13 months, counted as 396 days.
pub const DEFAULT_RETENTION_DAYS: i64 = 396;
/// Shortest retention a brand may choose, in days.
pub const MIN_RETENTION_DAYS: i64 = 1;
/// Longest retention a brand may choose, in days (ten years).
pub const MAX_RETENTION_DAYS: i64 = 3650;

/// The moment before which a closed conversation is past retention.
pub fn horizon(retention_days: i64, now: Millis) -> Millis {
    let days = retention_days.clamp(MIN_RETENTION_DAYS, MAX_RETENTION_DAYS);
    now.saturating_sub(days * DAY_MS)
}

/// Whether a conversation closed at `closed_at` (`None`: open) is kept at `horizon`.
pub fn is_retained(closed_at: Option<Millis>, horizon: Millis) -> bool {
    closed_at.is_none_or(|closed_at| closed_at >= horizon)
}

/// Checks a retention a brand asked for; the text is the API's message.
pub fn check_days(days: i64) -> Result<i64, String> {
    if (MIN_RETENTION_DAYS..=MAX_RETENTION_DAYS).contains(&days) {
        Ok(days)
    } else {
        Err(format!("retention_days must be {MIN_RETENTION_DAYS} to {MAX_RETENTION_DAYS} (got {days})"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Millis = 1_800_000_000_000;

    #[test]
    fn a_conversation_closed_before_the_horizon_is_past_retention() {
        let horizon = horizon(30, NOW);
        assert_eq!(horizon, NOW - 30 * DAY_MS);
        assert!(is_retained(Some(horizon), horizon), "closed exactly at the horizon is kept");
        assert!(!is_retained(Some(horizon - 1), horizon));
        assert!(is_retained(None, horizon), "open conversations are never past retention");
        assert!(is_retained(None, NOW + 1));
    }

    #[test]
    fn retention_days_are_checked_by_name_and_limit() {
        assert_eq!(check_days(396), Ok(396));
        assert_eq!(check_days(0).unwrap_err(), "retention_days must be 1 to 3650 (got 0)");
        assert!(check_days(3651).is_err());
        // A stored value out of range never makes the horizon overflow or pass `now`.
        assert_eq!(horizon(0, NOW), NOW - DAY_MS);
        assert_eq!(horizon(i64::MAX, 0), -3650 * DAY_MS);
    }
}
