//! Transcript exports over REST: many conversations by the reporting API's filters
//! (managers), or one conversation (whoever may read it), as TXT, XML or JSON, streamed
//! (`crate::export`). Each export is an entry in the audit log.

use axum::body::Body;
use axum::http::HeaderValue;
use axum::response::Response;
use switchboard_protocol::Millis;

use super::history::SearchFields;
use super::*;
use crate::export::{self, Format, Header, Selection};

/// An export of the brand's conversations: the format and the reporting API's filters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// `txt`, `xml` or `json`.
    pub format: String,
    /// Opened at or after (ms since the epoch).
    pub from: Option<Millis>,
    /// Opened before (ms since the epoch).
    pub to: Option<Millis>,
    pub skill_id: Option<i64>,
    pub agent_id: Option<i64>,
    /// `open` or `closed`.
    pub status: Option<String>,
    /// CSAT score at least this (1–5).
    pub csat_min: Option<i64>,
    /// CSAT score at most this (1–5).
    pub csat_max: Option<i64>,
    /// `in_app`, `web`, `sms` or `messenger`.
    pub channel: Option<String>,
    /// The brand's own id of the consumer.
    pub consumer: Option<String>,
}

/// The format of one conversation's transcript.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TranscriptQuery {
    /// `txt`, `xml` or `json`.
    pub format: String,
}

fn format_of(text: &str) -> ApiResult<Format> {
    Format::parse(text)
        .ok_or_else(|| ApiError::bad_request(format!("format must be \"txt\", \"xml\" or \"json\" (got {text:?})")))
}

fn download(body: Body, format: Format, name: &str) -> Response {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{name}.{}\"", format.extension())) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

/// Exports the brand's conversations that match the filters (managers and admins), newest
/// first, as one file: TXT for people, XML or JSON (described by
/// `docs/transcripts.schema.json`) for systems. Each transcript has its participants,
/// timestamps (RFC 3339, UTC), consumer (the brand's own id, profile, device), channel,
/// events, transfers, CSAT and messages masked as agents see them. The file is streamed:
/// any number of conversations, with the server holding only a page at a time.
/// Conversations past the brand's retention are never exported.
#[utoipa::path(get, path = "/api/v1/exports/conversations", tag = "reports", params(ExportQuery),
    responses((status = 200, description = "The transcripts, as an attachment", content((String = "text/plain"), (String = "application/xml"), (String = "application/json"))),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(super) async fn export_conversations(
    State(state): State<AppState>,
    ManagerAuth(caller): ManagerAuth,
    Q(query): Q<ExportQuery>,
) -> ApiResult<Response> {
    let format = format_of(&query.format)?;
    let fields = SearchFields {
        from: query.from,
        to: query.to,
        skill_id: query.skill_id,
        agent_id: query.agent_id,
        status: query.status.as_deref(),
        csat_min: query.csat_min,
        csat_max: query.csat_max,
        channel: query.channel.as_deref(),
        consumer: query.consumer.as_deref(),
    };
    // A consumer the brand does not know: an export with no conversation in it.
    let selection = match fields.check(&state, &caller.brand_id).await? {
        Some(search) => Selection::Search(search),
        None => Selection::Nothing,
    };
    let now = now_ms();
    crate::audit::record(
        &state,
        &caller,
        "export.conversations",
        None,
        json!({"format": format.extension(), "filters": filters_json(&query)}),
    )
    .await;
    let header = Header { brand_id: caller.brand_id.clone(), exported_at: now };
    let name = format!("transcripts-{}-{}", caller.brand_id, export::timestamp(now).get(..10).unwrap_or_default());
    Ok(download(export::stream(state, header, selection, format), format, &name))
}

/// The filters an export was asked for, as the audit log records them.
fn filters_json(query: &ExportQuery) -> serde_json::Value {
    let mut filters = serde_json::Map::new();
    let mut put = |key: &str, value: Option<serde_json::Value>| {
        if let Some(value) = value {
            filters.insert(key.to_owned(), value);
        }
    };
    put("from", query.from.map(Into::into));
    put("to", query.to.map(Into::into));
    put("skill_id", query.skill_id.map(Into::into));
    put("agent_id", query.agent_id.map(Into::into));
    put("status", query.status.clone().map(Into::into));
    put("csat_min", query.csat_min.map(Into::into));
    put("csat_max", query.csat_max.map(Into::into));
    put("channel", query.channel.clone().map(Into::into));
    put("consumer", query.consumer.clone().map(Into::into));
    serde_json::Value::Object(filters)
}

/// One conversation's transcript, for whoever may read the conversation (its agent, an agent
/// serving the same consumer, managers).
#[utoipa::path(get, path = "/api/v1/conversations/{conversation_id}/transcript", tag = "conversations",
    params(("conversation_id" = i64, Path), TranscriptQuery),
    responses((status = 200, description = "The transcript, as an attachment", content((String = "text/plain"), (String = "application/xml"), (String = "application/json"))),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn conversation_transcript(
    State(state): State<AppState>,
    AgentAuth(caller): AgentAuth,
    P(conversation_id): P<i64>,
    Q(query): Q<TranscriptQuery>,
) -> ApiResult<Response> {
    let format = format_of(&query.format)?;
    let conversation = desk_ops::conversation_to_read(&state, Actor::caller(&caller), conversation_id).await?;
    crate::audit::record(
        &state,
        &caller,
        "export.conversation",
        Some(format!("conversation {conversation_id}")),
        json!({"format": format.extension()}),
    )
    .await;
    let header = Header { brand_id: caller.brand_id.clone(), exported_at: now_ms() };
    let name = format!("conversation-{conversation_id}");
    Ok(download(export::stream(state, header, Selection::One(conversation), format), format, &name))
}
