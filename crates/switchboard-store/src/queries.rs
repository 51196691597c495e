//! Every query the store runs outside the message writer, as methods on [`Store`]. The SQL is
//! the subset SQLite and PostgreSQL share (`$n` parameters, `RETURNING`, `ON CONFLICT`).

use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};
use switchboard_protocol::{AgentState, ConversationId, ConversationStatus, DeviceInfo, Millis, ReceiptKind, Side};

use crate::model::*;
use crate::{Store, StoreError, opt_side};

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
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ApiToken {
    pub id: i64,
    pub brand_id: String,
    pub name: String,
    pub role: Role,
    pub created_by: i64,
    pub created_at: Millis,
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

pub(crate) const CONVERSATION_COLUMNS: &str =
    "id, brand_id, consumer_id, app_id, channel, skill_id, status, priority, opened_at, closed_at,
    closed_by, agent_id, assigned_at, first_response_at, last_seq, last_message_at, consumer_delivered_seq,
    consumer_read_seq, agent_delivered_seq, agent_read_seq, survey_open, csat_score, csat_comment";

const USER_COLUMNS: &str =
    "id, brand_id, email, name, role, password_hash, max_concurrent, state, disabled, created_at";

const APP_COLUMNS: &str =
    "id, brand_id, name, channel, allow_jwt, allow_anonymous, jwt_issuer, jwt_audience, default_skill_id, created_at";

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
    })
}

fn int(value: bool) -> i64 {
    i64::from(value)
}

impl Store {
    // ----- brands -------------------------------------------------------------------------

    /// Creates a brand with default settings.
    pub async fn create_brand(&self, new: &NewBrand, now: Millis) -> Result<Brand, StoreError> {
        let row = sqlx::query(
            "INSERT INTO brands (id, name, csat_enabled, retention_days, created_at) VALUES ($1, $2, 1, $3, $4)
             RETURNING id, name, csat_enabled, retention_days, agent_grace_secs, default_skill_id, created_at",
        )
        .bind(&new.id)
        .bind(&new.name)
        .bind(DEFAULT_RETENTION_DAYS)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        brand_from_row(&row)
    }

    /// A brand by id.
    pub async fn brand(&self, brand_id: &str) -> Result<Option<Brand>, StoreError> {
        let row = sqlx::query(
            "SELECT id, name, csat_enabled, retention_days, agent_grace_secs, default_skill_id, created_at FROM brands WHERE id = $1",
        )
        .bind(brand_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| brand_from_row(&row)).transpose()
    }

    /// Ids of all brands (for rebuilding routing state at start).
    pub async fn brand_ids(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT id FROM brands ORDER BY id").fetch_all(&self.pool).await?;
        rows.iter().map(|row| Ok(row.try_get(0)?)).collect()
    }

    /// Changes brand settings.
    pub async fn update_brand(&self, brand_id: &str, patch: &BrandPatch) -> Result<Brand, StoreError> {
        let row = sqlx::query(
            "UPDATE brands SET name = COALESCE($2, name), csat_enabled = COALESCE($3, csat_enabled),
             retention_days = COALESCE($4, retention_days), agent_grace_secs = COALESCE($5, agent_grace_secs),
             default_skill_id = CASE WHEN $6 = 1 THEN $7 ELSE default_skill_id END
             WHERE id = $1
             RETURNING id, name, csat_enabled, retention_days, agent_grace_secs, default_skill_id, created_at",
        )
        .bind(brand_id)
        .bind(patch.name.as_deref())
        .bind(patch.csat_enabled.map(int))
        .bind(patch.retention_days)
        .bind(patch.agent_grace_secs)
        .bind(int(patch.default_skill_id.is_some()))
        .bind(patch.default_skill_id.flatten())
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        brand_from_row(&row)
    }

    // ----- skills -------------------------------------------------------------------------

    /// Creates a skill; `Conflict` if the brand has one with this name.
    pub async fn create_skill(&self, brand_id: &str, name: &str, now: Millis) -> Result<Skill, StoreError> {
        let row = sqlx::query(
            "INSERT INTO skills (brand_id, name, created_at) VALUES ($1, $2, $3)
             RETURNING id, brand_id, name, routing, offer_timeout_secs, default_priority",
        )
        .bind(brand_id)
        .bind(name)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        skill_from_row(&row)
    }

    /// The brand's skills, by name.
    pub async fn skills(&self, brand_id: &str) -> Result<Vec<Skill>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, brand_id, name, routing, offer_timeout_secs, default_priority FROM skills WHERE brand_id = $1
             ORDER BY name",
        )
        .bind(brand_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(skill_from_row).collect()
    }

    /// Changes how a skill routes; `None` keeps a value. `NotFound` if the brand has no such
    /// skill.
    pub async fn update_skill(&self, brand_id: &str, skill_id: i64, patch: &SkillPatch) -> Result<Skill, StoreError> {
        let row = sqlx::query(
            "UPDATE skills SET routing = COALESCE($3, routing), offer_timeout_secs = COALESCE($4, offer_timeout_secs),
             default_priority = COALESCE($5, default_priority)
             WHERE brand_id = $1 AND id = $2 RETURNING id, brand_id, name, routing, offer_timeout_secs, default_priority",
        )
        .bind(brand_id)
        .bind(skill_id)
        .bind(patch.routing.map(SkillRouting::as_str))
        .bind(patch.offer_timeout_secs)
        .bind(patch.default_priority.map(|priority| i64::from(priority.to_core().rank())))
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        skill_from_row(&row)
    }

    /// Deletes a skill; agents lose it, apps routing to it fall back to no skill.
    pub async fn delete_skill(&self, brand_id: &str, skill_id: i64) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM app_entry_skills WHERE brand_id = $1 AND skill_id = $2")
            .bind(brand_id)
            .bind(skill_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE brands SET default_skill_id = NULL WHERE id = $1 AND default_skill_id = $2")
            .bind(brand_id)
            .bind(skill_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE apps SET default_skill_id = NULL WHERE brand_id = $1 AND default_skill_id = $2")
            .bind(brand_id)
            .bind(skill_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "DELETE FROM user_skills WHERE skill_id = $2 AND skill_id IN (SELECT id FROM skills WHERE brand_id = $1)",
        )
        .bind(brand_id)
        .bind(skill_id)
        .execute(&mut *tx)
        .await?;
        let done = sqlx::query("DELETE FROM skills WHERE brand_id = $1 AND id = $2")
            .bind(brand_id)
            .bind(skill_id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await?;
        Ok(())
    }

    // ----- apps and keys ------------------------------------------------------------------

    /// Creates an app.
    pub async fn create_app(&self, new: &NewApp, now: Millis) -> Result<App, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO apps ({APP_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {APP_COLUMNS}"
        )))
        .bind(&new.id)
        .bind(&new.brand_id)
        .bind(&new.name)
        .bind(&new.channel)
        .bind(int(new.allow_jwt))
        .bind(int(new.allow_anonymous))
        .bind(new.jwt_issuer.as_deref())
        .bind(new.jwt_audience.as_deref())
        .bind(new.default_skill_id)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        app_from_row(&row)
    }

    /// An app of the brand.
    pub async fn app(&self, brand_id: &str, app_id: &str) -> Result<Option<App>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!("SELECT {APP_COLUMNS} FROM apps WHERE brand_id = $1 AND id = $2")))
            .bind(brand_id)
            .bind(app_id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(mut app) = row.map(|row| app_from_row(&row)).transpose()? else { return Ok(None) };
        app.entry_skill_ids = self.entry_skills(brand_id, Some(app_id)).await?.into_iter().map(|(_, s)| s).collect();
        Ok(Some(app))
    }

    /// `(app id, skill id)` of the brand's entry skills, of one app or all.
    async fn entry_skills(&self, brand_id: &str, app_id: Option<&str>) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT app_id, skill_id FROM app_entry_skills WHERE brand_id = $1 AND ($2 IS NULL OR app_id = $2)
             ORDER BY app_id, skill_id",
        )
        .bind(brand_id)
        .bind(app_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| Ok((row.try_get(0)?, row.try_get(1)?))).collect()
    }

    /// Replaces an app's entry skills. `NotFound` if a skill is not the brand's.
    pub async fn set_entry_skills(&self, brand_id: &str, app_id: &str, skills: &[i64]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM app_entry_skills WHERE brand_id = $1 AND app_id = $2")
            .bind(brand_id)
            .bind(app_id)
            .execute(&mut *tx)
            .await?;
        for skill_id in skills {
            let done = sqlx::query(
                "INSERT INTO app_entry_skills (brand_id, app_id, skill_id)
                 SELECT brand_id, $2, id FROM skills WHERE brand_id = $1 AND id = $3 ON CONFLICT DO NOTHING",
            )
            .bind(brand_id)
            .bind(app_id)
            .bind(skill_id)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 && !skills.is_empty() {
                let exists = sqlx::query("SELECT 1 FROM skills WHERE brand_id = $1 AND id = $2")
                    .bind(brand_id)
                    .bind(skill_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                if exists.is_none() {
                    return Err(StoreError::NotFound);
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// The brand's apps.
    pub async fn apps(&self, brand_id: &str) -> Result<Vec<App>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {APP_COLUMNS} FROM apps WHERE brand_id = $1 ORDER BY created_at, id"
        )))
        .bind(brand_id)
        .fetch_all(&self.pool)
        .await?;
        let mut apps = rows.iter().map(app_from_row).collect::<Result<Vec<_>, _>>()?;
        for (app_id, skill_id) in self.entry_skills(brand_id, None).await? {
            if let Some(app) = apps.iter_mut().find(|app| app.id == app_id) {
                app.entry_skill_ids.push(skill_id);
            }
        }
        Ok(apps)
    }

    /// Changes an app.
    pub async fn update_app(&self, brand_id: &str, app_id: &str, patch: &AppPatch) -> Result<App, StoreError> {
        let current = self.app(brand_id, app_id).await?.ok_or(StoreError::NotFound)?;
        let row = sqlx::query(AssertSqlSafe(format!(
            "UPDATE apps SET name = $3, allow_jwt = $4, allow_anonymous = $5, jwt_issuer = $6, jwt_audience = $7,
             default_skill_id = $8 WHERE brand_id = $1 AND id = $2 RETURNING {APP_COLUMNS}"
        )))
        .bind(brand_id)
        .bind(app_id)
        .bind(patch.name.clone().unwrap_or(current.name))
        .bind(int(patch.allow_jwt.unwrap_or(current.allow_jwt)))
        .bind(int(patch.allow_anonymous.unwrap_or(current.allow_anonymous)))
        .bind(patch.jwt_issuer.clone().unwrap_or(current.jwt_issuer))
        .bind(patch.jwt_audience.clone().unwrap_or(current.jwt_audience))
        .bind(patch.default_skill_id.unwrap_or(current.default_skill_id))
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        let mut app = app_from_row(&row)?;
        app.entry_skill_ids = current.entry_skill_ids;
        Ok(app)
    }

    /// Adds a public key to an app.
    pub async fn add_app_key(
        &self,
        brand_id: &str,
        app_id: &str,
        format: &str,
        material: &str,
        now: Millis,
    ) -> Result<AppKey, StoreError> {
        self.app(brand_id, app_id).await?.ok_or(StoreError::NotFound)?;
        let id: i64 = sqlx::query(
            "INSERT INTO app_keys (brand_id, app_id, format, material, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(brand_id)
        .bind(app_id)
        .bind(format)
        .bind(material)
        .bind(now)
        .fetch_one(&self.pool)
        .await?
        .try_get(0)?;
        Ok(AppKey {
            id,
            app_id: app_id.to_owned(),
            format: format.to_owned(),
            material: material.to_owned(),
            created_at: now,
        })
    }

    /// The app's public keys.
    pub async fn app_keys(&self, brand_id: &str, app_id: &str) -> Result<Vec<AppKey>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, app_id, format, material, created_at FROM app_keys WHERE brand_id = $1 AND app_id = $2 ORDER BY id",
        )
        .bind(brand_id)
        .bind(app_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(AppKey {
                    id: row.try_get(0)?,
                    app_id: row.try_get(1)?,
                    format: row.try_get(2)?,
                    material: row.try_get(3)?,
                    created_at: row.try_get(4)?,
                })
            })
            .collect()
    }

    /// Removes a key.
    pub async fn delete_app_key(&self, brand_id: &str, app_id: &str, key_id: i64) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM app_keys WHERE brand_id = $1 AND app_id = $2 AND id = $3")
            .bind(brand_id)
            .bind(app_id)
            .bind(key_id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 { Err(StoreError::NotFound) } else { Ok(()) }
    }

    // ----- users, sessions, tokens --------------------------------------------------------

    /// Creates a user; `Conflict` if the email is taken (emails are unique across brands,
    /// since login is by email).
    pub async fn create_user(&self, new: &NewUser, now: Millis) -> Result<User, StoreError> {
        let mut tx = self.pool.begin().await?;
        let id: i64 = sqlx::query(
            "INSERT INTO users (brand_id, email, name, role, password_hash, max_concurrent, state, disabled, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, 'offline', 0, $7) RETURNING id",
        )
        .bind(&new.brand_id)
        .bind(new.email.to_lowercase())
        .bind(&new.name)
        .bind(new.role.as_str())
        .bind(&new.password_hash)
        .bind(new.max_concurrent)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        set_skills(&mut tx, &new.brand_id, id, &new.skills).await?;
        tx.commit().await?;
        self.user(&new.brand_id, id).await?.ok_or(StoreError::NotFound)
    }

    /// A user of the brand, with skills.
    pub async fn user(&self, brand_id: &str, user_id: i64) -> Result<Option<User>, StoreError> {
        let row =
            sqlx::query(AssertSqlSafe(format!("SELECT {USER_COLUMNS} FROM users WHERE brand_id = $1 AND id = $2")))
                .bind(brand_id)
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await?;
        self.with_skills(row).await
    }

    /// A user by login email, any brand.
    pub async fn user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!("SELECT {USER_COLUMNS} FROM users WHERE email = $1")))
            .bind(email.to_lowercase())
            .fetch_optional(&self.pool)
            .await?;
        self.with_skills(row).await
    }

    async fn with_skills(&self, row: Option<AnyRow>) -> Result<Option<User>, StoreError> {
        let Some(row) = row else { return Ok(None) };
        let mut user = user_from_row(&row)?;
        let rows = sqlx::query("SELECT skill_id FROM user_skills WHERE user_id = $1 ORDER BY skill_id")
            .bind(user.id)
            .fetch_all(&self.pool)
            .await?;
        user.skills = rows.iter().map(|row| row.try_get(0)).collect::<Result<_, _>>()?;
        Ok(Some(user))
    }

    /// The brand's users with their skills, by id.
    pub async fn users(&self, brand_id: &str) -> Result<Vec<User>, StoreError> {
        let rows =
            sqlx::query(AssertSqlSafe(format!("SELECT {USER_COLUMNS} FROM users WHERE brand_id = $1 ORDER BY id")))
                .bind(brand_id)
                .fetch_all(&self.pool)
                .await?;
        let mut users = rows.iter().map(user_from_row).collect::<Result<Vec<_>, _>>()?;
        let skill_rows = sqlx::query(
            "SELECT us.user_id, us.skill_id FROM user_skills us JOIN users u ON u.id = us.user_id
             WHERE u.brand_id = $1 ORDER BY us.skill_id",
        )
        .bind(brand_id)
        .fetch_all(&self.pool)
        .await?;
        for row in skill_rows {
            let user_id: i64 = row.try_get(0)?;
            if let Some(user) = users.iter_mut().find(|user| user.id == user_id) {
                user.skills.push(row.try_get(1)?);
            }
        }
        Ok(users)
    }

    /// Changes a user.
    pub async fn update_user(&self, brand_id: &str, user_id: i64, patch: &UserPatch) -> Result<User, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE users SET name = COALESCE($3, name), role = COALESCE($4, role),
             password_hash = COALESCE($5, password_hash), max_concurrent = COALESCE($6, max_concurrent),
             disabled = COALESCE($7, disabled) WHERE brand_id = $1 AND id = $2",
        )
        .bind(brand_id)
        .bind(user_id)
        .bind(patch.name.as_deref())
        .bind(patch.role.map(Role::as_str))
        .bind(patch.password_hash.as_deref())
        .bind(patch.max_concurrent)
        .bind(patch.disabled.map(int))
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        if let Some(skills) = &patch.skills {
            set_skills(&mut tx, brand_id, user_id, skills).await?;
        }
        if patch.disabled == Some(true) {
            sqlx::query("DELETE FROM sessions WHERE user_id = $1").bind(user_id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        self.user(brand_id, user_id).await?.ok_or(StoreError::NotFound)
    }

    /// Records an agent's availability.
    pub async fn set_user_state(&self, brand_id: &str, user_id: i64, state: AgentState) -> Result<(), StoreError> {
        sqlx::query("UPDATE users SET state = $3 WHERE brand_id = $1 AND id = $2")
            .bind(brand_id)
            .bind(user_id)
            .bind(state.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Stores a login session (by the hash of its token).
    pub async fn create_session(
        &self,
        token_hash: &str,
        user: &User,
        now: Millis,
        expires_at: Millis,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, brand_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_hash)
        .bind(user.id)
        .bind(&user.brand_id)
        .bind(now)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The user of a live session, if the session exists, has not expired and the user is
    /// not disabled.
    pub async fn session_user(&self, token_hash: &str, now: Millis) -> Result<Option<User>, StoreError> {
        let row = sqlx::query("SELECT user_id, brand_id FROM sessions WHERE token_hash = $1 AND expires_at > $2")
            .bind(token_hash)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let brand_id: String = row.try_get(1)?;
        let user = self.user(&brand_id, row.try_get(0)?).await?;
        Ok(user.filter(|user| !user.disabled))
    }

    /// Ends a session.
    pub async fn delete_session(&self, token_hash: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1").bind(token_hash).execute(&self.pool).await?;
        Ok(())
    }

    /// Stores an API token (by the hash of its secret).
    pub async fn create_api_token(
        &self,
        brand_id: &str,
        name: &str,
        role: Role,
        token_hash: &str,
        created_by: i64,
        now: Millis,
    ) -> Result<ApiToken, StoreError> {
        let id: i64 = sqlx::query(
            "INSERT INTO api_tokens (brand_id, name, role, token_hash, created_by, created_at)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(brand_id)
        .bind(name)
        .bind(role.as_str())
        .bind(token_hash)
        .bind(created_by)
        .bind(now)
        .fetch_one(&self.pool)
        .await?
        .try_get(0)?;
        Ok(ApiToken { id, brand_id: brand_id.to_owned(), name: name.to_owned(), role, created_by, created_at: now })
    }

    /// The token with this hash.
    pub async fn api_token(&self, token_hash: &str) -> Result<Option<ApiToken>, StoreError> {
        let row = sqlx::query(
            "SELECT id, brand_id, name, role, created_by, created_at FROM api_tokens WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| api_token_from_row(&row)).transpose()
    }

    /// The brand's tokens.
    pub async fn api_tokens(&self, brand_id: &str) -> Result<Vec<ApiToken>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, brand_id, name, role, created_by, created_at FROM api_tokens WHERE brand_id = $1 ORDER BY id",
        )
        .bind(brand_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(api_token_from_row).collect()
    }

    /// Revokes a token.
    pub async fn delete_api_token(&self, brand_id: &str, token_id: i64) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM api_tokens WHERE brand_id = $1 AND id = $2")
            .bind(brand_id)
            .bind(token_id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 { Err(StoreError::NotFound) } else { Ok(()) }
    }

    // ----- consumers ----------------------------------------------------------------------

    /// The consumer with this external id (JWT `sub`), created if new; claims that are
    /// present replace the stored profile fields.
    pub async fn upsert_consumer(
        &self,
        brand_id: &str,
        external_id: &str,
        claims: &ConsumerClaims,
        now: Millis,
    ) -> Result<Consumer, StoreError> {
        let row = sqlx::query(
            "INSERT INTO consumers (brand_id, external_id, name, email, phone, created_at) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (brand_id, external_id) DO UPDATE SET
               name = COALESCE(excluded.name, consumers.name),
               email = COALESCE(excluded.email, consumers.email),
               phone = COALESCE(excluded.phone, consumers.phone)
             RETURNING id, brand_id, external_id, name, email, phone, device, created_at",
        )
        .bind(brand_id)
        .bind(external_id)
        .bind(claims.name.as_deref())
        .bind(claims.email.as_deref())
        .bind(claims.phone.as_deref())
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        consumer_from_row(&row)
    }

    /// A consumer by external id.
    pub async fn consumer_by_external_id(
        &self,
        brand_id: &str,
        external_id: &str,
    ) -> Result<Option<Consumer>, StoreError> {
        let row = sqlx::query(
            "SELECT id, brand_id, external_id, name, email, phone, device, created_at FROM consumers
             WHERE brand_id = $1 AND external_id = $2",
        )
        .bind(brand_id)
        .bind(external_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| consumer_from_row(&row)).transpose()
    }

    /// A consumer by id.
    pub async fn consumer(&self, brand_id: &str, consumer_id: i64) -> Result<Option<Consumer>, StoreError> {
        let row = sqlx::query(
            "SELECT id, brand_id, external_id, name, email, phone, device, created_at FROM consumers
             WHERE brand_id = $1 AND id = $2",
        )
        .bind(brand_id)
        .bind(consumer_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| consumer_from_row(&row)).transpose()
    }

    /// Records the device a consumer connected from.
    pub async fn set_consumer_device(
        &self,
        brand_id: &str,
        consumer_id: i64,
        device: &DeviceInfo,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(device).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::query("UPDATE consumers SET device = $3 WHERE brand_id = $1 AND id = $2")
            .bind(brand_id)
            .bind(consumer_id)
            .bind(json)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Registers a device's push token for a consumer (a token moves to the consumer who
    /// registered it last).
    pub async fn register_push_token(
        &self,
        brand_id: &str,
        app_id: &str,
        consumer_id: i64,
        provider: &str,
        token: &str,
        now: Millis,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO push_tokens (token, provider, brand_id, app_id, consumer_id, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (provider, token) DO UPDATE SET brand_id = excluded.brand_id, app_id = excluded.app_id,
               consumer_id = excluded.consumer_id, updated_at = excluded.updated_at",
        )
        .bind(token)
        .bind(provider)
        .bind(brand_id)
        .bind(app_id)
        .bind(consumer_id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The push tokens of a consumer: (provider, token, app id).
    pub async fn push_tokens(
        &self,
        brand_id: &str,
        consumer_id: i64,
    ) -> Result<Vec<(String, String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT provider, token, app_id FROM push_tokens WHERE brand_id = $1 AND consumer_id = $2 ORDER BY updated_at",
        )
        .bind(brand_id)
        .bind(consumer_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?))).collect()
    }

    // ----- conversations ------------------------------------------------------------------

    /// A conversation of the brand.
    pub async fn conversation(&self, brand_id: &str, id: ConversationId) -> Result<Option<Conversation>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE brand_id = $1 AND id = $2"
        )))
        .bind(brand_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| conversation_from_row(&row)).transpose()
    }

    /// The consumer's open conversation, if any.
    pub async fn open_conversation(
        &self,
        brand_id: &str,
        consumer_id: i64,
    ) -> Result<Option<Conversation>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE brand_id = $1 AND consumer_id = $2 AND status = 'open'"
        )))
        .bind(brand_id)
        .bind(consumer_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| conversation_from_row(&row)).transpose()
    }

    /// The consumer's most recently closed conversation whose CSAT survey is still open.
    pub async fn pending_survey(&self, brand_id: &str, consumer_id: i64) -> Result<Option<Conversation>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE brand_id = $1 AND consumer_id = $2 AND survey_open = 1
             ORDER BY closed_at DESC, id DESC LIMIT 1"
        )))
        .bind(brand_id)
        .bind(consumer_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| conversation_from_row(&row)).transpose()
    }

    /// Brands that have at least one open conversation (their engines start at boot).
    pub async fn brands_with_open_conversations(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT DISTINCT brand_id FROM conversations WHERE status = 'open' ORDER BY brand_id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|row| Ok(row.try_get(0)?)).collect()
    }

    /// All open conversations of the brand, oldest first (routing rebuild).
    pub async fn open_conversations(&self, brand_id: &str) -> Result<Vec<Conversation>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE brand_id = $1 AND status = 'open' ORDER BY opened_at, id"
        )))
        .bind(brand_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(conversation_from_row).collect()
    }

    /// Open conversations assigned to an agent, oldest first.
    pub async fn agent_conversations(&self, brand_id: &str, agent_id: i64) -> Result<Vec<Conversation>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE brand_id = $1 AND agent_id = $2 AND status = 'open'
             ORDER BY opened_at, id"
        )))
        .bind(brand_id)
        .bind(agent_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(conversation_from_row).collect()
    }

    /// A page of the brand's conversations matching `filter`, newest first.
    pub async fn conversations(
        &self,
        brand_id: &str,
        filter: &ConversationFilter,
        after: Option<PageCursor>,
        limit: u32,
    ) -> Result<ConversationPage, StoreError> {
        let limit = i64::from(limit.clamp(1, 500));
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE brand_id = $1
               AND ($2 IS NULL OR status = $2)
               AND ($3 IS NULL OR consumer_id = $3)
               AND ($4 IS NULL OR agent_id = $4)
               AND ($5 IS NULL OR skill_id = $5)
               AND ($6 IS NULL OR opened_at >= $6)
               AND ($7 IS NULL OR opened_at < $7)
               AND ($8 IS NULL OR opened_at < $8 OR (opened_at = $8 AND id < $9))
             ORDER BY opened_at DESC, id DESC LIMIT $10"
        )))
        .bind(brand_id)
        .bind(filter.status.map(ConversationStatus::as_str))
        .bind(filter.consumer_id)
        .bind(filter.agent_id)
        .bind(filter.skill_id)
        .bind(filter.opened_from)
        .bind(filter.opened_to)
        .bind(after.map(|cursor| cursor.opened_at))
        .bind(after.map_or(0, |cursor| cursor.id))
        .bind(limit + 1)
        .fetch_all(&self.pool)
        .await?;
        let mut conversations = rows.iter().map(conversation_from_row).collect::<Result<Vec<_>, _>>()?;
        let next = if conversations.len() as i64 > limit {
            conversations.truncate(limit as usize);
            conversations.last().map(|last| PageCursor { opened_at: last.opened_at, id: last.id })
        } else {
            None
        };
        Ok(ConversationPage { conversations, next })
    }

    /// Messages of a conversation after `after_seq`, oldest first, at most `limit`.
    pub async fn messages_after(
        &self,
        brand_id: &str,
        conversation_id: ConversationId,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let rows = sqlx::query(
            "SELECT conversation_id, seq, side, author_id, author_name, text, client_id, created_at FROM messages
             WHERE brand_id = $1 AND conversation_id = $2 AND seq > $3 ORDER BY seq LIMIT $4",
        )
        .bind(brand_id)
        .bind(conversation_id)
        .bind(after_seq)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(crate::message_from_row).collect()
    }

    /// Assigns an open conversation to an agent, with an `assigned` entry in its event log.
    /// `false` if it is not open.
    pub async fn assign(
        &self,
        brand_id: &str,
        id: ConversationId,
        agent_id: i64,
        now: Millis,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE conversations SET agent_id = $3, assigned_at = $4 WHERE brand_id = $1 AND id = $2 AND status = 'open'",
        )
        .bind(brand_id)
        .bind(id)
        .bind(agent_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        record_event(&mut tx, brand_id, id, "assigned", Some(agent_id), None, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Adds an entry that changes nothing else to a conversation's event log (an offer
    /// declined or expired). `false` if the brand has no such open conversation.
    pub async fn record_conversation_event(
        &self,
        brand_id: &str,
        id: ConversationId,
        kind: &str,
        agent_id: i64,
        now: Millis,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO conversation_events (brand_id, conversation_id, kind, agent_id, skill_id, at)
             SELECT brand_id, id, $3, $4, skill_id, $5 FROM conversations WHERE brand_id = $1 AND id = $2 AND status = 'open'",
        )
        .bind(brand_id)
        .bind(id)
        .bind(kind)
        .bind(agent_id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Sets an open conversation's priority, with a `priority` entry in its event log.
    /// `false` if the brand has no such open conversation.
    pub async fn set_priority(
        &self,
        brand_id: &str,
        id: ConversationId,
        priority: ConversationPriority,
        now: Millis,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done =
            sqlx::query("UPDATE conversations SET priority = $3 WHERE brand_id = $1 AND id = $2 AND status = 'open'")
                .bind(brand_id)
                .bind(id)
                .bind(i64::from(priority.to_core().rank()))
                .execute(&mut *tx)
                .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        record_event(&mut tx, brand_id, id, "priority", None, None, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// How many event-log entries of `kind` each agent has since `since`, by agent id.
    pub async fn events_per_agent(
        &self,
        brand_id: &str,
        kind: &str,
        since: Millis,
    ) -> Result<Vec<(i64, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT agent_id, COUNT(*) FROM conversation_events WHERE brand_id = $1 AND kind = $2 AND at >= $3
             AND agent_id IS NOT NULL GROUP BY agent_id",
        )
        .bind(brand_id)
        .bind(kind)
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| Ok((row.try_get(0)?, row.try_get(1)?))).collect()
    }

    /// The event log of a conversation, oldest first: `(kind, agent_id, skill_id, at)`.
    /// Kinds: `opened`, `assigned`, `queued`, `closed`, `offer_declined`, `offer_expired`,
    /// `priority`.
    pub async fn conversation_events(
        &self,
        brand_id: &str,
        id: ConversationId,
    ) -> Result<Vec<ConversationEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT kind, agent_id, skill_id, at FROM conversation_events WHERE brand_id = $1 AND conversation_id = $2
             ORDER BY id",
        )
        .bind(brand_id)
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ConversationEvent {
                    kind: row.try_get(0)?,
                    agent_id: row.try_get(1)?,
                    skill_id: row.try_get(2)?,
                    at: row.try_get(3)?,
                })
            })
            .collect()
    }

    /// Closes an open conversation; `survey` opens the CSAT survey. Returns the closed
    /// conversation, or `None` if it was not open (already closed: closing is idempotent).
    pub async fn close_conversation(
        &self,
        brand_id: &str,
        id: ConversationId,
        by: Side,
        survey: bool,
        now: Millis,
    ) -> Result<Option<Conversation>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(AssertSqlSafe(format!(
            "UPDATE conversations SET status = 'closed', closed_at = $3, closed_by = $4, survey_open = $5
             WHERE brand_id = $1 AND id = $2 AND status = 'open' RETURNING {CONVERSATION_COLUMNS}"
        )))
        .bind(brand_id)
        .bind(id)
        .bind(now)
        .bind(by.as_str())
        .bind(int(survey))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let closed = conversation_from_row(&row)?;
        record_event(&mut tx, brand_id, id, "closed", closed.agent_id, closed.skill_id, now).await?;
        tx.commit().await?;
        Ok(Some(closed))
    }

    /// Records a cumulative receipt by `reader` (never moves backwards, never past the last
    /// message). Returns whether it moved.
    pub async fn record_receipt(
        &self,
        brand_id: &str,
        id: ConversationId,
        reader: Side,
        kind: ReceiptKind,
        seq: i64,
    ) -> Result<bool, StoreError> {
        let column = match (reader, kind) {
            (Side::Consumer, ReceiptKind::Delivered) => "consumer_delivered_seq",
            (Side::Consumer, ReceiptKind::Read) => "consumer_read_seq",
            (_, ReceiptKind::Delivered) => "agent_delivered_seq",
            (_, ReceiptKind::Read) => "agent_read_seq",
        };
        // Read implies delivered: a read receipt also moves the delivered mark, so clients
        // need not send both.
        let also_delivered = match (reader, kind) {
            (Side::Consumer, ReceiptKind::Read) => {
                ", consumer_delivered_seq = CASE WHEN consumer_delivered_seq < $3 THEN $3 ELSE consumer_delivered_seq END"
            }
            (_, ReceiptKind::Read) => {
                ", agent_delivered_seq = CASE WHEN agent_delivered_seq < $3 THEN $3 ELSE agent_delivered_seq END"
            }
            (_, ReceiptKind::Delivered) => "",
        };
        let done = sqlx::query(AssertSqlSafe(format!(
            "UPDATE conversations SET {column} = $3{also_delivered} WHERE brand_id = $1 AND id = $2 AND {column} < $3
             AND last_seq >= $3"
        )))
        .bind(brand_id)
        .bind(id)
        .bind(seq)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Stores the consumer's CSAT answer for a conversation with an open survey.
    pub async fn answer_csat(
        &self,
        brand_id: &str,
        id: ConversationId,
        consumer_id: i64,
        score: u8,
        comment: Option<&str>,
    ) -> Result<(), CsatError> {
        let done = sqlx::query(
            "UPDATE conversations SET csat_score = $4, csat_comment = $5, survey_open = 0
             WHERE brand_id = $1 AND id = $2 AND consumer_id = $3 AND survey_open = 1",
        )
        .bind(brand_id)
        .bind(id)
        .bind(consumer_id)
        .bind(i64::from(score))
        .bind(comment)
        .execute(&self.pool)
        .await
        .map_err(StoreError::from)?;
        if done.rows_affected() == 1 {
            return Ok(());
        }
        match self.conversation(brand_id, id).await? {
            Some(conversation) if conversation.consumer_id == consumer_id => {
                if conversation.csat_score.is_some() {
                    Err(CsatError::AlreadyAnswered)
                } else {
                    Err(CsatError::NotAvailable)
                }
            }
            _ => Err(CsatError::NotFound),
        }
    }
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
