//! `desk`: routing decisions inside one brand's desk (`switchboard-core`), in process, no
//! sockets and no store: how many decisions per second the desk makes, and how long each
//! input that makes one takes, with a large floor (by default 10,000 agents at capacity and
//! 100,000 conversations waiting).
//!
//! Each step closes a random assigned conversation (its agent's freed seat takes the first
//! waiting conversation of a skill they have: one decision) and opens a new one (it waits:
//! no agent has room), so the floor keeps its size. Latency is measured per `handle` call
//! that made a decision.

use std::time::Instant;

use anyhow::{Result, bail};
use clap::Args;
use hdrhistogram::Histogram;
use switchboard_core::desk::{AgentSettings, Desk, DeskSettings, Effect, Input, OpenConversation};
use switchboard_core::routing::AgentProfile;
use switchboard_protocol::AgentState;

/// Options of `desk`.
#[derive(Debug, Args)]
pub struct DeskArgs {
    /// Agents, all connected and online.
    #[arg(long, default_value_t = 10_000)]
    pub agents: u32,
    /// Conversations each agent holds at once.
    #[arg(long, default_value_t = 10)]
    pub capacity: u32,
    /// Conversations waiting (beyond those the agents hold).
    #[arg(long, default_value_t = 100_000)]
    pub queued: u32,
    /// Skills; each agent has two of them.
    #[arg(long, default_value_t = 20)]
    pub skills: i64,
    /// Close-and-open steps measured.
    #[arg(long, default_value_t = 200_000)]
    pub steps: u32,
    /// Recording.
    #[command(flatten)]
    pub recording: crate::record::RecordOpts,
}

/// A tiny deterministic generator (xorshift), so runs are comparable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn decisions(effects: &[Effect]) -> u64 {
    effects
        .iter()
        .filter(|effect| matches!(effect, Effect::Persist(switchboard_core::desk::Change::Assign { .. })))
        .count() as u64
}

/// Runs the benchmark and prints (and optionally records) its figures.
pub fn run(args: DeskArgs) -> Result<()> {
    if args.agents == 0 || args.capacity == 0 || args.skills < 1 || args.steps == 0 {
        bail!("--agents, --capacity, --skills and --steps must be at least 1");
    }
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let mut desk = Desk::new(DeskSettings::default());
    let mut now = 1_000_000;
    let setup = Instant::now();
    for agent in 1..=i64::from(args.agents) {
        let first = agent % args.skills + 1;
        let second = (agent + 7) % args.skills + 1;
        let settings = AgentSettings {
            agent,
            profile: AgentProfile { max_concurrent: args.capacity, skills: vec![first, second] },
            chosen: AgentState::Online,
            disabled: false,
        };
        desk.handle(Input::Agent(settings), now)?;
        desk.handle(Input::AgentConnected(agent), now)?;
    }
    let seats = u64::from(args.agents) * u64::from(args.capacity);
    let total = seats + u64::from(args.queued);
    let mut open: Vec<i64> = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    let mut next_id: i64 = 0;
    let open_one = |desk: &mut Desk, rng: &mut Rng, now: i64, next_id: &mut i64| {
        *next_id += 1;
        let conversation = OpenConversation {
            conversation: *next_id,
            consumer: *next_id,
            skill: i64::try_from(rng.below(u64::try_from(args.skills).unwrap_or(1))).unwrap_or(0) + 1,
            priority: 0,
            waiting_since: now,
            agent: None,
            assigned_at: None,
            last_agent_at: None,
            last_consumer_at: None,
        };
        desk.handle(Input::Opened(conversation), now).map(|effects| (*next_id, effects))
    };
    for _ in 0..total {
        now += 1;
        let (id, _) = open_one(&mut desk, &mut rng, now, &mut next_id)?;
        open.push(id);
    }
    let queued_at_start = desk.queued().len();
    let setup_secs = setup.elapsed().as_secs_f64();

    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut made = 0u64;
    let mut deciding_time = std::time::Duration::ZERO;
    let started = Instant::now();
    for _ in 0..args.steps {
        now += 1;
        // An assigned conversation closes (a waiting one closing frees no seat).
        let mut index = usize::try_from(rng.below(open.len() as u64)).unwrap_or(0);
        for _ in 0..64 {
            if desk.assignee(open[index]).is_some() {
                break;
            }
            index = usize::try_from(rng.below(open.len() as u64)).unwrap_or(0);
        }
        let conversation = open.swap_remove(index);
        let timer = Instant::now();
        let effects = desk.handle(Input::Closed(conversation), now)?;
        let took = timer.elapsed();
        let n = decisions(&effects);
        if n > 0 {
            made += n;
            deciding_time += took;
            latency.record(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX).max(1))?;
        }
        let (id, _) = open_one(&mut desk, &mut rng, now, &mut next_id)?;
        open.push(id);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let per_sec = made as f64 / deciding_time.as_secs_f64().max(1e-9);
    let p50_us = latency.value_at_quantile(0.50) as f64 / 1000.0;
    let p99_us = latency.value_at_quantile(0.99) as f64 / 1000.0;
    let max_us = latency.max() as f64 / 1000.0;
    let out = format!(
        "desk: {agents} agents x {capacity} seats, {queued} waiting at start ({skills} skills), {steps} steps\n\
         setup {setup_secs:.1} s; measured {elapsed:.2} s\n\
         decisions {made}: {per_sec:.0} decisions/s inside the desk (close + dispatch time only)\n\
         latency of an input that made a decision: p50 {p50_us:.1} us, p99 {p99_us:.1} us, max {max_us:.1} us\n",
        agents = args.agents,
        capacity = args.capacity,
        queued = queued_at_start,
        skills = args.skills,
        steps = args.steps,
    );
    print!("{out}");
    if made == 0 {
        bail!("no decision was made: the floor is not saturated");
    }
    if args.recording.record {
        let mut figures = serde_json::json!({
            "decisions": made,
            "decisions_per_sec": per_sec.round(),
            "decision_latency_p50_us": p50_us,
            "decision_latency_p99_us": p99_us,
            "decision_latency_max_us": max_us,
            "measured_secs": elapsed,
        });
        figures["setup"] = serde_json::json!({"agents": args.agents, "capacity": args.capacity, "queued": queued_at_start, "skills": args.skills, "steps": args.steps});
        crate::record::write(
            &args.recording.results,
            "desk",
            "in process: switchboard-core's desk, no server or store",
            figures,
            &out,
        )?;
    }
    Ok(())
}
