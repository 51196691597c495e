//! Request bodies are checked against the limits their OpenAPI schema documents before they
//! are decoded: `maxLength` of every string (in characters, Unicode scalar values), `maxItems`
//! of every list. The reference at `/docs` and the check are one: a field documented as at
//! most 200 characters is refused at 201 with `bad_request` naming the field and the limit,
//! whatever handler receives it. A test checks that every string of every request body has a
//! documented `maxLength`, so a new route cannot skip its limits.

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use serde_json::Value;
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};

/// One request type's schema, as JSON, with the schemas it refers to.
#[derive(Debug)]
pub struct Limits {
    schema: Value,
    components: HashMap<String, Value>,
}

/// The limits of `T`'s schema, built once per type.
pub fn limits_of<T: ToSchema + 'static>() -> Arc<Limits> {
    // Written once per request type (the first request of that type), read by every request
    // after; the lock is never held across an await.
    static CACHE: OnceLock<RwLock<HashMap<TypeId, Arc<Limits>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let key = TypeId::of::<T>();
    if let Some(limits) = cache.read().unwrap_or_else(|poisoned| poisoned.into_inner()).get(&key) {
        return limits.clone();
    }
    let mut referenced = Vec::new();
    T::schemas(&mut referenced);
    let components = referenced
        .into_iter()
        .map(|(name, schema)| (name, serde_json::to_value(schema).unwrap_or(Value::Null)))
        .collect();
    let schema = serde_json::to_value(T::schema()).unwrap_or(Value::Null);
    let limits = Arc::new(Limits { schema, components });
    cache.write().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(key, limits.clone());
    limits
}

impl Limits {
    /// Checks a decoded JSON body against the documented limits.
    pub fn check(&self, body: &Value) -> ApiResult<()> {
        self.walk(&self.schema, body, &mut String::new())
    }

    fn walk(&self, schema: &Value, value: &Value, path: &mut String) -> ApiResult<()> {
        if let Some(name) = schema.get("$ref").and_then(Value::as_str).and_then(|r| r.rsplit('/').next()) {
            return match self.components.get(name) {
                Some(schema) => self.walk(schema, value, path),
                None => Ok(()),
            };
        }
        for composite in ["oneOf", "anyOf", "allOf"] {
            for alternative in schema.get(composite).and_then(Value::as_array).into_iter().flatten() {
                self.walk(alternative, value, path)?;
            }
        }
        match value {
            Value::String(text) => {
                if let Some(max) = schema.get("maxLength").and_then(Value::as_u64) {
                    let chars = text.chars().count();
                    if chars as u64 > max {
                        return Err(ApiError::bad_request(format!(
                            "{} is {chars} characters; the limit is {max}",
                            field_name(path)
                        )));
                    }
                }
            }
            Value::Array(items) => {
                if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
                    && items.len() as u64 > max
                {
                    return Err(ApiError::bad_request(format!(
                        "{} has {} entries; the limit is {max}",
                        field_name(path),
                        items.len()
                    )));
                }
                if let Some(item_schema) = schema.get("items") {
                    for (index, item) in items.iter().enumerate() {
                        let len = path.len();
                        path.push_str(&format!("[{index}]"));
                        self.walk(item_schema, item, path)?;
                        path.truncate(len);
                    }
                }
            }
            Value::Object(fields) => {
                if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
                    for (name, field) in fields {
                        let Some(field_schema) = properties.get(name) else { continue };
                        let len = path.len();
                        if !path.is_empty() {
                            path.push('.');
                        }
                        path.push_str(name);
                        self.walk(field_schema, field, path)?;
                        path.truncate(len);
                    }
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
        Ok(())
    }
}

fn field_name(path: &str) -> String {
    if path.is_empty() { "the body".to_owned() } else { format!("`{path}`") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[allow(dead_code)] // Only its schema is used.
    #[derive(ToSchema)]
    struct Inner {
        #[schema(max_length = 3)]
        code: String,
    }

    #[allow(dead_code)]
    #[derive(ToSchema)]
    struct Outer {
        #[schema(max_length = 5)]
        name: Option<String>,
        #[schema(max_items = 2)]
        inner: Vec<Inner>,
    }

    #[test]
    fn strings_and_lists_over_their_documented_limits_are_named() {
        let limits = limits_of::<Outer>();
        assert!(limits.check(&json!({"name": "héllo", "inner": [{"code": "abc"}]})).is_ok());
        assert!(limits.check(&json!({"name": null, "inner": []})).is_ok());
        let error = limits.check(&json!({"name": "héllo!", "inner": []})).unwrap_err();
        assert_eq!(error.message, "`name` is 6 characters; the limit is 5");
        let error = limits.check(&json!({"inner": [{"code": "abc"}, {"code": "abcd"}]})).unwrap_err();
        assert_eq!(error.message, "`inner[1].code` is 4 characters; the limit is 3");
        let error = limits.check(&json!({"inner": [{}, {}, {}]})).unwrap_err();
        assert_eq!(error.message, "`inner` has 3 entries; the limit is 2");
    }
}
