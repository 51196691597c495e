//! Staff authentication: argon2 password hashes, login sessions, API tokens, and the typed
//! extractors that enforce roles. A handler that takes [`AdminAuth`] cannot run for an agent;
//! there are no ad-hoc role checks in handlers.
//!
//! Secrets (session tokens, API tokens, anonymous device secrets) are 32 random bytes,
//! base64url-encoded with a prefix; only their SHA-256 is stored.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use aws_lc_rs::digest;
use axum::extract::FromRequestParts;
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::request::Parts;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use switchboard_protocol::ErrorCode;
use switchboard_store::Role;

use crate::AppState;
use crate::error::ApiError;

/// Cookie holding the session token for browsers.
pub const SESSION_COOKIE: &str = "sb_session";

/// Prefix of session tokens.
pub const SESSION_PREFIX: &str = "sbs_";
/// Prefix of API tokens.
pub const API_TOKEN_PREFIX: &str = "sbt_";

/// A new random secret with `prefix`.
pub fn new_secret(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system random source works");
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// Hex SHA-256 of a secret, the form stored in the database.
pub fn hash_secret(secret: &str) -> String {
    let digest = digest::digest(&digest::SHA256, secret.as_bytes());
    digest.as_ref().iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Argon2id hash of a password in PHC string form.
pub fn hash_password(password: &str) -> Result<String, ApiError> {
    // The salt comes from the operating system's random source.
    Argon2::default().hash_password(password.as_bytes()).map(|hash| hash.to_string()).map_err(ApiError::internal)
}

/// Compares a presented secret with the expected one by their digests, so the time taken
/// does not depend on where they differ.
pub fn same_secret(presented: &str, expected: &str) -> bool {
    hash_secret(presented) == hash_secret(expected)
}

/// Checks a password against a stored hash. A malformed hash counts as a mismatch.
pub fn verify_password(password: &str, stored_hash: &str) -> bool {
    match PasswordHash::new(stored_hash) {
        Ok(parsed) => Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

/// Minimum password length for staff accounts, in characters.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Maximum password length, in characters.
pub const MAX_PASSWORD_CHARS: usize = 256;
/// The lowest zxcvbn strength score accepted, of 0 to 4: 3 is "safely unguessable" — about
/// 10^10 guesses or more, beyond an online attack and a slow offline one against argon2.
pub const MIN_PASSWORD_SCORE: u8 = 3;

/// The password policy, applied wherever a staff password is set (an admin creating or
/// resetting an account, a user changing their own, the demo seed): 10 to 256 characters,
/// and a zxcvbn strength estimate of at least 3 of 4. zxcvbn knows common passwords, names,
/// English words, keyboard patterns, repeats, sequences and dates, so `password12`,
/// `qwertyuiop` or ten spaces are refused; `account_words` (the account's email, name,
/// brand) count as known words too, so they add little to a password's strength (a name and
/// a year is refused; zxcvbn still credits a password made of several such words with the
/// length of the combination). The refusal names the rule that failed and zxcvbn's advice.
pub fn check_password_policy(password: &str, account_words: &[&str]) -> Result<(), ApiError> {
    let chars = password.chars().count();
    if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&chars) {
        return Err(ApiError::new(
            ErrorCode::WeakPassword,
            format!("password must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters (got {chars})"),
        ));
    }
    // The email's parts count as known words: `ann.lee@acme.test` gives `ann`, `lee`, `acme`.
    let mut known: Vec<&str> = Vec::new();
    for word in account_words {
        known.push(word);
        known.extend(word.split(|c: char| !c.is_alphanumeric()).filter(|part| part.chars().count() >= 3));
    }
    let estimate = zxcvbn::zxcvbn(password, &known);
    let score = u8::from(estimate.score());
    if score >= MIN_PASSWORD_SCORE {
        return Ok(());
    }
    let mut message = format!(
        "password is too weak: its strength is {score} of 4 and at least {MIN_PASSWORD_SCORE} is needed \
         (a zxcvbn estimate: common passwords, words, names, patterns and the account's own details are easy to guess)"
    );
    if let Some(feedback) = estimate.feedback() {
        if let Some(warning) = feedback.warning() {
            message.push_str(&format!(": {warning}"));
        }
        for suggestion in feedback.suggestions() {
            message.push_str(&format!(" {suggestion}"));
        }
    }
    Err(ApiError::new(ErrorCode::WeakPassword, message))
}

/// A random password that passes the policy: 20 characters from a 56-letter alphabet without
/// look-alikes (about 116 bits), for generated accounts (the demo seed).
pub fn random_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    loop {
        let mut bytes = [0u8; 20];
        aws_lc_rs::rand::fill(&mut bytes).expect("the system random source works");
        // 256 % 56 leaves a bias of under 2 % toward the first letters; immaterial at 116 bits.
        let password: String = bytes.iter().map(|byte| ALPHABET[usize::from(*byte) % ALPHABET.len()] as char).collect();
        if check_password_policy(&password, &[]).is_ok() {
            return password;
        }
    }
}

/// An authenticated staff caller: a session user or an API token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub brand_id: String,
    /// Who acts, as the desk and the policy know them: a session's user id, or an API token's
    /// own principal id ([`token_principal`]: the token's id, negated, so it never names a
    /// user). A token acts under its own id and name, never as the user who created it.
    pub staff_id: i64,
    /// The user's name, or the token's.
    pub name: String,
    /// What it may do: the user's role; for a token, its role capped by its creator's
    /// current role.
    pub role: Role,
    /// Set for session callers: the token, so logout can end it.
    pub session_token: Option<String>,
    /// Set for API-token callers: the token's id (the audit log names the token).
    pub api_token_id: Option<i64>,
    /// Set for API-token callers that expire: when (ms).
    pub expires_at: Option<i64>,
}

/// The staff id an API token acts under: its id, negated. User ids are positive, so a
/// token's messages, desk actions and socket never pass for a user's.
pub fn token_principal(token_id: i64) -> i64 {
    -token_id
}

/// Whether an API token works at `now`, given its creator's standing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenStanding {
    /// It works, acting with this role: the lower of its own and its creator's.
    Active(Role),
    /// Past its expiry.
    Expired,
    /// Its creator's account is disabled (it works again if they are enabled).
    CreatorDisabled,
    /// Its creator's account no longer exists in the brand.
    CreatorMissing,
}

/// The one rule of what an API token may do now (authentication and the token list ask it).
pub fn token_standing(
    token: &switchboard_store::ApiToken,
    creator: Option<switchboard_store::TokenCreator>,
    now: i64,
) -> TokenStanding {
    if token.expires_at.is_some_and(|expires_at| expires_at <= now) {
        return TokenStanding::Expired;
    }
    match creator {
        None => TokenStanding::CreatorMissing,
        Some(creator) if creator.disabled => TokenStanding::CreatorDisabled,
        Some(creator) => TokenStanding::Active(token.role.min(creator.role)),
    }
}

/// How often a token's `last_used_at` is written at most: it is shown to the minute, and a
/// busy token must not cost a write per request.
pub const LAST_USED_EVERY_MS: i64 = 60_000;

/// The bearer token of a request, if any.
pub fn bearer_token(parts: &Parts) -> Option<String> {
    let value = parts.headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok())?;
    value.strip_prefix("Bearer ").map(|token| token.trim().to_owned())
}

/// Finds the bearer token or, failing that, the session cookie of a request. A request
/// authenticated by the cookie passes the cross-site check first (`origin`): a state change
/// from a foreign page is refused before its token is even looked at.
pub fn presented_token(parts: &Parts, config: &crate::ServerConfig) -> Result<Option<String>, ApiError> {
    if let Some(token) = bearer_token(parts) {
        return Ok(Some(token));
    }
    let Some(cookie) = session_cookie(&parts.headers) else { return Ok(None) };
    let tls = crate::origin::served_over_tls(&parts.extensions);
    crate::origin::check_cookie_request(config, &parts.method, &parts.headers, tls)?;
    Ok(Some(cookie))
}

/// The `sb_session` cookie, if sent.
pub fn session_cookie(headers: &axum::http::HeaderMap) -> Option<String> {
    headers.get_all(COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        (name == SESSION_COOKIE).then(|| value.to_owned())
    })
}

/// Resolves a session or API token to its caller.
pub async fn authenticate_token(state: &AppState, token: &str) -> Result<Caller, ApiError> {
    let hash = hash_secret(token);
    if token.starts_with(API_TOKEN_PREFIX) {
        return authenticate_api_token(state, &hash, crate::now_ms()).await;
    }
    let user = state
        .store
        .session_user(&hash, crate::now_ms())
        .await?
        .ok_or_else(|| ApiError::code(ErrorCode::SessionExpired))?;
    Ok(Caller {
        brand_id: user.brand_id,
        staff_id: user.id,
        name: user.name,
        role: user.role,
        session_token: Some(token.to_owned()),
        api_token_id: None,
        expires_at: None,
    })
}

/// Resolves an API token (by the hash of its secret) to its caller at `now`: refused if it
/// was revoked, has expired, or its creator's account is disabled or gone; its role is at
/// most its creator's current role. Records the use (at most once a minute; a failed write
/// is logged, the request goes on). Also what an open token socket re-checks every
/// heartbeat.
pub async fn authenticate_api_token(state: &AppState, token_hash: &str, now: i64) -> Result<Caller, ApiError> {
    let grant =
        state.store.api_token_grant(token_hash).await?.ok_or_else(|| ApiError::code(ErrorCode::Unauthenticated))?;
    let token = grant.token;
    let role = match token_standing(&token, grant.creator, now) {
        TokenStanding::Active(role) => role,
        TokenStanding::Expired => {
            return Err(ApiError::new(
                ErrorCode::TokenExpired,
                format!(
                    "API token {:?} expired at {}; an admin can create a new one",
                    token.name,
                    crate::floor::iso8601(token.expires_at)
                ),
            ));
        }
        TokenStanding::CreatorDisabled => {
            return Err(ApiError::new(
                ErrorCode::Unauthenticated,
                format!(
                    "API token {:?} no longer works: the account of user {}, who created it, is disabled",
                    token.name, token.created_by
                ),
            ));
        }
        TokenStanding::CreatorMissing => {
            return Err(ApiError::new(
                ErrorCode::Unauthenticated,
                format!(
                    "API token {:?} no longer works: user {}, who created it, no longer exists",
                    token.name, token.created_by
                ),
            ));
        }
    };
    if token.last_used_at.is_none_or(|at| now - at >= LAST_USED_EVERY_MS)
        && let Err(error) = state.store.touch_api_token(&token.brand_id, token.id, now).await
    {
        tracing::warn!(%error, token_id = token.id, "the API token's last use could not be recorded");
    }
    Ok(Caller {
        staff_id: token_principal(token.id),
        role,
        name: token.name,
        brand_id: token.brand_id,
        session_token: None,
        api_token_id: Some(token.id),
        expires_at: token.expires_at,
    })
}

async fn caller_with_role(parts: &Parts, state: &AppState, role: Role) -> Result<Caller, ApiError> {
    let token = presented_token(parts, &state.config)?.ok_or_else(|| ApiError::code(ErrorCode::Unauthenticated))?;
    let caller = authenticate_token(state, &token).await?;
    if caller.role < role {
        let message = match caller.api_token_id {
            Some(_) => format!(
                "this action needs the {} role; this API token acts as {} (its role, capped by its creator's current role)",
                role.as_str(),
                caller.role.as_str()
            ),
            None => format!("this action needs the {} role; you are {}", role.as_str(), caller.role.as_str()),
        };
        return Err(ApiError::new(ErrorCode::Forbidden, message));
    }
    Ok(caller)
}

macro_rules! role_extractor {
    ($(#[$doc:meta])* $name:ident, $role:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name(pub Caller);

        impl FromRequestParts<AppState> for $name {
            type Rejection = ApiError;

            async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
                caller_with_role(parts, state, $role).await.map($name)
            }
        }
    };
}

role_extractor!(
    /// Any logged-in staff member (agent, manager or admin).
    AgentAuth,
    Role::Agent
);
role_extractor!(
    /// A manager or admin.
    ManagerAuth,
    Role::Manager
);
role_extractor!(
    /// An admin of the brand.
    AdminAuth,
    Role::Admin
);

/// The deployment operator (creates brands). Authenticated by the operator token from the
/// configuration; without one configured, every request is refused: `401` without
/// credentials (like every operation that needs them), `403` with some.
#[derive(Debug, Clone)]
pub struct OperatorAuth;

impl FromRequestParts<AppState> for OperatorAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let presented =
            presented_token(parts, &state.config)?.ok_or_else(|| ApiError::code(ErrorCode::Unauthenticated))?;
        let expected = state.config.operator_token.as_deref().ok_or_else(|| {
            ApiError::new(ErrorCode::Forbidden, "no operator token is configured (SWITCHBOARD_OPERATOR_TOKEN)")
        })?;
        if same_secret(&presented, expected) {
            Ok(OperatorAuth)
        } else {
            Err(ApiError::code(ErrorCode::Unauthenticated))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_with_the_right_password() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("correct horse batterY", &hash));
        assert!(!verify_password("anything", "not a phc string"));
    }

    /// Issue 15: `password12` and ten spaces were accepted. Weak and common passwords are
    /// refused naming the rule; long random or passphrase-like ones pass.
    #[test]
    fn the_password_policy_refuses_weak_and_common_passwords() {
        let refused = |password: &str, words: &[&str]| match check_password_policy(password, words) {
            Err(error) => {
                assert_eq!(error.code, ErrorCode::WeakPassword, "{password:?}");
                error.message
            }
            Ok(()) => panic!("{password:?} was accepted"),
        };
        assert!(refused("short", &[]).contains("10 to 256 characters (got 5)"));
        assert!(refused(&"x".repeat(257), &[]).contains("(got 257)"));
        for weak in
            ["password12", "          ", "qwertyuiop", "1234567890", "iloveyou123", "Password2024!", "aaaaaaaaaaaa"]
        {
            let message = refused(weak, &[]);
            assert!(message.contains("at least 3 is needed"), "{weak:?}: {message}");
        }
        // Built from the account's own details: strong for a stranger, weak for this account.
        assert!(check_password_policy("qorvanix1985", &[]).is_ok());
        let message = refused("qorvanix1985", &["qorvanix@acme.test", "Dana Qorvanix", "acme"]);
        assert!(message.contains("too weak"), "{message}");
        for strong in
            ["correct horse battery staple", "a brand new passphrase", "Tq7#vW2!pLm9zR", "loadgen-password-123"]
        {
            assert!(check_password_policy(strong, &[]).is_ok(), "{strong:?}");
        }
        for _ in 0..20 {
            let password = random_password();
            assert_eq!(password.chars().count(), 20);
            assert!(check_password_policy(&password, &[]).is_ok());
        }
    }

    /// A token acts with the lower of its role and its creator's; expiry comes first, then
    /// the creator's standing.
    #[test]
    fn a_tokens_standing_follows_its_expiry_and_its_creator() {
        use switchboard_store::{ApiToken, TokenCreator};
        let token = |role, expires_at| ApiToken {
            id: 7,
            brand_id: "acme".into(),
            name: "ci".into(),
            role,
            created_by: 1,
            created_at: 0,
            expires_at,
            last_used_at: None,
        };
        let creator = |role, disabled| Some(TokenCreator { role, disabled });
        let admin_token = token(Role::Admin, Some(1_000));
        assert_eq!(token_standing(&admin_token, creator(Role::Admin, false), 999), TokenStanding::Active(Role::Admin));
        assert_eq!(
            token_standing(&admin_token, creator(Role::Manager, false), 0),
            TokenStanding::Active(Role::Manager),
            "capped by a demoted creator"
        );
        assert_eq!(
            token_standing(&token(Role::Agent, None), creator(Role::Admin, false), i64::MAX),
            TokenStanding::Active(Role::Agent),
            "never more than its own role; no expiry"
        );
        assert_eq!(token_standing(&admin_token, creator(Role::Admin, false), 1_000), TokenStanding::Expired);
        assert_eq!(token_standing(&admin_token, creator(Role::Admin, true), 1_000), TokenStanding::Expired);
        assert_eq!(token_standing(&admin_token, creator(Role::Admin, true), 0), TokenStanding::CreatorDisabled);
        assert_eq!(token_standing(&admin_token, None, 0), TokenStanding::CreatorMissing);
        assert_eq!(token_principal(7), -7);
    }

    #[test]
    fn secrets_are_unique_and_hashes_stable() {
        let a = new_secret(SESSION_PREFIX);
        let b = new_secret(SESSION_PREFIX);
        assert_ne!(a, b);
        assert!(a.starts_with("sbs_") && a.len() == 4 + 43);
        assert_eq!(hash_secret("x"), hash_secret("x"));
        assert_eq!(hash_secret("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
