//! Per-channel message length limits (SPEC "Message length limits"). Characters are Unicode
//! scalar values; an over-limit message is refused whole, never truncated.

use switchboard_protocol::Side;

/// The channel a conversation arrived on. Limits are per channel and not configurable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// The consumer SDK inside a brand's app.
    InApp,
    /// The web widget.
    Web,
    /// SMS through a provider.
    Sms,
    /// Facebook Messenger.
    Messenger,
}

impl Channel {
    /// Stable form used in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::InApp => "in_app",
            Channel::Web => "web",
            Channel::Sms => "sms",
            Channel::Messenger => "messenger",
        }
    }

    /// Parses [`Channel::as_str`].
    pub fn parse(s: &str) -> Option<Channel> {
        match s {
            "in_app" => Some(Channel::InApp),
            "web" => Some(Channel::Web),
            "sms" => Some(Channel::Sms),
            "messenger" => Some(Channel::Messenger),
            _ => None,
        }
    }

    /// Longest text, in Unicode scalar values, that `author` may send on this channel.
    pub fn max_chars(self, author: Side) -> usize {
        match (self, author) {
            (Channel::InApp | Channel::Web, _) => 2000,
            (Channel::Sms, _) => 1600,
            (Channel::Messenger, Side::Consumer) => 5000,
            (Channel::Messenger, _) => 640,
        }
    }
}

/// Why a text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// Empty or only whitespace.
    #[error("message text is empty")]
    Empty,
    /// Longer than the channel allows.
    #[error("message is {len} characters; the limit on {channel} is {limit}")]
    TooLong {
        /// Length in Unicode scalar values.
        len: usize,
        /// The channel's limit.
        limit: usize,
        /// The channel, as in [`Channel::as_str`].
        channel: &'static str,
    },
}

/// Checks a message text against the channel's limit for its author.
pub fn check_text(channel: Channel, author: Side, text: &str) -> Result<(), TextError> {
    if text.trim().is_empty() {
        return Err(TextError::Empty);
    }
    let limit = channel.max_chars(author);
    // The check counts one past the limit only; the full count for the message is paid only
    // for refused texts, which the 32 KiB frame limit keeps short.
    if text.chars().take(limit + 1).count() > limit {
        return Err(TextError::TooLong { len: text.chars().count(), limit, channel: channel.as_str() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(channel: Channel, author: Side, text: &str, expect: Result<(), &str>) {
        let got = check_text(channel, author, text).map_err(|e| e.to_string());
        assert_eq!(got, expect.map_err(str::to_owned), "text of {} chars", text.chars().count());
    }

    #[test]
    fn limits_count_unicode_scalar_values_not_bytes() {
        let emoji_2000 = "😀".repeat(2000);
        check(Channel::InApp, Side::Consumer, &emoji_2000, Ok(()));
        check(
            Channel::InApp,
            Side::Consumer,
            &"é".repeat(2001),
            Err("message is 2001 characters; the limit on in_app is 2000"),
        );
        check(Channel::Web, Side::Agent, &"x".repeat(2000), Ok(()));
        check(
            Channel::Sms,
            Side::Agent,
            &"x".repeat(1601),
            Err("message is 1601 characters; the limit on sms is 1600"),
        );
        check(Channel::Messenger, Side::Consumer, &"x".repeat(5000), Ok(()));
        check(
            Channel::Messenger,
            Side::Agent,
            &"x".repeat(641),
            Err("message is 641 characters; the limit on messenger is 640"),
        );
    }

    #[test]
    fn blank_text_is_refused() {
        check(Channel::InApp, Side::Consumer, "", Err("message text is empty"));
        check(Channel::InApp, Side::Consumer, " \n\t", Err("message text is empty"));
    }
}
