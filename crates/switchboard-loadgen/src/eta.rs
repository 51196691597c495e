//! `eta`: how good the estimated wait is. A simulated contact center runs through one
//! brand's desk (`switchboard-core`) on a simulated clock: conversations arrive at random
//! (Poisson), agents hold each for a random time (exponential around a mean), and the
//! consumer's first estimate (the `queued` event) is compared with the wait they actually had
//! (until assignment). Refreshed estimates are measured too: each `queued` update is compared
//! with the wait still ahead at that moment.
//!
//! Figures: mean absolute error, and the median and 90th percentile of the absolute error
//! relative to the actual wait (for waits of at least 30 s, where a relative figure means
//! something).

use std::collections::{BTreeMap, HashMap};

use anyhow::{Result, bail};
use clap::Args;
use switchboard_core::desk::{AgentSettings, DeskEvent, DeskSettings, Effect, Input, OpenConversation};
use switchboard_core::routing::AgentProfile;
use switchboard_protocol::AgentState;

/// Options of `eta`.
#[derive(Debug, Args)]
pub struct EtaArgs {
    /// Agents, all online.
    #[arg(long, default_value_t = 20)]
    pub agents: u32,
    /// Conversations each agent holds at once.
    #[arg(long, default_value_t = 3)]
    pub capacity: u32,
    /// Mean handling time of a conversation, in seconds.
    #[arg(long, default_value_t = 300)]
    pub handle_secs: u32,
    /// Load: arrivals as a share of what the agents can serve (above 1: the queue grows).
    #[arg(long, default_value_t = 1.05)]
    pub load: f64,
    /// Simulated hours.
    #[arg(long, default_value_t = 8)]
    pub hours: u32,
    /// Recording.
    #[command(flatten)]
    pub recording: crate::record::RecordOpts,
}

/// xorshift64, uniform in (0, 1].
struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    /// Exponentially distributed with the given mean.
    fn exponential(&mut self, mean: f64) -> f64 {
        -mean * self.unit().ln()
    }
}

/// Absolute errors in seconds, and relative ones for waits of at least 30 s.
#[derive(Default)]
struct Errors {
    absolute: Vec<f64>,
    relative: Vec<f64>,
}

impl Errors {
    fn add(&mut self, estimate: u32, actual_secs: f64) {
        let error = (f64::from(estimate) - actual_secs).abs();
        self.absolute.push(error);
        if actual_secs >= 30.0 {
            self.relative.push(error / actual_secs);
        }
    }

    fn summary(&mut self) -> (f64, f64, f64, usize) {
        let mean = self.absolute.iter().sum::<f64>() / self.absolute.len().max(1) as f64;
        self.relative.sort_by(f64::total_cmp);
        let at = |q: f64| self.relative.get(((self.relative.len() as f64 - 1.0) * q).round() as usize).copied();
        (mean, at(0.5).unwrap_or(0.0), at(0.9).unwrap_or(0.0), self.absolute.len())
    }
}

/// Runs the simulation and prints (and optionally records) its figures.
pub fn run(args: EtaArgs) -> Result<()> {
    if args.agents == 0 || args.capacity == 0 || args.handle_secs == 0 || args.hours == 0 || args.load <= 0.0 {
        bail!("--agents, --capacity, --handle-secs, --hours and --load must be positive");
    }
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut desk = switchboard_core::desk::Desk::new(DeskSettings::default());
    let seats = f64::from(args.agents * args.capacity);
    let mean_handle_ms = f64::from(args.handle_secs) * 1000.0;
    let arrival_ms = mean_handle_ms / seats / args.load;
    let end = i64::from(args.hours) * 3_600_000;
    for agent in 1..=i64::from(args.agents) {
        let settings = AgentSettings {
            agent,
            profile: AgentProfile { max_concurrent: args.capacity, skills: Vec::new() },
            chosen: AgentState::Online,
            disabled: false,
        };
        desk.handle(Input::Agent(settings), 0)?;
        desk.handle(Input::AgentConnected(agent), 0)?;
    }
    // Pending closes by time, the first estimate and its time per waiting conversation, and
    // the later estimates.
    let mut closes: BTreeMap<(i64, i64), ()> = BTreeMap::new();
    let mut first: HashMap<i64, (u32, i64)> = HashMap::new();
    let mut updates: HashMap<i64, Vec<(u32, i64)>> = HashMap::new();
    let mut first_errors = Errors::default();
    let mut update_errors = Errors::default();
    let mut next_arrival = rng.exponential(arrival_ms) as i64;
    let mut next_id = 0;
    let mut waited = 0usize;
    let mut now;
    loop {
        let next_close = closes.keys().next().map(|(at, _)| *at);
        let next_timer = desk.next_due();
        now = [Some(next_arrival), next_close, next_timer].into_iter().flatten().min().unwrap_or(end);
        if now >= end {
            break;
        }
        let effects = if next_close == Some(now) {
            let (key, ()) = closes.pop_first().expect("a close is due");
            desk.handle(Input::Closed(key.1), now)?
        } else if next_timer == Some(now) {
            desk.handle(Input::Tick, now)?
        } else {
            next_id += 1;
            next_arrival = now + rng.exponential(arrival_ms).max(1.0) as i64;
            let open = OpenConversation {
                conversation: next_id,
                consumer: next_id,
                skill: 0,
                priority: 0,
                waiting_since: now,
                agent: None,
                assigned_at: None,
                last_agent_at: None,
                last_consumer_at: None,
            };
            desk.handle(Input::Opened(open), now)?
        };
        for effect in effects {
            let Effect::Emit(event) = effect else { continue };
            match event {
                DeskEvent::Queued { conversation, eta: Some(eta), .. } => {
                    first.insert(conversation, (eta, now));
                }
                DeskEvent::WaitChanged { conversation, eta: Some(eta), .. } => {
                    updates.entry(conversation).or_default().push((eta, now));
                }
                DeskEvent::Assigned { conversation, .. } => {
                    let held = rng.exponential(mean_handle_ms).max(1000.0) as i64;
                    closes.insert((now + held, conversation), ());
                    if let Some((eta, at)) = first.remove(&conversation) {
                        waited += 1;
                        first_errors.add(eta, (now - at) as f64 / 1000.0);
                    }
                    for (eta, at) in updates.remove(&conversation).unwrap_or_default() {
                        update_errors.add(eta, (now - at) as f64 / 1000.0);
                    }
                }
                _ => {}
            }
        }
    }
    if waited == 0 {
        bail!("nobody waited: raise --load");
    }
    let (mean, p50, p90, n) = first_errors.summary();
    let (update_mean, update_p50, update_p90, update_n) = update_errors.summary();
    let out = format!(
        "eta: {agents} agents x {capacity} seats, mean handling {handle} s, load {load:.2}, {hours} simulated hours\n\
         {next_id} conversations, {waited} waited for an agent\n\
         first estimate ({n}): mean absolute error {mean:.0} s; relative error p50 {p50_pct:.0} %, p90 {p90_pct:.0} %\n\
         refreshed estimates ({update_n}): mean absolute error {update_mean:.0} s; relative error p50 {up50:.0} %, p90 {up90:.0} %\n",
        agents = args.agents,
        capacity = args.capacity,
        handle = args.handle_secs,
        load = args.load,
        hours = args.hours,
        p50_pct = p50 * 100.0,
        p90_pct = p90 * 100.0,
        up50 = update_p50 * 100.0,
        up90 = update_p90 * 100.0,
    );
    print!("{out}");
    if args.recording.record {
        let mut figures = serde_json::json!({
            "conversations": next_id,
            "waited": waited,
            "first_estimate_mean_abs_error_secs": mean.round(),
            "first_estimate_rel_error_p50": p50,
            "first_estimate_rel_error_p90": p90,
            "refreshed_estimates": update_n,
            "refreshed_mean_abs_error_secs": update_mean.round(),
            "refreshed_rel_error_p50": update_p50,
            "refreshed_rel_error_p90": update_p90,
        });
        figures["setup"] = serde_json::json!({"agents": args.agents, "capacity": args.capacity, "handle_secs": args.handle_secs, "load": args.load, "hours": args.hours});
        crate::record::write(
            &args.recording.results,
            "eta",
            "in process: switchboard-core's desk, no server or store",
            figures,
            &out,
        )?;
    }
    Ok(())
}
