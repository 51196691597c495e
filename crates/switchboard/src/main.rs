//! The `switchboard` binary: `serve`, `migrate`, `dev-token`, `erase`.
//!
//! Configuration is read once, at start, from (later wins): built-in defaults, a TOML file
//! (`--config`, `SWITCHBOARD_CONFIG`, or `./switchboard.toml` if present), `SWITCHBOARD_*`
//! environment variables, and command-line flags. The raw values are validated into a
//! [`Config`]; a bad value stops the start with its source named.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use std::io::IsTerminal;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use switchboard_server::abuse::AbuseConfig;
use switchboard_server::origin::Origin;
use switchboard_server::push::{PushConfig, check_provider_url, parse_extra_roots};
use switchboard_server::serve::PlainHttp;
use switchboard_server::{ServerConfig, seed};
use switchboard_store::{SqliteSync, Store, StoreOptions};

mod trial_tls;

#[derive(Debug, Parser)]
#[command(name = "switchboard", version, about = "Self-hosted in-app and web customer messaging")]
struct Cli {
    /// Configuration file (TOML). Default: ./switchboard.toml if it exists.
    // `hide_env_values`: clap would otherwise print `[env: SWITCHBOARD_CONFIG=]` when unset.
    #[arg(long, global = true, env = "SWITCHBOARD_CONFIG", hide_env_values = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (SQLite in ./switchboard-data and demo data unless configured otherwise).
    Serve(ServeArgs),
    /// Create or upgrade the database schema, then exit.
    Migrate(CommonArgs),
    /// Print a consumer JWT for the demo app, signed with the demo key in the data directory.
    DevToken(DevTokenArgs),
    /// Erase one consumer's data (conversations, messages, CSAT, pushes, push tokens, profile)
    /// and print what was deleted. With the server running, prefer the REST API
    /// (`POST /api/v1/consumers/erase`): it also tells the agent of an open conversation.
    Erase(EraseArgs),
}

#[derive(Debug, clap::Args)]
struct EraseArgs {
    /// The brand's id.
    #[arg(long)]
    brand: String,
    /// The brand's own id of the consumer (the JWT `sub`, or `anon:…`).
    #[arg(long)]
    consumer: String,
    /// Erase even if the consumer has an open conversation (its agent is not told: run this
    /// with the server stopped, or use the REST API).
    #[arg(long)]
    close_open: bool,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Debug, clap::Args, Default)]
struct CommonArgs {
    /// Directory for the SQLite file and demo keys [env: SWITCHBOARD_DATA_DIR].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Database URL (sqlite://… or postgres://…) [env: SWITCHBOARD_DATABASE_URL].
    #[arg(long)]
    database_url: Option<String>,
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Address to listen on [env: SWITCHBOARD_LISTEN] [default: 127.0.0.1:8080].
    #[arg(long)]
    listen: Option<String>,
    /// Serve https/wss with this certificate chain (PEM, server certificate first)
    /// [env: SWITCHBOARD_TLS_CERT]. Reloaded when the file changes.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM) [env: SWITCHBOARD_TLS_KEY].
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve https/wss with a certificate made for a local trial (kept in <data_dir>/tls);
    /// prints what to trust [env: SWITCHBOARD_TLS_SELF_SIGNED].
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
    tls_self_signed: bool,
    /// Join the fleet whose NATS server is here (nats://host:port, several separated by
    /// commas); needs a PostgreSQL database_url shared by every node [env: SWITCHBOARD_NATS_URL].
    #[arg(long)]
    nats_url: Option<String>,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Debug, clap::Args)]
struct DevTokenArgs {
    /// The consumer's id in the brand's system (`sub`).
    #[arg(long, default_value = "demo-consumer")]
    sub: String,
    /// Display name claim.
    #[arg(long)]
    name: Option<String>,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    ttl: i64,
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

/// Keys read from `SWITCHBOARD_*` variables (others, like `SWITCHBOARD_TEST_*`, are not
/// configuration).
const CONFIG_KEYS: &[&str] = &[
    "listen",
    "data_dir",
    "database_url",
    "sqlite_sync",
    "heartbeat_secs",
    "session_ttl_secs",
    "operator_token",
    "retention_purge_secs",
    "retention_batch_messages",
    "retention_pause_ms",
    "demo",
    "log_format",
    "log",
    "push",
    "push_coalesce_ms",
    "push_ca_file",
    "identity_ca_file",
    "fcm_url",
    "fcm_token_url",
    "apns_url",
    "apns_sandbox_url",
    "tls_cert",
    "tls_key",
    "tls_self_signed",
    "plain_http",
    "trust_proxy_tls",
    "allowed_origins",
    "metrics_token",
    "login_attempts_per_account",
    "login_attempts_per_address",
    "login_window_secs",
    "anonymous_per_address",
    "anonymous_window_secs",
    "password_hash_threads",
    "password_hash_wait_ms",
    "body_read_timeout_secs",
    "max_connections_per_address",
    "max_unauthenticated_sockets",
    "trust_forwarded_for",
    "nats_url",
    "nats_ca_file",
];

/// Configuration as read, before validation. Every field has a default.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: String,
    data_dir: PathBuf,
    database_url: Option<String>,
    sqlite_sync: SqliteSync,
    heartbeat_secs: u32,
    session_ttl_secs: u64,
    operator_token: Option<String>,
    retention_purge_secs: u64,
    retention_batch_messages: i64,
    retention_pause_ms: u64,
    demo: bool,
    log_format: LogFormat,
    log: String,
    push: bool,
    push_coalesce_ms: u64,
    push_ca_file: Option<PathBuf>,
    identity_ca_file: Option<PathBuf>,
    fcm_url: String,
    fcm_token_url: String,
    apns_url: String,
    apns_sandbox_url: String,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_self_signed: bool,
    plain_http: PlainHttpPolicy,
    trust_proxy_tls: bool,
    #[serde(deserialize_with = "list_or_commas")]
    allowed_origins: Vec<String>,
    metrics_token: Option<String>,
    login_attempts_per_account: u32,
    login_attempts_per_address: u32,
    login_window_secs: u64,
    anonymous_per_address: u32,
    anonymous_window_secs: u64,
    password_hash_threads: usize,
    password_hash_wait_ms: u64,
    body_read_timeout_secs: u64,
    max_connections_per_address: usize,
    max_unauthenticated_sockets: usize,
    trust_forwarded_for: bool,
    nats_url: Option<String>,
    nats_ca_file: Option<PathBuf>,
}

/// A list, or one string of comma-separated items (how an environment variable gives a list:
/// `SWITCHBOARD_ALLOWED_ORIGINS=https://a.example,https://b.example`).
fn list_or_commas<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrCommas {
        List(Vec<String>),
        Commas(String),
    }
    Ok(match ListOrCommas::deserialize(deserializer)? {
        ListOrCommas::List(items) => items,
        ListOrCommas::Commas(text) => {
            text.split(',').map(str::trim).filter(|item| !item.is_empty()).map(str::to_owned).collect()
        }
    })
}

/// What a TLS port answers to plain HTTP.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum PlainHttpPolicy {
    Refuse,
    Redirect,
}

impl Default for RawConfig {
    fn default() -> Self {
        let abuse = AbuseConfig::default();
        RawConfig {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("switchboard-data"),
            database_url: None,
            sqlite_sync: SqliteSync::Full,
            heartbeat_secs: 30,
            session_ttl_secs: 12 * 3600,
            operator_token: None,
            retention_purge_secs: 3600,
            retention_batch_messages: 500,
            retention_pause_ms: 20,
            demo: true,
            log_format: LogFormat::Text,
            log: "info".into(),
            push: true,
            push_coalesce_ms: 1000,
            push_ca_file: None,
            identity_ca_file: None,
            fcm_url: PushConfig::default().fcm_url,
            fcm_token_url: PushConfig::default().fcm_token_url,
            apns_url: PushConfig::default().apns_url,
            apns_sandbox_url: PushConfig::default().apns_sandbox_url,
            tls_cert: None,
            tls_key: None,
            tls_self_signed: false,
            plain_http: PlainHttpPolicy::Refuse,
            trust_proxy_tls: false,
            allowed_origins: Vec::new(),
            metrics_token: None,
            login_attempts_per_account: abuse.login_attempts_per_account,
            login_attempts_per_address: abuse.login_attempts_per_address,
            login_window_secs: abuse.login_window.as_secs(),
            anonymous_per_address: abuse.anonymous_per_address,
            anonymous_window_secs: abuse.anonymous_window.as_secs(),
            password_hash_threads: abuse.password_hash_threads,
            password_hash_wait_ms: u64::try_from(abuse.password_hash_wait.as_millis()).unwrap_or(u64::MAX),
            body_read_timeout_secs: abuse.body_read_timeout.as_secs(),
            max_connections_per_address: abuse.max_connections_per_address,
            max_unauthenticated_sockets: abuse.max_unauthenticated_sockets,
            trust_forwarded_for: abuse.trust_forwarded_for,
            nats_url: None,
            nats_ca_file: None,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum LogFormat {
    Text,
    Json,
}

/// Validated configuration.
#[derive(Debug, Clone)]
struct Config {
    listen: SocketAddr,
    data_dir: PathBuf,
    database_url: String,
    sqlite_sync: SqliteSync,
    server: ServerConfig,
    demo: bool,
    log_format: LogFormat,
    log: String,
    /// Make (or reuse) a trial certificate in the data directory and serve TLS with it.
    tls_self_signed: bool,
}

/// Flags that override configuration (only those given).
#[derive(Debug, Default, Serialize)]
struct FlagOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    database_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls_cert: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls_key: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls_self_signed: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nats_url: Option<String>,
}

impl figment::Provider for FlagOverrides {
    fn metadata(&self) -> figment::Metadata {
        figment::Metadata::named("command-line flags")
    }

    fn data(&self) -> Result<figment::value::Map<figment::Profile, figment::value::Dict>, figment::Error> {
        Serialized::defaults(self).data()
    }
}

fn load_config(file: Option<&Path>, flags: FlagOverrides) -> anyhow::Result<Config> {
    load_config_from(file, EnvVars::from_process(), flags)
}

/// The `SWITCHBOARD_*` variables of the configuration keys, as a figment provider. Each value
/// is parsed as figment's `Env` parses one (`true`, `5`, `[a, b]`, `"quoted"`, …), except
/// that a value with a quoted string in which a non-ASCII character comes before a backslash
/// is refused naming its variable: figment 0.10 unescapes such a string by character
/// positions taken as byte positions, and panics or misreads it.
/// Each key with its value, or `None` when the value is not UTF-8.
struct EnvVars(Vec<(String, Option<String>)>);

impl EnvVars {
    /// The variables set in this process.
    fn from_process() -> EnvVars {
        let values = CONFIG_KEYS.iter().filter_map(|key| {
            let value = std::env::var_os(format!("SWITCHBOARD_{}", key.to_uppercase()))?;
            Some(((*key).to_owned(), value.into_string().ok()))
        });
        EnvVars(values.collect())
    }
}

impl figment::Provider for EnvVars {
    fn metadata(&self) -> figment::Metadata {
        figment::Metadata::named("environment variable(s)")
    }

    fn data(&self) -> Result<figment::value::Map<figment::Profile, figment::value::Dict>, figment::Error> {
        let mut dict = figment::value::Dict::new();
        for (key, value) in &self.0 {
            // Refused like a value of the wrong type: the loader's message names the variable.
            let refuse = |message: &str| {
                let mut error = figment::Error::from(message.to_owned());
                error.path = vec![key.clone()];
                error.metadata = Some(self.metadata());
                error
            };
            let Some(value) = value else { return Err(refuse("the value is not UTF-8")) };
            let before_last_backslash = value.rsplit_once('\\').map_or("", |(before, _)| before);
            if value.contains('"') && !before_last_backslash.is_ascii() {
                return Err(refuse(
                    "a quoted value with a non-ASCII character before a backslash escape is not supported; \
                     write the characters without escapes",
                ));
            }
            let parsed: figment::value::Value = value.parse().expect("parsing a figment value cannot fail");
            dict.insert(key.clone(), parsed);
        }
        Ok(figment::Profile::Default.collect(dict))
    }
}

/// [`load_config`] with the environment given as a provider (the tests give their own).
fn load_config_from(file: Option<&Path>, env: impl figment::Provider, flags: FlagOverrides) -> anyhow::Result<Config> {
    let mut figment = Figment::from(Serialized::defaults(RawConfig::default()));
    match file {
        Some(path) => {
            if !path.exists() {
                bail!("configuration file {} does not exist", path.display());
            }
            figment = figment.merge(Toml::file(path));
        }
        None => figment = figment.merge(Toml::file("switchboard.toml")),
    }
    figment = figment.merge(env).merge(flags);
    let raw: RawConfig = figment.extract().map_err(|error| anyhow::anyhow!("{}", describe_config_error(error)))?;
    validate(raw, &figment)
}

/// The name a user wrote a key under, given where it came from: `SWITCHBOARD_LISTEN` in the
/// environment, `--listen` on the command line, `listen` in a file.
fn user_key(metadata: Option<&figment::Metadata>, key: &str) -> String {
    match metadata.map(|metadata| metadata.name.as_ref()) {
        Some(name) if name.contains("environment") => format!("SWITCHBOARD_{}", key.to_uppercase()),
        Some(name) if name.contains("command-line") => format!("--{}", key.replace('_', "-")),
        _ => key.to_owned(),
    }
}

/// Names where a key's value came from, for error messages.
fn describe_source(metadata: Option<&figment::Metadata>, key: &str) -> String {
    match metadata {
        Some(metadata) if metadata.name.contains("environment") => {
            format!("environment variable {}", user_key(Some(metadata), key))
        }
        Some(metadata) => match &metadata.source {
            Some(figment::Source::File(path)) => format!("file {}", path.display()),
            Some(source) => format!("{} ({source})", metadata.name),
            None => metadata.name.to_string(),
        },
        None => "defaults".into(),
    }
}

fn source_of(figment: &Figment, key: &str) -> String {
    describe_source(figment.find_metadata(key), key)
}

/// One line per problem, in the words of the file or variable the user wrote: the key as they
/// spelled it (never figment's internal `default.listen`), what was wrong, and where it came
/// from.
fn describe_config_error(error: figment::Error) -> String {
    use figment::error::Kind;
    let lines: Vec<String> = error
        .into_iter()
        .map(|error| {
            let key = error.path.join(".");
            let metadata = error.metadata.as_ref();
            let name = user_key(metadata, &key);
            let what = match &error.kind {
                Kind::UnknownField(field, known) => {
                    let name = user_key(metadata, field);
                    format!("{name} is not a configuration key (the keys are {})", known.join(", "))
                }
                Kind::InvalidType(actual, expected) | Kind::InvalidValue(actual, expected) => {
                    // serde names Rust types; say what to write instead.
                    let expected = match expected.as_str() {
                        "u8" | "u16" | "u32" | "u64" | "i32" | "i64" => "a whole number",
                        "bool" | "a boolean" => "true or false",
                        other => other,
                    };
                    format!("{name} must be {expected}, not {actual}")
                }
                Kind::UnknownVariant(value, known) => {
                    format!("{name} = {value:?} is not one of {}", known.join(", "))
                }
                other => format!("{name}: {other}"),
            };
            format!("invalid configuration: {what} (from {})", describe_source(metadata, &key))
        })
        .collect();
    lines.join("\n")
}

fn validate(raw: RawConfig, figment: &Figment) -> anyhow::Result<Config> {
    let push = push_config(&raw, figment)?;
    let abuse = abuse_config(&raw, figment)?;
    let listen: SocketAddr = raw.listen.parse().map_err(|_| {
        anyhow::anyhow!(
            "invalid configuration: listen = {:?} is not an address like 127.0.0.1:8080 (from {})",
            raw.listen,
            source_of(figment, "listen")
        )
    })?;
    if !(5..=300).contains(&raw.heartbeat_secs) {
        bail!(
            "invalid configuration: heartbeat_secs = {} must be 5 to 300 (from {})",
            raw.heartbeat_secs,
            source_of(figment, "heartbeat_secs")
        );
    }
    if !(60..=30 * 24 * 3600).contains(&raw.session_ttl_secs) {
        bail!(
            "invalid configuration: session_ttl_secs = {} must be 60 to 2592000 (from {})",
            raw.session_ttl_secs,
            source_of(figment, "session_ttl_secs")
        );
    }
    if let Some(token) = &raw.operator_token
        && token.len() < 16
    {
        bail!(
            "invalid configuration: operator_token must be at least 16 characters (from {})",
            source_of(figment, "operator_token")
        );
    }
    if raw.retention_purge_secs != 0 && !(10..=7 * 24 * 3600).contains(&raw.retention_purge_secs) {
        bail!(
            "invalid configuration: retention_purge_secs = {} must be 0 (no periodic purge) or 10 to 604800 (from {})",
            raw.retention_purge_secs,
            source_of(figment, "retention_purge_secs")
        );
    }
    if !(10..=100_000).contains(&raw.retention_batch_messages) {
        bail!(
            "invalid configuration: retention_batch_messages = {} must be 10 to 100000 (from {})",
            raw.retention_batch_messages,
            source_of(figment, "retention_batch_messages")
        );
    }
    if raw.retention_pause_ms > 10_000 {
        bail!(
            "invalid configuration: retention_pause_ms = {} must be 0 to 10000 (from {})",
            raw.retention_pause_ms,
            source_of(figment, "retention_pause_ms")
        );
    }
    let database_url = match raw.database_url {
        Some(url) if url.starts_with("sqlite:") || url.starts_with("postgres:") || url.starts_with("postgresql:") => {
            url
        }
        Some(url) => bail!(
            "invalid configuration: database_url = {url:?} must start with sqlite: or postgres: (from {})",
            source_of(figment, "database_url")
        ),
        None => format!("sqlite://{}", raw.data_dir.join("switchboard.db").display()),
    };
    let tls = match (raw.tls_cert, raw.tls_key) {
        (Some(cert), Some(key)) => Some(switchboard_server::tls::TlsSettings::new(cert, key)),
        (None, None) => None,
        (Some(_), None) => bail!(
            "invalid configuration: tls_cert is set (from {}) but tls_key is not: both are needed",
            source_of(figment, "tls_cert")
        ),
        (None, Some(_)) => bail!(
            "invalid configuration: tls_key is set (from {}) but tls_cert is not: both are needed",
            source_of(figment, "tls_key")
        ),
    };
    if raw.tls_self_signed && tls.is_some() {
        bail!(
            "invalid configuration: tls_self_signed (from {}) and tls_cert/tls_key (from {}) exclude each other",
            source_of(figment, "tls_self_signed"),
            source_of(figment, "tls_cert")
        );
    }
    let allowed_origins =
        raw.allowed_origins.iter().map(|origin| Origin::parse(origin)).collect::<Result<Vec<_>, _>>().map_err(
            |error| {
                anyhow::anyhow!(
                    "invalid configuration: allowed_origins: {error} (from {})",
                    source_of(figment, "allowed_origins")
                )
            },
        )?;
    if let Some(token) = &raw.metrics_token
        && token.len() < 16
    {
        bail!(
            "invalid configuration: metrics_token must be at least 16 characters (from {})",
            source_of(figment, "metrics_token")
        );
    }
    if let Some(url) = &raw.nats_url {
        if !url.split(',').all(|address| address.trim().starts_with("nats://") || address.trim().starts_with("tls://"))
        {
            bail!(
                "invalid configuration: nats_url = {url:?} must be nats://host:port or tls://host:port, several separated by commas (from {})",
                source_of(figment, "nats_url")
            );
        }
        if !database_url.starts_with("postgres") {
            bail!(
                "invalid configuration: nats_url is set (from {}) but the database is SQLite: the nodes of a fleet share one PostgreSQL database; set database_url = postgres://… (or leave nats_url out for a single node)",
                source_of(figment, "nats_url")
            );
        }
    }
    // Read now, so that a missing or empty file is an error at start, naming the setting.
    ca_file(raw.nats_ca_file.as_deref(), "nats_ca_file", figment)?;
    let demo_credentials = raw.demo.then(|| seed::credentials_path(&raw.data_dir));
    Ok(Config {
        listen,
        data_dir: raw.data_dir,
        database_url,
        sqlite_sync: raw.sqlite_sync,
        server: ServerConfig {
            heartbeat_secs: raw.heartbeat_secs,
            session_ttl: Duration::from_secs(raw.session_ttl_secs),
            operator_token: raw.operator_token,
            demo_credentials,
            retention: switchboard_server::retention::RetentionConfig {
                interval: (raw.retention_purge_secs > 0).then(|| Duration::from_secs(raw.retention_purge_secs)),
                batch_messages: raw.retention_batch_messages,
                pause: Duration::from_millis(raw.retention_pause_ms),
            },
            push,
            identity_extra_roots: ca_file(raw.identity_ca_file.as_deref(), "identity_ca_file", figment)?,
            tls,
            plain_http: match raw.plain_http {
                PlainHttpPolicy::Refuse => PlainHttp::Refuse,
                PlainHttpPolicy::Redirect => PlainHttp::Redirect,
            },
            trust_proxy_tls: raw.trust_proxy_tls,
            allowed_origins,
            metrics_token: raw.metrics_token,
            abuse,
            nats_url: raw.nats_url,
            nats_ca_file: raw.nats_ca_file,
            ..ServerConfig::default()
        },
        demo: raw.demo,
        log_format: raw.log_format,
        log: raw.log,
        tls_self_signed: raw.tls_self_signed,
    })
}

/// The limits against abuse, each checked against its range.
fn abuse_config(raw: &RawConfig, figment: &Figment) -> anyhow::Result<AbuseConfig> {
    // `zero`: what 0 means, for the settings where 0 turns something off.
    let range = |key: &str, value: u64, min: u64, max: u64, zero: Option<&str>| {
        if (min..=max).contains(&value) || (value == 0 && zero.is_some()) {
            return Ok(());
        }
        let or_zero = zero.map(|zero| format!("0 ({zero}) or ")).unwrap_or_default();
        Err(anyhow::anyhow!(
            "invalid configuration: {key} = {value} must be {or_zero}{min} to {max} (from {})",
            source_of(figment, key)
        ))
    };
    range("login_attempts_per_account", raw.login_attempts_per_account.into(), 1, 100_000, Some("no limit"))?;
    range("login_attempts_per_address", raw.login_attempts_per_address.into(), 1, 100_000, Some("no limit"))?;
    range("login_window_secs", raw.login_window_secs, 1, 7 * 24 * 3600, None)?;
    range("anonymous_per_address", raw.anonymous_per_address.into(), 1, 1_000_000, Some("no limit"))?;
    range("anonymous_window_secs", raw.anonymous_window_secs, 1, 7 * 24 * 3600, None)?;
    range("password_hash_threads", raw.password_hash_threads as u64, 1, 1024, Some("half the cores"))?;
    range("password_hash_wait_ms", raw.password_hash_wait_ms, 0, 60_000, None)?;
    range("body_read_timeout_secs", raw.body_read_timeout_secs, 1, 3600, None)?;
    range("max_connections_per_address", raw.max_connections_per_address as u64, 1, 10_000_000, Some("no cap"))?;
    range("max_unauthenticated_sockets", raw.max_unauthenticated_sockets as u64, 1, 10_000_000, Some("no cap"))?;
    Ok(AbuseConfig {
        login_attempts_per_account: raw.login_attempts_per_account,
        login_attempts_per_address: raw.login_attempts_per_address,
        login_window: Duration::from_secs(raw.login_window_secs),
        anonymous_per_address: raw.anonymous_per_address,
        anonymous_window: Duration::from_secs(raw.anonymous_window_secs),
        password_hash_threads: raw.password_hash_threads,
        password_hash_wait: Duration::from_millis(raw.password_hash_wait_ms),
        body_read_timeout: Duration::from_secs(raw.body_read_timeout_secs),
        max_connections_per_address: raw.max_connections_per_address,
        max_unauthenticated_sockets: raw.max_unauthenticated_sockets,
        trust_forwarded_for: raw.trust_forwarded_for,
    })
}

/// The push settings: provider URLs (https, or http to loopback for fake providers), the
/// extra CA file, the coalescing delay.
fn push_config(raw: &RawConfig, figment: &Figment) -> anyhow::Result<PushConfig> {
    let url = |key: &str, value: &str| {
        check_provider_url(value).map_err(|error| {
            anyhow::anyhow!("invalid configuration: {key}: {error} (from {})", source_of(figment, key))
        })
    };
    if raw.push_coalesce_ms > 60_000 {
        bail!(
            "invalid configuration: push_coalesce_ms = {} must be 0 to 60000 (from {})",
            raw.push_coalesce_ms,
            source_of(figment, "push_coalesce_ms")
        );
    }
    let extra_roots = ca_file(raw.push_ca_file.as_deref(), "push_ca_file", figment)?;
    Ok(PushConfig {
        enabled: raw.push,
        fcm_url: url("fcm_url", &raw.fcm_url)?,
        fcm_token_url: url("fcm_token_url", &raw.fcm_token_url)?,
        apns_url: url("apns_url", &raw.apns_url)?,
        apns_sandbox_url: url("apns_sandbox_url", &raw.apns_sandbox_url)?,
        extra_roots,
        coalesce: Duration::from_millis(raw.push_coalesce_ms),
        ..PushConfig::default()
    })
}

/// The CA certificates of a `*_ca_file` setting (none when unset).
fn ca_file(
    path: Option<&Path>,
    key: &str,
    figment: &Figment,
) -> anyhow::Result<Vec<switchboard_server::CaCertificate>> {
    let Some(path) = path else { return Ok(Vec::new()) };
    let source = source_of(figment, key);
    let pem = std::fs::read(path).map_err(|error| {
        anyhow::anyhow!("invalid configuration: {key} {} cannot be read: {error} (from {source})", path.display())
    })?;
    parse_extra_roots(&pem)
        .map_err(|error| anyhow::anyhow!("invalid configuration: {key} {} {error} (from {source})", path.display()))
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Logs go to stdout; colour codes only when a person is looking at it, never in a file or
    // a pipe to a log collector.
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(std::io::stdout().is_terminal());
    match config.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Files this process creates are readable by its user only (0600, directories 0700): the
/// SQLite database with its WAL and shared-memory files, the demo's keys and credentials,
/// TLS keys. SQLite creates its files itself, so the process's umask is the one place that
/// covers them all.
#[cfg(unix)]
fn create_files_private() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

#[cfg(not(unix))]
fn create_files_private() {}

/// Raises the soft limit of open files to the hard limit, and logs both: every connection is
/// a file, and the inherited soft limit (often 1,024) let 1,100 idle connections lock agents
/// out. A failure is logged; the server runs with what it has.
#[cfg(unix)]
fn raise_open_file_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let show = |limit: Option<u64>| limit.map_or_else(|| "unlimited".to_owned(), |n| n.to_string());
    let before = getrlimit(Resource::Nofile);
    if before.current == before.maximum {
        tracing::info!(soft = %show(before.current), hard = %show(before.maximum), "open file limit");
        return;
    }
    match setrlimit(Resource::Nofile, Rlimit { current: before.maximum, maximum: before.maximum }) {
        Ok(()) => {
            let after = getrlimit(Resource::Nofile);
            tracing::info!(
                soft = %show(after.current),
                hard = %show(after.maximum),
                was = %show(before.current),
                "open file limit raised to the hard limit"
            );
        }
        Err(error) => tracing::warn!(
            %error,
            soft = %show(before.current),
            hard = %show(before.maximum),
            "could not raise the open file limit to the hard limit"
        ),
    }
}

#[cfg(not(unix))]
fn raise_open_file_limit() {}

/// The data directory, created 0700, or tightened to that; files already in it (from a
/// version before these rules, or copied in) are tightened to 0600.
fn prepare_data_dir(data_dir: &Path) -> anyhow::Result<()> {
    switchboard_server::files::create_private_dir(data_dir)
        .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;
    let entries = std::fs::read_dir(data_dir).with_context(|| format!("cannot read {}", data_dir.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            switchboard_server::files::create_private_dir(&path)
                .with_context(|| format!("cannot restrict {}", path.display()))?;
            for inner in std::fs::read_dir(&path).into_iter().flatten().flatten() {
                switchboard_server::files::make_private(&inner.path())
                    .with_context(|| format!("cannot restrict {}", inner.path().display()))?;
            }
        } else {
            switchboard_server::files::make_private(&path)
                .with_context(|| format!("cannot restrict {}", path.display()))?;
        }
    }
    Ok(())
}

async fn open_store(config: &Config) -> anyhow::Result<Store> {
    prepare_data_dir(&config.data_dir)?;
    let mut options = StoreOptions::new(&config.database_url);
    options.sqlite_sync = config.sqlite_sync;
    Store::open(&options).await.with_context(|| format!("cannot open the database {}", redact(&config.database_url)))
}

/// The URL without a password.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://…@{}", &url[..scheme_end], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// Held by a serving node on SQLite for as long as it runs: an exclusive lock on
/// `<database>.serve.lock` beside the database file. SQLite's own locks let two processes
/// share the file, but two nodes would each run the brands' routing engines (a conversation
/// assigned twice) and neither would see the other's live events; a second `serve` on the
/// same file is refused. The lock is the kernel's (`flock`): it ends with the process,
/// however it ends, so a crash leaves nothing to clean up.
#[derive(Debug)]
struct ServeLock {
    _file: std::fs::File,
}

/// Takes the [`ServeLock`] of the configured SQLite database (none on PostgreSQL).
fn lock_sqlite_for_serving(database_url: &str) -> anyhow::Result<Option<ServeLock>> {
    let Some(database) = switchboard_store::sqlite_file(database_url)? else { return Ok(None) };
    let mut name = database.clone().into_os_string();
    name.push(".serve.lock");
    let path = PathBuf::from(name);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("cannot open the lock file {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            let holder = holder.trim();
            let holder = if holder.is_empty() { String::new() } else { format!(" ({holder})") };
            bail!(
                "another `switchboard serve`{holder} is already using the SQLite database {}: \
                 one node per SQLite file (it holds {}). To run several nodes, give them a PostgreSQL \
                 database_url; to run a second node on this machine, give it its own --data-dir",
                database.display(),
                path.display()
            );
        }
        Err(std::fs::TryLockError::Error(error)) => {
            return Err(error).with_context(|| format!("cannot lock {}", path.display()));
        }
    }
    // Who holds it, for the message a second node gets.
    use std::io::Write as _;
    file.set_len(0).and_then(|()| write!(file, "process {}", std::process::id())).and_then(|()| file.flush()).ok();
    Ok(Some(ServeLock { _file: file }))
}

async fn serve(mut config: Config) -> anyhow::Result<()> {
    prepare_data_dir(&config.data_dir)?;
    let _serve_lock = lock_sqlite_for_serving(&config.database_url)?;
    let store = open_store(&config).await?;
    let trial = if config.tls_self_signed {
        let trial = trial_tls::ensure(&config.data_dir, config.listen)?;
        config.server.tls = Some(trial.settings.clone());
        Some(trial)
    } else {
        None
    };
    let credentials = if config.demo { seed::ensure_demo(&store, &config.data_dir).await? } else { None };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let running = switchboard_server::start(store, config.server.clone(), listener).await?;
    print_banner(&config, running.addr, credentials.as_ref(), trial.as_ref());
    shutdown_signal().await;
    tracing::info!("shutting down");
    running.shutdown().await?;
    Ok(())
}

fn print_banner(
    config: &Config,
    addr: SocketAddr,
    credentials: Option<&seed::DemoCredentials>,
    trial: Option<&trial_tls::Trial>,
) {
    let scheme = if config.server.tls.is_some() { "https" } else { "http" };
    // The trial certificate names localhost and the loopback addresses, not 0.0.0.0.
    let host = if addr.ip().is_unspecified() { SocketAddr::from(([127, 0, 0, 1], addr.port())) } else { addr };
    let base_url = format!("{scheme}://{host}");
    let commands = Commands::of_this_binary();
    println!();
    println!("Switchboard is listening on {base_url}");
    println!("  agent workspace, dashboard and admin: {base_url}/");
    println!("  API reference:  {base_url}/docs");
    println!("  database:       {}", redact(&config.database_url));
    if let Some(nats) = &config.server.nats_url {
        println!("  fleet:          a node of the fleet on NATS {}", redact(nats));
    }
    if let Some(trial) = trial {
        println!();
        for line in trial_tls::instructions(trial, &base_url, &commands.chat) {
            println!("{line}");
        }
    }
    if let Some(credentials) = credentials {
        println!();
        println!("Demo brand {:?}, app {:?}. Staff logins:", credentials.brand, credentials.app);
        let show = show_demo_passwords(credentials.created_now, std::io::stdout().is_terminal());
        for login in &credentials.logins {
            if show {
                println!("  {:<8} {:<22} password {}", login.role.as_str(), login.email, login.password);
            } else {
                println!("  {:<8} {}", login.role.as_str(), login.email);
            }
        }
        if !show && !credentials.logins.is_empty() {
            println!(
                "  passwords: in {} (readable only by this account)",
                seed::credentials_path(&config.data_dir).display()
            );
        }
        for changed in &credentials.changed {
            println!("  {changed:<31} password changed since the demo was seeded (not shown)");
        }
        let data_dir = if config.data_dir == RawConfig::default().data_dir {
            String::new()
        } else {
            format!(" --data-dir {}", config.data_dir.display())
        };
        println!();
        // The sample app's defaults reach http://127.0.0.1:8080; say where, when elsewhere.
        let mut chat = commands.chat.clone();
        if base_url != "http://127.0.0.1:8080" {
            chat.push_str(&format!(" --server {base_url}"));
        }
        if let Some(trial) = trial {
            chat.push_str(&format!(" --ca-cert {}", trial.ca.display()));
        }
        println!("Write as a consumer from a second terminal with the sample app (anonymous):");
        println!("  {chat} --anonymous");
        println!("or as a logged-in consumer, with a token for the demo app:");
        println!("  {chat} --token \"$({} dev-token{data_dir} --sub alice-customer)\"", commands.server);
        println!("(crates/switchboard-chat/README.md; any WebSocket client can also send \"anon\": \"\" in hello)");
    }
    println!();
}

/// Whether the banner shows the demo passwords: only on the first start (when they were
/// made) and only to a terminal. Logs and the banner share stdout, so a server whose output
/// goes to a file or a log collector never writes them there; they stay in the credentials
/// file (0600) either way.
fn show_demo_passwords(created_now: bool, stdout_is_a_terminal: bool) -> bool {
    created_now && stdout_is_a_terminal
}

/// How to run this binary and the sample app again from the same place: through cargo when
/// this binary was built in a cargo `target/` directory (after `cargo run` neither is on the
/// `PATH`), by name otherwise.
struct Commands {
    server: String,
    chat: String,
}

impl Commands {
    fn of_this_binary() -> Commands {
        let exe = std::env::current_exe().ok();
        let profile_dir = exe.as_deref().and_then(Path::parent);
        let profile = profile_dir.and_then(Path::file_name).and_then(|name| name.to_str());
        let in_target =
            profile_dir.and_then(Path::parent).and_then(Path::file_name).is_some_and(|name| name == "target");
        match profile {
            Some("release") if in_target => Commands {
                server: "cargo run -q --release --".into(),
                chat: "cargo run --release -p switchboard-chat --".into(),
            },
            Some("debug") if in_target => {
                Commands { server: "cargo run -q --".into(), chat: "cargo run -p switchboard-chat --".into() }
            }
            _ => Commands { server: "switchboard".into(), chat: "switchboard-chat".into() },
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

/// `switchboard erase`: deletes one consumer's data from the store and records it in the
/// brand's audit log (actor `cli`).
async fn erase(config: &Config, args: &EraseArgs) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    let result = async {
        if store.brand(&args.brand).await?.is_none() {
            bail!("there is no brand {:?}", args.brand);
        }
        let Some(consumer) = store.consumer_by_external_id(&args.brand, &args.consumer).await? else {
            bail!("brand {:?} has no consumer {:?} (nothing to erase)", args.brand, args.consumer);
        };
        if let Some(open) = store.open_conversation(&args.brand, consumer.id).await?
            && !args.close_open
        {
            bail!(
                "consumer {:?} has an open conversation ({}); erase through the REST API while the server runs \
                 (POST /api/v1/consumers/erase) so its agent is told, or pass --close-open with the server stopped",
                args.consumer,
                open.id
            );
        }
        let counts = store.erase_consumer(&args.brand, consumer.id).await?;
        let entry = switchboard_store::NewAuditEntry {
            brand_id: args.brand.clone(),
            at: switchboard_server::now_ms(),
            actor_kind: switchboard_store::ActorKind::Cli,
            actor_id: None,
            actor_name: "cli".to_owned(),
            action: "consumer.erase".to_owned(),
            target: Some(format!("consumer #{}", consumer.id)),
            detail: Some(serde_json::to_string(&counts)?),
        };
        store.record_audit(&entry).await?;
        println!("erased consumer {:?} of brand {:?}:", args.consumer, args.brand);
        println!("  conversations {} ({} open)", counts.conversations, counts.open_conversations);
        println!("  messages      {}", counts.messages);
        println!("  events        {}", counts.events);
        println!("  outbox        {}", counts.outbox);
        println!("  push tokens   {}", counts.push_tokens);
        println!("  profile       {}", if counts.profiles > 0 { "deleted" } else { "none" });
        Ok(())
    }
    .await;
    store.close().await;
    result
}

/// Runs the command; an error is printed as its chain of messages, one line, and never with a
/// stack trace (even under `RUST_BACKTRACE=1`): it is addressed to an operator.
fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    create_files_private();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cli.command {
        Command::Serve(args) => {
            let flags = FlagOverrides {
                listen: args.listen,
                data_dir: args.common.data_dir,
                database_url: args.common.database_url,
                tls_cert: args.tls_cert,
                tls_key: args.tls_key,
                tls_self_signed: args.tls_self_signed.then_some(true),
                nats_url: args.nats_url,
            };
            let config = load_config(cli.config.as_deref(), flags)?;
            init_logging(&config);
            raise_open_file_limit();
            runtime.block_on(serve(config))
        }
        Command::Migrate(args) => {
            let flags =
                FlagOverrides { data_dir: args.data_dir, database_url: args.database_url, ..FlagOverrides::default() };
            let config = load_config(cli.config.as_deref(), flags)?;
            init_logging(&config);
            runtime.block_on(async {
                let store = open_store(&config).await?;
                store.close().await;
                println!("database {} is up to date", redact(&config.database_url));
                Ok(())
            })
        }
        Command::Erase(args) => {
            let flags = FlagOverrides {
                data_dir: args.common.data_dir.clone(),
                database_url: args.common.database_url.clone(),
                ..FlagOverrides::default()
            };
            let config = load_config(cli.config.as_deref(), flags)?;
            runtime.block_on(erase(&config, &args))
        }
        Command::DevToken(args) => {
            let flags = FlagOverrides { data_dir: args.data_dir, ..FlagOverrides::default() };
            let config = load_config(cli.config.as_deref(), flags)?;
            let token =
                seed::dev_token(&config.data_dir, &args.sub, args.name.as_deref(), args.ttl).with_context(|| {
                    format!(
                        "run `switchboard serve --data-dir {}` once first to create the demo key",
                        config.data_dir.display()
                    )
                })?;
            println!("{token}");
            Ok(())
        }
    }
}

#[cfg(test)]
mod fuzz;

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(listen: &str) -> FlagOverrides {
        FlagOverrides { listen: Some(listen.into()), ..FlagOverrides::default() }
    }

    #[test]
    fn a_bad_flag_value_is_refused_naming_its_source() {
        let error = load_config(None, flags("not-an-address")).unwrap_err().to_string();
        assert!(error.contains("listen = \"not-an-address\""), "{error}");
        assert!(error.contains("command-line flags"), "the source is named: {error}");
    }

    #[test]
    fn a_bad_file_value_is_refused_naming_the_file() {
        let dir = std::env::temp_dir().join(format!("sb-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("bad.toml");
        std::fs::write(&file, "heartbeat_secs = 1\n").unwrap();
        let error = load_config(Some(&file), FlagOverrides::default()).unwrap_err().to_string();
        assert!(error.contains("heartbeat_secs = 1 must be 5 to 300"), "{error}");
        assert!(error.contains("bad.toml"), "the file is named: {error}");
        std::fs::write(&file, "listen = 5\n").unwrap();
        let error = load_config(Some(&file), FlagOverrides::default()).unwrap_err().to_string();
        assert!(error.contains("bad.toml") && error.contains("listen"), "{error}");
        std::fs::write(&file, "no_such_key = 1\n").unwrap();
        let error = load_config(Some(&file), FlagOverrides::default()).unwrap_err().to_string();
        assert!(error.contains("no_such_key"), "{error}");
    }

    #[test]
    fn allowed_origins_are_checked_and_take_a_list_or_commas() {
        let dir = std::env::temp_dir().join(format!("sb-config-origins-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("origins.toml");
        std::fs::write(&file, "allowed_origins = [\"https://Admin.Example.com:443\", \"http://localhost:5173\"]\n")
            .unwrap();
        let config = load_config(Some(&file), FlagOverrides::default()).unwrap();
        let origins: Vec<&str> = config.server.allowed_origins.iter().map(Origin::as_str).collect();
        assert_eq!(origins, ["https://admin.example.com", "http://localhost:5173"]);
        std::fs::write(&file, "allowed_origins = \"https://a.example, https://b.example\"\n").unwrap();
        let config = load_config(Some(&file), FlagOverrides::default()).unwrap();
        assert_eq!(config.server.allowed_origins.len(), 2);
        std::fs::write(&file, "allowed_origins = [\"https://a.example/app\"]\n").unwrap();
        let error = load_config(Some(&file), FlagOverrides::default()).unwrap_err().to_string();
        assert!(
            error.contains("allowed_origins") && error.contains("no path") && error.contains("origins.toml"),
            "{error}"
        );
        std::fs::write(&file, "metrics_token = \"short\"\n").unwrap();
        let error = load_config(Some(&file), FlagOverrides::default()).unwrap_err().to_string();
        assert!(error.contains("metrics_token must be at least 16"), "{error}");
    }

    #[test]
    fn a_fleet_needs_postgres_and_a_nats_address() {
        let dir = std::env::temp_dir().join(format!("sb-fleet-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("fleet.toml");
        std::fs::write(&file, "nats_url = \"nats://127.0.0.1:4222\"\n").unwrap();
        let error = load_config(Some(&file), FlagOverrides::default()).unwrap_err().to_string();
        assert!(
            error.contains("nats_url is set") && error.contains("SQLite") && error.contains("fleet.toml"),
            "{error}"
        );
        std::fs::write(&file, "nats_url = \"127.0.0.1:4222\"\ndatabase_url = \"postgres://db/sb\"\n").unwrap();
        let error = load_config(Some(&file), FlagOverrides::default()).unwrap_err().to_string();
        assert!(error.contains("must be nats://host:port"), "{error}");
        std::fs::write(&file, "nats_url = \"nats://a:4222, nats://b:4222\"\ndatabase_url = \"postgres://db/sb\"\n")
            .unwrap();
        let config = load_config(Some(&file), FlagOverrides::default()).unwrap();
        assert_eq!(config.server.nats_url.as_deref(), Some("nats://a:4222, nats://b:4222"));
        assert_eq!(config.server.nats_ca_file, None);

        let fleet = "nats_url = \"tls://a:4222\"\ndatabase_url = \"postgres://db/sb\"\n";
        std::fs::write(&file, format!("{fleet}nats_ca_file = \"/nonexistent/ca.pem\"\n")).unwrap();
        let error = load_config(Some(&file), FlagOverrides::default()).unwrap_err().to_string();
        assert!(
            error.contains("nats_ca_file /nonexistent/ca.pem cannot be read") && error.contains("fleet.toml"),
            "{error}"
        );
        let not_pem = dir.join("not-a-certificate.pem");
        std::fs::write(&not_pem, "not a certificate\n").unwrap();
        std::fs::write(&file, format!("{fleet}nats_ca_file = {not_pem:?}\n")).unwrap();
        let error = load_config(Some(&file), FlagOverrides::default()).unwrap_err().to_string();
        assert!(error.contains("holds no PEM certificate"), "{error}");
    }

    #[test]
    fn defaults_use_sqlite_in_the_data_dir() {
        let config = load_config(Some(Path::new("/nonexistent/x.toml")), FlagOverrides::default());
        assert!(config.unwrap_err().to_string().contains("does not exist"));
        let config = load_config(None, flags("127.0.0.1:9999")).unwrap();
        assert_eq!(config.listen.port(), 9999);
        assert!(config.database_url.starts_with("sqlite://") && config.database_url.ends_with("switchboard.db"));
    }

    /// The README's configuration section, and the flags of `subcommand`.
    fn readme_configuration() -> &'static str {
        let readme = include_str!("../../../README.md");
        let section = readme.split("## Configuration").nth(1).expect("README has a Configuration section");
        section.split("\n## ").next().unwrap()
    }

    fn flags_of(subcommand: &str) -> Vec<String> {
        use clap::CommandFactory;
        let cli = Cli::command();
        let command = cli.find_subcommand(subcommand).unwrap_or_else(|| panic!("no subcommand {subcommand}"));
        command.get_arguments().filter_map(|arg| arg.get_long()).map(|long| format!("--{long}")).collect()
    }

    /// Issue 13: the docs' claims that can be checked are. The README's configuration table
    /// lists exactly the keys `RawConfig` reads (and the environment accepts), and every flag
    /// it names exists on `serve`.
    #[test]
    fn the_readme_configuration_table_is_the_configuration() {
        let rows: Vec<Vec<&str>> = readme_configuration()
            .lines()
            .filter(|line| line.starts_with("| `"))
            .map(|line| line.split('|').map(str::trim).collect())
            .collect();
        let documented: std::collections::BTreeSet<&str> = rows.iter().map(|row| row[1].trim_matches('`')).collect();
        let data = figment::Provider::data(&Serialized::defaults(RawConfig::default())).unwrap();
        let read: std::collections::BTreeSet<&str> =
            data.values().flat_map(|dict| dict.keys()).map(String::as_str).collect();
        assert_eq!(documented, read, "README's configuration table against RawConfig");
        let env: std::collections::BTreeSet<&str> = CONFIG_KEYS.iter().copied().collect();
        assert_eq!(env, read, "CONFIG_KEYS against RawConfig");
        let serve_flags = flags_of("serve");
        for row in &rows {
            let flag = row[2].trim_matches('`');
            if !flag.is_empty() {
                assert!(serve_flags.iter().any(|f| f == flag), "README names {flag}; serve has {serve_flags:?}");
            }
        }
    }

    /// Every `--flag` the README's configuration section names for `dev-token` exists.
    #[test]
    fn the_readme_dev_token_flags_exist() {
        let section = readme_configuration();
        let usage = section.split("dev-token").nth(1).expect("README shows dev-token's usage");
        let usage = usage.split('`').next().unwrap();
        let flags = flags_of("dev-token");
        let named: Vec<&str> =
            usage.split(|c: char| c.is_whitespace() || c == '[' || c == ']').filter(|w| w.starts_with("--")).collect();
        assert!(!named.is_empty(), "{usage}");
        for flag in named {
            assert!(flags.iter().any(|f| f == flag), "README names dev-token {flag}; it has {flags:?}");
        }
    }

    /// Issue 15: demo passwords go to a person at a terminal once, never to a log.
    #[test]
    fn demo_passwords_are_shown_once_and_only_to_a_terminal() {
        assert!(show_demo_passwords(true, true));
        assert!(!show_demo_passwords(true, false), "piped to a log: never");
        assert!(!show_demo_passwords(false, true), "a later start: the file has them");
        assert!(!show_demo_passwords(false, false));
    }

    #[test]
    fn push_settings_are_checked_at_start() {
        let dir = std::env::temp_dir().join(format!("sb-push-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("push.toml");
        let refused = |toml: &str, says: &str| {
            std::fs::write(&file, toml).unwrap();
            let error = load_config(Some(&file), FlagOverrides::default()).unwrap_err().to_string();
            assert!(error.contains(says) && error.contains("push.toml"), "{toml}: {error}");
        };
        refused(
            "apns_url = \"http://api.push.apple.com\"\n",
            "apns_url: \"http://api.push.apple.com\" must be https://",
        );
        refused("fcm_url = \"fcm\"\n", "fcm_url: \"fcm\" is not a URL");
        refused("push_coalesce_ms = 70000\n", "push_coalesce_ms = 70000 must be 0 to 60000");
        refused("push_ca_file = \"/nonexistent/ca.pem\"\n", "push_ca_file /nonexistent/ca.pem cannot be read");
        std::fs::write(dir.join("empty.pem"), "not a certificate\n").unwrap();
        refused(&format!("push_ca_file = {:?}\n", dir.join("empty.pem")), "holds no PEM certificate");

        std::fs::write(&file, "fcm_url = \"http://127.0.0.1:9000/\"\npush = false\n").unwrap();
        let config = load_config(Some(&file), FlagOverrides::default()).unwrap();
        assert_eq!(config.server.push.fcm_url, "http://127.0.0.1:9000");
        assert!(!config.server.push.enabled);
        assert_eq!(config.server.push.apns_url, "https://api.push.apple.com");
    }

    #[test]
    fn passwords_are_not_printed() {
        assert_eq!(redact("postgres://user:secret@db:5432/x"), "postgres://…@db:5432/x");
        assert_eq!(redact("sqlite://a/b.db"), "sqlite://a/b.db");
    }
}
