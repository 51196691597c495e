//! `timers`: the cost of auto-close timers inside one brand's desk (`switchboard-core`), in
//! process, no sockets and no store. The stored state of a busy brand (by default 2,000
//! agents holding 100,000 open conversations, each with an agent message after the
//! consumer's, so each has a warning and an auto-close timer: 200,000 timers) is handed to
//! `Desk::restore`, as the engine does at start, and three figures are taken:
//!
//! - the time of `Desk::restore` (min, median, max over `--rounds`): rebuilding every timer
//!   at start, with the router and presence it rebuilds too. Reading the rows from the store
//!   comes before it and is not measured here;
//! - the heap the restored desk holds with auto-close on against the same state with
//!   auto-close off: the difference, divided by the timers armed, is the memory per timer.
//!   Bytes come from the counting global allocator of this binary (`main.rs`), so they are
//!   the bytes requested from the allocator, not RSS;
//! - the time of firing: after the agents reconnect, one `Input::Tick` past every warning's
//!   due time (each gives a `Notify` to persist), then one past every auto-close's (each an
//!   `AutoClose` change for the engine to carry out).

use std::collections::HashMap;
use std::time::Instant;

use anyhow::{Result, bail};
use clap::Args;
use switchboard_core::automation::Trigger;
use switchboard_core::desk::{
    AgentSettings, AutoClose, Change, Desk, DeskSettings, Effect, Hours, Input, OpenConversation, Timer,
};
use switchboard_core::routing::AgentProfile;
use switchboard_protocol::AgentState;

/// Options of `timers`.
#[derive(Debug, Args)]
pub struct TimersArgs {
    /// Agents, all online (disconnected at restore, as at start).
    #[arg(long, default_value_t = 2_000)]
    pub agents: u32,
    /// Conversations each agent can hold.
    #[arg(long, default_value_t = 50)]
    pub capacity: u32,
    /// Open conversations, each held by an agent who wrote last.
    #[arg(long, default_value_t = 100_000)]
    pub conversations: u32,
    /// Auto-close after this many minutes without a consumer answer.
    #[arg(long, default_value_t = 60)]
    pub after_mins: i64,
    /// Warning this many minutes before the auto-close.
    #[arg(long, default_value_t = 10)]
    pub warn_mins: i64,
    /// Restores (and firings) measured.
    #[arg(long, default_value_t = 5)]
    pub rounds: u32,
    /// Recording.
    #[command(flatten)]
    pub recording: crate::record::RecordOpts,
}

/// The last agent messages are spread over this many milliseconds before the restore, so
/// deadlines are spread too (but every warning falls before the first auto-close).
const SPREAD_MS: i64 = 5 * 60_000;

/// The stored state the engine would read at start.
struct Stored {
    agents: Vec<AgentSettings>,
    conversations: Vec<OpenConversation>,
}

fn stored(args: &TimersArgs, now: i64) -> Stored {
    let agents = (1..=i64::from(args.agents))
        .map(|agent| AgentSettings {
            agent,
            profile: AgentProfile { max_concurrent: args.capacity, skills: vec![1] },
            chosen: AgentState::Online,
            disabled: false,
        })
        .collect();
    let conversations = (0..i64::from(args.conversations))
        .map(|i| {
            // The agent wrote last: after the consumer, within the last five minutes.
            let agent_at = now - 1 - (i * 7_919) % SPREAD_MS;
            OpenConversation {
                conversation: i + 1,
                consumer: i + 1,
                skill: 1,
                priority: 0,
                waiting_since: agent_at - 120_000,
                agent: Some(i % i64::from(args.agents) + 1),
                assigned_at: Some(agent_at - 90_000),
                last_agent_at: Some(agent_at),
                last_consumer_at: Some(agent_at - 30_000),
            }
        })
        .collect();
    Stored { agents, conversations }
}

/// Live heap bytes of the process, from the counting allocator.
fn live_bytes() -> i64 {
    let stats = crate::GLOBAL.stats();
    i64::try_from(stats.bytes_allocated).unwrap_or(i64::MAX) - i64::try_from(stats.bytes_deallocated).unwrap_or(0)
}

/// Restores a desk from a copy of the stored state; returns it, the timers armed by kind
/// (warnings, auto-closes) and the milliseconds `restore` took.
fn restore(settings: DeskSettings, stored: &Stored, now: i64) -> (Desk, (u64, u64), f64) {
    let (agents, conversations) = (stored.agents.clone(), stored.conversations.clone());
    let started = Instant::now();
    let (desk, effects) =
        Desk::restore(settings, Hours::default(), Vec::new(), agents, conversations, &HashMap::new(), now, now);
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let armed = effects.iter().fold((0, 0), |(warnings, closes), effect| match effect {
        Effect::Arm(Timer::InactiveWarning(_), _) => (warnings + 1, closes),
        Effect::Arm(Timer::AutoClose(_), _) => (warnings, closes + 1),
        _ => (warnings, closes),
    });
    (desk, armed, ms)
}

/// Min, median and max.
fn spread(values: &mut [f64]) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    (values[0], values[values.len() / 2], values[values.len() - 1])
}

/// Runs the benchmark and prints (and optionally records) its figures.
pub fn run(args: TimersArgs) -> Result<()> {
    if args.agents == 0 || args.rounds == 0 || args.conversations == 0 {
        bail!("--agents, --conversations and --rounds must be at least 1");
    }
    if u64::from(args.agents) * u64::from(args.capacity) < u64::from(args.conversations) {
        bail!("--agents x --capacity must hold every conversation");
    }
    // Every warning must fall due before the first auto-close, so each tick fires one kind.
    if args.warn_mins * 60_000 <= SPREAD_MS || args.warn_mins >= args.after_mins {
        bail!("need 5 < --warn-mins < --after-mins (the last agent messages spread over 5 minutes)");
    }
    let now: i64 = 1_800_000_000_000;
    let auto_close = AutoClose { after_ms: args.after_mins * 60_000, warn_before_ms: Some(args.warn_mins * 60_000) };
    let on = DeskSettings { auto_close: Some(auto_close), ..DeskSettings::default() };
    let off = DeskSettings { auto_close: None, ..DeskSettings::default() };
    let stored = stored(&args, now);

    // Memory first, on a quiet heap: each desk alone, its restore's effects dropped.
    let heap = |settings| {
        let before = live_bytes();
        let (desk, armed, _) = restore(settings, &stored, now);
        let bytes = live_bytes() - before;
        drop(desk);
        (bytes, armed)
    };
    let (heap_off, _) = heap(off);
    let (heap_on, (warnings, closes)) = heap(on);
    let timers = warnings + closes;
    if timers == 0 {
        bail!("no auto-close timer was armed");
    }
    let per_timer = (heap_on - heap_off) as f64 / timers as f64;

    let (mut restore_on_ms, mut restore_off_ms) = (Vec::new(), Vec::new());
    let (mut warn_ms, mut close_ms) = (Vec::new(), Vec::new());
    let (mut warned, mut closing) = (0u64, 0u64);
    for _ in 0..args.rounds {
        let (_, _, ms) = restore(off, &stored, now);
        restore_off_ms.push(ms);
        let (mut desk, _, ms) = restore(on, &stored, now);
        restore_on_ms.push(ms);
        // The agents come back before their grace ends, so no conversation is requeued.
        for agent in 1..=i64::from(args.agents) {
            desk.handle(Input::AgentConnected(agent), now)?;
        }
        let last_warning = now + auto_close.after_ms - args.warn_mins * 60_000;
        let started = Instant::now();
        let effects = desk.handle(Input::Tick, last_warning)?;
        warn_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        warned = effects
            .iter()
            .filter(|effect| {
                matches!(effect, Effect::Persist(Change::Notify { trigger: Trigger::InactiveWarning, .. }))
            })
            .count() as u64;
        let started = Instant::now();
        let effects = desk.handle(Input::Tick, now + auto_close.after_ms)?;
        close_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        closing =
            effects.iter().filter(|effect| matches!(effect, Effect::Persist(Change::AutoClose { .. }))).count() as u64;
    }
    let (on_min, on_median, on_max) = spread(&mut restore_on_ms);
    let (off_min, off_median, off_max) = spread(&mut restore_off_ms);
    let (warn_min, warn_median, warn_max) = spread(&mut warn_ms);
    let (close_min, close_median, close_max) = spread(&mut close_ms);
    let out = format!(
        "timers: {agents} agents x {capacity} seats, {conversations} open conversations held, the agent wrote last in each\n\
         auto-close after {after} min, warning {warn} min before: {warnings} warnings + {closes} auto-closes = {timers} timers armed\n\
         restore (rebuild at start; the store read before it is not measured), {rounds} rounds:\n\
         \x20 auto-close on:  min {on_min:.1} ms, median {on_median:.1} ms, max {on_max:.1} ms\n\
         \x20 auto-close off: min {off_min:.1} ms, median {off_median:.1} ms, max {off_max:.1} ms\n\
         heap held by the restored desk (bytes requested from the allocator, not RSS):\n\
         \x20 on {heap_on} B, off {heap_off} B: {per_timer:.1} B per timer\n\
         firing, after the agents reconnected:\n\
         \x20 one tick past every warning: {warned} warnings, min {warn_min:.1} ms, median {warn_median:.1} ms ({warn_each:.2} us each), max {warn_max:.1} ms\n\
         \x20 one tick past every auto-close: {closing} auto-closes, min {close_min:.1} ms, median {close_median:.1} ms ({close_each:.2} us each), max {close_max:.1} ms\n",
        agents = args.agents,
        capacity = args.capacity,
        conversations = args.conversations,
        after = args.after_mins,
        warn = args.warn_mins,
        rounds = args.rounds,
        warn_each = warn_median * 1000.0 / warned.max(1) as f64,
        close_each = close_median * 1000.0 / closing.max(1) as f64,
    );
    print!("{out}");
    if args.recording.record {
        let figures = serde_json::json!({
            "timers": timers,
            "warnings_armed": warnings,
            "auto_closes_armed": closes,
            "restore_ms": {"min": on_min, "median": on_median, "max": on_max},
            "restore_without_auto_close_ms": {"min": off_min, "median": off_median, "max": off_max},
            "heap_bytes_auto_close_on": heap_on,
            "heap_bytes_auto_close_off": heap_off,
            "bytes_per_timer": (per_timer * 10.0).round() / 10.0,
            "warnings_fired": warned,
            "warning_tick_ms": {"min": warn_min, "median": warn_median, "max": warn_max},
            "auto_closes_fired": closing,
            "auto_close_tick_ms": {"min": close_min, "median": close_median, "max": close_max},
            "setup": {
                "agents": args.agents,
                "capacity": args.capacity,
                "conversations": args.conversations,
                "after_mins": args.after_mins,
                "warn_mins": args.warn_mins,
                "rounds": args.rounds,
            },
        });
        crate::record::write(
            &args.recording.results,
            "timers",
            "in process: switchboard-core's desk, no server or store (the store read is not measured)",
            figures,
            &out,
        )?;
    }
    Ok(())
}
