//! The engine under paused tokio time: its timers (grace periods, offer timeouts) fire exactly
//! when due, never earlier, and survive a restart, with a real store underneath.
//!
//! Tokio's paused clock advances by itself whenever the runtime has nothing to run, and a
//! test waiting for the store (whose writer is a thread of its own) looks idle: time would
//! jump to the next timer in the middle of a check. A task that only yields keeps the runtime
//! busy, so time moves only when a test calls `advance`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use switchboard_bus::Bus;
use switchboard_store::{
    ConsumerAppend, ConsumerClaims, NewApp, NewBrand, NewUser, Role, SkillPatch, SkillRouting, StoreOptions,
};

use super::*;

const BRAND: &str = "acme";
const GRACE: Duration = Duration::from_secs(60);

struct Fixture {
    dir: PathBuf,
    store: Store,
    bus: Arc<Bus>,
    engines: Engines,
    shutdown: watch::Sender<bool>,
    skill: i64,
    agents: Vec<User>,
    consumers: u32,
}

impl Fixture {
    /// A brand with one skill (`routing`), `agents` online agents of capacity 2 (none
    /// connected) and a running set of engines.
    async fn new(agents: usize, routing: SkillRouting) -> Fixture {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "switchboard-engine-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}", dir.join("test.db").display());
        let store = Store::open(&StoreOptions::new(url)).await.unwrap();
        let now = crate::now_ms();
        store.create_brand(&NewBrand { id: BRAND.into(), name: "Acme".into() }, now).await.unwrap();
        let skill = store.create_skill(BRAND, "general", now).await.unwrap().id;
        let patch = SkillPatch { routing: Some(routing), offer_timeout_secs: Some(20), default_priority: None };
        store.update_skill(BRAND, skill, &patch).await.unwrap();
        let app = NewApp {
            id: "app".into(),
            brand_id: BRAND.into(),
            name: "App".into(),
            channel: "in_app".into(),
            allow_jwt: false,
            allow_anonymous: true,
            jwt_issuer: None,
            jwt_audience: None,
            default_skill_id: Some(skill),
            default_priority: Default::default(),
        };
        store.create_app(&app, now).await.unwrap();
        let mut users = Vec::new();
        for i in 0..agents {
            let new = NewUser {
                brand_id: BRAND.into(),
                email: format!("agent{i}@acme.test"),
                name: format!("Agent {i}"),
                role: Role::Agent,
                password_hash: "unused".into(),
                max_concurrent: 2,
                skills: vec![skill],
            };
            let user = store.create_user(&new, now).await.unwrap();
            store.set_user_state(BRAND, user.id, AgentState::Online).await.unwrap();
            users.push(user);
        }
        let bus = Bus::new();
        let (shutdown, engines) = Fixture::engines(&store, &bus, Clock::start());
        Fixture { dir, store, bus, engines, shutdown, skill, agents: users, consumers: 0 }
    }

    fn engines(store: &Store, bus: &Arc<Bus>, clock: Clock) -> (watch::Sender<bool>, Engines) {
        let (shutdown, stopping) = watch::channel(false);
        let config = EngineConfig {
            store: store.clone(),
            fanout: Fanout::new(bus.clone(), store.clone()),
            clock,
            wait_refresh: Duration::from_secs(3600),
            fleet: None,
        };
        (shutdown, Engines::new(config, stopping))
    }

    /// A node restart: the engines stop, new ones start from the store (nobody connected).
    /// The clock goes on (a new one would restart from the system time, behind the paused
    /// time the test has advanced).
    async fn restart(&mut self) {
        let _ = self.shutdown.send(true);
        tokio::task::yield_now().await;
        let (shutdown, engines) = Fixture::engines(&self.store, &self.bus, self.engines.inner.clock);
        engines.start_busy_brands().await.unwrap();
        (self.shutdown, self.engines) = (shutdown, engines);
    }

    /// A new consumer writes: the conversation opens and the engine routes it.
    async fn open(&mut self) -> ConversationId {
        self.consumers += 1;
        let external = format!("consumer-{}", self.consumers);
        let now = self.engines.inner.clock.now();
        let consumer = self.store.upsert_consumer(BRAND, &external, &ConsumerClaims::default(), now).await.unwrap();
        let append = Append::Consumer(ConsumerAppend {
            brand_id: BRAND.into(),
            consumer_id: consumer.id,
            app_id: "app".into(),
            channel: "in_app".into(),
            skill_id: Some(self.skill),
            priority: 0,
            client_id: format!("m-{}", self.consumers),
            text: "hello".into(),
        });
        let appended = self.store.append(append, now).await.unwrap();
        let conversation = self.conversation(appended.message.conversation_id).await;
        self.engines.opened(BRAND, open_conversation_of(&conversation)).await;
        conversation.id
    }

    async fn conversation(&self, id: ConversationId) -> Conversation {
        self.store.conversation(BRAND, id).await.unwrap().unwrap()
    }

    async fn holder(&self, id: ConversationId) -> Option<AgentId> {
        self.conversation(id).await.agent_id
    }

    /// The agent the conversation is being offered to, as the engine says.
    async fn offered_to(&self, id: ConversationId) -> Option<AgentId> {
        self.engines.queue(BRAND).await.iter().find(|w| w.conversation == id).and_then(|w| w.offered_to)
    }

    async fn events(&self, id: ConversationId) -> Vec<String> {
        self.store.conversation_events(BRAND, id).await.unwrap().into_iter().map(|e| e.kind).collect()
    }

    /// Waits (in real time, at most 10 s; tokio time stands still) until `check` holds:
    /// the engine acts on a timer in its own task, after the test's `advance` returned.
    async fn until<F: Future<Output = bool>>(&self, what: &str, mut check: impl FnMut() -> F) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !check().await {
            assert!(std::time::Instant::now() < deadline, "timed out waiting until {what}");
            tokio::task::yield_now().await;
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Keeps the runtime busy so that paused time moves only with `advance` (see the module doc).
fn hold_the_clock() {
    tokio::spawn(async {
        loop {
            tokio::task::yield_now().await;
        }
    });
}

async fn advance(by: Duration) {
    tokio::time::advance(by).await;
}

#[tokio::test(start_paused = true)]
async fn a_dropped_agent_keeps_the_conversation_for_exactly_the_grace_period() {
    hold_the_clock();
    let mut f = Fixture::new(1, SkillRouting::Assign).await;
    let agent = f.agents[0].id;
    let guard = f.engines.agent_connected(BRAND, agent);
    let c = f.open().await;
    assert_eq!(f.holder(c).await, Some(agent), "assigned to the connected agent");

    drop(guard);
    // A round trip through the engine: the disconnect is taken in now, not after the advance.
    f.engines.floor(BRAND, vec![]).await;
    advance(GRACE - Duration::from_secs(1)).await;
    f.engines.floor(BRAND, vec![]).await;
    assert_eq!(f.holder(c).await, Some(agent), "still theirs 1 s before the grace ends");

    advance(Duration::from_secs(1)).await;
    f.until("the conversation is back in the queue", || async { f.holder(c).await.is_none() }).await;
    let waiting = f.engines.queue(BRAND).await;
    let entry = waiting.iter().find(|w| w.conversation == c).expect("queued");
    assert_eq!(entry.since, f.conversation(c).await.opened_at, "keeps its original waiting time");
    assert_eq!(f.events(c).await, ["opened", "assigned", "queued"]);
}

#[tokio::test(start_paused = true)]
async fn an_agent_who_returns_inside_the_grace_keeps_the_conversation() {
    hold_the_clock();
    let mut f = Fixture::new(1, SkillRouting::Assign).await;
    let agent = f.agents[0].id;
    let guard = f.engines.agent_connected(BRAND, agent);
    let c = f.open().await;
    drop(guard);
    f.engines.floor(BRAND, vec![]).await;
    advance(GRACE - Duration::from_secs(5)).await;
    let _back = f.engines.agent_connected(BRAND, agent);
    advance(GRACE * 3).await;
    f.engines.floor(BRAND, vec![]).await;
    assert_eq!(f.holder(c).await, Some(agent));
    assert_eq!(f.events(c).await, ["opened", "assigned"], "no requeue was ever recorded");
}

#[tokio::test(start_paused = true)]
async fn after_a_restart_the_grace_runs_from_the_boot() {
    hold_the_clock();
    let mut f = Fixture::new(1, SkillRouting::Assign).await;
    let agent = f.agents[0].id;
    let guard = f.engines.agent_connected(BRAND, agent);
    let c = f.open().await;
    advance(Duration::from_secs(600)).await;
    drop(guard);
    f.restart().await;
    f.engines.floor(BRAND, vec![]).await;

    advance(GRACE - Duration::from_secs(1)).await;
    f.engines.floor(BRAND, vec![]).await;
    assert_eq!(f.holder(c).await, Some(agent), "nobody connected yet, but the grace runs from the boot");
    advance(Duration::from_secs(1)).await;
    f.until("the conversation is back in the queue", || async { f.holder(c).await.is_none() }).await;
}

#[tokio::test(start_paused = true)]
async fn an_offer_expires_at_its_timeout_and_is_counted() {
    hold_the_clock();
    let mut f = Fixture::new(1, SkillRouting::Offer).await;
    let agent = f.agents[0].id;
    let _guard = f.engines.agent_connected(BRAND, agent);
    let c = f.open().await;
    assert_eq!(f.offered_to(c).await, Some(agent));
    assert_eq!(f.holder(c).await, None, "an offer is not an assignment");

    advance(Duration::from_secs(19)).await;
    assert_eq!(f.offered_to(c).await, Some(agent), "still ringing 1 s before the timeout");
    advance(Duration::from_secs(1)).await;
    f.until("the expiry is recorded", || async { f.events(c).await.contains(&"offer_expired".to_owned()) }).await;
    let expired = f.store.events_per_agent(BRAND, "offer_expired", 0).await.unwrap();
    assert_eq!(expired, [(agent, 1)]);
    assert_eq!(f.holder(c).await, None);
}

#[tokio::test(start_paused = true)]
async fn a_declined_offer_moves_on_to_the_next_agent() {
    hold_the_clock();
    let mut f = Fixture::new(2, SkillRouting::Offer).await;
    let (first, second) = (f.agents[0].id, f.agents[1].id);
    let _a = f.engines.agent_connected(BRAND, first);
    let _b = f.engines.agent_connected(BRAND, second);
    let c = f.open().await;
    let ringing = f.offered_to(c).await.expect("offered to someone");
    let other = if ringing == first { second } else { first };
    f.engines.answer_offer(BRAND, ringing, c, false).await.unwrap();
    assert_eq!(f.offered_to(c).await, Some(other), "the decliner is skipped");
    f.engines.answer_offer(BRAND, other, c, true).await.unwrap();
    assert_eq!(f.holder(c).await, Some(other));
    assert!(f.engines.answer_offer(BRAND, ringing, c, true).await.is_err(), "an offer that is gone cannot be accepted");
    assert_eq!(f.events(c).await, ["opened", "offer_declined", "assigned"]);
}

#[tokio::test(start_paused = true)]
async fn a_state_choice_that_is_not_stored_is_answered_with_the_error() {
    hold_the_clock();
    let f = Fixture::new(1, SkillRouting::Assign).await;
    let agent = f.agents[0].id;
    let _guard = f.engines.agent_connected(BRAND, agent);
    f.engines.choose_state(BRAND, agent, AgentState::Away).await.expect("stored");
    // The database now refuses to change the agent (as a full disk would).
    let db = rusqlite::Connection::open(f.dir.join("test.db")).unwrap();
    db.execute_batch(
        "CREATE TRIGGER refuse BEFORE UPDATE OF state ON users BEGIN SELECT RAISE(ABORT, 'disk full'); END;",
    )
    .unwrap();
    let error = f.engines.choose_state(BRAND, agent, AgentState::Online).await.expect_err("the write failed");
    assert!(error.to_string().contains("disk full"), "{error}");
    let floor = f.engines.floor(BRAND, vec![]).await;
    let view = floor.agents.iter().find(|a| a.agent == agent).unwrap();
    assert_eq!(view.presence.chosen, AgentState::Away, "the desk holds what the store holds");
    assert_eq!(f.store.user(BRAND, agent).await.unwrap().unwrap().state, AgentState::Away);
}

/// Saves a template for `trigger`, brand-wide in English.
async fn template(f: &Fixture, trigger: &str, text: &str) {
    let new = switchboard_store::NewAutomaticMessage {
        trigger: trigger.into(),
        skill_id: None,
        language: "en".into(),
        enabled: true,
        text: text.into(),
    };
    f.store.put_automatic_message(BRAND, &new, 0).await.unwrap();
    f.engines.templates_changed(BRAND);
}

/// Turns auto-close on for the brand: after `secs`, warning `warn` seconds before.
async fn auto_close(f: &Fixture, secs: i64, warn: Option<i64>) {
    let patch = switchboard_store::BrandPatch {
        auto_close_secs: Some(Some(secs)),
        auto_close_warn_secs: Some(warn),
        ..Default::default()
    };
    let brand = f.store.update_brand(BRAND, &patch).await.unwrap();
    f.engines.settings_changed(&brand);
}

/// The system messages of a conversation, oldest first.
async fn notices(f: &Fixture, c: ConversationId) -> Vec<String> {
    let messages = f.store.messages_after(BRAND, c, 0, 100).await.unwrap();
    messages.into_iter().filter(|m| m.side == Side::System).map(|m| m.text).collect()
}

#[tokio::test(start_paused = true)]
async fn auto_close_warns_and_closes_on_time_and_a_restart_in_between_sends_nothing_twice() {
    hold_the_clock();
    let mut f = Fixture::new(1, SkillRouting::Assign).await;
    template(&f, "inactive_warning", "Still there?").await;
    template(&f, "auto_closed", "Closed for now.").await;
    auto_close(&f, 600, Some(120)).await;
    let agent = f.agents[0].id;
    let _guard = f.engines.agent_connected(BRAND, agent);
    let c = f.open().await;
    advance(Duration::from_secs(5)).await;
    // The agent answers (through the store, as the socket does), then tells the engine.
    let at = f.engines.inner.clock.now();
    let reply = switchboard_store::AgentAppend {
        brand_id: BRAND.into(),
        agent_id: agent,
        agent_name: "Agent 0".into(),
        may_write_unassigned: false,
        target: switchboard_store::AgentTarget::Conversation(c),
        client_id: "a1".into(),
        text: "Anything else?".into(),
    };
    f.store.append(Append::Agent(reply), at).await.unwrap();
    f.engines.agent_wrote(BRAND, c, at);
    f.engines.floor(BRAND, vec![]).await;

    advance(Duration::from_secs(479)).await;
    f.engines.floor(BRAND, vec![]).await;
    assert!(notices(&f, c).await.is_empty(), "no warning a second early");
    advance(Duration::from_secs(1)).await;
    f.until("the warning is stored", || async { !notices(&f, c).await.is_empty() }).await;
    assert_eq!(notices(&f, c).await, ["Still there?"]);

    // A restart before the close (the agent's browser reconnects): the warning is not sent
    // again, the close comes on time.
    f.restart().await;
    let _back = f.engines.agent_connected(BRAND, agent);
    f.engines.floor(BRAND, vec![]).await;
    advance(Duration::from_secs(119)).await;
    f.engines.floor(BRAND, vec![]).await;
    assert_eq!(f.conversation(c).await.status, ConversationStatus::Open);
    advance(Duration::from_secs(1)).await;
    f.until("the conversation auto-closes", || async { f.conversation(c).await.auto_closed }).await;
    f.until("the auto-closed message is stored", || async { notices(&f, c).await.len() == 2 }).await;
    assert_eq!(notices(&f, c).await, ["Still there?", "Closed for now."]);
    assert_eq!(f.events(c).await.last().map(String::as_str), Some("auto_closed"));
}

#[tokio::test(start_paused = true)]
async fn a_consumer_answer_stops_the_auto_close_without_the_engine_hearing_of_it() {
    hold_the_clock();
    let mut f = Fixture::new(1, SkillRouting::Assign).await;
    auto_close(&f, 600, None).await;
    let agent = f.agents[0].id;
    let _guard = f.engines.agent_connected(BRAND, agent);
    let c = f.open().await;
    advance(Duration::from_secs(5)).await;
    let at = f.engines.inner.clock.now();
    f.engines.agent_wrote(BRAND, c, at);
    let consumer = f.conversation(c).await.consumer_id;
    advance(Duration::from_secs(300)).await;
    // The consumer answers on the hot path: stored, the engine is not told.
    let answer = switchboard_store::ConsumerAppend {
        brand_id: BRAND.into(),
        consumer_id: consumer,
        app_id: "app".into(),
        channel: "in_app".into(),
        skill_id: Some(f.skill),
        priority: 0,
        client_id: "m-answer".into(),
        text: "yes, one more thing".into(),
    };
    f.store.append(Append::Consumer(answer), f.engines.inner.clock.now()).await.unwrap();
    advance(Duration::from_secs(600)).await;
    f.engines.floor(BRAND, vec![]).await;
    f.engines.floor(BRAND, vec![]).await;
    assert_eq!(f.conversation(c).await.status, ConversationStatus::Open, "the answer at the deadline keeps it open");
}
