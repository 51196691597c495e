//! Command-line options, the cache key derived from a passphrase, and token providers.

use std::path::PathBuf;
use std::process::Command;

use switchboard_sdk::TokenProvider;

/// The passphrase used when none is given. DEMO ONLY: anyone can derive the key from it, so
/// the local cache is effectively unencrypted. A real app keeps a random key in the
/// platform's keychain/keystore.
pub const DEMO_PASSPHRASE: &str = "switchboard-chat demo passphrase (not secret)";

/// A terminal chat with a brand, through the Switchboard consumer SDK.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "switchboard-chat", version)]
#[command(group(clap::ArgGroup::new("login").required(true).args(["token", "token_command", "anonymous"])))]
pub struct Args {
    /// Server URL (https://, wss://, http:// or ws://).
    #[arg(long, default_value = "http://127.0.0.1:8080", env = "SWITCHBOARD_CHAT_SERVER")]
    pub server: String,
    /// A certificate authority to trust besides the public ones (PEM file), e.g. the
    /// `ca.pem` of `switchboard serve --tls-self-signed`.
    #[arg(long, env = "SWITCHBOARD_CHAT_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// Brand id.
    #[arg(long, default_value = "demo")]
    pub brand: String,
    /// App id.
    #[arg(long, default_value = "demo-app")]
    pub app: String,
    /// A consumer JWT (e.g. from `switchboard dev-token --sub alice`).
    #[arg(long, env = "SWITCHBOARD_CHAT_TOKEN", conflicts_with_all = ["token_command", "anonymous"])]
    pub token: Option<String>,
    /// A shell command printing a fresh JWT; run before every connection attempt.
    #[arg(long, conflicts_with = "anonymous")]
    pub token_command: Option<String>,
    /// Connect without login (the app must allow anonymous consumers; the demo app does).
    #[arg(long)]
    pub anonymous: bool,
    /// Directory of the local (encrypted) cache. Default: one directory per brand, app and
    /// identity under ./switchboard-chat-data (e.g. ./switchboard-chat-data/demo/demo-app/anonymous).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Passphrase the cache key is derived from (SHA-256). The default is a fixed demo
    /// passphrase: fine for trying things out, useless as protection.
    #[arg(long, env = "SWITCHBOARD_CHAT_PASSPHRASE", default_value = DEMO_PASSPHRASE, hide_default_value = true)]
    pub passphrase: String,
}

/// Where the default caches live, one directory per brand, app and identity inside.
pub const DEFAULT_DATA_ROOT: &str = "./switchboard-chat-data";

impl Args {
    /// The local cache's directory: `--data-dir` as given, or by default
    /// `./switchboard-chat-data/<brand>/<app>/<identity>`, where the identity is `anonymous` or
    /// `sub-<sub>` from the token (`token` when the token carries no readable `sub`). A cache
    /// holds one consumer's conversations: an anonymous run after a token run must not show
    /// the other identity's conversation. `token` is the token in use, if any.
    pub fn cache_dir(&self, token: Option<&str>) -> PathBuf {
        if let Some(dir) = &self.data_dir {
            return dir.clone();
        }
        let identity = if self.anonymous {
            "anonymous".to_owned()
        } else {
            match token.and_then(subject_of) {
                Some(sub) => format!("sub-{}", path_safe(&sub)),
                None => "token".to_owned(),
            }
        };
        PathBuf::from(DEFAULT_DATA_ROOT).join(path_safe(&self.brand)).join(path_safe(&self.app)).join(identity)
    }
}

/// The `sub` claim of a JWT, read without verifying it (only to name the cache directory;
/// the server verifies the token).
pub fn subject_of(token: &str) -> Option<String> {
    use base64::Engine;
    let payload = token.trim().split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("sub")?.as_str().map(str::to_owned)
}

/// `text` as one path component: letters, digits, `-`, `_` and `.` kept, anything else `_`.
fn path_safe(text: &str) -> String {
    let safe: String =
        text.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' }).collect();
    if safe.is_empty() || safe.chars().all(|c| c == '.') { "_".to_owned() } else { safe }
}

/// The 32-byte cache key: SHA-256 of the passphrase. (A sample-app shortcut; a real app
/// stores a random key in the keychain/keystore rather than deriving one.)
pub fn derive_key(passphrase: &str) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, passphrase.as_bytes());
    let mut key = [0u8; 32];
    key.copy_from_slice(digest.as_ref());
    key
}

/// A token given on the command line.
#[derive(Debug)]
pub struct StaticToken(pub String);

impl TokenProvider for StaticToken {
    fn fetch_token(&self) -> Result<String, String> {
        Ok(self.0.trim().to_owned())
    }
}

/// A shell command run for every token the SDK asks for.
#[derive(Debug)]
pub struct CommandToken(pub String);

impl TokenProvider for CommandToken {
    fn fetch_token(&self) -> Result<String, String> {
        let output = if cfg!(windows) {
            Command::new("cmd").args(["/C", &self.0]).output()
        } else {
            Command::new("sh").args(["-c", &self.0]).output()
        }
        .map_err(|e| format!("running {:?}: {e}", self.0))?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(format!("{:?} failed ({}): {}", self.0, output.status, stderr.trim()));
        }
        let token = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        if token.is_empty() {
            return Err(format!("{:?} printed no token", self.0));
        }
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn the_key_is_the_sha256_of_the_passphrase() {
        let key = derive_key("abc");
        assert_eq!(key[..4], [0xba, 0x78, 0x16, 0xbf]);
        assert_ne!(derive_key(DEMO_PASSPHRASE), derive_key("other"));
    }

    #[test]
    fn defaults_point_at_the_local_demo_server() {
        let args = Args::try_parse_from(["switchboard-chat", "--anonymous"]).unwrap();
        assert_eq!(args.server, "http://127.0.0.1:8080");
        assert_eq!((args.brand.as_str(), args.app.as_str()), ("demo", "demo-app"));
        assert_eq!(args.passphrase, DEMO_PASSPHRASE);
        assert!(Args::try_parse_from(["switchboard-chat", "--anonymous", "--token", "x"]).is_err());
        assert!(Args::try_parse_from(["switchboard-chat"]).is_err(), "a way to log in is required");
    }

    #[test]
    fn a_token_command_supplies_a_fresh_token() {
        if cfg!(unix) {
            assert_eq!(CommandToken("echo tok".into()).fetch_token().unwrap(), "tok");
            assert!(CommandToken("exit 3".into()).fetch_token().is_err());
        }
    }
}
