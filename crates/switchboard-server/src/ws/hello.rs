//! `hello`: authenticating a socket (a consumer's JWT or device secret, an agent's session)
//! and building its `welcome`.

use super::*;
use switchboard_store::IdentitySettings;

/// Authenticates the socket, subscribes it to its topic, and builds the welcome. The
/// subscription starts *before* the welcome's state is read, so an event committed in
/// between is delivered live (a client may see it twice, never zero times).
pub(super) async fn authenticate(
    state: &AppState,
    endpoint: Endpoint,
    hello: Hello,
    cookie: Option<String>,
    origin: u64,
    address: std::net::IpAddr,
) -> ApiResult<(Peer, Subscription, ServerFrame)> {
    if hello.v != PROTOCOL_VERSION {
        return Err(ApiError::new(
            ErrorCode::UnsupportedVersion,
            format!("protocol version {} is not supported; this server speaks {PROTOCOL_VERSION}", hello.v),
        ));
    }
    match endpoint {
        Endpoint::Consumer => authenticate_consumer(state, hello, origin, address).await,
        Endpoint::Agent => authenticate_agent(state, hello, cookie, origin).await,
    }
}

/// The app's identity-provider settings, cached until an admin changes them.
async fn identity_settings(state: &AppState, app: &App) -> ApiResult<std::sync::Arc<IdentitySettings>> {
    if let Some(settings) = state.app_identity.lock().unwrap_or_else(|p| p.into_inner()).get(&app.id).cloned() {
        return Ok(settings);
    }
    let settings = std::sync::Arc::new(state.store.identity_settings(&app.brand_id, &app.id).await?);
    state.app_identity.lock().unwrap_or_else(|p| p.into_inner()).insert(app.id.clone(), settings.clone());
    Ok(settings)
}

/// The keys a consumer token of `app` may be signed with: those uploaded to the app, and
/// those its identity provider publishes at its JWKS URL (fetched or cached; refetched once
/// when the token names a key id they lack).
async fn consumer_keys(
    state: &AppState,
    app: &App,
    settings: &IdentitySettings,
    token: &str,
) -> ApiResult<Vec<jwt::VerifyingKey>> {
    let uploaded = match app_keys_cached(state, &app.id) {
        Some(keys) => keys,
        None => {
            let stored = state.store.app_keys(&app.brand_id, &app.id).await?;
            let keys = std::sync::Arc::new(jwt::parse_app_keys(&stored));
            state.app_keys.lock().unwrap_or_else(|p| p.into_inner()).insert(app.id.clone(), keys.clone());
            keys
        }
    };
    let mut keys = uploaded.as_ref().clone();
    if let Some(url) = &settings.jwks_url {
        let kid = jsonwebtoken::decode_header(token).ok().and_then(|header| header.kid);
        keys.extend(state.identity.keys(url, kid.as_deref()).await?.iter().cloned());
    }
    Ok(keys)
}

/// Parsed keys of an app, cached.
pub(super) fn app_keys_cached(state: &AppState, app_id: &str) -> Option<std::sync::Arc<Vec<jwt::VerifyingKey>>> {
    state.app_keys.lock().unwrap_or_else(|p| p.into_inner()).get(app_id).cloned()
}

/// Moves the anonymous identity of `secret` to the authenticated consumer `into` (see
/// `Store::merge_anonymous_consumer`): how many conversations moved, `0` if the secret is
/// unknown (already retired). The brand's engine rebuilds its desk, since open conversations
/// changed hands behind it.
async fn upgrade_anonymous(state: &AppState, brand_id: &str, secret: &str, into: i64, now: i64) -> ApiResult<u64> {
    let external_id = format!("anon:{}", auth::hash_secret(secret));
    let Some(anonymous) = state.store.consumer_by_external_id(brand_id, &external_id).await? else { return Ok(0) };
    let Some(merge) = state.store.merge_anonymous_consumer(brand_id, anonymous.id, into, now).await? else {
        return Ok(0);
    };
    tracing::info!(brand_id, anonymous = anonymous.id, into, conversations = merge.conversations, messages = merge.messages,
        push_tokens = merge.push_tokens, closed = ?merge.closed, "anonymous consumer upgraded");
    if merge.conversations > 0 {
        state.engines.rebuild(brand_id).await;
    }
    Ok(merge.conversations)
}

pub(super) async fn authenticate_consumer(
    state: &AppState,
    hello: Hello,
    origin: u64,
    address: std::net::IpAddr,
) -> ApiResult<(Peer, Subscription, ServerFrame)> {
    let brand_id = hello.brand.as_deref().ok_or_else(|| ApiError::bad_request("hello must name the brand"))?;
    let app_id = hello.app.as_deref().ok_or_else(|| ApiError::bad_request("hello must name the app"))?;
    let Some(app) = state.store.app(brand_id, app_id).await? else {
        return Err(match state.store.brand(brand_id).await? {
            None => ApiError::code(ErrorCode::BrandNotFound),
            Some(_) => ApiError::code(ErrorCode::AppNotFound),
        });
    };
    let now = now_ms();
    let mut new_secret = None;
    let mut merged = None;
    let (consumer, expires_at_ms) = match (&hello.token, &hello.code, &hello.anon) {
        (Some(_), Some(_), _) => {
            return Err(ApiError::bad_request("hello carries a token or a code, not both"));
        }
        (Some(_), None, _) | (None, Some(_), _) => {
            if !app.allow_jwt {
                return Err(ApiError::new(
                    ErrorCode::AuthModeDisabled,
                    "this app does not accept authenticated consumers (JWT or code flow)",
                ));
            }
            let settings = identity_settings(state, &app).await?;
            let (token, app_as_verified) = match (&hello.token, &hello.code) {
                (Some(token), _) => (token.clone(), app.clone()),
                (None, Some(code)) => {
                    let flow = settings.code_flow.as_ref().ok_or_else(|| {
                        ApiError::new(ErrorCode::AuthModeDisabled, "this app has no OAuth2 code flow set up")
                    })?;
                    let grant = crate::identity::CodeGrant {
                        code: code.code.clone(),
                        redirect_uri: code.redirect_uri.clone(),
                        code_verifier: code.verifier.clone(),
                    };
                    let id_token = state.identity.exchange_code(flow, &grant).await?;
                    // An id token is issued to the client: its audience is the client id.
                    (id_token, App { jwt_audience: Some(flow.client_id.clone()), ..app.clone() })
                }
                (None, None) => unreachable!("matched above"),
            };
            let keys = consumer_keys(state, &app, &settings, &token).await?;
            let verified = jwt::verify_consumer_token(&app_as_verified, &keys, &token)?;
            let consumer = state.store.upsert_consumer(brand_id, &verified.subject, &verified.claims, now).await?;
            // A device secret beside the token: the anonymous identity's conversations move
            // to this consumer (the upgrade), and the secret is retired.
            if let Some(secret) = hello.anon.as_deref().filter(|secret| !secret.is_empty()) {
                merged = Some(upgrade_anonymous(state, brand_id, secret, consumer.id, now).await?);
            }
            (consumer, Some(verified.expires_at_ms))
        }
        (None, None, Some(secret)) => {
            if !app.allow_anonymous {
                return Err(ApiError::new(
                    ErrorCode::AuthModeDisabled,
                    "this app does not allow unauthenticated consumers",
                ));
            }
            if secret.is_empty() {
                // New identities are limited per client address (`anonymous_per_address`).
                state.abuse.new_anonymous(address)?;
                let secret = auth::new_secret("sba_");
                let external_id = format!("anon:{}", auth::hash_secret(&secret));
                let consumer = state.store.upsert_consumer(brand_id, &external_id, &Default::default(), now).await?;
                new_secret = Some(secret);
                (consumer, None)
            } else {
                let external_id = format!("anon:{}", auth::hash_secret(secret));
                let consumer = state
                    .store
                    .consumer_by_external_id(brand_id, &external_id)
                    .await?
                    .ok_or_else(|| ApiError::new(ErrorCode::TokenInvalid, "unknown device secret"))?;
                (consumer, None)
            }
        }
        (None, None, None) => {
            return Err(ApiError::new(
                ErrorCode::Unauthenticated,
                "hello must carry a token (JWT), a code (OAuth2 code flow) or anon (device secret)",
            ));
        }
    };
    if let Some(tag) = &hello.lang {
        if tag.len() > 35 || switchboard_core::automation::language_of(tag).is_none() {
            return Err(ApiError::bad_request(format!(
                "lang must be a language tag such as \"en\" or \"de-AT\" (at most 35 characters; got {tag:?})"
            )));
        }
        state.store.set_consumer_language(brand_id, consumer.id, tag).await?;
    }
    if let Some(device) = &hello.device {
        state.store.set_consumer_device(brand_id, consumer.id, device).await?;
    }
    let subscription = state
        .bus
        .subscribe_as(Topic::Consumer { brand: consumer.brand_id.as_str().into(), consumer: consumer.id }, origin);
    let open = state.store.open_conversation(brand_id, consumer.id).await?;
    // A survey the consumer missed while away is offered again: the closed conversation
    // comes with `survey: true`.
    let pending_survey = state.store.pending_survey(brand_id, consumer.id, crate::now_ms()).await?;
    let welcome = ServerFrame::Welcome {
        v: PROTOCOL_VERSION,
        me: Me { id: consumer.id, name: consumer.name.clone(), state: None },
        convs: open.iter().chain(pending_survey.iter()).map(consumer_summary).collect(),
        anon: new_secret,
        merged,
        hb: state.config.heartbeat_secs,
    };
    let channel = Channel::parse(&app.channel).unwrap_or(Channel::InApp);
    let owned = open.iter().chain(pending_survey.iter()).map(|c| c.id).collect();
    // The entry point: a skill the device asks for (one the app allows), else the app's
    // default skill, else the brand's.
    let entry_skill = match (hello.skill, app.default_skill_id) {
        (Some(skill), default) if default == Some(skill) || app.entry_skill_ids.contains(&skill) => Some(skill),
        (Some(skill), _) => {
            return Err(ApiError::bad_request(format!(
                "skill {skill} is not an entry point of app {}: use its default skill or one of its entry_skill_ids",
                app.id
            )));
        }
        (None, Some(skill)) => Some(skill),
        (None, None) => state.store.brand(brand_id).await?.and_then(|brand| brand.default_skill_id),
    };
    Ok((
        Peer::Consumer(ConsumerPeer { app, consumer, channel, expires_at_ms, owned, entry_skill, routed: None }),
        subscription,
        welcome,
    ))
}

pub(super) async fn authenticate_agent(
    state: &AppState,
    hello: Hello,
    cookie: Option<String>,
    origin: u64,
) -> ApiResult<(Peer, Subscription, ServerFrame)> {
    let token = hello
        .session
        .or(cookie)
        .ok_or_else(|| ApiError::new(ErrorCode::Unauthenticated, "hello must carry a session token"))?;
    let caller = auth::authenticate_token(state, &token).await?;
    let (user, credential) = match caller.api_token_id {
        None => {
            let user = state
                .store
                .user(&caller.brand_id, caller.staff_id)
                .await?
                .ok_or_else(|| ApiError::code(ErrorCode::SessionExpired))?;
            (user, AgentCredential::Session(auth::hash_secret(&token)))
        }
        Some(_) => {
            let credential = AgentCredential::ApiToken {
                hash: auth::hash_secret(&token),
                role: caller.role,
                expires_at: caller.expires_at,
            };
            (token_user(caller), credential)
        }
    };
    let subscription =
        state.bus.subscribe_as(Topic::Agent { brand: user.brand_id.as_str().into(), agent: user.id }, origin);
    let mut convs = Vec::new();
    let skills = state.store.skills(&user.brand_id).await?;
    for conversation in state.store.agent_conversations(&user.brand_id, user.id).await? {
        let consumer = state.store.consumer(&user.brand_id, conversation.consumer_id).await?;
        convs.push(agent_summary(&conversation, consumer.as_ref(), &skills));
    }
    let welcome = ServerFrame::Welcome {
        v: PROTOCOL_VERSION,
        me: Me {
            id: user.id,
            name: Some(user.name.clone()),
            state: matches!(credential, AgentCredential::Session(_)).then_some(user.state),
        },
        convs,
        anon: None,
        merged: None,
        hb: state.config.heartbeat_secs,
    };
    Ok((Peer::Agent(AgentPeer { user, credential }), subscription, welcome))
}

/// An API token on the agent socket, as the principal it acts as: its own id
/// (`auth::token_principal`) and name, its role capped by its creator's; no skills, no
/// capacity, never online (it is no seat on the desk).
fn token_user(caller: auth::Caller) -> User {
    User {
        id: caller.staff_id,
        brand_id: caller.brand_id,
        email: String::new(),
        name: caller.name,
        role: caller.role,
        password_hash: String::new(),
        max_concurrent: 0,
        state: switchboard_protocol::AgentState::Offline,
        disabled: false,
        skills: Vec::new(),
        created_at: 0,
    }
}
