//! Automatic messages: what the consumer is told by the system while nobody has answered
//! yet, and when a conversation is moved or closed without them.
//!
//! A brand configures a template per [`Trigger`], per skill (with a brand-wide fallback) and
//! per language (falling back to the brand's default language). [`Template::parse`] checks a
//! text once, at save: known variables only, within the channel's length. [`choose`] picks
//! the template that applies to a conversation; [`Template::render`] fills it in, with the
//! wait humanized in the message's language ([`humanize_wait`]). Each message is stored in the
//! conversation as a system message under a key ([`Trigger::key`]) that makes it unique in
//! that conversation, so a trigger that fires again (a retry, a restart) never sends it twice.

use serde::{Deserialize, Serialize};

use crate::ids::{Millis, SkillId};

/// When an automatic message is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// The conversation started.
    Welcome,
    /// It waits in a queue (with the estimated wait).
    Queued,
    /// The estimated wait changed significantly.
    WaitChanged,
    /// An agent took it.
    Assigned,
    /// It was transferred (to a skill, the queue, or an agent).
    Transferred,
    /// It started outside business hours.
    OffHours,
    /// The consumer has not answered the agent for a while: it will close soon.
    InactiveWarning,
    /// It closed because the consumer did not answer.
    AutoClosed,
    /// The agent resolved it.
    Resolved,
}

impl Trigger {
    /// Every trigger, in the order the admin pages list them.
    pub const ALL: [Trigger; 9] = [
        Trigger::Welcome,
        Trigger::Queued,
        Trigger::WaitChanged,
        Trigger::Assigned,
        Trigger::Transferred,
        Trigger::OffHours,
        Trigger::InactiveWarning,
        Trigger::AutoClosed,
        Trigger::Resolved,
    ];

    /// Stable name (storage, APIs).
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Welcome => "welcome",
            Trigger::Queued => "queued",
            Trigger::WaitChanged => "wait_changed",
            Trigger::Assigned => "assigned",
            Trigger::Transferred => "transferred",
            Trigger::OffHours => "off_hours",
            Trigger::InactiveWarning => "inactive_warning",
            Trigger::AutoClosed => "auto_closed",
            Trigger::Resolved => "resolved",
        }
    }

    /// Parses [`Trigger::as_str`].
    pub fn parse(text: &str) -> Option<Trigger> {
        Trigger::ALL.into_iter().find(|trigger| trigger.as_str() == text)
    }

    /// The key that makes this trigger's message unique in a conversation. Triggers that fire
    /// once per conversation use their name; those that may fire again take the time of what
    /// they announce (`at`: when the agent was assigned, the transfer happened, the estimate
    /// was computed, or the agent's message the warning is about was written).
    pub fn key(self, at: Millis) -> String {
        match self {
            Trigger::Welcome | Trigger::Queued | Trigger::OffHours | Trigger::AutoClosed | Trigger::Resolved => {
                format!("auto:{}", self.as_str())
            }
            Trigger::WaitChanged | Trigger::Assigned | Trigger::Transferred | Trigger::InactiveWarning => {
                format!("auto:{}:{at}", self.as_str())
            }
        }
    }

    /// What the message could say, for a brand that starts from nothing (English).
    pub fn example(self) -> &'static str {
        match self {
            Trigger::Welcome => "Hi {consumer_name}, thanks for writing to {brand_name}. We will be with you shortly.",
            Trigger::Queued => "You are in the queue for {skill}. Estimated wait: {wait_time}.",
            Trigger::WaitChanged => "Update: your estimated wait is now {wait_time}.",
            Trigger::Assigned => "{agent_name} is here to help you.",
            Trigger::Transferred => "We are passing your conversation to the right team.",
            Trigger::OffHours => "We are closed right now. We will answer when we open again.",
            Trigger::InactiveWarning => "Are you still there? This conversation will close soon.",
            Trigger::AutoClosed => "This conversation was closed because we did not hear back. Write any time.",
            Trigger::Resolved => "Thanks for contacting {brand_name}. Have a good day!",
        }
    }
}

/// A value a template can show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Variable {
    ConsumerName,
    AgentName,
    WaitTime,
    Skill,
    BrandName,
}

impl Variable {
    /// Every variable.
    pub const ALL: [Variable; 5] =
        [Variable::ConsumerName, Variable::AgentName, Variable::WaitTime, Variable::Skill, Variable::BrandName];

    /// Its name between braces.
    pub fn name(self) -> &'static str {
        match self {
            Variable::ConsumerName => "consumer_name",
            Variable::AgentName => "agent_name",
            Variable::WaitTime => "wait_time",
            Variable::Skill => "skill",
            Variable::BrandName => "brand_name",
        }
    }

    fn parse(name: &str) -> Option<Variable> {
        Variable::ALL.into_iter().find(|variable| variable.name() == name)
    }
}

/// Why a template text was refused at save.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("the message is empty")]
    Empty,
    #[error(
        "unknown variable {{{name}}}; known: {{consumer_name}}, {{agent_name}}, {{wait_time}}, {{skill}}, {{brand_name}}"
    )]
    UnknownVariable { name: String },
    #[error("a '{{' at character {at} is not closed (write {{{{ for a literal brace)")]
    Unclosed { at: usize },
    #[error("a '}}' at character {at} closes nothing (write }}}} for a literal brace)")]
    Unopened { at: usize },
    #[error("the message is {len} characters; the limit is {limit}")]
    TooLong { len: usize, limit: usize },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Var(Variable),
}

/// A checked template: text with `{variable}`s (`{{` and `}}` for literal braces).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

/// The values a template is filled with; `None` shows a neutral word instead.
#[derive(Debug, Clone, Copy, Default)]
pub struct Values<'a> {
    pub consumer_name: Option<&'a str>,
    pub agent_name: Option<&'a str>,
    /// Seconds.
    pub wait_secs: Option<u32>,
    pub skill: Option<&'a str>,
    pub brand_name: Option<&'a str>,
}

impl Template {
    /// Checks `text`: every `{name}` is a known variable, braces balance, and the text (with
    /// each variable counted as its name) is at most `max_chars` characters, the channel's
    /// limit for system messages.
    pub fn parse(text: &str, max_chars: usize) -> Result<Template, TemplateError> {
        if text.trim().is_empty() {
            return Err(TemplateError::Empty);
        }
        let len = text.chars().count();
        if len > max_chars {
            return Err(TemplateError::TooLong { len, limit: max_chars });
        }
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = text.chars().enumerate().peekable();
        while let Some((at, c)) = chars.next() {
            match c {
                '{' if chars.peek().is_some_and(|(_, next)| *next == '{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek().is_some_and(|(_, next)| *next == '}') => {
                    chars.next();
                    literal.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some((_, '}')) => break,
                            Some((_, '{')) | None => return Err(TemplateError::Unclosed { at: at + 1 }),
                            Some((_, c)) => name.push(c),
                        }
                    }
                    let variable = Variable::parse(name.trim())
                        .ok_or_else(|| TemplateError::UnknownVariable { name: name.clone() })?;
                    if !literal.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut literal)));
                    }
                    parts.push(Part::Var(variable));
                }
                '}' => return Err(TemplateError::Unopened { at: at + 1 }),
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        Ok(Template { parts })
    }

    /// The variables the template uses.
    pub fn variables(&self) -> impl Iterator<Item = Variable> + '_ {
        self.parts.iter().filter_map(|part| match part {
            Part::Var(variable) => Some(*variable),
            Part::Text(_) => None,
        })
    }

    /// The message: variables filled in (a missing value shows a neutral word in `language`),
    /// cut to `max_chars` characters if long names made it longer.
    pub fn render(&self, values: &Values<'_>, language: &str, max_chars: usize) -> String {
        let words = Words::of(language);
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Var(Variable::ConsumerName) => out.push_str(values.consumer_name.unwrap_or(words.there)),
                Part::Var(Variable::AgentName) => out.push_str(values.agent_name.unwrap_or(words.agent)),
                Part::Var(Variable::Skill) => out.push_str(values.skill.unwrap_or(words.team)),
                Part::Var(Variable::BrandName) => out.push_str(values.brand_name.unwrap_or(words.us)),
                Part::Var(Variable::WaitTime) => match values.wait_secs {
                    Some(secs) => out.push_str(&humanize_wait(secs, language)),
                    None => out.push_str(words.unknown_wait),
                },
            }
        }
        match out.char_indices().nth(max_chars) {
            Some((cut, _)) => out[..cut].to_owned(),
            None => out,
        }
    }
}

/// The languages automatic messages humanize waits in (others fall back to English).
pub const LANGUAGES: [&str; 5] = ["en", "de", "fr", "es", "pt"];

/// Normalizes a language tag to its primary subtag in lower case ("de-AT" → "de"); `None`
/// if it is not 2–8 ASCII letters.
pub fn language_of(tag: &str) -> Option<String> {
    let primary = tag.split(['-', '_']).next()?.trim();
    ((2..=8).contains(&primary.len()) && primary.chars().all(|c| c.is_ascii_alphabetic()))
        .then(|| primary.to_ascii_lowercase())
}

struct Words {
    there: &'static str,
    agent: &'static str,
    team: &'static str,
    us: &'static str,
    unknown_wait: &'static str,
    under_a_minute: &'static str,
    minute: (&'static str, &'static str),
    hour: (&'static str, &'static str),
    about: &'static str,
}

impl Words {
    fn of(language: &str) -> Words {
        match language_of(language).as_deref() {
            Some("de") => Words {
                there: "hallo",
                agent: "ein Mitarbeiter",
                team: "unser Team",
                us: "uns",
                unknown_wait: "in Kürze",
                under_a_minute: "weniger als eine Minute",
                minute: ("Minute", "Minuten"),
                hour: ("Stunde", "Stunden"),
                about: "etwa",
            },
            Some("fr") => Words {
                there: "bonjour",
                agent: "un conseiller",
                team: "notre équipe",
                us: "nous",
                unknown_wait: "sous peu",
                under_a_minute: "moins d'une minute",
                minute: ("minute", "minutes"),
                hour: ("heure", "heures"),
                about: "environ",
            },
            Some("es") => Words {
                there: "hola",
                agent: "un agente",
                team: "nuestro equipo",
                us: "nosotros",
                unknown_wait: "en breve",
                under_a_minute: "menos de un minuto",
                minute: ("minuto", "minutos"),
                hour: ("hora", "horas"),
                about: "unos",
            },
            Some("pt") => Words {
                there: "olá",
                agent: "um atendente",
                team: "a nossa equipa",
                us: "nós",
                unknown_wait: "em breve",
                under_a_minute: "menos de um minuto",
                minute: ("minuto", "minutos"),
                hour: ("hora", "horas"),
                about: "cerca de",
            },
            _ => Words {
                there: "there",
                agent: "an agent",
                team: "our team",
                us: "us",
                unknown_wait: "shortly",
                under_a_minute: "less than a minute",
                minute: ("minute", "minutes"),
                hour: ("hour", "hours"),
                about: "about",
            },
        }
    }
}

/// A wait as people say it, in `language`: under a minute, then whole minutes (rounded up
/// to 5 above 10 minutes), then hours (rounded to the half hour, shown whole above 3 hours).
pub fn humanize_wait(secs: u32, language: &str) -> String {
    let words = Words::of(language);
    if secs < 60 {
        return words.under_a_minute.to_owned();
    }
    let minutes = secs.div_ceil(60);
    if minutes < 60 {
        let minutes = if minutes > 10 { minutes.div_ceil(5) * 5 } else { minutes };
        if minutes == 60 {
            return format!("{} 1 {}", words.about, words.hour.0);
        }
        let unit = if minutes == 1 { words.minute.0 } else { words.minute.1 };
        return format!("{} {minutes} {unit}", words.about);
    }
    let half_hours = (secs + 900) / 1800;
    let (whole, half) = (half_hours / 2, half_hours % 2 == 1);
    let unit = if whole == 1 && !half { words.hour.0 } else { words.hour.1 };
    let number = if half && whole < 3 {
        match language_of(language).as_deref() {
            Some("de" | "fr" | "es" | "pt") => format!("{whole},5"),
            _ => format!("{whole}.5"),
        }
    } else {
        whole.to_string()
    };
    format!("{} {number} {unit}", words.about)
}

/// A stored template, as [`choose`] sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Configured {
    pub trigger: Trigger,
    /// `None`: brand-wide.
    pub skill: Option<SkillId>,
    pub language: String,
    pub enabled: bool,
    pub text: String,
}

/// The template for `trigger` in a conversation of `skill` with a consumer speaking
/// `language`: the skill's in that language, else the brand-wide one in it, else the skill's
/// in the brand's default language, else the brand-wide one in it. A disabled template at
/// a level stops the search there: switching one off for a skill means no message for that
/// skill, not the brand's.
pub fn choose<'a>(
    templates: &'a [Configured],
    trigger: Trigger,
    skill: Option<SkillId>,
    language: Option<&str>,
    default_language: &str,
) -> Option<&'a Configured> {
    let language = language.and_then(language_of);
    let default_language = language_of(default_language).unwrap_or_else(|| "en".to_owned());
    let mut languages = Vec::with_capacity(2);
    if let Some(language) = language {
        languages.push(language);
    }
    if !languages.contains(&default_language) {
        languages.push(default_language);
    }
    for language in &languages {
        let levels = [skill, None];
        for level in levels.iter().take(if skill.is_some() { 2 } else { 1 }) {
            let found = templates.iter().find(|t| t.trigger == trigger && t.skill == *level && &t.language == language);
            if let Some(found) = found {
                return found.enabled.then_some(found);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_check_their_variables_and_braces_at_save() {
        let template = Template::parse("Hi {consumer_name}, {agent_name} here", 2000).unwrap();
        assert_eq!(template.variables().collect::<Vec<_>>(), [Variable::ConsumerName, Variable::AgentName]);
        let error = Template::parse("Hi {first_name}", 2000).unwrap_err();
        assert_eq!(error, TemplateError::UnknownVariable { name: "first_name".into() });
        assert!(error.to_string().starts_with("unknown variable {first_name}; known: {consumer_name}"), "{error}");
        assert_eq!(Template::parse("Hi {consumer_name", 2000), Err(TemplateError::Unclosed { at: 4 }));
        assert_eq!(Template::parse("a } b", 2000), Err(TemplateError::Unopened { at: 3 }));
        assert_eq!(Template::parse("   ", 2000), Err(TemplateError::Empty));
        let long = "x".repeat(641);
        assert_eq!(
            Template::parse(&long, 640).unwrap_err().to_string(),
            "the message is 641 characters; the limit is 640"
        );
        let braces = Template::parse("{{literal}} {skill}", 2000).unwrap();
        assert_eq!(
            braces.render(&Values { skill: Some("Billing"), ..Values::default() }, "en", 2000),
            "{literal} Billing"
        );
        for trigger in Trigger::ALL {
            Template::parse(trigger.example(), 640).unwrap_or_else(|e| panic!("{trigger:?}'s example: {e}"));
            assert_eq!(Trigger::parse(trigger.as_str()), Some(trigger));
        }
    }

    #[test]
    fn rendering_fills_values_and_says_something_neutral_for_missing_ones() {
        let template = Template::parse("Hi {consumer_name}, wait {wait_time} for {agent_name}.", 2000).unwrap();
        let values = Values { consumer_name: Some("Carol"), wait_secs: Some(125), ..Values::default() };
        assert_eq!(template.render(&values, "en", 2000), "Hi Carol, wait about 3 minutes for an agent.");
        assert_eq!(template.render(&Values::default(), "de-AT", 2000), "Hi hallo, wait in Kürze for ein Mitarbeiter.");
        let name = "N".repeat(3000);
        let values = Values { consumer_name: Some(&name), ..Values::default() };
        assert_eq!(template.render(&values, "en", 100).chars().count(), 100, "cut to the channel's limit");
    }

    #[test]
    fn waits_read_as_people_say_them() {
        let cases = [
            (0, "en", "less than a minute"),
            (59, "en", "less than a minute"),
            (60, "en", "about 1 minute"),
            (61, "en", "about 2 minutes"),
            (600, "en", "about 10 minutes"),
            (660, "en", "about 15 minutes"),
            (3_540, "en", "about 1 hour"),
            (3_600, "en", "about 1 hour"),
            (5_400, "en", "about 1.5 hours"),
            (5_400, "de", "etwa 1,5 Stunden"),
            (7_200, "fr", "environ 2 heures"),
            (30, "es", "menos de un minuto"),
            (36_000, "pt", "cerca de 10 horas"),
            (300, "xx", "about 5 minutes"),
        ];
        for (secs, language, want) in cases {
            assert_eq!(humanize_wait(secs, language), want, "{secs} s in {language}");
        }
    }

    fn configured(trigger: Trigger, skill: Option<SkillId>, language: &str, enabled: bool) -> Configured {
        Configured { trigger, skill, language: language.into(), enabled, text: format!("{skill:?}/{language}") }
    }

    #[test]
    fn the_skills_template_in_the_consumers_language_wins_then_falls_back() {
        let templates = vec![
            configured(Trigger::Welcome, None, "en", true),
            configured(Trigger::Welcome, None, "de", true),
            configured(Trigger::Welcome, Some(7), "en", true),
            configured(Trigger::Queued, Some(7), "en", false),
            configured(Trigger::Queued, None, "en", true),
        ];
        let text =
            |skill, language| choose(&templates, Trigger::Welcome, skill, language, "en").map(|t| t.text.as_str());
        assert_eq!(text(Some(7), Some("de-CH")), Some("None/de"), "the consumer's language before the skill");
        assert_eq!(text(Some(7), Some("fr")), Some("Some(7)/en"), "then the default language, skill first");
        assert_eq!(text(Some(8), None), Some("None/en"), "brand-wide fallback");
        assert_eq!(text(None, Some("de")), Some("None/de"));
        assert_eq!(choose(&templates, Trigger::Queued, Some(7), None, "en"), None, "off for the skill means off");
        assert_eq!(choose(&templates, Trigger::Queued, Some(8), None, "en").map(|t| t.enabled), Some(true));
        assert_eq!(choose(&templates, Trigger::Resolved, None, None, "en"), None);
    }

    #[test]
    fn keys_make_a_message_unique_per_trigger_and_moment() {
        assert_eq!(Trigger::Welcome.key(5), Trigger::Welcome.key(9), "once per conversation");
        assert_ne!(Trigger::Assigned.key(5), Trigger::Assigned.key(9), "once per assignment");
        assert_eq!(Trigger::InactiveWarning.key(42), "auto:inactive_warning:42");
    }

    #[test]
    fn language_tags_reduce_to_their_primary_subtag() {
        assert_eq!(language_of("de-AT").as_deref(), Some("de"));
        assert_eq!(language_of("PT_br").as_deref(), Some("pt"));
        assert_eq!(language_of("1"), None);
        assert_eq!(language_of(""), None);
    }
}
