//! Automatic messages: the brand's templates per trigger, skill and language, checked at
//! save, and a preview with sample values. The rules are `switchboard_core::automation`'s.

use switchboard_core::automation::{Template, TemplateError, Trigger, Values, language_of};
use switchboard_core::limits::Channel;
use switchboard_protocol::{Millis, Side};
use switchboard_store::NewAutomaticMessage;

use super::*;

// ----- automatic messages ------------------------------------------------------------------

/// An automatic-message template.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AutomaticMessage {
    pub id: i64,
    /// `welcome`, `queued`, `wait_changed`, `assigned`, `transferred`, `off_hours`,
    /// `inactive_warning`, `auto_closed` or `resolved`.
    pub trigger: String,
    /// `null`: brand-wide (used for skills without their own).
    pub skill_id: Option<i64>,
    /// Primary language subtag, e.g. `en`.
    pub language: String,
    pub enabled: bool,
    /// With `{consumer_name}`, `{agent_name}`, `{wait_time}`, `{skill}`, `{brand_name}`.
    pub text: String,
    pub updated_at: Millis,
}

impl From<switchboard_store::AutomaticMessage> for AutomaticMessage {
    fn from(row: switchboard_store::AutomaticMessage) -> AutomaticMessage {
        let switchboard_store::AutomaticMessage {
            id,
            brand_id: _,
            trigger,
            skill_id,
            language,
            enabled,
            text,
            updated_at,
        } = row;
        AutomaticMessage { id, trigger, skill_id, language, enabled, text, updated_at }
    }
}

/// A trigger and what a message for it could say.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TriggerInfo {
    pub trigger: String,
    pub example: String,
}

/// The brand's templates, and the triggers and variables they may use.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AutomaticMessages {
    pub messages: Vec<AutomaticMessage>,
    pub triggers: Vec<TriggerInfo>,
    pub variables: Vec<String>,
}

/// Lists the brand's automatic messages (admin).
#[utoipa::path(get, path = "/api/v1/automatic-messages", tag = "automation",
    responses((status = 200, body = AutomaticMessages), (status = 403, body = ErrorBody)))]
pub(super) async fn list_automatic_messages(
    State(state): State<AppState>,
    AdminAuth(caller): AdminAuth,
) -> ApiResult<Json<AutomaticMessages>> {
    let messages = state.store.automatic_messages(&caller.brand_id).await?.into_iter().map(Into::into).collect();
    let triggers = Trigger::ALL
        .into_iter()
        .map(|t| TriggerInfo { trigger: t.as_str().to_owned(), example: t.example().to_owned() })
        .collect();
    let variables = switchboard_core::automation::Variable::ALL.iter().map(|v| format!("{{{}}}", v.name())).collect();
    Ok(Json(AutomaticMessages { messages, triggers, variables }))
}

/// A template to save: replaces the brand's template with the same trigger, skill and
/// language. Unknown fields are refused.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AutomaticMessageRequest {
    #[schema(max_length = 32)]
    pub trigger: String,
    /// `null` or absent: brand-wide.
    pub skill_id: Option<i64>,
    /// A language tag (its primary subtag is kept); default: the brand's default language.
    #[schema(max_length = 35)]
    pub language: Option<String>,
    /// Default true.
    pub enabled: Option<bool>,
    /// At most the shortest limit of the brand's channels; variables must be known.
    #[schema(max_length = 2000)]
    pub text: String,
}

fn trigger_of(text: &str) -> ApiResult<Trigger> {
    Trigger::parse(text).ok_or_else(|| {
        let known: Vec<&str> = Trigger::ALL.iter().map(|t| t.as_str()).collect();
        ApiError::bad_request(format!("trigger {text:?} is not known; known: {}", known.join(", ")))
    })
}

/// The strictest limit for system messages among the brand's channels, and that channel.
async fn strictest_channel(state: &AppState, brand_id: &str) -> ApiResult<(Channel, usize)> {
    let apps = state.store.apps(brand_id).await?;
    let channels = apps.iter().filter_map(|app| Channel::parse(&app.channel));
    Ok(channels
        .chain(std::iter::once(Channel::InApp))
        .map(|channel| (channel, channel.max_chars(Side::System)))
        .min_by_key(|(_, limit)| *limit)
        .unwrap_or((Channel::InApp, Channel::InApp.max_chars(Side::System))))
}

fn template_error(error: TemplateError, channel: Channel) -> ApiError {
    match error {
        TemplateError::TooLong { .. } => {
            ApiError::bad_request(format!("text: {error} (the {} channel's limit)", channel.as_str()))
        }
        other => ApiError::bad_request(format!("text: {other}")),
    }
}

fn language_or(tag: Option<&str>, default: &str) -> ApiResult<String> {
    match tag {
        Some(tag) => language_of(tag).ok_or_else(|| {
            ApiError::bad_request(format!("language must be a language tag such as \"en\" or \"de-AT\" (got {tag:?})"))
        }),
        None => Ok(default.to_owned()),
    }
}

/// Saves an automatic message (admin). The text is checked now: an unknown variable, an
/// unclosed brace or a text over the brand's strictest channel limit is refused, naming it.
#[utoipa::path(put, path = "/api/v1/automatic-messages", tag = "automation", request_body = AutomaticMessageRequest,
    responses((status = 200, body = AutomaticMessage), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(super) async fn put_automatic_message(
    State(state): State<AppState>,
    AdminAuth(caller): AdminAuth,
    Body(request): Body<AutomaticMessageRequest>,
) -> ApiResult<Json<AutomaticMessage>> {
    let trigger = trigger_of(&request.trigger)?;
    let brand = state.store.brand(&caller.brand_id).await?.ok_or_else(|| ApiError::code(ErrorCode::BrandNotFound))?;
    let language = language_or(request.language.as_deref(), &brand.default_language)?;
    let (channel, limit) = strictest_channel(&state, &caller.brand_id).await?;
    Template::parse(&request.text, limit).map_err(|error| template_error(error, channel))?;
    let new = NewAutomaticMessage {
        trigger: trigger.as_str().to_owned(),
        skill_id: request.skill_id,
        language,
        enabled: request.enabled.unwrap_or(true),
        text: request.text,
    };
    let saved =
        state.store.put_automatic_message(&caller.brand_id, &new, now_ms()).await.map_err(|error| match error {
            switchboard_store::StoreError::NotFound => ApiError::bad_request(format!(
                "skill {} does not exist in this brand",
                request.skill_id.unwrap_or_default()
            )),
            other => other.into(),
        })?;
    state.engines.templates_changed(&caller.brand_id);
    let detail = json!({"trigger": saved.trigger, "skill_id": saved.skill_id, "language": saved.language,
        "enabled": saved.enabled, "text": saved.text});
    crate::audit::record(
        &state,
        &caller,
        "automatic_message.put",
        Some(format!("automatic message {}", saved.id)),
        detail,
    )
    .await;
    Ok(Json(saved.into()))
}

/// Deletes an automatic message (admin).
#[utoipa::path(delete, path = "/api/v1/automatic-messages/{message_id}", tag = "automation",
    params(("message_id" = i64, Path)), responses((status = 204), (status = 404, body = ErrorBody)))]
pub(super) async fn delete_automatic_message(
    State(state): State<AppState>,
    AdminAuth(caller): AdminAuth,
    P(message_id): P<i64>,
) -> ApiResult<StatusCode> {
    if !state.store.delete_automatic_message(&caller.brand_id, message_id).await? {
        return Err(ApiError::new(ErrorCode::NotFound, format!("no automatic message has id {message_id}")));
    }
    state.engines.templates_changed(&caller.brand_id);
    let target = Some(format!("automatic message {message_id}"));
    crate::audit::record(&state, &caller, "automatic_message.delete", target, Value::Null).await;
    Ok(StatusCode::NO_CONTENT)
}

/// A text to preview.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewRequest {
    #[schema(max_length = 2000)]
    pub text: String,
    /// Language of the humanized wait; default: the brand's default language.
    #[schema(max_length = 35)]
    pub language: Option<String>,
}

/// A preview.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Preview {
    /// The message as a consumer would see it, with sample values: consumer "Carol Jones",
    /// agent "Alex Smith", a wait of 4 minutes, skill "Billing", the brand's name.
    pub text: String,
}

/// Shows a template filled with sample values (admin); refused like a save would be.
#[utoipa::path(post, path = "/api/v1/automatic-messages/preview", tag = "automation", request_body = PreviewRequest,
    responses((status = 200, body = Preview), (status = 400, body = ErrorBody)))]
pub(super) async fn preview_automatic_message(
    State(state): State<AppState>,
    AdminAuth(caller): AdminAuth,
    Body(request): Body<PreviewRequest>,
) -> ApiResult<Json<Preview>> {
    let brand = state.store.brand(&caller.brand_id).await?.ok_or_else(|| ApiError::code(ErrorCode::BrandNotFound))?;
    let language = language_or(request.language.as_deref(), &brand.default_language)?;
    let (channel, limit) = strictest_channel(&state, &caller.brand_id).await?;
    let template = Template::parse(&request.text, limit).map_err(|error| template_error(error, channel))?;
    let values = Values {
        consumer_name: Some("Carol Jones"),
        agent_name: Some("Alex Smith"),
        wait_secs: Some(240),
        skill: Some("Billing"),
        brand_name: Some(&brand.name),
    };
    Ok(Json(Preview { text: template.render(&values, &language, limit) }))
}
