//! Demo data for `switchboard serve` without configuration: brand `demo`, skills, an app
//! that accepts both JWTs (signed with a key kept in the data directory) and anonymous
//! consumers, and staff accounts with random passwords. Created once; later starts print the
//! same credentials, less any an admin has changed since.

use std::path::{Path, PathBuf};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use switchboard_store::{NewApp, NewBrand, NewUser, Role, Store};

use crate::{auth, now_ms};

/// Brand ID of the demo brand.
pub const DEMO_BRAND: &str = "demo";
/// App ID of the demo app.
pub const DEMO_APP: &str = "demo-app";
/// `iss` the demo app expects.
pub const DEMO_ISSUER: &str = "demo-backend";
/// `kid` of the demo signing key.
pub const DEMO_KEY_ID: &str = "demo-1";

const CREDENTIALS_FILE: &str = "demo-credentials.json";
const SIGNING_KEY_FILE: &str = "demo-signing-key.pk8";

/// A demo login.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoLogin {
    pub email: String,
    pub password: String,
    pub role: Role,
}

/// What the demo seed made.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoCredentials {
    pub brand: String,
    pub app: String,
    /// Logins whose seeded password still works.
    pub logins: Vec<DemoLogin>,
    /// Emails of demo logins whose password was changed (or which were removed) since the
    /// seed: their old password is no longer kept or shown.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<String>,
    /// Whether the seed ran at this start (the passwords were made now). Not stored.
    #[serde(skip)]
    pub created_now: bool,
}

/// Errors of seeding and token signing.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("storage: {0}")]
    Store(#[from] switchboard_store::StoreError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Crypto(String),
}

/// The demo's credentials file in `data_dir`.
pub fn credentials_path(data_dir: &Path) -> PathBuf {
    data_dir.join(CREDENTIALS_FILE)
}

/// Removes the seeded password of `email` from the credentials file at `path` (it was
/// changed), listing the email under `changed`. Nothing happens if the file or the login is
/// not there.
pub fn forget_demo_password(path: &Path, email: &str) -> Result<(), SeedError> {
    let Ok(bytes) = std::fs::read(path) else { return Ok(()) };
    let Ok(mut credentials) = serde_json::from_slice::<DemoCredentials>(&bytes) else { return Ok(()) };
    let before = credentials.logins.len();
    credentials.logins.retain(|login| !login.email.eq_ignore_ascii_case(email));
    if credentials.logins.len() == before {
        return Ok(());
    }
    credentials.changed.push(email.to_lowercase());
    let json = serde_json::to_vec_pretty(&credentials).expect("credentials serialize");
    crate::files::write_private(path, &json).map_err(io(path))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SeedError + '_ {
    move |source| SeedError::Io { path: path.to_owned(), source }
}

/// Creates the demo data unless brand `demo` exists; returns the credentials either way
/// (`None` if the brand exists but its credentials file is gone). On a later start, each
/// remembered password is checked against the account: one an admin has changed since is
/// dropped from the answer and from the file, and its email listed in `changed`.
pub async fn ensure_demo(store: &Store, data_dir: &Path) -> Result<Option<DemoCredentials>, SeedError> {
    let credentials_path = data_dir.join(CREDENTIALS_FILE);
    if store.brand(DEMO_BRAND).await?.is_some() {
        let Some(mut credentials) = std::fs::read(&credentials_path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<DemoCredentials>(&bytes).ok())
        else {
            return Ok(None);
        };
        let mut still_valid = Vec::new();
        for login in std::mem::take(&mut credentials.logins) {
            let user = store.user_by_email(DEMO_BRAND, &login.email).await?;
            let valid = user.is_some_and(|user| {
                user.brand_id == DEMO_BRAND
                    && !user.disabled
                    && auth::verify_password(&login.password, &user.password_hash)
            });
            if valid {
                still_valid.push(login);
            } else {
                credentials.changed.push(login.email);
            }
        }
        let rewrite = !credentials.changed.is_empty();
        credentials.logins = still_valid;
        if rewrite {
            let json = serde_json::to_vec_pretty(&credentials).expect("credentials serialize");
            crate::files::write_private(&credentials_path, &json).map_err(io(&credentials_path))?;
        }
        return Ok(Some(credentials));
    }
    let now = now_ms();
    store.create_brand(&NewBrand { id: DEMO_BRAND.into(), name: "Demo Brand".into() }, now).await?;
    let general = store.create_skill(DEMO_BRAND, "general", now).await?;
    let billing = store.create_skill(DEMO_BRAND, "billing", now).await?;
    store
        .create_app(
            &NewApp {
                id: DEMO_APP.into(),
                brand_id: DEMO_BRAND.into(),
                name: "Demo App".into(),
                channel: "in_app".into(),
                allow_jwt: true,
                allow_anonymous: true,
                jwt_issuer: Some(DEMO_ISSUER.into()),
                jwt_audience: None,
                default_skill_id: Some(general.id),
                default_priority: Default::default(),
            },
            now,
        )
        .await?;
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map_err(|_| SeedError::Crypto("cannot generate a P-256 key".into()))?;
    let key_path = data_dir.join(SIGNING_KEY_FILE);
    crate::files::write_private(&key_path, pkcs8.as_ref()).map_err(io(&key_path))?;
    store.add_app_key(DEMO_BRAND, DEMO_APP, "jwks", &jwks_for(pkcs8.as_ref())?, now).await?;

    let people = [
        ("admin@demo.test", "Dana Admin", Role::Admin, 0, vec![]),
        ("manager@demo.test", "Morgan Manager", Role::Manager, 0, vec![]),
        ("alice@demo.test", "Alice Agent", Role::Agent, 5, vec![general.id, billing.id]),
        ("bob@demo.test", "Bob Agent", Role::Agent, 3, vec![general.id]),
    ];
    let mut logins = Vec::new();
    for (email, name, role, max_concurrent, skills) in people {
        // Random, and passing the password policy like any other.
        let password = auth::random_password();
        let password_hash = auth::hash_password(&password).map_err(|e| SeedError::Crypto(e.message))?;
        let new = NewUser {
            brand_id: DEMO_BRAND.into(),
            email: email.into(),
            name: name.into(),
            role,
            password_hash,
            max_concurrent,
            skills,
        };
        store.create_user(&new, now).await?;
        logins.push(DemoLogin { email: email.into(), password, role });
    }
    let credentials = DemoCredentials {
        brand: DEMO_BRAND.into(),
        app: DEMO_APP.into(),
        logins,
        changed: Vec::new(),
        created_now: true,
    };
    let json = serde_json::to_vec_pretty(&credentials).expect("credentials serialize");
    crate::files::write_private(&credentials_path, &json).map_err(io(&credentials_path))?;
    Ok(Some(credentials))
}

/// The JWKS document (one EC P-256 key) for a PKCS#8 private key.
pub fn jwks_for(pkcs8: &[u8]) -> Result<String, SeedError> {
    let key_pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8)
        .map_err(|_| SeedError::Crypto("not a P-256 PKCS#8 key".into()))?;
    // Uncompressed point: 0x04 || x (32 bytes) || y (32 bytes).
    let point = key_pair.public_key().as_ref();
    let (x, y) = (&point[1..33], &point[33..65]);
    Ok(serde_json::json!({"keys": [{
        "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": DEMO_KEY_ID,
        "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y),
    }]})
    .to_string())
}

/// Claims of a development consumer token.
#[derive(Debug, Clone, Serialize)]
pub struct DevClaims {
    pub sub: String,
    pub iss: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// Signs a consumer JWT (ES256) with a PKCS#8 P-256 key, as a brand's backend would.
pub fn sign_es256(pkcs8: &[u8], kid: Option<&str>, claims: &DevClaims) -> Result<String, SeedError> {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_ec_der(pkcs8))
        .map_err(|e| SeedError::Crypto(e.to_string()))
}

/// Signs a demo-app consumer token with the key in `data_dir`, valid for `ttl_secs`.
pub fn dev_token(data_dir: &Path, subject: &str, name: Option<&str>, ttl_secs: i64) -> Result<String, SeedError> {
    let key_path = data_dir.join(SIGNING_KEY_FILE);
    let pkcs8 = std::fs::read(&key_path).map_err(io(&key_path))?;
    let now = now_ms() / 1000;
    let claims = DevClaims {
        sub: subject.into(),
        iss: DEMO_ISSUER.into(),
        aud: DEMO_APP.into(),
        exp: now + ttl_secs,
        iat: now,
        name: name.map(str::to_owned),
        email: None,
    };
    sign_es256(&pkcs8, Some(DEMO_KEY_ID), &claims)
}
