//! Property-based fuzzing of the configuration loader: arbitrary files, configuration keys
//! with values of any type in a file, and arbitrary `SWITCHBOARD_*` values (parsed as
//! figment parses the environment) either give a configuration or a clear refusal — one that
//! says `invalid configuration` and names where the bad value came from — and never a panic.

use std::path::PathBuf;

use figment::value::{Dict, Map};
use figment::{Metadata, Profile, Provider};
use proptest::prelude::*;

use super::{CONFIG_KEYS, EnvVars, FlagOverrides, load_config_from};

/// `SWITCHBOARD_*` variables, given to the loader as the real environment would be: each
/// value a string that figment parses (`true`, `5`, `[a, b]`, …), under the same provider name.
struct FakeEnv(Vec<(&'static str, String)>);

impl Provider for FakeEnv {
    fn metadata(&self) -> Metadata {
        self.real().metadata()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        self.real().data()
    }
}

impl FakeEnv {
    /// The provider the binary reads the environment with, holding these values.
    fn real(&self) -> EnvVars {
        EnvVars(self.0.iter().map(|(key, value)| ((*key).to_owned(), Some(value.clone()))).collect())
    }
}

/// A file of the test's own, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn with(text: &str) -> TempFile {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("sb-config-fuzz-{}-{n}.toml", std::process::id()));
        std::fs::write(&path, text).unwrap();
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Loads with `file` and `env`; a refusal must be clear and name `source` (the file's name or
/// one of the variables).
fn check(file: &TempFile, env: FakeEnv, sources: &[String]) -> Result<(), TestCaseError> {
    match load_config_from(Some(&file.0), env, FlagOverrides::default()) {
        Ok(_) => Ok(()),
        Err(error) => {
            let message = error.to_string();
            prop_assert!(message.starts_with("invalid configuration"), "unclear refusal: {}", message);
            prop_assert!(
                sources.iter().any(|source| message.contains(source.as_str())),
                "the refusal names none of {:?}: {}",
                sources,
                message
            );
            Ok(())
        }
    }
}

/// A TOML value of any type.
fn toml_value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        any::<f64>().prop_filter("TOML floats are finite here", |f| f.is_finite()).prop_map(|f| format!("{f:?}")),
        "\\PC{0,30}".prop_map(|text| format!("{text:?}")),
        prop::sample::select(
            &[
                "\"127.0.0.1:8080\"",
                "\"[::1]:0\"",
                "\"sqlite://x.db\"",
                "\"postgres://u@h/d\"",
                "\"normal\"",
                "\"json\"",
                "\"redirect\"",
                "\"https://example.com\"",
                "\"http://127.0.0.1:9\"",
                "0",
                "-1",
                "18446744073709551615",
            ][..],
        )
        .prop_map(str::to_owned),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|items| format!("[{}]", items.join(", "))),
            prop::collection::vec(inner, 0..3).prop_map(|items| {
                let fields: Vec<String> = items.iter().enumerate().map(|(i, v)| format!("k{i} = {v}")).collect();
                format!("{{ {} }}", fields.join(", "))
            }),
        ]
    })
}

fn key() -> impl Strategy<Value = &'static str> {
    prop::sample::select(CONFIG_KEYS)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Any text as the configuration file.
    #[test]
    fn arbitrary_files_are_loaded_or_refused_naming_the_file(text in "\\PC{0,300}") {
        let file = TempFile::with(&text);
        let name = file.0.file_name().unwrap().to_string_lossy().into_owned();
        check(&file, FakeEnv(Vec::new()), &[name])?;
    }

    /// Configuration keys (and a few unknown ones) with values of any type in the file.
    #[test]
    fn any_value_of_any_key_in_the_file_is_loaded_or_refused_clearly(
        entries in prop::collection::vec((prop_oneof![key(), Just("no_such_key")], toml_value()), 1..5),
    ) {
        let mut seen = std::collections::BTreeMap::new();
        for (key, value) in entries {
            seen.insert(key, value);
        }
        let text: String = seen.iter().map(|(key, value)| format!("{key} = {value}\n")).collect();
        let file = TempFile::with(&text);
        let name = file.0.file_name().unwrap().to_string_lossy().into_owned();
        check(&file, FakeEnv(Vec::new()), &[name])?;
    }

    /// Any `SWITCHBOARD_*` value: a refusal names the variable.
    #[test]
    fn any_environment_value_is_loaded_or_refused_naming_the_variable(
        entries in prop::collection::vec((key(), prop_oneof![
            "\\PC{0,40}".boxed(),
            any::<i64>().prop_map(|n| n.to_string()).boxed(),
            prop::sample::select(&["true", "false", "[a, b]", "{x = 1}", "", "1.5", "-0", "https://a.example, b"][..])
                .prop_map(str::to_owned).boxed(),
        ]), 1..4),
    ) {
        let file = TempFile::with("");
        let sources: Vec<String> = entries.iter().map(|(key, _)| format!("SWITCHBOARD_{}", key.to_uppercase())).collect();
        check(&file, FakeEnv(entries), &sources)?;
    }
}

/// Found by the fuzzing above: figment unescapes a quoted string by character positions taken
/// as byte positions, so a non-ASCII character before a backslash panicked the loader. Such a
/// value is refused naming its variable; a quoted value without escapes still loads.
#[test]
fn a_quoted_value_with_a_non_ascii_character_before_an_escape_is_refused_not_a_panic() {
    let file = TempFile::with("");
    for value in ["\"\u{1ee61}?\\n\"", "[\"é\\\"x\"]"] {
        let env = FakeEnv(vec![("metrics_token", value.to_owned())]);
        let error = load_config_from(Some(&file.0), env, FlagOverrides::default()).unwrap_err().to_string();
        assert!(error.contains("SWITCHBOARD_METRICS_TOKEN") && error.contains("non-ASCII"), "{value}: {error}");
    }
    let plain = FakeEnv(vec![("metrics_token", "\"jösé-token-0123456789\"".to_owned())]);
    let config = load_config_from(Some(&file.0), plain, FlagOverrides::default()).unwrap();
    assert_eq!(config.server.metrics_token.as_deref(), Some("jösé-token-0123456789"));
}

/// The fake environment reaches the loader as the real one does: a bad value is refused
/// naming its variable, a good one is used.
#[test]
fn the_fake_environment_is_read_like_the_real_one() {
    let file = TempFile::with("");
    let bad = FakeEnv(vec![("heartbeat_secs", "soon".to_owned())]);
    let error = load_config_from(Some(&file.0), bad, FlagOverrides::default()).unwrap_err().to_string();
    assert!(error.contains("SWITCHBOARD_HEARTBEAT_SECS") && error.contains("whole number"), "{error}");
    let good = FakeEnv(vec![
        ("heartbeat_secs", "20".to_owned()),
        ("allowed_origins", "https://a.example, https://b.example".to_owned()),
    ]);
    let config = load_config_from(Some(&file.0), good, FlagOverrides::default()).unwrap();
    assert_eq!((config.server.heartbeat_secs, config.server.allowed_origins.len()), (20, 2));
}
