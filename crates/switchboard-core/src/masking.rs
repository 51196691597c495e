//! Masking rules (SPEC "Masking and privacy"): what a brand hides in message text, and from
//! whom. A rule finds matches (the built-in credit-card rule: runs of 13 to 19 digits, in
//! groups separated by a space or a dash, that pass the Luhn check; or a custom regular
//! expression) and says who does not see them: agents, the consumer's other devices, or
//! storage. What is hidden from storage is masked before the message is stored, so it is
//! never written in clear; the other audiences get the masked form when the text is shown
//! to them.
//!
//! Masking replaces characters one for one (a card keeps its separators and last four
//! digits; a pattern's match keeps its whitespace), so a masked text is never longer than
//! the original, in characters or bytes, and stays within the channel's limit.
//!
//! Patterns use the `regex` crate, which matches in time linear in the text for any pattern,
//! so no pattern can be catastrophic; a pattern is still refused when it is empty, too long,
//! compiles to too large a program, matches the empty text, or uses syntax the engine does
//! not have (look-around, back-references), each with an error naming the rule.

use std::borrow::Cow;
use std::ops::Range;

use serde::{Deserialize, Serialize};
use switchboard_protocol::cards::hidden_digits;
pub use switchboard_protocol::cards::{CARD_DIGITS, CARD_VISIBLE_DIGITS, find_cards};

/// Most rules one brand may have.
pub const MAX_RULES: usize = 50;
/// Longest rule name, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// Longest pattern, in characters.
pub const MAX_PATTERN_CHARS: usize = 500;
/// Largest compiled pattern, in bytes of the regex engine's program.
pub const MAX_COMPILED_BYTES: usize = 256 * 1024;
/// The character that replaces a hidden one.
pub use switchboard_protocol::cards::MASK_CHAR;

/// Who does not see what a rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HiddenFrom {
    /// Agents and managers, live and in every view and export of the workspace.
    #[serde(default)]
    pub agents: bool,
    /// The consumer's devices other than the one that sent the message.
    #[serde(default)]
    pub other_devices: bool,
    /// The database: the match is masked before the message is stored, for everyone.
    #[serde(default)]
    pub storage: bool,
}

impl HiddenFrom {
    fn hides_from(self, audience: Audience) -> bool {
        match audience {
            // What storage never holds, nobody reads back.
            Audience::Storage => self.storage,
            Audience::Agents => self.agents || self.storage,
            Audience::OtherDevices => self.other_devices || self.storage,
        }
    }
}

/// Whom a text is masked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// The text as it is written to the store.
    Storage,
    /// Agents and managers.
    Agents,
    /// The consumer's other devices (and the consumer's history).
    OtherDevices,
}

/// What a rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    /// Card numbers: 13 to 19 digits passing the Luhn check, in groups separated by one space
    /// or dash. The last four digits stay visible.
    CreditCard,
    /// The rule's `pattern`, a regular expression (`regex` crate syntax); every non-whitespace
    /// character of a match is hidden.
    Pattern,
}

/// One masking rule as a brand configures it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub name: String,
    pub kind: RuleKind,
    /// The regular expression of a `pattern` rule (none for `credit_card`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    pub hidden_from: HiddenFrom,
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
}

fn enabled_by_default() -> bool {
    true
}

impl RuleSpec {
    /// The built-in card rule every new brand starts with: hidden from agents and storage.
    pub fn default_card_rule() -> RuleSpec {
        RuleSpec {
            name: "Credit card numbers".to_owned(),
            kind: RuleKind::CreditCard,
            pattern: None,
            hidden_from: HiddenFrom { agents: true, other_devices: false, storage: true },
            enabled: true,
        }
    }
}

/// Why a set of rules was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("a brand has at most {limit} masking rules (got {count})")]
    TooManyRules { count: usize, limit: usize },
    #[error("rule {index}: the name is empty")]
    NameEmpty { index: usize },
    #[error("rule {index}: the name is {len} characters; the limit is {limit}")]
    NameTooLong { index: usize, len: usize, limit: usize },
    #[error("rule {name:?}: two rules have this name; names are unique per brand")]
    DuplicateName { name: String },
    #[error("rule {name:?}: hidden_from names nobody (set agents, other_devices or storage)")]
    HidesFromNobody { name: String },
    #[error("rule {name:?}: a credit_card rule takes no pattern")]
    PatternNotTaken { name: String },
    #[error("rule {name:?}: the pattern is empty")]
    PatternEmpty { name: String },
    #[error("rule {name:?}: the pattern is {len} characters; the limit is {limit}")]
    PatternTooLong { name: String, len: usize, limit: usize },
    #[error("rule {name:?}: the pattern is not valid: {reason}")]
    PatternInvalid { name: String, reason: String },
    #[error("rule {name:?}: the pattern compiles to more than {limit} bytes; simplify it")]
    PatternTooComplex { name: String, limit: usize },
    #[error("rule {name:?}: the pattern matches the empty text, so it would hide nothing or everything")]
    PatternMatchesEmpty { name: String },
}

/// A brand's rules, checked and compiled: masks texts for each audience.
#[derive(Debug, Clone, Default)]
pub struct Masker {
    rules: Vec<Compiled>,
}

#[derive(Debug, Clone)]
struct Compiled {
    hidden_from: HiddenFrom,
    matcher: Matcher,
}

#[derive(Debug, Clone)]
enum Matcher {
    Card,
    Pattern(regex::Regex),
}

impl Masker {
    /// Checks and compiles `specs`; disabled rules are checked too but mask nothing.
    pub fn new(specs: &[RuleSpec]) -> Result<Masker, RuleError> {
        if specs.len() > MAX_RULES {
            return Err(RuleError::TooManyRules { count: specs.len(), limit: MAX_RULES });
        }
        let mut rules = Vec::new();
        for (index, spec) in specs.iter().enumerate() {
            let matcher = check(index, spec)?;
            if specs[..index].iter().any(|earlier| earlier.name.trim() == spec.name.trim()) {
                return Err(RuleError::DuplicateName { name: spec.name.trim().to_owned() });
            }
            if spec.enabled {
                rules.push(Compiled { hidden_from: spec.hidden_from, matcher });
            }
        }
        Ok(Masker { rules })
    }

    /// Masks nothing.
    pub fn none() -> Masker {
        Masker::default()
    }

    /// Whether any enabled rule hides anything from `audience` (callers skip the scan if not).
    pub fn masks_for(&self, audience: Audience) -> bool {
        self.rules.iter().any(|rule| rule.hidden_from.hides_from(audience))
    }

    /// `text` as `audience` may see it: borrowed when nothing is hidden from them.
    pub fn mask<'a>(&self, text: &'a str, audience: Audience) -> Cow<'a, str> {
        let mut hidden: Vec<Range<usize>> = Vec::new();
        for rule in self.rules.iter().filter(|rule| rule.hidden_from.hides_from(audience)) {
            match &rule.matcher {
                Matcher::Card => {
                    for card in find_cards(text) {
                        hidden.extend(hidden_digits(card));
                    }
                }
                Matcher::Pattern(regex) => {
                    for found in regex.find_iter(text) {
                        hidden.extend(non_whitespace(text, found.range()));
                    }
                }
            }
        }
        if hidden.is_empty() {
            return Cow::Borrowed(text);
        }
        hidden.sort_by_key(|range| range.start);
        let mut out = String::with_capacity(text.len());
        let mut ranges = hidden.iter().peekable();
        for (at, c) in text.char_indices() {
            while ranges.peek().is_some_and(|range| range.end <= at) {
                ranges.next();
            }
            let is_hidden = ranges.clone().take_while(|range| range.start <= at).any(|range| range.contains(&at));
            out.push(if is_hidden { MASK_CHAR } else { c });
        }
        Cow::Owned(out)
    }
}

/// Checks one rule; returns what it matches with.
fn check(index: usize, spec: &RuleSpec) -> Result<Matcher, RuleError> {
    let name = spec.name.trim();
    if name.is_empty() {
        return Err(RuleError::NameEmpty { index });
    }
    let len = name.chars().count();
    if len > MAX_NAME_CHARS {
        return Err(RuleError::NameTooLong { index, len, limit: MAX_NAME_CHARS });
    }
    let name = name.to_owned();
    let HiddenFrom { agents, other_devices, storage } = spec.hidden_from;
    if !(agents || other_devices || storage) {
        return Err(RuleError::HidesFromNobody { name });
    }
    match (spec.kind, &spec.pattern) {
        (RuleKind::CreditCard, None) => Ok(Matcher::Card),
        (RuleKind::CreditCard, Some(_)) => Err(RuleError::PatternNotTaken { name }),
        (RuleKind::Pattern, None) => Err(RuleError::PatternEmpty { name }),
        (RuleKind::Pattern, Some(pattern)) => {
            if pattern.is_empty() {
                return Err(RuleError::PatternEmpty { name });
            }
            let len = pattern.chars().count();
            if len > MAX_PATTERN_CHARS {
                return Err(RuleError::PatternTooLong { name, len, limit: MAX_PATTERN_CHARS });
            }
            let regex = regex::RegexBuilder::new(pattern)
                .size_limit(MAX_COMPILED_BYTES)
                .dfa_size_limit(4 * MAX_COMPILED_BYTES)
                .build()
                .map_err(|error| match error {
                    regex::Error::CompiledTooBig(_) => {
                        RuleError::PatternTooComplex { name: name.clone(), limit: MAX_COMPILED_BYTES }
                    }
                    // The syntax error's own text points at the place, over several lines.
                    other => RuleError::PatternInvalid { name: name.clone(), reason: one_line(&other.to_string()) },
                })?;
            if regex.is_match("") {
                return Err(RuleError::PatternMatchesEmpty { name });
            }
            Ok(Matcher::Pattern(regex))
        }
    }
}

fn one_line(text: &str) -> String {
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|line| !line.is_empty()).collect();
    lines.last().copied().unwrap_or(text).trim_start_matches("error: ").to_owned()
}

/// The byte ranges of `range`'s characters that are not whitespace.
fn non_whitespace(text: &str, range: Range<usize>) -> impl Iterator<Item = Range<usize>> + '_ {
    let start = range.start;
    text[range].char_indices().filter(|(_, c)| !c.is_whitespace()).map(move |(at, c)| {
        let at = start + at;
        at..at + c.len_utf8()
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use switchboard_protocol::cards::luhn;

    use super::*;

    fn card_rule(hidden_from: HiddenFrom) -> RuleSpec {
        RuleSpec { name: "cards".into(), kind: RuleKind::CreditCard, pattern: None, hidden_from, enabled: true }
    }

    fn pattern_rule(name: &str, pattern: &str) -> RuleSpec {
        RuleSpec {
            name: name.into(),
            kind: RuleKind::Pattern,
            pattern: Some(pattern.into()),
            hidden_from: HiddenFrom { agents: true, ..HiddenFrom::default() },
            enabled: true,
        }
    }

    fn default_masker() -> Masker {
        Masker::new(&[RuleSpec::default_card_rule()]).unwrap()
    }

    #[test]
    fn a_card_is_masked_keeping_separators_and_the_last_four_digits() {
        let masker = default_masker();
        for (text, masked) in [
            ("my card is 4111 1111 1111 1111 thanks", "my card is **** **** **** 1111 thanks"),
            ("4111-1111-1111-1111", "****-****-****-1111"),
            ("4111111111111111.", "************1111."),
            // Amex, 15 digits in 4-6-5 groups.
            ("3782 822463 10005", "**** ****** *0005"),
            // Glued to words on both sides.
            ("card:5500005555555559!", "card:************5559!"),
        ] {
            assert_eq!(masker.mask(text, Audience::Storage), masked, "{text}");
        }
    }

    #[test]
    fn numbers_that_are_not_cards_are_left_alone() {
        let masker = default_masker();
        for text in [
            // Fails the Luhn check.
            "order 4111 1111 1111 1112",
            // Too short and too long.
            "call 411 111 111 1",
            "ref 41111111111111111111111",
            // Dates, times, amounts.
            "on 2026-12-03 at 10:30, 1,299.00 EUR",
            // Two separators in a row end a run.
            "4111  1111 1111 1111",
        ] {
            assert_eq!(masker.mask(text, Audience::Storage), text, "{text}");
            assert!(matches!(masker.mask(text, Audience::Storage), Cow::Borrowed(_)));
        }
    }

    #[test]
    fn a_card_next_to_another_number_is_still_found() {
        let masker = default_masker();
        assert_eq!(masker.mask("1 4111 1111 1111 1111", Audience::Storage), "1 **** **** **** 1111");
        assert_eq!(masker.mask("4111 1111 1111 1111 and 42", Audience::Storage), "**** **** **** 1111 and 42");
    }

    #[test]
    fn each_audience_sees_what_the_rules_allow() {
        let agents_only = Masker::new(&[card_rule(HiddenFrom { agents: true, ..HiddenFrom::default() })]).unwrap();
        let text = "4111 1111 1111 1111";
        assert_eq!(agents_only.mask(text, Audience::Storage), text);
        assert_eq!(agents_only.mask(text, Audience::OtherDevices), text);
        assert_eq!(agents_only.mask(text, Audience::Agents), "**** **** **** 1111");
        assert!(!agents_only.masks_for(Audience::Storage));
        // Hidden from storage: hidden from everyone who reads it back.
        let storage = Masker::new(&[card_rule(HiddenFrom { storage: true, ..HiddenFrom::default() })]).unwrap();
        for audience in [Audience::Storage, Audience::Agents, Audience::OtherDevices] {
            assert_eq!(storage.mask(text, audience), "**** **** **** 1111", "{audience:?}");
        }
        // A disabled rule masks nothing.
        let mut off = RuleSpec::default_card_rule();
        off.enabled = false;
        assert_eq!(Masker::new(&[off]).unwrap().mask(text, Audience::Agents), text);
    }

    #[test]
    fn a_pattern_hides_its_matches_but_not_their_whitespace() {
        let masker = Masker::new(&[pattern_rule("iban", r"\bDE\d{2}(?: ?\d{4}){4} ?\d{2}\b")]).unwrap();
        assert_eq!(
            masker.mask("IBAN DE89 3704 0044 0532 0130 00, ok", Audience::Agents),
            "IBAN **** **** **** **** **** **, ok"
        );
        // Non-ASCII text around and inside a match: one mask character per character.
        let names = Masker::new(&[pattern_rule("names", "Zoë Ångström")]).unwrap();
        assert_eq!(names.mask("hi Zoë Ångström 👋", Audience::Agents), "hi *** ******** 👋");
    }

    #[test]
    fn a_text_of_many_short_digit_groups_is_scanned_whole() {
        // 2,500 one-digit groups in one run, the most a 5,000-character message holds.
        let text = vec!["7"; 2500].join(" ");
        assert_eq!(default_masker().mask(&text, Audience::Storage), text);
        let text = vec!["0"; 2500].join("-");
        // Zeros pass the Luhn check: every 19 groups (the longest card) are one card.
        let masked = default_masker().mask(&text, Audience::Storage);
        assert_eq!(masked.matches(MASK_CHAR).count(), 2500 / 19 * 15);
    }

    #[test]
    fn masking_never_lengthens_a_text() {
        let masker = Masker::new(&[pattern_rule("greek", "[α-ω]+"), RuleSpec::default_card_rule()]).unwrap();
        let text = "καλημέρα 4111 1111 1111 1111";
        let masked = masker.mask(text, Audience::Agents);
        assert_eq!(masked.chars().count(), text.chars().count());
        assert!(masked.len() <= text.len());
    }

    #[test]
    fn overlapping_rules_hide_the_union() {
        let masker = Masker::new(&[RuleSpec::default_card_rule(), pattern_rule("last four", "1111 ok")]).unwrap();
        assert_eq!(masker.mask("4111 1111 1111 1111 ok", Audience::Agents), "**** **** **** **** **");
    }

    #[test]
    fn bad_rules_are_refused_naming_the_rule_and_the_limit() {
        let refuse = |specs: &[RuleSpec]| Masker::new(specs).unwrap_err().to_string();
        assert_eq!(refuse(&[pattern_rule("x", "")]), "rule \"x\": the pattern is empty");
        assert!(refuse(&[pattern_rule("x", "(?=a)b")]).starts_with("rule \"x\": the pattern is not valid: "));
        assert!(refuse(&[pattern_rule("x", r"(a)\1")]).starts_with("rule \"x\": the pattern is not valid: "));
        assert_eq!(
            refuse(&[pattern_rule("x", "a*")]),
            "rule \"x\": the pattern matches the empty text, so it would hide nothing or everything"
        );
        assert_eq!(
            refuse(&[pattern_rule("x", &"a".repeat(501))]),
            "rule \"x\": the pattern is 501 characters; the limit is 500"
        );
        assert_eq!(
            refuse(&[pattern_rule("x", r"\w{1000}\w{1000}")]),
            "rule \"x\": the pattern compiles to more than 262144 bytes; simplify it"
        );
        assert_eq!(refuse(&[pattern_rule(" ", "a")]), "rule 0: the name is empty");
        assert_eq!(
            refuse(&[pattern_rule(&"n".repeat(101), "a")]),
            "rule 0: the name is 101 characters; the limit is 100"
        );
        assert_eq!(
            refuse(&[pattern_rule("x", "a"), pattern_rule("x", "b")]),
            "rule \"x\": two rules have this name; names are unique per brand"
        );
        assert_eq!(
            refuse(&[card_rule(HiddenFrom::default())]),
            "rule \"cards\": hidden_from names nobody (set agents, other_devices or storage)"
        );
        let many: Vec<RuleSpec> = (0..51).map(|i| pattern_rule(&format!("r{i}"), "a")).collect();
        assert_eq!(refuse(&many), "a brand has at most 50 masking rules (got 51)");
    }

    #[test]
    fn rules_read_and_write_as_json() {
        let json = r#"{"name":"iban","kind":"pattern","pattern":"DE\\d+","hidden_from":{"agents":true}}"#;
        let spec: RuleSpec = serde_json::from_str(json).unwrap();
        assert_eq!(spec, RuleSpec { enabled: true, ..pattern_rule("iban", r"DE\d+") });
        let card = serde_json::to_value(RuleSpec::default_card_rule()).unwrap();
        assert_eq!(card["kind"], "credit_card");
        assert_eq!(card["hidden_from"]["storage"], true);
        assert!(!card.as_object().unwrap().contains_key("pattern"));
        let unknown = r#"{"name":"x","kind":"credit_card","hidden_from":{"agent":true}}"#;
        assert!(serde_json::from_str::<RuleSpec>(unknown).unwrap_err().to_string().contains("unknown field `agent`"));
        let with_pattern =
            RuleSpec { pattern: Some("a".into()), ..card_rule(HiddenFrom { agents: true, ..HiddenFrom::default() }) };
        assert_eq!(
            Masker::new(&[with_pattern]).unwrap_err().to_string(),
            "rule \"cards\": a credit_card rule takes no pattern"
        );
        let without = RuleSpec { pattern: None, ..pattern_rule("x", "a") };
        assert_eq!(Masker::new(&[without]).unwrap_err().to_string(), "rule \"x\": the pattern is empty");
    }

    /// A Luhn-valid number of `len` digits from `body` (the check digit appended).
    fn with_check_digit(body: &[u8]) -> Vec<u8> {
        for check in 0..10u8 {
            let mut digits: Vec<u8> = body.iter().map(|d| b'0' + d).collect();
            digits.push(b'0' + check);
            if luhn(digits.iter().copied()) {
                return digits;
            }
        }
        unreachable!("one check digit always completes a Luhn number")
    }

    /// Digits written in groups of four with `separator` (none when `None`).
    fn grouped(digits: &[u8], separator: Option<char>) -> String {
        let mut out = String::new();
        for (i, d) in digits.iter().enumerate() {
            if i > 0
                && i % 4 == 0
                && let Some(separator) = separator
            {
                out.push(separator);
            }
            out.push(char::from(*d));
        }
        out
    }

    fn words() -> impl Strategy<Value = String> {
        // Words with letters, punctuation and non-ASCII, never ending or starting in a digit.
        proptest::collection::vec("[a-zA-Zéß😀.,!?]{1,8}", 0..6).prop_map(|words| words.join(" "))
    }

    proptest! {
        /// Every Luhn-valid card of 13 to 19 digits, written plain or in groups of four with
        /// spaces or dashes, anywhere in a text, is masked to its last four digits, and
        /// nothing else in the text changes.
        #[test]
        fn every_card_in_random_text_is_masked(
            body in proptest::collection::vec(0u8..10, 12..=18),
            separator in prop_oneof![Just(None), Just(Some(' ')), Just(Some('-'))],
            before in words(),
            after in words(),
        ) {
            let digits = with_check_digit(&body);
            let card = grouped(&digits, separator);
            let text = format!("{before} {card} {after}");
            let hidden = digits.len() - CARD_VISIBLE_DIGITS;
            let mut seen = 0;
            let masked_card: String = card.chars().map(|c| {
                if c.is_ascii_digit() {
                    seen += 1;
                    if seen <= hidden { MASK_CHAR } else { c }
                } else { c }
            }).collect();
            let masked = default_masker().mask(&text, Audience::Storage).into_owned();
            prop_assert_eq!(masked, format!("{before} {masked_card} {after}"));
        }

        /// A number of card length that fails the Luhn check (an order number, a phone
        /// number) is never masked.
        #[test]
        fn numbers_failing_luhn_are_never_masked(
            body in proptest::collection::vec(0u8..10, 12..=18),
            wrong in 1u8..10,
            separator in prop_oneof![Just(None), Just(Some(' ')), Just(Some('-'))],
            before in words(),
            after in words(),
        ) {
            let mut digits = with_check_digit(&body);
            let last = digits.len() - 1;
            digits[last] = b'0' + (digits[last] - b'0' + wrong) % 10;
            // Grouped in fours, 17 digits or more hold a window of whole groups long enough
            // to be a card of its own (which may pass): those are written plain.
            let separator = if digits.len() > 16 { None } else { separator };
            let text = format!("{before} {} {after}", grouped(&digits, separator));
            prop_assert_eq!(default_masker().mask(&text, Audience::Storage), text.as_str());
        }
    }
}
