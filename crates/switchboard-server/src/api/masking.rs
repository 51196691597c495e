//! Masking rules of the caller's brand: what is hidden in message text, and from whom. The
//! rules are `switchboard_core::masking`'s; they are checked whole before they are saved, and
//! apply to the next message on this node (within seconds on the other nodes of a fleet).

use switchboard_core::masking::{MAX_RULES, Masker, RuleSpec};

use super::*;

/// Who does not see what a rule matches. At least one is set.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HiddenFromBody {
    /// Agents and managers: live, in the inbox, in history and exports.
    #[serde(default)]
    pub agents: bool,
    /// The consumer's devices other than the one that sent the message, and the consumer's
    /// history.
    #[serde(default)]
    pub other_devices: bool,
    /// The database: masked before the message is stored, so never written in clear (and so
    /// hidden from everyone who reads it back).
    #[serde(default)]
    pub storage: bool,
}

/// One masking rule.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MaskingRuleBody {
    /// Unique in the brand, 1 to 100 characters.
    #[schema(max_length = 100)]
    pub name: String,
    /// `credit_card` (13 to 19 digits in groups separated by a space or a dash, passing the
    /// Luhn check; the last four digits stay visible) or `pattern`.
    #[schema(max_length = 32)]
    pub kind: String,
    /// The regular expression of a `pattern` rule (Rust `regex` syntax: no look-around or
    /// back-references; at most 500 characters; must not match the empty text). Every
    /// non-whitespace character of a match is hidden.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 500)]
    pub pattern: Option<String>,
    pub hidden_from: HiddenFromBody,
    /// Absent: `true`.
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

/// The brand's masking rules, in order (at most 50). Unknown fields are refused.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MaskingRules {
    #[schema(max_items = 50)]
    pub rules: Vec<MaskingRuleBody>,
}

impl MaskingRules {
    fn of(rules: &[RuleSpec]) -> MaskingRules {
        let rules = rules
            .iter()
            .filter_map(|rule| serde_json::to_value(rule).ok().and_then(|value| serde_json::from_value(value).ok()))
            .collect();
        MaskingRules { rules }
    }

    /// The core's rules, checked whole (errors name the rule and the limit).
    fn check(&self) -> ApiResult<Vec<RuleSpec>> {
        if self.rules.len() > MAX_RULES {
            return Err(ApiError::bad_request(format!(
                "a brand has at most {MAX_RULES} masking rules (got {})",
                self.rules.len()
            )));
        }
        let mut specs = Vec::with_capacity(self.rules.len());
        for (index, rule) in self.rules.iter().enumerate() {
            if !matches!(rule.kind.as_str(), "credit_card" | "pattern") {
                return Err(ApiError::bad_request(format!(
                    "rule {index}: kind must be \"credit_card\" or \"pattern\" (got {:?})",
                    rule.kind
                )));
            }
            let value = serde_json::to_value(rule).map_err(|error| ApiError::bad_request(error.to_string()))?;
            let spec: RuleSpec = serde_json::from_value(value)
                .map_err(|error| ApiError::bad_request(format!("rule {index}: {error}")))?;
            specs.push(RuleSpec { name: spec.name.trim().to_owned(), ..spec });
        }
        Masker::new(&specs).map_err(|error| ApiError::bad_request(error.to_string()))?;
        Ok(specs)
    }
}

/// The brand's masking rules (managers and admins).
#[utoipa::path(get, path = "/api/v1/brand/masking", tag = "privacy",
    responses((status = 200, body = MaskingRules), (status = 403, body = ErrorBody)))]
pub(super) async fn get_masking(
    State(state): State<AppState>,
    ManagerAuth(caller): ManagerAuth,
) -> ApiResult<Json<MaskingRules>> {
    Ok(Json(MaskingRules::of(&state.store.masking_rules(&caller.brand_id).await?)))
}

/// Replaces the brand's masking rules (admin). Every new brand starts with the card rule,
/// hidden from agents and from storage; turning it off or changing whom it hides from is
/// done here. Messages stored before keep what was masked then.
#[utoipa::path(put, path = "/api/v1/brand/masking", tag = "privacy", request_body = MaskingRules,
    responses((status = 200, body = MaskingRules), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(super) async fn put_masking(
    State(state): State<AppState>,
    AdminAuth(caller): AdminAuth,
    Body(request): Body<MaskingRules>,
) -> ApiResult<Json<MaskingRules>> {
    let specs = request.check()?;
    state.store.set_masking_rules(&caller.brand_id, &specs).await?;
    crate::fleet::changed(&state, crate::fleet::Changed::Masking { brand_id: caller.brand_id.clone() });
    // The rules themselves (names, kinds, patterns, audiences): a pattern is not a secret.
    let detail = serde_json::to_value(MaskingRules::of(&specs)).unwrap_or(Value::Null);
    crate::audit::record(&state, &caller, "masking.update", None, detail).await;
    Ok(Json(MaskingRules::of(&specs)))
}
