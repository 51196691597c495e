//! Staff: users (agents, managers, admins) with their skills, login sessions and API tokens.

use sqlx::{AssertSqlSafe, Row};
use switchboard_protocol::{AgentState, Millis};

use super::*;
use crate::{Store, StoreError};

impl Store {
    // ----- users, sessions, tokens --------------------------------------------------------

    /// Creates a user; `Conflict` if the brand has a user with this email (emails are unique
    /// per brand: the same person may work for two brands, and one brand must not learn
    /// another's staff addresses).
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

    /// The brand's user with this email (case-insensitive).
    pub async fn user_by_email(&self, brand_id: &str, email: &str) -> Result<Option<User>, StoreError> {
        let row =
            sqlx::query(AssertSqlSafe(format!("SELECT {USER_COLUMNS} FROM users WHERE brand_id = $1 AND email = $2")))
                .bind(brand_id)
                .bind(email.to_lowercase())
                .fetch_optional(&self.pool)
                .await?;
        self.with_skills(row).await
    }

    /// Every account with this login email, across brands, by id: what a login without a
    /// brand checks the password against. At most `limit` (the rest are not tried). Not for
    /// anything a brand's staff can see: it crosses brands.
    pub async fn logins_by_email(&self, email: &str, limit: i64) -> Result<Vec<User>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE email = $1 ORDER BY id LIMIT $2"
        )))
        .bind(email.to_lowercase())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut users = Vec::with_capacity(rows.len());
        for row in rows {
            if let Some(user) = self.with_skills(Some(row)).await? {
                users.push(user);
            }
        }
        Ok(users)
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
        // A disabled account, or a new password (a reset: whoever knew the old one may be
        // signed in), ends every session of the user; their sockets notice within a heartbeat.
        if patch.disabled == Some(true) || patch.password_hash.is_some() {
            sqlx::query("DELETE FROM sessions WHERE brand_id = $1 AND user_id = $2")
                .bind(brand_id)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
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

    /// Sets the user's own new password and ends their other sessions (the one with
    /// `keep_session_hash` stays: the user who changed it stays signed in there).
    pub async fn change_password(
        &self,
        brand_id: &str,
        user_id: i64,
        password_hash: &str,
        keep_session_hash: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("UPDATE users SET password_hash = $3 WHERE brand_id = $1 AND id = $2")
            .bind(brand_id)
            .bind(user_id)
            .bind(password_hash)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        sqlx::query("DELETE FROM sessions WHERE brand_id = $1 AND user_id = $2 AND token_hash <> $3")
            .bind(brand_id)
            .bind(user_id)
            .bind(keep_session_hash.unwrap_or(""))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Ends a session.
    pub async fn delete_session(&self, token_hash: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1").bind(token_hash).execute(&self.pool).await?;
        Ok(())
    }

    /// Stores an API token (by the hash of its secret).
    pub async fn create_api_token(&self, new: &NewApiToken<'_>, now: Millis) -> Result<ApiToken, StoreError> {
        let id: i64 = sqlx::query(
            "INSERT INTO api_tokens (brand_id, name, role, token_hash, created_by, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(new.brand_id)
        .bind(new.name)
        .bind(new.role.as_str())
        .bind(new.token_hash)
        .bind(new.created_by)
        .bind(now)
        .bind(new.expires_at)
        .fetch_one(&self.pool)
        .await?
        .try_get(0)?;
        Ok(ApiToken {
            id,
            brand_id: new.brand_id.to_owned(),
            name: new.name.to_owned(),
            role: new.role,
            created_by: new.created_by,
            created_at: now,
            expires_at: new.expires_at,
            last_used_at: None,
        })
    }

    /// Records that a token was used at `now`, unless that was recorded less than a minute
    /// ago (one write a minute per token at most, however busy it is).
    pub async fn touch_api_token(&self, brand_id: &str, token_id: i64, now: Millis) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE api_tokens SET last_used_at = $3
             WHERE brand_id = $1 AND id = $2 AND (last_used_at IS NULL OR last_used_at < $4)",
        )
        .bind(brand_id)
        .bind(token_id)
        .bind(now)
        .bind(now - 60_000)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The token with this hash.
    pub async fn api_token(&self, token_hash: &str) -> Result<Option<ApiToken>, StoreError> {
        let row =
            sqlx::query(AssertSqlSafe(format!("SELECT {API_TOKEN_COLUMNS} FROM api_tokens WHERE token_hash = $1")))
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|row| api_token_from_row(&row)).transpose()
    }

    /// The token with this hash and its creator's current role and standing, in one read.
    pub async fn api_token_grant(&self, token_hash: &str) -> Result<Option<ApiTokenGrant>, StoreError> {
        let row = sqlx::query(
            "SELECT t.id, t.brand_id, t.name, t.role, t.created_by, t.created_at, t.expires_at, t.last_used_at,
             u.role AS creator_role, u.disabled AS creator_disabled
             FROM api_tokens t LEFT JOIN users u ON u.id = t.created_by AND u.brand_id = t.brand_id
             WHERE t.token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let token = api_token_from_row(&row)?;
        let creator = match row.try_get::<Option<String>, _>("creator_role")? {
            None => None,
            Some(role) => Some(TokenCreator {
                role: Role::parse(&role).ok_or_else(|| StoreError::Corrupt(format!("role {role:?}")))?,
                disabled: row.try_get::<Option<i64>, _>("creator_disabled")?.unwrap_or(0) != 0,
            }),
        };
        Ok(Some(ApiTokenGrant { token, creator }))
    }

    /// The brand's tokens.
    pub async fn api_tokens(&self, brand_id: &str) -> Result<Vec<ApiToken>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {API_TOKEN_COLUMNS} FROM api_tokens WHERE brand_id = $1 ORDER BY id"
        )))
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
}
