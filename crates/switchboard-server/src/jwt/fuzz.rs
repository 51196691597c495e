//! Property-based fuzzing of the consumer JWT verifier and the key parser: arbitrary
//! strings, tokens built from arbitrary headers and claims, and every one-character change
//! of a valid token are refused with `token_invalid` or `token_expired`, never accepted and
//! never a panic; arbitrary key material is refused with `invalid_key`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{EncodingKey, Header};
use proptest::prelude::*;
use serde_json::{Value, json};
use switchboard_protocol::ErrorCode;
use switchboard_store::{App, ConversationPriority};

use super::{VerifyingKey, parse_key, verify_consumer_token};

const RSA_PRIVATE: &str = include_str!("../../tests/it/keys/rsa-private.pem");
const RSA_PUBLIC: &str = include_str!("../../tests/it/keys/rsa-public.pem");
const EC_PUBLIC: &str = include_str!("../../tests/it/keys/ec-public.pem");

fn app() -> App {
    App {
        id: "app".into(),
        brand_id: "brand".into(),
        name: "App".into(),
        channel: "in_app".into(),
        allow_jwt: true,
        allow_anonymous: false,
        jwt_issuer: Some("issuer".into()),
        jwt_audience: None,
        default_skill_id: None,
        default_priority: ConversationPriority::default(),
        entry_skill_ids: Vec::new(),
        created_at: 0,
    }
}

fn keys() -> Vec<VerifyingKey> {
    let mut keys = parse_key("pem", RSA_PUBLIC).unwrap();
    keys.extend(parse_key("pem", EC_PUBLIC).unwrap());
    keys
}

fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

fn valid_claims() -> Value {
    json!({"sub": "consumer-1", "iss": "issuer", "aud": "app", "exp": now_secs() + 3600, "name": "Ann"})
}

fn signed(claims: &Value) -> String {
    let key = EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap();
    jsonwebtoken::encode(&Header::new(jsonwebtoken::Algorithm::RS256), claims, &key).unwrap()
}

/// The token is refused, cleanly.
fn assert_refused(token: &str) {
    match verify_consumer_token(&app(), &keys(), token) {
        Ok(verified) => panic!("{token:?} was accepted as {verified:?}"),
        Err(error) => {
            assert!(
                matches!(error.code, ErrorCode::TokenInvalid | ErrorCode::TokenExpired),
                "{token:?} refused with {:?}",
                error.code
            );
            assert!(!error.message.is_empty());
        }
    }
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,24}".prop_map(Value::String),
        prop::sample::select(&["RS256", "ES256", "HS256", "none", "PS256", "EdDSA", "JWT", "issuer", "app"][..])
            .prop_map(|text| Value::String(text.to_owned())),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(&["alg", "typ", "kid", "sub", "iss", "aud", "exp", "nbf", "iat", "name"][..])
                    .prop_map(str::to_owned),
                inner,
                0..6
            )
            .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

fn segment(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_strings_are_refused(token in "\\PC{0,300}") {
        assert_refused(&token);
    }

    #[test]
    fn arbitrary_three_part_tokens_are_refused(token in "[A-Za-z0-9_=+/-]{0,80}\\.[A-Za-z0-9_=+/-]{0,200}\\.[A-Za-z0-9_=+/-]{0,120}") {
        assert_refused(&token);
    }

    /// Any header (`alg: none`, HS256 with a public key as the secret, unknown `kid`…) and any
    /// claims, with an arbitrary signature or a valid signature of other content.
    #[test]
    fn tokens_of_arbitrary_headers_and_claims_are_refused(
        header in json_value(),
        claims in json_value(),
        signature in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let token = format!("{}.{}.{}", segment(&header), segment(&claims), URL_SAFE_NO_PAD.encode(&signature));
        assert_refused(&token);
        // A real signature, of another token.
        let borrowed = signed(&valid_claims());
        let real_signature = borrowed.rsplit('.').next().unwrap();
        assert_refused(&format!("{}.{}.{real_signature}", segment(&header), segment(&claims)));
    }

    /// Claims that fail a rule (expired, wrong issuer or audience, missing `sub`, a `sub` that
    /// is no string…) are refused even when correctly signed.
    #[test]
    fn signed_tokens_with_a_bad_claim_are_refused(
        claim in prop::sample::select(&["sub", "iss", "aud", "exp"][..]),
        value in json_value(),
        remove in any::<bool>(),
    ) {
        let mut claims = valid_claims();
        let good = claims[claim].clone();
        if remove {
            claims.as_object_mut().unwrap().remove(claim);
        } else {
            prop_assume!(value != good);
            // A future expiry or a non-empty `sub` string may be valid: not what this checks.
            prop_assume!(!(claim == "exp" && value.as_i64().is_some_and(|exp| exp > now_secs())));
            prop_assume!(!(claim == "exp" && value.as_f64().is_some_and(|exp| exp > now_secs() as f64)));
            prop_assume!(!(claim == "sub" && value.as_str().is_some_and(|sub| !sub.is_empty() && !sub.contains('\0'))));
            prop_assume!(!(claim == "aud" && value.as_array().is_some_and(|aud| aud.contains(&json!("app")))));
            claims[claim] = value;
        }
        assert_refused(&signed(&claims));
    }

    /// Every one-character change of a valid token (replaced, removed or inserted) is refused.
    #[test]
    fn mutated_valid_tokens_are_refused(
        at in any::<prop::sample::Index>(),
        with in prop::sample::select(&b"ABCabc019-_.=+/ {}"[..]),
        how in 0..3u8,
    ) {
        let token = signed(&valid_claims());
        let mut bytes = token.clone().into_bytes();
        let at = at.index(bytes.len());
        match how {
            0 => bytes[at] = with,
            1 => {
                bytes.remove(at);
            }
            _ => bytes.insert(at, with),
        }
        let mutated = String::from_utf8(bytes).unwrap();
        prop_assume!(mutated != token);
        assert_refused(&mutated);
    }

    /// Key material of any text is refused with `invalid_key` or parsed, never a panic.
    #[test]
    fn arbitrary_key_material_is_refused_cleanly(
        format in prop::sample::select(&["pem", "jwks", "der", ""][..]),
        material in prop_oneof![
            "\\PC{0,400}".boxed(),
            json_value().prop_map(|value| json!({"keys": [value]}).to_string()).boxed(),
            "[A-Za-z0-9+/=\n]{0,400}".prop_map(|body| format!("-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----\n")).boxed(),
        ],
    ) {
        if let Err(error) = parse_key(format, &material) {
            prop_assert_eq!(error.code, ErrorCode::InvalidKey);
        }
    }
}

/// RFC 7519 makes `iss` one string; jsonwebtoken alone accepts an array holding the issuer
/// (found by `signed_tokens_with_a_bad_claim_are_refused`).
#[test]
fn an_issuer_array_is_refused() {
    let mut claims = valid_claims();
    claims["iss"] = json!(["issuer"]);
    assert_refused(&signed(&claims));
}

#[test]
fn the_valid_token_is_accepted() {
    let verified = verify_consumer_token(&app(), &keys(), &signed(&valid_claims())).unwrap();
    assert_eq!(verified.subject, "consumer-1");
}
