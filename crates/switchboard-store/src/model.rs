//! Plain data types the store reads and writes. They carry the brand id wherever a row
//! belongs to a brand, so callers can never lose track of tenancy. They are rows, not API
//! types: the server's `api::types` are what REST answers (and have OpenAPI schemas).

use serde::{Deserialize, Serialize};
use switchboard_protocol::{AgentState, ConversationId, ConversationStatus, DeviceInfo, Millis, Side};

/// A tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Brand {
    pub id: String,
    pub name: String,
    /// Ask consumers for a CSAT score after an agent resolves.
    pub csat_enabled: bool,
    /// Conversations closed longer ago than this are past retention: no API returns them,
    /// and the retention purge deletes them (`switchboard_core::retention`).
    pub retention_days: i64,
    /// How long an agent whose sockets all dropped (or who chose offline) keeps their
    /// conversations before they return to the queue.
    pub agent_grace_secs: i64,
    /// The skill of new conversations whose app names none (`null`: no particular skill).
    pub default_skill_id: Option<i64>,
    /// Language of automatic messages for consumers whose language has no template.
    pub default_language: String,
    /// Close a conversation the consumer has not answered for this long after the agent's
    /// last message (`null`: never).
    pub auto_close_secs: Option<i64>,
    /// Warn the consumer this long before an auto-close (`null`: no warning).
    pub auto_close_warn_secs: Option<i64>,
    /// Offer the CSAT survey when a conversation auto-closes.
    pub auto_close_survey: bool,
    /// An agent who starts a conversation by writing to a consumer (a proactive follow-up)
    /// may read the consumer's other conversations too (default `false`: only their own).
    pub follow_up_history: bool,
    /// Pushes say only "You have a new message": no text, no author.
    #[serde(default)]
    pub push_masked: bool,
    pub created_at: Millis,
}

/// Default agent grace period: 60 seconds.
pub const DEFAULT_AGENT_GRACE_SECS: i64 = 60;

/// Default retention: 13 months, counted as 396 days.
pub const DEFAULT_RETENTION_DAYS: i64 = switchboard_core::retention::DEFAULT_RETENTION_DAYS;

/// A data source of a brand: an iOS app, an Android app, a website.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct App {
    pub id: String,
    pub brand_id: String,
    pub name: String,
    /// `in_app` or `web`.
    pub channel: String,
    /// Consumers may authenticate with a JWT signed by the brand.
    pub allow_jwt: bool,
    /// Consumers may connect without a JWT and get an anonymous identity.
    pub allow_anonymous: bool,
    /// Required `iss` claim of consumer JWTs.
    pub jwt_issuer: Option<String>,
    /// Required `aud` claim; the app id when unset.
    pub jwt_audience: Option<String>,
    /// Skill new conversations from this app are routed to.
    pub default_skill_id: Option<i64>,
    /// Priority new conversations from this app start at (a skill's default may raise it).
    pub default_priority: ConversationPriority,
    /// Further skills a device of this app may ask to start in (its entry points).
    #[serde(default)]
    pub entry_skill_ids: Vec<i64>,
    pub created_at: Millis,
}

/// An app's link to the brand's identity provider (consumer authentication).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentitySettings {
    /// Where the provider publishes its signing keys (a JWKS document); fetched and cached,
    /// used beside the keys uploaded to the app.
    pub jwks_url: Option<String>,
    /// The OAuth2 authorization code flow, when set up.
    pub code_flow: Option<CodeFlowSettings>,
}

/// The OAuth2 authorization code flow of an app: where codes are exchanged, as which client.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeFlowSettings {
    /// The provider's token endpoint.
    pub token_url: String,
    pub client_id: String,
    /// Secret: never returned by the API, never logged.
    pub client_secret: String,
    /// The `redirect_uri` the app's authorization request used, if the provider requires it
    /// at the exchange (a device may send its own).
    pub redirect_uri: Option<String>,
}

impl std::fmt::Debug for CodeFlowSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodeFlowSettings")
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .field("redirect_uri", &self.redirect_uri)
            .finish_non_exhaustive()
    }
}

/// A public key an app accepts consumer JWTs from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppKey {
    pub id: i64,
    pub app_id: String,
    /// `pem` or `jwks`.
    pub format: String,
    /// The PEM text or the JWKS JSON document.
    pub material: String,
    pub created_at: Millis,
}

/// A routing skill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skill {
    pub id: i64,
    pub brand_id: String,
    pub name: String,
    /// `assign`: conversations go straight to the chosen agent; `offer`: the agent is rung
    /// first and accepts or declines within `offer_timeout_secs`.
    pub routing: SkillRouting,
    pub offer_timeout_secs: i64,
    /// The priority new conversations of this skill start with.
    pub default_priority: ConversationPriority,
}

/// How urgent a conversation is: queues serve urgent, then high, then normal, each oldest
/// first. Stored as 0, 1, 2 (`conversations.priority`, `skills.default_priority`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConversationPriority {
    #[default]
    Normal,
    High,
    Urgent,
}

impl ConversationPriority {
    /// The domain's priority.
    pub fn to_core(self) -> switchboard_core::desk::Priority {
        match self {
            ConversationPriority::Normal => switchboard_core::desk::Priority::Normal,
            ConversationPriority::High => switchboard_core::desk::Priority::High,
            ConversationPriority::Urgent => switchboard_core::desk::Priority::Urgent,
        }
    }

    /// From the domain's priority.
    pub fn of(priority: switchboard_core::desk::Priority) -> ConversationPriority {
        match priority {
            switchboard_core::desk::Priority::Normal => ConversationPriority::Normal,
            switchboard_core::desk::Priority::High => ConversationPriority::High,
            switchboard_core::desk::Priority::Urgent => ConversationPriority::Urgent,
        }
    }
}

/// How a skill hands conversations to agents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkillRouting {
    /// Straight to the least-loaded agent.
    #[default]
    Assign,
    /// Rung to one agent at a time, who accepts or declines.
    Offer,
}

impl SkillRouting {
    /// Stable form used in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            SkillRouting::Assign => "assign",
            SkillRouting::Offer => "offer",
        }
    }

    /// Parses [`SkillRouting::as_str`].
    pub fn parse(s: &str) -> Option<SkillRouting> {
        match s {
            "assign" => Some(SkillRouting::Assign),
            "offer" => Some(SkillRouting::Offer),
            _ => None,
        }
    }
}

/// Role of a brand user. Each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Answers conversations.
    Agent,
    /// Sees the whole brand, dashboards and reports.
    Manager,
    /// Manages apps, keys, users, skills and settings.
    Admin,
}

impl Role {
    /// Stable form used in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Manager => "manager",
            Role::Admin => "admin",
        }
    }

    /// The domain's role.
    pub fn to_core(self) -> switchboard_core::policy::StaffRole {
        match self {
            Role::Agent => switchboard_core::policy::StaffRole::Agent,
            Role::Manager => switchboard_core::policy::StaffRole::Manager,
            Role::Admin => switchboard_core::policy::StaffRole::Admin,
        }
    }

    /// Parses [`Role::as_str`].
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "agent" => Some(Role::Agent),
            "manager" => Some(Role::Manager),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// An agent, manager or admin of a brand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: i64,
    pub brand_id: String,
    pub email: String,
    pub name: String,
    pub role: Role,
    #[serde(skip)]
    pub password_hash: String,
    pub max_concurrent: i64,
    pub state: AgentState,
    pub disabled: bool,
    pub skills: Vec<i64>,
    pub created_at: Millis,
}

impl User {
    /// The user as the domain's policy sees them.
    pub fn staff(&self) -> switchboard_core::policy::Staff {
        switchboard_core::policy::Staff { id: self.id, role: self.role.to_core() }
    }
}

/// A consumer of a brand: the brand's customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consumer {
    pub id: i64,
    pub brand_id: String,
    /// JWT `sub`, or `anon:<id>` for anonymous consumers.
    pub external_id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub device: Option<DeviceInfo>,
    /// BCP 47 language tag from the device, e.g. `de-AT` (automatic messages use it).
    pub language: Option<String>,
    pub created_at: Millis,
}

/// Profile fields taken from token claims; `None` leaves the stored value as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsumerClaims {
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    /// BCP 47 language tag.
    pub language: Option<String>,
}

/// A conversation row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversation {
    pub id: ConversationId,
    pub brand_id: String,
    pub consumer_id: i64,
    pub app_id: String,
    pub channel: String,
    pub skill_id: Option<i64>,
    pub status: ConversationStatus,
    pub priority: i64,
    pub opened_at: Millis,
    pub closed_at: Option<Millis>,
    pub closed_by: Option<Side>,
    pub agent_id: Option<i64>,
    pub assigned_at: Option<Millis>,
    pub first_response_at: Option<Millis>,
    pub last_seq: i64,
    pub last_message_at: Millis,
    pub consumer_delivered_seq: i64,
    pub consumer_read_seq: i64,
    pub agent_delivered_seq: i64,
    pub agent_read_seq: i64,
    /// A CSAT survey was offered and not answered yet.
    pub survey_open: bool,
    pub csat_score: Option<i64>,
    pub csat_comment: Option<String>,
    /// When an agent last wrote (the auto-close clock starts there).
    pub last_agent_at: Option<Millis>,
    /// When the consumer last wrote.
    pub last_consumer_at: Option<Millis>,
    /// Closed by the auto-close rule (the consumer stopped answering).
    pub auto_closed: bool,
    /// The agent who started it by writing to the consumer (a proactive follow-up), if one did.
    pub follow_up_by: Option<i64>,
}

/// An automatic-message template of a brand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutomaticMessage {
    pub id: i64,
    pub brand_id: String,
    /// `switchboard_core::automation::Trigger::as_str`.
    pub trigger: String,
    /// `None`: brand-wide.
    pub skill_id: Option<i64>,
    /// Primary language subtag, e.g. `en`.
    pub language: String,
    pub enabled: bool,
    pub text: String,
    pub updated_at: Millis,
}

/// A stored message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMessage {
    pub conversation_id: ConversationId,
    pub seq: i64,
    pub side: Side,
    pub author_id: Option<i64>,
    pub author_name: Option<String>,
    pub text: String,
    pub client_id: Option<String>,
    pub created_at: Millis,
}

impl StoredMessage {
    /// The wire form.
    pub fn to_wire(&self) -> switchboard_protocol::Message {
        switchboard_protocol::Message {
            c: self.conversation_id,
            seq: self.seq,
            ts: self.created_at,
            from: self.side,
            name: self.author_name.clone(),
            text: self.text.clone(),
            cid: self.client_id.clone(),
        }
    }
}

/// Filters for listing a brand's conversations (REST) or a consumer's own (history).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConversationFilter {
    pub status: Option<ConversationStatus>,
    pub consumer_id: Option<i64>,
    pub agent_id: Option<i64>,
    pub skill_id: Option<i64>,
    /// Opened at or after.
    pub opened_from: Option<Millis>,
    /// Opened before.
    pub opened_to: Option<Millis>,
    /// Only conversations within the brand's retention at this moment (`now`): the APIs
    /// always set it; `None` lists past-retention conversations too (internal tools).
    pub retained_at: Option<Millis>,
}

/// What a search of a brand's conversations asks for (the reporting API and transcript
/// exports): every filter that is set must match. Conversations past retention are never
/// found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConversationSearch {
    /// Opened at or after.
    pub opened_from: Option<Millis>,
    /// Opened before.
    pub opened_to: Option<Millis>,
    pub skill_id: Option<i64>,
    /// Held by this agent (now, or last if closed).
    pub agent_id: Option<i64>,
    pub status: Option<ConversationStatus>,
    /// CSAT score at least this (only scored conversations match).
    pub csat_min: Option<i64>,
    /// CSAT score at most this (only scored conversations match).
    pub csat_max: Option<i64>,
    /// `in_app`, `web`, …
    pub channel: Option<String>,
    /// The consumer (internal id).
    pub consumer_id: Option<i64>,
}

/// A page position: conversations are listed newest first, by (opened_at, id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageCursor {
    pub opened_at: Millis,
    pub id: ConversationId,
}

impl PageCursor {
    /// Opaque text form for APIs.
    pub fn encode(self) -> String {
        format!("{}.{}", self.opened_at, self.id)
    }

    /// Parses [`PageCursor::encode`]; `None` if malformed.
    pub fn decode(text: &str) -> Option<PageCursor> {
        let (opened_at, id) = text.split_once('.')?;
        Some(PageCursor { opened_at: opened_at.parse().ok()?, id: id.parse().ok()? })
    }
}

/// One page of conversations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationPage {
    pub conversations: Vec<Conversation>,
    pub next: Option<PageCursor>,
}

/// One entry of a conversation's event log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationEvent {
    /// `opened`, `assigned`, `queued` or `closed`.
    pub kind: String,
    pub agent_id: Option<i64>,
    pub skill_id: Option<i64>,
    pub at: Millis,
}

/// Where an app's APNs pushes go: Apple's production service (App Store and TestFlight
/// builds) or its sandbox (development builds); a device token belongs to one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ApnsEnvironment {
    #[default]
    Production,
    Sandbox,
}

impl ApnsEnvironment {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            ApnsEnvironment::Production => "production",
            ApnsEnvironment::Sandbox => "sandbox",
        }
    }

    /// Parses [`ApnsEnvironment::as_str`].
    pub fn parse(s: &str) -> Option<ApnsEnvironment> {
        match s {
            "production" => Some(ApnsEnvironment::Production),
            "sandbox" => Some(ApnsEnvironment::Sandbox),
            _ => None,
        }
    }
}

/// An app's Firebase Cloud Messaging credentials. `service_account_json` is a secret.
#[derive(Clone, PartialEq, Eq)]
pub struct FcmSettings {
    /// The Firebase project the app's tokens belong to.
    pub project_id: String,
    /// The service account's key file (JSON) as downloaded from the Google Cloud console.
    pub service_account_json: String,
}

impl std::fmt::Debug for FcmSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FcmSettings").field("project_id", &self.project_id).finish_non_exhaustive()
    }
}

/// An app's APNs token-authentication credentials. `private_key` (the .p8 file) is a secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ApnsSettings {
    /// The key's id (10 characters), from the Apple developer account.
    pub key_id: String,
    /// The developer team id (10 characters).
    pub team_id: String,
    /// The app's bundle id: every push's `apns-topic`.
    pub bundle_id: String,
    /// The .p8 file: a PKCS#8 PEM P-256 private key.
    pub private_key: String,
    pub environment: ApnsEnvironment,
}

impl std::fmt::Debug for ApnsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApnsSettings")
            .field("key_id", &self.key_id)
            .field("team_id", &self.team_id)
            .field("bundle_id", &self.bundle_id)
            .field("environment", &self.environment)
            .finish_non_exhaustive()
    }
}

/// An app's push credentials, per provider (`None`: not configured).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushSettings {
    pub brand_id: String,
    pub app_id: String,
    pub fcm: Option<FcmSettings>,
    pub apns: Option<ApnsSettings>,
    /// When either provider's settings last changed: cached credentials older than this are
    /// stale.
    pub updated_at: Millis,
}

/// A registered device a push can go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushTarget {
    /// `apns` or `fcm`.
    pub provider: String,
    pub token: String,
    /// The app the device registered from (whose push settings apply).
    pub app_id: String,
    /// The newest outbox entry a push to this device covered (0: none yet).
    pub pushed_outbox_id: i64,
}

/// What a push announces: the message (as stored: masked for storage), how far the consumer's
/// devices confirmed delivery in its conversation, and the consumer's unread count (messages
/// from the brand after their read mark, over all their conversations: the badge).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushSubject {
    pub message: StoredMessage,
    pub consumer_delivered_seq: i64,
    pub unread: i64,
}

/// What became of the pending pushes of one consumer, written in one transaction by
/// [`Store::settle_push`](crate::Store::settle_push).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushSettlement {
    /// Outbox entries done with (sent, covered by a later one, or given up): removed.
    pub completed: Vec<i64>,
    /// An entry to try again: (id, when, the error that made it wait).
    pub retry: Option<(i64, Millis, String)>,
    /// Devices a push covered up to an outbox entry: (provider, token, entry id).
    pub pushed: Vec<(String, String, i64)>,
    /// Devices the provider said are gone: (provider, token), unregistered.
    pub removed: Vec<(String, String)>,
}
