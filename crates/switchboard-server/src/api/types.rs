//! The REST API's response types (and the enums its requests share with them): what the
//! OpenAPI document describes and handlers return. Store rows (`switchboard_store`) convert
//! into them with `From`; the store knows nothing of HTTP or OpenAPI. Secrets have no field
//! here at all (a user's password hash, an API token's hash), so no response can carry one.
//! The names, fields and doc comments are those of the schemas in `/openapi.json`.

use serde::{Deserialize, Serialize};
use switchboard_protocol::{AgentState, ConversationId, ConversationStatus, DeviceInfo, Millis, Side};
use utoipa::ToSchema;

/// A tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Brand {
    pub id: String,
    pub name: String,
    /// Ask consumers for a CSAT score after an agent resolves.
    pub csat_enabled: bool,
    /// Conversations opened longer ago than this are left out of a consumer's history. They
    /// stay stored: no retention purge exists yet.
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
    /// may read the consumer's other conversations too; `false` (the default): only the
    /// conversations they hold or held.
    pub follow_up_history: bool,
    /// Pushes say only "You have a new message": no text, no author.
    pub push_masked: bool,
    pub created_at: Millis,
}

impl From<switchboard_store::Brand> for Brand {
    fn from(brand: switchboard_store::Brand) -> Brand {
        let switchboard_store::Brand {
            id,
            name,
            csat_enabled,
            retention_days,
            agent_grace_secs,
            default_skill_id,
            default_language,
            auto_close_secs,
            auto_close_warn_secs,
            auto_close_survey,
            follow_up_history,
            push_masked,
            created_at,
        } = brand;
        Brand {
            id,
            name,
            csat_enabled,
            retention_days,
            agent_grace_secs,
            default_skill_id,
            default_language,
            auto_close_secs,
            auto_close_warn_secs,
            auto_close_survey,
            follow_up_history,
            push_masked,
            created_at,
        }
    }
}

/// A data source of a brand: an iOS app, an Android app, a website.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
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

impl From<switchboard_store::App> for App {
    fn from(app: switchboard_store::App) -> App {
        let switchboard_store::App {
            id,
            brand_id,
            name,
            channel,
            allow_jwt,
            allow_anonymous,
            jwt_issuer,
            jwt_audience,
            default_skill_id,
            default_priority,
            entry_skill_ids,
            created_at,
        } = app;
        App {
            id,
            brand_id,
            name,
            channel,
            allow_jwt,
            allow_anonymous,
            jwt_issuer,
            jwt_audience,
            default_skill_id,
            default_priority: default_priority.into(),
            entry_skill_ids,
            created_at,
        }
    }
}

/// A public key an app accepts consumer JWTs from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AppKey {
    pub id: i64,
    pub app_id: String,
    /// `pem` or `jwks`.
    pub format: String,
    /// The PEM text or the JWKS JSON document.
    pub material: String,
    pub created_at: Millis,
}

impl From<switchboard_store::AppKey> for AppKey {
    fn from(key: switchboard_store::AppKey) -> AppKey {
        // `material` is a public key (or a JWKS of public keys): the admin pages show it, and
        // it is no secret. Private keys are never accepted (`jwt::parse_key`).
        let switchboard_store::AppKey { id, app_id, format, material, created_at } = key;
        AppKey { id, app_id, format, material, created_at }
    }
}

/// A routing skill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
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

impl From<switchboard_store::Skill> for Skill {
    fn from(skill: switchboard_store::Skill) -> Skill {
        let switchboard_store::Skill { id, brand_id, name, routing, offer_timeout_secs, default_priority } = skill;
        Skill {
            id,
            brand_id,
            name,
            routing: routing.into(),
            offer_timeout_secs,
            default_priority: default_priority.into(),
        }
    }
}

/// How urgent a conversation is: queues serve urgent, then high, then normal, each oldest
/// first. Stored as 0, 1, 2 (`conversations.priority`, `skills.default_priority`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConversationPriority {
    #[default]
    Normal,
    High,
    Urgent,
}

impl From<switchboard_store::ConversationPriority> for ConversationPriority {
    fn from(priority: switchboard_store::ConversationPriority) -> ConversationPriority {
        match priority {
            switchboard_store::ConversationPriority::Normal => ConversationPriority::Normal,
            switchboard_store::ConversationPriority::High => ConversationPriority::High,
            switchboard_store::ConversationPriority::Urgent => ConversationPriority::Urgent,
        }
    }
}

impl From<ConversationPriority> for switchboard_store::ConversationPriority {
    fn from(priority: ConversationPriority) -> switchboard_store::ConversationPriority {
        match priority {
            ConversationPriority::Normal => switchboard_store::ConversationPriority::Normal,
            ConversationPriority::High => switchboard_store::ConversationPriority::High,
            ConversationPriority::Urgent => switchboard_store::ConversationPriority::Urgent,
        }
    }
}

impl From<switchboard_core::desk::Priority> for ConversationPriority {
    fn from(priority: switchboard_core::desk::Priority) -> ConversationPriority {
        switchboard_store::ConversationPriority::of(priority).into()
    }
}

impl From<ConversationPriority> for switchboard_core::desk::Priority {
    fn from(priority: ConversationPriority) -> switchboard_core::desk::Priority {
        switchboard_store::ConversationPriority::from(priority).to_core()
    }
}

/// How a skill hands conversations to agents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SkillRouting {
    /// Straight to the least-loaded agent.
    #[default]
    Assign,
    /// Rung to one agent at a time, who accepts or declines.
    Offer,
}

impl From<switchboard_store::SkillRouting> for SkillRouting {
    fn from(routing: switchboard_store::SkillRouting) -> SkillRouting {
        match routing {
            switchboard_store::SkillRouting::Assign => SkillRouting::Assign,
            switchboard_store::SkillRouting::Offer => SkillRouting::Offer,
        }
    }
}

impl From<SkillRouting> for switchboard_store::SkillRouting {
    fn from(routing: SkillRouting) -> switchboard_store::SkillRouting {
        match routing {
            SkillRouting::Assign => switchboard_store::SkillRouting::Assign,
            SkillRouting::Offer => switchboard_store::SkillRouting::Offer,
        }
    }
}

/// Role of a brand user. Each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Answers conversations.
    Agent,
    /// Sees the whole brand, dashboards and reports.
    Manager,
    /// Manages apps, keys, users, skills and settings.
    Admin,
}

impl From<switchboard_store::Role> for Role {
    fn from(role: switchboard_store::Role) -> Role {
        match role {
            switchboard_store::Role::Agent => Role::Agent,
            switchboard_store::Role::Manager => Role::Manager,
            switchboard_store::Role::Admin => Role::Admin,
        }
    }
}

impl From<Role> for switchboard_store::Role {
    fn from(role: Role) -> switchboard_store::Role {
        match role {
            Role::Agent => switchboard_store::Role::Agent,
            Role::Manager => switchboard_store::Role::Manager,
            Role::Admin => switchboard_store::Role::Admin,
        }
    }
}

/// An agent, manager or admin of a brand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct User {
    pub id: i64,
    pub brand_id: String,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub max_concurrent: i64,
    pub state: AgentState,
    pub disabled: bool,
    pub skills: Vec<i64>,
    pub created_at: Millis,
}

impl From<switchboard_store::User> for User {
    fn from(user: switchboard_store::User) -> User {
        // The password hash stays behind: it has no field here.
        let switchboard_store::User {
            id,
            brand_id,
            email,
            name,
            role,
            password_hash: _,
            max_concurrent,
            state,
            disabled,
            skills,
            created_at,
        } = user;
        User { id, brand_id, email, name, role: role.into(), max_concurrent, state, disabled, skills, created_at }
    }
}

/// A consumer of a brand: the brand's customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Consumer {
    pub id: i64,
    pub brand_id: String,
    /// JWT `sub`, or `anon:<id>` for anonymous consumers.
    pub external_id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub device: Option<DeviceInfo>,
    /// The language the consumer's app speaks (a BCP 47 tag), if it said.
    pub language: Option<String>,
    pub created_at: Millis,
}

impl From<switchboard_store::Consumer> for Consumer {
    fn from(consumer: switchboard_store::Consumer) -> Consumer {
        let switchboard_store::Consumer { id, brand_id, external_id, name, email, phone, device, language, created_at } =
            consumer;
        Consumer { id, brand_id, external_id, name, email, phone, device, language, created_at }
    }
}

/// A conversation row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
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
    /// Closed by the auto-close rule (the consumer stopped answering).
    pub auto_closed: bool,
}

impl From<switchboard_store::Conversation> for Conversation {
    fn from(conversation: switchboard_store::Conversation) -> Conversation {
        let switchboard_store::Conversation {
            id,
            brand_id,
            consumer_id,
            app_id,
            channel,
            skill_id,
            status,
            priority,
            opened_at,
            closed_at,
            closed_by,
            agent_id,
            assigned_at,
            first_response_at,
            last_seq,
            last_message_at,
            consumer_delivered_seq,
            consumer_read_seq,
            agent_delivered_seq,
            agent_read_seq,
            survey_open,
            csat_score,
            csat_comment,
            auto_closed,
            // Internal clocks of auto-close, not part of the API.
            last_agent_at: _,
            last_consumer_at: _,
            // Read by the access rule (who may read the consumer's history), not shown.
            follow_up_by: _,
        } = conversation;
        Conversation {
            id,
            brand_id,
            consumer_id,
            app_id,
            channel,
            skill_id,
            status,
            priority,
            opened_at,
            closed_at,
            closed_by,
            agent_id,
            assigned_at,
            first_response_at,
            last_seq,
            last_message_at,
            consumer_delivered_seq,
            consumer_read_seq,
            agent_delivered_seq,
            agent_read_seq,
            survey_open,
            csat_score,
            csat_comment,
            auto_closed,
        }
    }
}

/// An API token (the secret itself is never stored, only its hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApiToken {
    pub id: i64,
    pub brand_id: String,
    pub name: String,
    /// The most it may do. It acts with the lower of this and its creator's current role,
    /// and not at all once its creator is disabled.
    pub role: Role,
    /// The user who created it.
    pub created_by: i64,
    pub created_at: Millis,
    /// When it stops working; absent: until revoked.
    pub expires_at: Option<Millis>,
    /// When it last authenticated a request or socket (to the minute).
    pub last_used_at: Option<Millis>,
    /// Whether it works now.
    pub status: TokenStatus,
    /// The role it acts with now (the lower of `role` and its creator's current role);
    /// absent unless `status` is `active`.
    pub acts_as: Option<Role>,
}

/// Whether an API token works now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenStatus {
    /// It authenticates requests and sockets, as `acts_as`.
    Active,
    /// Past its `expires_at`.
    Expired,
    /// Its creator's account is disabled; it works again if they are enabled.
    CreatorDisabled,
    /// Its creator's account no longer exists.
    CreatorMissing,
}

impl ApiToken {
    /// The token as it stands at `now`, given its creator's standing (`None`: no such user).
    pub fn at(
        token: switchboard_store::ApiToken,
        creator: Option<switchboard_store::TokenCreator>,
        now: Millis,
    ) -> ApiToken {
        let (status, acts_as) = match crate::auth::token_standing(&token, creator, now) {
            crate::auth::TokenStanding::Active(role) => (TokenStatus::Active, Some(role.into())),
            crate::auth::TokenStanding::Expired => (TokenStatus::Expired, None),
            crate::auth::TokenStanding::CreatorDisabled => (TokenStatus::CreatorDisabled, None),
            crate::auth::TokenStanding::CreatorMissing => (TokenStatus::CreatorMissing, None),
        };
        let switchboard_store::ApiToken { id, brand_id, name, role, created_by, created_at, expires_at, last_used_at } =
            token;
        ApiToken {
            id,
            brand_id,
            name,
            role: role.into(),
            created_by,
            created_at,
            expires_at,
            last_used_at,
            status,
            acts_as,
        }
    }
}

/// Converts every row of a list.
pub fn all<Row, Rest: From<Row>>(rows: Vec<Row>) -> Vec<Rest> {
    rows.into_iter().map(Rest::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_in_a_response_carries_no_password_hash() {
        let row = switchboard_store::User {
            id: 1,
            brand_id: "acme".to_owned(),
            email: "ada@example.com".to_owned(),
            name: "Ada".to_owned(),
            role: switchboard_store::Role::Manager,
            password_hash: "$argon2id$secret".to_owned(),
            max_concurrent: 3,
            state: AgentState::Online,
            disabled: false,
            skills: vec![2],
            created_at: 0,
        };
        let json = serde_json::to_string(&User::from(row)).unwrap();
        assert!(!json.contains("argon2") && !json.contains("password"), "{json}");
        assert!(json.contains("\"role\":\"manager\""), "{json}");
    }

    #[test]
    fn shared_enums_convert_both_ways() {
        for role in [Role::Agent, Role::Manager, Role::Admin] {
            assert_eq!(Role::from(switchboard_store::Role::from(role)), role);
        }
        for priority in [ConversationPriority::Normal, ConversationPriority::High, ConversationPriority::Urgent] {
            assert_eq!(ConversationPriority::from(switchboard_core::desk::Priority::from(priority)), priority);
        }
        for routing in [SkillRouting::Assign, SkillRouting::Offer] {
            assert_eq!(SkillRouting::from(switchboard_store::SkillRouting::from(routing)), routing);
        }
    }
}

/// Where an app's APNs pushes go: `production` (App Store and TestFlight builds) or `sandbox`
/// (development builds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApnsEnvironment {
    #[default]
    Production,
    Sandbox,
}

impl From<switchboard_store::ApnsEnvironment> for ApnsEnvironment {
    fn from(environment: switchboard_store::ApnsEnvironment) -> ApnsEnvironment {
        match environment {
            switchboard_store::ApnsEnvironment::Production => ApnsEnvironment::Production,
            switchboard_store::ApnsEnvironment::Sandbox => ApnsEnvironment::Sandbox,
        }
    }
}

impl From<ApnsEnvironment> for switchboard_store::ApnsEnvironment {
    fn from(environment: ApnsEnvironment) -> switchboard_store::ApnsEnvironment {
        match environment {
            ApnsEnvironment::Production => switchboard_store::ApnsEnvironment::Production,
            ApnsEnvironment::Sandbox => switchboard_store::ApnsEnvironment::Sandbox,
        }
    }
}

/// An app's FCM settings as the API shows them: the service account file is never returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FcmPushSettings {
    /// The Firebase project pushes are sent through.
    pub project_id: String,
    /// The service account the key file is for (its `client_email`).
    pub client_email: Option<String>,
    /// Whether a service account key file is stored (always true when FCM is set).
    pub service_account_set: bool,
}

/// An app's APNs settings as the API shows them: the .p8 key is never returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApnsPushSettings {
    pub key_id: String,
    pub team_id: String,
    /// The iOS app's bundle id (`apns-topic`).
    pub bundle_id: String,
    pub environment: ApnsEnvironment,
    /// Whether a .p8 key is stored (always true when APNs is set).
    pub private_key_set: bool,
}

/// An app's push settings, per provider (`null`: not set up). Secrets have no field here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PushSettings {
    pub app_id: String,
    pub fcm: Option<FcmPushSettings>,
    pub apns: Option<ApnsPushSettings>,
    /// When either provider's settings last changed (`null`: never set).
    pub updated_at: Option<Millis>,
}

impl PushSettings {
    /// The API's view of an app's stored settings (`None`: never set).
    pub fn of(app_id: &str, stored: Option<&switchboard_store::PushSettings>) -> PushSettings {
        let fcm = stored.and_then(|s| s.fcm.as_ref()).map(|fcm| FcmPushSettings {
            project_id: fcm.project_id.clone(),
            client_email: crate::push::fcm::ServiceAccount::parse(&fcm.service_account_json)
                .ok()
                .map(|account| account.client_email),
            service_account_set: true,
        });
        let apns = stored.and_then(|s| s.apns.as_ref()).map(|apns| ApnsPushSettings {
            key_id: apns.key_id.clone(),
            team_id: apns.team_id.clone(),
            bundle_id: apns.bundle_id.clone(),
            environment: apns.environment.into(),
            private_key_set: true,
        });
        PushSettings { app_id: app_id.to_owned(), fcm, apns, updated_at: stored.map(|s| s.updated_at) }
    }
}

/// What a provider answered to a test push.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TestPushResult {
    /// `fcm` or `apns`.
    pub provider: String,
    /// The provider accepted the push.
    pub sent: bool,
    /// `sent`, `unregistered` (the device token is invalid or gone), `retry` (the provider is
    /// busy or could not be reached) or `failed` (refused: usually the app's settings).
    pub outcome: String,
    /// The provider's HTTP status (`null`: no answer).
    pub status: Option<u16>,
    /// The provider's reason (`UNREGISTERED`, `BadDeviceToken`, …) or what went wrong.
    pub reason: String,
}
