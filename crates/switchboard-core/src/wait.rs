//! The estimated wait a queued consumer is told, and when a new estimate is worth telling.
//!
//! Method: a conversation at `position` p (0: served next) in its skill's queue waits for
//! the (p − F + 1)-th seat to free, where F is the free seats of online agents with the skill
//! (normally 0 while anyone waits). With C seats online in all and an average handling time
//! H (how long an agent holds a conversation of the skill, assignment to close, recent
//! conversations weighted most), seats free at a rate of C / H, so
//! `eta = (p − F + 1) × H / C`. Nobody online with the skill: no estimate (`None`).
//!
//! An estimate is sent when the conversation starts waiting, and again when the new figure
//! differs from what the consumer's clock shows (the last estimate minus the time since) by
//! at least 30 s and at least a quarter: small drifts are not worth a frame, and a consumer
//! told "2 minutes" is told again when it becomes 1 or 3. Becoming known or unknown counts.

use std::collections::HashMap;

use crate::ids::{Millis, SkillId};

/// Handling time assumed before a skill has any closed conversation: 5 minutes.
pub const DEFAULT_HANDLE_MS: Millis = 5 * 60 * 1000;

/// Least change of an estimate worth telling, in seconds.
pub const SIGNIFICANT_SECS: u32 = 30;

/// Estimated seconds to an agent (see the module docs); `None` when nobody can serve.
pub fn estimate(position: usize, capacity: u64, free: u64, handle_ms: Millis) -> Option<u32> {
    if capacity == 0 {
        return None;
    }
    let position = position as u64;
    if position < free {
        return Some(0);
    }
    let seats_to_wait = u128::from(position - free) + 1;
    let ms = seats_to_wait * u128::from(handle_ms.max(0).unsigned_abs()) / u128::from(capacity);
    Some(u32::try_from(ms.div_ceil(1000)).unwrap_or(u32::MAX))
}

/// Whether `new` is worth telling a consumer who was told `told` (seconds) at `told_at`.
pub fn significant(told: Option<u32>, told_at: Millis, new: Option<u32>, now: Millis) -> bool {
    match (told, new) {
        (None, None) => false,
        (Some(_), None) | (None, Some(_)) => true,
        (Some(told), Some(new)) => {
            let elapsed = u32::try_from((now - told_at).max(0) / 1000).unwrap_or(u32::MAX);
            let expected = told.saturating_sub(elapsed);
            let change = new.abs_diff(expected);
            change >= SIGNIFICANT_SECS && change >= expected / 4
        }
    }
}

/// Recent handling times per skill: an exponentially weighted average, 1/8 weight for the
/// newest sample.
#[derive(Debug, Clone, Default)]
pub struct HandlingTimes {
    per_skill: HashMap<SkillId, Millis>,
}

impl HandlingTimes {
    /// Records that a conversation of `skill` was held `held_ms` by its agent.
    pub fn record(&mut self, skill: SkillId, held_ms: Millis) {
        let sample = held_ms.max(0);
        self.per_skill.entry(skill).and_modify(|avg| *avg = (*avg * 7 + sample) / 8).or_insert(sample);
    }

    /// The average for `skill`, or [`DEFAULT_HANDLE_MS`].
    pub fn of(&self, skill: SkillId) -> Millis {
        self.per_skill.get(&skill).copied().unwrap_or(DEFAULT_HANDLE_MS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimate_spreads_the_queue_over_online_seats() {
        // Nobody online: unknown. A free seat: served now.
        assert_eq!(estimate(0, 0, 0, 60_000), None);
        assert_eq!(estimate(0, 2, 1, 60_000), Some(0));
        // Two seats busy, 60 s per conversation: the first waiter gets the first freed seat
        // in 30 s on average, the fourth in 120 s.
        assert_eq!(estimate(0, 2, 0, 60_000), Some(30));
        assert_eq!(estimate(3, 2, 0, 60_000), Some(120));
        assert_eq!(estimate(usize::MAX, 1, 0, Millis::MAX), Some(u32::MAX));
    }

    #[test]
    fn only_significant_changes_are_told() {
        // Told 120 s, 60 s ago: the consumer expects 60.
        assert!(!significant(Some(120), 0, Some(70), 60_000));
        assert!(significant(Some(120), 0, Some(100), 60_000));
        assert!(significant(Some(120), 0, Some(20), 60_000));
        // Small figures need 30 s of change too.
        assert!(!significant(Some(10), 0, Some(35), 0));
        assert!(significant(Some(10), 0, Some(40), 0));
        assert!(significant(Some(10), 0, None, 0));
        assert!(significant(None, 0, Some(10), 0));
        assert!(!significant(None, 0, None, 0));
    }

    #[test]
    fn handling_times_average_recent_samples() {
        let mut times = HandlingTimes::default();
        assert_eq!(times.of(1), DEFAULT_HANDLE_MS);
        times.record(1, 80_000);
        assert_eq!(times.of(1), 80_000);
        times.record(1, 0);
        assert_eq!(times.of(1), 70_000);
        assert_eq!(times.of(2), DEFAULT_HANDLE_MS);
    }
}
