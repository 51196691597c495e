//! Business hours: the brand's and each skill's, what happens to conversations opened while
//! closed, and "what would happen now" for every skill. The rules are
//! `switchboard_core::hours`'s; hours are validated before they are saved.

use switchboard_core::desk::OffHours;
use switchboard_core::hours::{BusinessHours, Schedule};
use switchboard_protocol::Millis;

use super::*;

// ----- business hours ----------------------------------------------------------------------

/// A weekly shift: `day` (`monday` … `sunday`), `start` and `end` as `HH:MM` (`end` may be
/// `24:00`; an `end` before `start` runs overnight into the next day).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShiftBody {
    #[schema(max_length = 16)]
    pub day: String,
    #[schema(max_length = 8)]
    pub start: String,
    #[schema(max_length = 8)]
    pub end: String,
}

/// Opening hours of a special date, `HH:MM` to `HH:MM`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TimeRangeBody {
    #[schema(max_length = 8)]
    pub start: String,
    #[schema(max_length = 8)]
    pub end: String,
}

/// A holiday (`hours` empty: closed all day) or a special date (these hours replace the
/// shifts starting that day), `YYYY-MM-DD` in the schedule's time zone.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DateRuleBody {
    #[schema(max_length = 10)]
    pub date: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 100)]
    pub name: Option<String>,
    #[schema(max_items = 20)]
    pub hours: Vec<TimeRangeBody>,
}

/// Business hours in an IANA time zone: weekly shifts (up to 20 a day) and up to 500 dated
/// exceptions. DST is the time zone's: a shift starting in a spring-forward gap starts when
/// the gap ends; a time that occurs twice in the fall-back hour is its first occurrence.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HoursBody {
    /// e.g. `Europe/Berlin`.
    #[schema(max_length = 64)]
    pub time_zone: String,
    #[serde(default)]
    #[schema(max_items = 140)]
    pub weekly: Vec<ShiftBody>,
    #[serde(default)]
    #[schema(max_items = 500)]
    pub exceptions: Vec<DateRuleBody>,
}

impl HoursBody {
    /// The core's form, validated into a schedule (errors name the value and the limit).
    fn check(&self) -> ApiResult<(BusinessHours, Schedule)> {
        let value = serde_json::to_value(self).map_err(|error| ApiError::bad_request(error.to_string()))?;
        let hours: BusinessHours =
            serde_json::from_value(value).map_err(|error| ApiError::bad_request(format!("hours: {error}")))?;
        let schedule = hours.validate().map_err(|error| ApiError::bad_request(format!("hours: {error}")))?;
        Ok((hours, schedule))
    }

    fn of(hours: &BusinessHours) -> Option<HoursBody> {
        serde_json::to_value(hours).ok().and_then(|value| serde_json::from_value(value).ok())
    }
}

/// Open or closed now, until when, and the local time there.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HoursStatus {
    pub open: bool,
    /// When that changes (ms since the epoch); `null`: not within 400 days (or always open).
    pub until: Option<Millis>,
    /// e.g. `2026-12-03 09:15 CET`.
    pub local_time: String,
}

impl HoursStatus {
    fn of(schedule: &Schedule, now: Millis) -> HoursStatus {
        let status = schedule.describe_at(now);
        HoursStatus { open: status.open, until: status.until, local_time: status.local_time }
    }
}

/// The brand's business hours.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BrandHours {
    /// `null`: always open.
    pub hours: Option<HoursBody>,
    /// `queue` (a conversation opened while closed waits for the opening) or `close` (it is
    /// closed after the off-hours message).
    pub off_hours: String,
    pub status: HoursStatus,
}

/// New brand hours. Unknown fields are refused.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BrandHoursRequest {
    /// `null`: always open.
    pub hours: Option<HoursBody>,
    /// `queue` or `close`; absent: unchanged.
    #[schema(max_length = 16)]
    pub off_hours: Option<String>,
}

fn schedule_or_always(hours: Option<&BusinessHours>) -> Schedule {
    hours.and_then(|hours| hours.validate().ok()).unwrap_or_else(Schedule::always)
}

/// The brand's business hours (managers and admins).
#[utoipa::path(get, path = "/api/v1/brand/hours", tag = "automation",
    responses((status = 200, body = BrandHours), (status = 403, body = ErrorBody)))]
pub(super) async fn get_brand_hours(
    State(state): State<AppState>,
    ManagerAuth(caller): ManagerAuth,
) -> ApiResult<Json<BrandHours>> {
    let stored = state.store.business_hours(&caller.brand_id).await?;
    let schedule = schedule_or_always(stored.brand.as_ref());
    Ok(Json(BrandHours {
        hours: stored.brand.as_ref().and_then(HoursBody::of),
        off_hours: stored.off_hours,
        status: HoursStatus::of(&schedule, now_ms()),
    }))
}

/// Sets the brand's business hours (admin): every skill without hours of its own follows them.
#[utoipa::path(put, path = "/api/v1/brand/hours", tag = "automation", request_body = BrandHoursRequest,
    responses((status = 200, body = BrandHours), (status = 400, body = ErrorBody)))]
pub(super) async fn put_brand_hours(
    State(state): State<AppState>,
    AdminAuth(caller): AdminAuth,
    Body(request): Body<BrandHoursRequest>,
) -> ApiResult<Json<BrandHours>> {
    let checked = request.hours.as_ref().map(HoursBody::check).transpose()?;
    let stored = state.store.business_hours(&caller.brand_id).await?;
    let off_hours = match request.off_hours.as_deref() {
        Some(text) => OffHours::parse(text)
            .ok_or_else(|| ApiError::bad_request(format!("off_hours must be \"queue\" or \"close\" (got {text:?})")))?,
        None => OffHours::parse(&stored.off_hours).unwrap_or_default(),
    };
    let hours = checked.as_ref().map(|(hours, _)| hours);
    state.store.set_brand_hours(&caller.brand_id, hours, off_hours.as_str()).await?;
    state.engines.hours_changed(&caller.brand_id);
    let detail = json!({"hours": request.hours, "off_hours": off_hours.as_str()});
    crate::audit::record(&state, &caller, "hours.update", Some("brand".to_owned()), detail).await;
    let schedule = checked.map_or_else(Schedule::always, |(_, schedule)| schedule);
    Ok(Json(BrandHours {
        hours: request.hours,
        off_hours: off_hours.as_str().to_owned(),
        status: HoursStatus::of(&schedule, now_ms()),
    }))
}

/// A skill's business hours.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SkillHours {
    pub skill_id: i64,
    pub name: String,
    /// The skill's own; `null`: it follows the brand's.
    pub hours: Option<HoursBody>,
    /// Whose hours apply: `skill`, `brand` or `always` (neither set any).
    pub follows: String,
    /// Now, under the hours that apply.
    pub status: HoursStatus,
}

/// A skill's new hours. Unknown fields are refused.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SkillHoursRequest {
    /// `null`: the skill follows the brand's hours.
    pub hours: Option<HoursBody>,
}

async fn skill_hours(state: &AppState, brand_id: &str, skill_id: i64) -> ApiResult<SkillHours> {
    let skill = state
        .store
        .skills(brand_id)
        .await?
        .into_iter()
        .find(|skill| skill.id == skill_id)
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("no skill has id {skill_id}")))?;
    let stored = state.store.business_hours(brand_id).await?;
    Ok(hours_of_skill(skill.id, skill.name, &stored, now_ms()))
}

fn hours_of_skill(skill_id: i64, name: String, stored: &switchboard_store::StoredHours, now: Millis) -> SkillHours {
    let own = stored.skills.iter().find(|(id, _)| *id == skill_id).map(|(_, hours)| hours);
    let (follows, applied) = match (own, stored.brand.as_ref()) {
        (Some(own), _) => ("skill", Some(own)),
        (None, Some(brand)) => ("brand", Some(brand)),
        (None, None) => ("always", None),
    };
    SkillHours {
        skill_id,
        name,
        hours: own.and_then(HoursBody::of),
        follows: follows.to_owned(),
        status: HoursStatus::of(&schedule_or_always(applied), now),
    }
}

/// A skill's business hours (managers and admins).
#[utoipa::path(get, path = "/api/v1/skills/{skill_id}/hours", tag = "automation", params(("skill_id" = i64, Path)),
    responses((status = 200, body = SkillHours), (status = 404, body = ErrorBody)))]
pub(super) async fn get_skill_hours(
    State(state): State<AppState>,
    ManagerAuth(caller): ManagerAuth,
    P(skill_id): P<i64>,
) -> ApiResult<Json<SkillHours>> {
    Ok(Json(skill_hours(&state, &caller.brand_id, skill_id).await?))
}

/// Sets a skill's own business hours, or (`null`) lets it follow the brand's (admin).
#[utoipa::path(put, path = "/api/v1/skills/{skill_id}/hours", tag = "automation", params(("skill_id" = i64, Path)),
    request_body = SkillHoursRequest, responses((status = 200, body = SkillHours), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn put_skill_hours(
    State(state): State<AppState>,
    AdminAuth(caller): AdminAuth,
    P(skill_id): P<i64>,
    Body(request): Body<SkillHoursRequest>,
) -> ApiResult<Json<SkillHours>> {
    let checked = request.hours.as_ref().map(HoursBody::check).transpose()?;
    let hours = checked.as_ref().map(|(hours, _)| hours);
    state.store.set_skill_hours(&caller.brand_id, skill_id, hours).await.map_err(|error| match error {
        switchboard_store::StoreError::NotFound => {
            ApiError::new(ErrorCode::NotFound, format!("no skill has id {skill_id}"))
        }
        other => other.into(),
    })?;
    state.engines.hours_changed(&caller.brand_id);
    crate::audit::record(
        &state,
        &caller,
        "hours.update",
        Some(format!("skill {skill_id}")),
        json!({"hours": request.hours}),
    )
    .await;
    Ok(Json(skill_hours(&state, &caller.brand_id, skill_id).await?))
}

/// Every skill's hours now: "what would happen now" (managers and admins).
#[utoipa::path(get, path = "/api/v1/hours/status", tag = "automation",
    responses((status = 200, body = [SkillHours]), (status = 403, body = ErrorBody)))]
pub(super) async fn hours_status(
    State(state): State<AppState>,
    ManagerAuth(caller): ManagerAuth,
) -> ApiResult<Json<Vec<SkillHours>>> {
    let stored = state.store.business_hours(&caller.brand_id).await?;
    let now = now_ms();
    let skills = state.store.skills(&caller.brand_id).await?;
    Ok(Json(skills.into_iter().map(|skill| hours_of_skill(skill.id, skill.name, &stored, now)).collect()))
}
