//! Every query the store runs outside the message writer, as methods on [`Store`](crate::Store), split by
//! aggregate: `brands` (and skills), `apps`, `staff`, `consumers`, `conversations`, and
//! `search` (the reporting API's keyset search and its batch reads), `audit` (the audit log), `erasure` (one consumer's data), `retention` (the purge's batches and runs). The SQL is
//! the subset SQLite and PostgreSQL share (`$n` parameters, `RETURNING`, `ON CONFLICT`). This
//! module holds the parameter types, the column lists and the row decoders they share.

mod apps;
pub(crate) mod audit;
pub(crate) mod automation;
mod brands;
pub(crate) mod consumers;
mod conversations;
pub(crate) mod erasure;
pub(crate) mod hours;
mod identity;
pub(crate) mod masking;
pub(crate) mod outbox;
mod push;
pub(crate) mod retention;
pub(crate) mod search;
mod staff;

use sqlx::Row;
use sqlx::any::AnyRow;
use switchboard_protocol::{AgentState, ConversationId, ConversationStatus, Millis};

use crate::model::*;
use crate::{StoreError, opt_side};

/// New brand.
#[derive(Debug, Clone)]
pub struct NewBrand {
    pub id: String,
    pub name: String,
}

/// Skill settings change; `None` keeps a value.
#[derive(Debug, Clone, Default)]
pub struct SkillPatch {
    pub routing: Option<SkillRouting>,
    pub offer_timeout_secs: Option<i64>,
    pub default_priority: Option<ConversationPriority>,
}

/// Brand settings change; `None` keeps a value.
#[derive(Debug, Clone, Default)]
pub struct BrandPatch {
    pub name: Option<String>,
    pub csat_enabled: Option<bool>,
    pub retention_days: Option<i64>,
    pub agent_grace_secs: Option<i64>,
    /// `Some(None)` clears it.
    pub default_skill_id: Option<Option<i64>>,
    pub default_language: Option<String>,
    /// `Some(None)`: never auto-close.
    pub auto_close_secs: Option<Option<i64>>,
    /// `Some(None)`: no warning.
    pub auto_close_warn_secs: Option<Option<i64>>,
    pub auto_close_survey: Option<bool>,
    pub follow_up_history: Option<bool>,
    pub push_masked: Option<bool>,
}

/// New app.
#[derive(Debug, Clone)]
pub struct NewApp {
    pub id: String,
    pub brand_id: String,
    pub name: String,
    pub channel: String,
    pub allow_jwt: bool,
    pub allow_anonymous: bool,
    pub jwt_issuer: Option<String>,
    pub jwt_audience: Option<String>,
    pub default_skill_id: Option<i64>,
    /// Priority of the conversations it opens (normal unless set).
    pub default_priority: ConversationPriority,
}

/// App settings change; `None` keeps a value (`Some(None)` clears an optional one).
#[derive(Debug, Clone, Default)]
pub struct AppPatch {
    pub name: Option<String>,
    pub allow_jwt: Option<bool>,
    pub allow_anonymous: Option<bool>,
    pub jwt_issuer: Option<Option<String>>,
    pub jwt_audience: Option<Option<String>>,
    pub default_skill_id: Option<Option<i64>>,
    pub default_priority: Option<ConversationPriority>,
}

/// New brand user.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub brand_id: String,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub password_hash: String,
    pub max_concurrent: i64,
    pub skills: Vec<i64>,
}

/// User change; `None` keeps a value.
#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    pub name: Option<String>,
    pub role: Option<Role>,
    pub password_hash: Option<String>,
    pub max_concurrent: Option<i64>,
    pub skills: Option<Vec<i64>>,
    pub disabled: Option<bool>,
}

/// An API token (the secret itself is never stored, only its hash).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ApiToken {
    pub id: i64,
    pub brand_id: String,
    pub name: String,
    pub role: Role,
    pub created_by: i64,
    pub created_at: Millis,
    /// When it stops working; `None`: until revoked.
    pub expires_at: Option<Millis>,
    /// When it last authenticated a request or socket (updated at most once a minute).
    pub last_used_at: Option<Millis>,
}

/// A new API token.
#[derive(Debug, Clone, Copy)]
pub struct NewApiToken<'a> {
    pub brand_id: &'a str,
    pub name: &'a str,
    /// The most it may do; it never does more than its creator's current role.
    pub role: Role,
    /// SHA-256 of the secret, hex.
    pub token_hash: &'a str,
    pub created_by: i64,
    pub expires_at: Option<Millis>,
}

/// An API token with its creator's standing now: what authenticating the token needs, in
/// one read. A token never does more than its creator may do today.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiTokenGrant {
    pub token: ApiToken,
    /// The creator's current role and whether their account is disabled; `None` if the
    /// account no longer exists in the token's brand.
    pub creator: Option<TokenCreator>,
}

/// The standing of an API token's creator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenCreator {
    pub role: Role,
    pub disabled: bool,
}

/// Why a CSAT answer was refused.
#[derive(Debug, thiserror::Error)]
pub enum CsatError {
    #[error("conversation not found")]
    NotFound,
    #[error("no survey is open for this conversation")]
    NotAvailable,
    #[error("the survey was already answered")]
    AlreadyAnswered,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What [`Store::auto_close_conversation`](crate::Store::auto_close_conversation) found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AutoCloseOutcome {
    /// Closed as auto-closed.
    Closed(Box<Conversation>),
    /// It was not open (closed meanwhile).
    NotOpen,
    /// Someone wrote after the agent's message the close was about: these are the stored
    /// times, to restart the clock from.
    Answered { agent_at: Option<Millis>, consumer_at: Option<Millis> },
}

pub(crate) const CONVERSATION_COLUMNS: &str =
    "id, brand_id, consumer_id, app_id, channel, skill_id, status, priority, opened_at, closed_at,
    closed_by, agent_id, assigned_at, first_response_at, last_seq, last_message_at, consumer_delivered_seq,
    consumer_read_seq, agent_delivered_seq, agent_read_seq, survey_open, csat_score, csat_comment, last_agent_at,
    last_consumer_at, auto_closed, follow_up_by";

const USER_COLUMNS: &str =
    "id, brand_id, email, name, role, password_hash, max_concurrent, state, disabled, created_at";

const APP_COLUMNS: &str =
    "id, brand_id, name, channel, allow_jwt, allow_anonymous, jwt_issuer, jwt_audience, default_skill_id, created_at,
    default_priority";

fn flag(row: &AnyRow, column: &str) -> Result<bool, StoreError> {
    Ok(row.try_get::<i64, _>(column)? != 0)
}

fn skill_from_row(row: &AnyRow) -> Result<Skill, StoreError> {
    let routing: String = row.try_get("routing")?;
    Ok(Skill {
        id: row.try_get("id")?,
        brand_id: row.try_get("brand_id")?,
        name: row.try_get("name")?,
        routing: SkillRouting::parse(&routing)
            .ok_or_else(|| StoreError::Corrupt(format!("skill routing {routing:?}")))?,
        offer_timeout_secs: row.try_get("offer_timeout_secs")?,
        default_priority: ConversationPriority::of(switchboard_core::desk::Priority::from_rank(
            row.try_get("default_priority")?,
        )),
    })
}

fn brand_from_row(row: &AnyRow) -> Result<Brand, StoreError> {
    Ok(Brand {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        csat_enabled: flag(row, "csat_enabled")?,
        retention_days: row.try_get("retention_days")?,
        agent_grace_secs: row.try_get("agent_grace_secs")?,
        default_skill_id: row.try_get("default_skill_id")?,
        default_language: row.try_get("default_language")?,
        auto_close_secs: row.try_get("auto_close_secs")?,
        auto_close_warn_secs: row.try_get("auto_close_warn_secs")?,
        auto_close_survey: flag(row, "auto_close_survey")?,
        follow_up_history: flag(row, "follow_up_history")?,
        push_masked: flag(row, "push_masked")?,
        created_at: row.try_get("created_at")?,
    })
}

fn app_from_row(row: &AnyRow) -> Result<App, StoreError> {
    Ok(App {
        id: row.try_get("id")?,
        brand_id: row.try_get("brand_id")?,
        name: row.try_get("name")?,
        channel: row.try_get("channel")?,
        allow_jwt: flag(row, "allow_jwt")?,
        allow_anonymous: flag(row, "allow_anonymous")?,
        jwt_issuer: row.try_get("jwt_issuer")?,
        jwt_audience: row.try_get("jwt_audience")?,
        default_skill_id: row.try_get("default_skill_id")?,
        default_priority: ConversationPriority::of(switchboard_core::desk::Priority::from_rank(
            row.try_get("default_priority")?,
        )),
        entry_skill_ids: Vec::new(),
        created_at: row.try_get("created_at")?,
    })
}

fn user_from_row(row: &AnyRow) -> Result<User, StoreError> {
    let role: String = row.try_get("role")?;
    let state: String = row.try_get("state")?;
    Ok(User {
        id: row.try_get("id")?,
        brand_id: row.try_get("brand_id")?,
        email: row.try_get("email")?,
        name: row.try_get("name")?,
        role: Role::parse(&role).ok_or_else(|| StoreError::Corrupt(format!("role {role:?}")))?,
        password_hash: row.try_get("password_hash")?,
        max_concurrent: row.try_get("max_concurrent")?,
        state: AgentState::parse(&state).ok_or_else(|| StoreError::Corrupt(format!("state {state:?}")))?,
        disabled: flag(row, "disabled")?,
        skills: Vec::new(),
        created_at: row.try_get("created_at")?,
    })
}

fn consumer_from_row(row: &AnyRow) -> Result<Consumer, StoreError> {
    let device: Option<String> = row.try_get("device")?;
    Ok(Consumer {
        id: row.try_get("id")?,
        brand_id: row.try_get("brand_id")?,
        external_id: row.try_get("external_id")?,
        name: row.try_get("name")?,
        email: row.try_get("email")?,
        phone: row.try_get("phone")?,
        device: device.and_then(|json| serde_json::from_str(&json).ok()),
        language: row.try_get("language")?,
        created_at: row.try_get("created_at")?,
    })
}

pub(crate) fn conversation_from_row(row: &AnyRow) -> Result<Conversation, StoreError> {
    let status: String = row.try_get("status")?;
    Ok(Conversation {
        id: row.try_get("id")?,
        brand_id: row.try_get("brand_id")?,
        consumer_id: row.try_get("consumer_id")?,
        app_id: row.try_get("app_id")?,
        channel: row.try_get("channel")?,
        skill_id: row.try_get("skill_id")?,
        status: ConversationStatus::parse(&status).ok_or_else(|| StoreError::Corrupt(format!("status {status:?}")))?,
        priority: row.try_get("priority")?,
        opened_at: row.try_get("opened_at")?,
        closed_at: row.try_get("closed_at")?,
        closed_by: opt_side(row.try_get("closed_by")?)?,
        agent_id: row.try_get("agent_id")?,
        assigned_at: row.try_get("assigned_at")?,
        first_response_at: row.try_get("first_response_at")?,
        last_seq: row.try_get("last_seq")?,
        last_message_at: row.try_get("last_message_at")?,
        consumer_delivered_seq: row.try_get("consumer_delivered_seq")?,
        consumer_read_seq: row.try_get("consumer_read_seq")?,
        agent_delivered_seq: row.try_get("agent_delivered_seq")?,
        agent_read_seq: row.try_get("agent_read_seq")?,
        survey_open: flag(row, "survey_open")?,
        csat_score: row.try_get("csat_score")?,
        csat_comment: row.try_get("csat_comment")?,
        last_agent_at: row.try_get("last_agent_at")?,
        last_consumer_at: row.try_get("last_consumer_at")?,
        auto_closed: flag(row, "auto_closed")?,
        follow_up_by: row.try_get("follow_up_by")?,
    })
}

fn api_token_from_row(row: &AnyRow) -> Result<ApiToken, StoreError> {
    let role: String = row.try_get("role")?;
    Ok(ApiToken {
        id: row.try_get("id")?,
        brand_id: row.try_get("brand_id")?,
        name: row.try_get("name")?,
        role: Role::parse(&role).ok_or_else(|| StoreError::Corrupt(format!("role {role:?}")))?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        last_used_at: row.try_get("last_used_at")?,
    })
}

/// The columns `api_token_from_row` reads.
pub(crate) const API_TOKEN_COLUMNS: &str = "id, brand_id, name, role, created_by, created_at, expires_at, last_used_at";

fn int(value: bool) -> i64 {
    i64::from(value)
}

/// Appends to a conversation's event log inside the transaction of the change it records.
pub(crate) async fn record_event(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    brand_id: &str,
    conversation_id: ConversationId,
    kind: &str,
    agent_id: Option<i64>,
    skill_id: Option<i64>,
    now: Millis,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO conversation_events (brand_id, conversation_id, kind, agent_id, skill_id, at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(brand_id)
    .bind(conversation_id)
    .bind(kind)
    .bind(agent_id)
    .bind(skill_id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn set_skills(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    brand_id: &str,
    user_id: i64,
    skills: &[i64],
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM user_skills WHERE user_id = $1").bind(user_id).execute(&mut **tx).await?;
    for skill_id in skills {
        let done = sqlx::query(
            "INSERT INTO user_skills (user_id, skill_id) SELECT $1, id FROM skills WHERE brand_id = $2 AND id = $3",
        )
        .bind(user_id)
        .bind(brand_id)
        .bind(skill_id)
        .execute(&mut **tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
    }
    Ok(())
}
