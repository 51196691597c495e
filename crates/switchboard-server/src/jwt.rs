//! Consumer identity from the brand's JWT (implicit flow). The app holds the brand's public
//! keys (PEM or a JWKS document); a token is accepted when its signature verifies with one of
//! them under the key's own algorithm (RS256 for RSA, ES256 for P-256: the header cannot pick
//! another), and `iss`, `aud`, `exp` and `nbf` hold. `sub` becomes the stable consumer id;
//! `name`, `email` and `phone_number` (or `phone`) become the consumer's profile, `locale` their
//! language (automatic messages use it; a device's `hello.lang` overrides it).

use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind};
use serde::Deserialize;
use switchboard_protocol::ErrorCode;
use switchboard_store::{App, AppKey, ConsumerClaims};

use crate::error::ApiError;

/// A parsed verification key.
#[derive(Clone)]
pub struct VerifyingKey {
    key: DecodingKey,
    algorithm: Algorithm,
    kid: Option<String>,
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingKey").field("algorithm", &self.algorithm).field("kid", &self.kid).finish()
    }
}

impl VerifyingKey {
    /// The key's id (`kid`), for keys from a JWKS document that name one.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }
}

/// Parses stored key material (`pem` or `jwks`) into verification keys. Used both when a key
/// is uploaded (to refuse bad keys with `invalid_key`) and when a token is checked.
pub fn parse_key(format: &str, material: &str) -> Result<Vec<VerifyingKey>, ApiError> {
    let invalid = |why: String| ApiError::new(ErrorCode::InvalidKey, why);
    match format {
        "pem" => {
            let bytes = material.as_bytes();
            if let Ok(key) = DecodingKey::from_rsa_pem(bytes) {
                return Ok(vec![VerifyingKey { key, algorithm: Algorithm::RS256, kid: None }]);
            }
            if let Ok(key) = DecodingKey::from_ec_pem(bytes) {
                return Ok(vec![VerifyingKey { key, algorithm: Algorithm::ES256, kid: None }]);
            }
            Err(invalid("not a PEM RSA or P-256 EC public key".into()))
        }
        "jwks" => {
            let set: JwkSet =
                serde_json::from_str(material).map_err(|e| invalid(format!("not a JWKS document: {e}")))?;
            let mut keys = Vec::new();
            for jwk in &set.keys {
                let algorithm = match &jwk.algorithm {
                    AlgorithmParameters::RSA(_) => Algorithm::RS256,
                    AlgorithmParameters::EllipticCurve(ec) if ec.curve == jsonwebtoken::jwk::EllipticCurve::P256 => {
                        Algorithm::ES256
                    }
                    _ => return Err(invalid("JWKS keys must be RSA or EC P-256".into())),
                };
                let key = DecodingKey::from_jwk(jwk).map_err(|e| invalid(format!("bad JWK: {e}")))?;
                keys.push(VerifyingKey { key, algorithm, kid: jwk.common.key_id.clone() });
            }
            if keys.is_empty() {
                return Err(invalid("the JWKS document has no keys".into()));
            }
            Ok(keys)
        }
        other => Err(invalid(format!("key format must be \"pem\" or \"jwks\", not {other:?}"))),
    }
}

/// Parses all keys of an app; keys that fail to parse are skipped (they were validated on
/// upload, so this only happens after a hand edit) and logged.
pub fn parse_app_keys(keys: &[AppKey]) -> Vec<VerifyingKey> {
    keys.iter()
        .flat_map(|key| match parse_key(&key.format, &key.material) {
            Ok(parsed) => parsed,
            Err(error) => {
                tracing::warn!(app_id = %key.app_id, key_id = key.id, error = %error.message, "unusable app key");
                Vec::new()
            }
        })
        .collect()
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    exp: i64,
    /// Read only so that an `iss` which is no string is refused: jsonwebtoken's own check
    /// accepts an array holding the issuer, which RFC 7519 §4.1.1 does not allow.
    #[allow(dead_code)]
    iss: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    phone_number: Option<String>,
    #[serde(default)]
    phone: Option<String>,
    /// OpenID Connect's `locale`, a BCP 47 tag (e.g. `de-AT`): the consumer's language.
    #[serde(default)]
    locale: Option<String>,
}

/// What a verified token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedConsumer {
    /// The `sub` claim.
    pub subject: String,
    /// When the socket is closed with 4001: `exp` plus the same leeway `hello` allows
    /// ([`LEEWAY_SECS`]), so a token accepted at `hello` is not cut off at once.
    pub expires_at_ms: i64,
    pub claims: ConsumerClaims,
}

/// Allowed clock skew between the brand's backend and us: for `exp` and `nbf` at `hello`,
/// and for the expiry of an open socket.
pub const LEEWAY_SECS: u64 = 30;

/// Longest profile claim kept (longer ones are cut at a character boundary).
const MAX_CLAIM_CHARS: usize = 200;

/// Verifies a consumer token for `app`.
pub fn verify_consumer_token(app: &App, keys: &[VerifyingKey], token: &str) -> Result<VerifiedConsumer, ApiError> {
    let invalid = |why: &str| ApiError::new(ErrorCode::TokenInvalid, why.to_owned());
    let header = jsonwebtoken::decode_header(token).map_err(|_| invalid("token is not a JWT"))?;
    if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
        return Err(invalid("token algorithm must be RS256 or ES256"));
    }
    let issuer = app.jwt_issuer.as_deref().ok_or_else(|| invalid("the app has no JWT issuer configured"))?;
    let audience = app.jwt_audience.as_deref().unwrap_or(&app.id);
    let candidates: Vec<&VerifyingKey> = keys
        .iter()
        .filter(|key| key.algorithm == header.alg)
        .filter(|key| match (&header.kid, &key.kid) {
            (Some(wanted), Some(have)) => wanted == have,
            _ => true,
        })
        .collect();
    if candidates.is_empty() {
        return Err(invalid("no key of the app matches the token's algorithm and key id"));
    }
    let mut last_error = invalid("signature does not verify");
    for key in candidates {
        let mut validation = Validation::new(key.algorithm);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        match jsonwebtoken::decode::<Claims>(token, &key.key, &validation) {
            Ok(data) => {
                let claims = data.claims;
                if claims.sub.is_empty() || claims.sub.len() > 256 {
                    return Err(invalid("sub must be 1 to 256 bytes"));
                }
                let texts = [
                    ("sub", Some(&claims.sub)),
                    ("name", claims.name.as_ref()),
                    ("email", claims.email.as_ref()),
                    ("phone_number", claims.phone_number.as_ref()),
                    ("phone", claims.phone.as_ref()),
                    ("locale", claims.locale.as_ref()),
                ];
                for (claim, value) in texts {
                    if let Some(value) = value {
                        crate::text::nul_free_claim(claim, value)?;
                    }
                }
                return Ok(VerifiedConsumer {
                    subject: claims.sub,
                    expires_at_ms: claims.exp.saturating_mul(1000).saturating_add(LEEWAY_SECS as i64 * 1000),
                    claims: ConsumerClaims {
                        name: claims.name.map(clip),
                        email: claims.email.map(clip),
                        phone: claims.phone_number.or(claims.phone).map(clip),
                        // A tag that is not one is left out rather than refusing the consumer.
                        language: claims
                            .locale
                            .filter(|tag| tag.len() <= 35 && switchboard_core::automation::language_of(tag).is_some()),
                    },
                });
            }
            Err(error) => {
                last_error = match error.kind() {
                    ErrorKind::ExpiredSignature => ApiError::code(ErrorCode::TokenExpired),
                    ErrorKind::ImmatureSignature => {
                        ApiError::new(ErrorCode::TokenExpired, "token is not valid yet (nbf)")
                    }
                    ErrorKind::InvalidIssuer => invalid("wrong issuer (iss)"),
                    ErrorKind::InvalidAudience => invalid("wrong audience (aud)"),
                    ErrorKind::MissingRequiredClaim(claim) => {
                        ApiError::new(ErrorCode::TokenInvalid, format!("missing claim {claim}"))
                    }
                    ErrorKind::InvalidSignature => invalid("signature does not verify"),
                    _ => invalid("token is malformed"),
                };
                // An expired or wrong-claims token with a good signature will fail the same
                // way with every key: stop at the first non-signature error.
                if !matches!(error.kind(), ErrorKind::InvalidSignature) {
                    return Err(last_error);
                }
            }
        }
    }
    Err(last_error)
}

fn clip(value: String) -> String {
    if value.chars().count() <= MAX_CLAIM_CHARS { value } else { value.chars().take(MAX_CLAIM_CHARS).collect() }
}

#[cfg(test)]
mod fuzz;
