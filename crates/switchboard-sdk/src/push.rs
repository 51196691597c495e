//! Push notifications on the device: reading what a Switchboard push carries. The server puts
//! a `switchboard` object in every push — `{"c": conversation, "seq": n, "badge": n}` — at the
//! top level of an APNs payload (the `userInfo` an iOS app receives), and as a JSON string under
//! the `switchboard` key of FCM's data (`RemoteMessage.getData()` on Android). The app hands
//! whichever it received to [`parse_push_payload`]; [`Client::open_push`](crate::Client::open_push)
//! then brings the conversation up to that message.

use serde_json::Value;

use crate::error::SdkError;
use crate::model::PushPayload;

/// Reads the conversation and message a Switchboard push announces from the payload the app
/// received, as JSON: an APNs `userInfo` dictionary, FCM's data map, or a whole FCM message
/// (`{"message": {"data": …}}`). A push from elsewhere, or a test push from the admin page,
/// is an `InvalidInput` error saying so.
pub fn parse_push_payload(payload: &str) -> Result<PushPayload, SdkError> {
    let value: Value = serde_json::from_str(payload)
        .map_err(|error| SdkError::InvalidInput(format!("the push payload is not JSON: {error}")))?;
    let found = [&value["switchboard"], &value["data"]["switchboard"], &value["message"]["data"]["switchboard"]]
        .into_iter()
        .find(|part| !part.is_null())
        .ok_or_else(|| {
            SdkError::InvalidInput("not a Switchboard push: the payload has no \"switchboard\" key".into())
        })?;
    // FCM data values are strings: the object arrives as JSON text.
    let part = match found {
        Value::String(text) => serde_json::from_str(text).map_err(|error| {
            SdkError::InvalidInput(format!("the push's \"switchboard\" value is not JSON: {error}"))
        })?,
        other => other.clone(),
    };
    if part["test"] == Value::Bool(true) {
        return Err(SdkError::InvalidInput("a test push announces no message".into()));
    }
    let number = |key: &str| match &part[key] {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    };
    let conversation = number("c")
        .filter(|c| *c > 0)
        .ok_or_else(|| SdkError::InvalidInput("the push names no conversation (\"c\")".into()))?;
    let seq = number("seq")
        .filter(|seq| *seq > 0)
        .ok_or_else(|| SdkError::InvalidInput("the push names no message (\"seq\")".into()))?;
    let badge = number("badge").and_then(|badge| u32::try_from(badge).ok());
    Ok(PushPayload { conversation, seq, badge })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apns_user_info_fcm_data_and_whole_fcm_messages_are_read() {
        let expected = PushPayload { conversation: 4821337, seq: 7, badge: Some(2) };
        let apns = r#"{"aps":{"alert":{"title":"Alice","body":"Hi"},"badge":2},"switchboard":{"c":4821337,"seq":7,"badge":2}}"#;
        assert_eq!(parse_push_payload(apns), Ok(expected));
        let fcm_data = r#"{"switchboard":"{\"c\":4821337,\"seq\":7,\"badge\":2}"}"#;
        assert_eq!(parse_push_payload(fcm_data), Ok(expected));
        let fcm_message = r#"{"message":{"token":"t","data":{"switchboard":"{\"c\":4821337,\"seq\":7,\"badge\":2}"}}}"#;
        assert_eq!(parse_push_payload(fcm_message), Ok(expected));
        let remote_message = r#"{"data":{"switchboard":"{\"c\":\"4821337\",\"seq\":\"7\"}"}}"#;
        assert_eq!(parse_push_payload(remote_message), Ok(PushPayload { badge: None, ..expected }));
    }

    #[test]
    fn other_payloads_are_refused_saying_why() {
        let says = |payload: &str, needle: &str| {
            let error = parse_push_payload(payload).unwrap_err();
            assert!(matches!(error, SdkError::InvalidInput(_)), "{error:?}");
            assert!(error.to_string().contains(needle), "{error} should say {needle}");
        };
        says("not json", "not JSON");
        says(r#"{"aps":{"alert":"from another service"}}"#, "no \"switchboard\" key");
        says(r#"{"switchboard":{"test":true}}"#, "test push");
        says(r#"{"switchboard":{"seq":3}}"#, "no conversation");
        says(r#"{"switchboard":{"c":3}}"#, "no message");
        says(r#"{"switchboard":"{broken"}"#, "not JSON");
    }
}
