//! Fixtures shared by the conformance tests: a brand with one app ([`Brand`]), consumers,
//! agents, and short forms of the append requests. Times are plain milliseconds from [`T0`].

use switchboard_protocol::{ConversationId, Millis};
use switchboard_store::{
    AgentAppend, AgentTarget, Append, AppendError, Appended, ConsumerAppend, ConsumerClaims, Conversation, NewApp,
    NewBrand, NewUser, Role, Store, StoredMessage, User,
};

/// A fixed "now" the tests count from (2023-11-14T22:13:20Z).
pub const T0: Millis = 1_700_000_000_000;

/// One second, in store time units.
pub const SECOND: Millis = 1_000;

/// A brand with one in-app app, as the server would have set it up.
#[derive(Clone)]
pub struct Brand {
    pub store: Store,
    pub id: String,
    pub app_id: String,
}

impl Brand {
    /// Creates brand `id` with an app `<id>-ios` on channel `in_app`.
    pub async fn create(store: &Store, id: &str) -> Brand {
        store
            .create_brand(&NewBrand { id: id.to_owned(), name: format!("Brand {id}") }, T0)
            .await
            .expect("create brand");
        let app_id = format!("{id}-ios");
        store
            .create_app(
                &NewApp {
                    id: app_id.clone(),
                    brand_id: id.to_owned(),
                    name: "iOS".to_owned(),
                    channel: "in_app".to_owned(),
                    allow_jwt: true,
                    allow_anonymous: false,
                    jwt_issuer: None,
                    jwt_audience: None,
                    default_skill_id: None,
                    default_priority: Default::default(),
                },
                T0,
            )
            .await
            .expect("create app");
        Brand { store: store.clone(), id: id.to_owned(), app_id }
    }

    /// The id of consumer `external_id`, created on first use.
    pub async fn consumer(&self, external_id: &str) -> i64 {
        self.store
            .upsert_consumer(&self.id, external_id, &ConsumerClaims::default(), T0)
            .await
            .expect("upsert consumer")
            .id
    }

    /// Creates a user with `role` and no skills.
    pub async fn user(&self, email: &str, role: Role) -> User {
        self.store
            .create_user(
                &NewUser {
                    brand_id: self.id.clone(),
                    email: email.to_owned(),
                    name: email.split('@').next().unwrap_or(email).to_owned(),
                    role,
                    password_hash: "$argon2id$not-a-real-hash".to_owned(),
                    max_concurrent: 3,
                    skills: Vec::new(),
                },
                T0,
            )
            .await
            .expect("create user")
    }

    /// Creates an agent.
    pub async fn agent(&self, email: &str) -> User {
        self.user(email, Role::Agent).await
    }

    /// A consumer message through this brand's app.
    pub fn consumer_append(&self, consumer_id: i64, client_id: &str, text: &str) -> Append {
        Append::Consumer(ConsumerAppend {
            brand_id: self.id.clone(),
            consumer_id,
            app_id: self.app_id.clone(),
            channel: "in_app".to_owned(),
            skill_id: None,
            priority: 0,
            client_id: client_id.to_owned(),
            text: text.to_owned(),
        })
    }

    /// An agent message (without the manager's right to write into others' conversations).
    pub fn agent_append(&self, agent: &User, target: AgentTarget, client_id: &str, text: &str) -> Append {
        Append::Agent(AgentAppend {
            brand_id: self.id.clone(),
            agent_id: agent.id,
            agent_name: agent.name.clone(),
            may_write_unassigned: false,
            target,
            client_id: client_id.to_owned(),
            text: text.to_owned(),
        })
    }

    /// The consumer writes; the append must succeed.
    pub async fn say(&self, consumer_id: i64, client_id: &str, text: &str, now: Millis) -> Appended {
        self.store
            .append(self.consumer_append(consumer_id, client_id, text), now)
            .await
            .unwrap_or_else(|error| panic!("consumer append {client_id:?} failed: {error}"))
    }

    /// The agent writes; the result is returned for the test to check.
    pub async fn reply(
        &self,
        agent: &User,
        target: AgentTarget,
        client_id: &str,
        text: &str,
        now: Millis,
    ) -> Result<Appended, AppendError> {
        self.store.append(self.agent_append(agent, target, client_id, text), now).await
    }

    /// The conversation, which must exist in this brand.
    pub async fn conversation(&self, id: ConversationId) -> Conversation {
        self.store
            .conversation(&self.id, id)
            .await
            .expect("read conversation")
            .expect("conversation exists in its brand")
    }

    /// Every message of the conversation, oldest first.
    pub async fn messages(&self, id: ConversationId) -> Vec<StoredMessage> {
        self.store.messages_after(&self.id, id, 0, 10_000).await.expect("read messages")
    }
}

/// The `seq` of each message.
pub fn seqs(messages: &[StoredMessage]) -> Vec<i64> {
    messages.iter().map(|message| message.seq).collect()
}
