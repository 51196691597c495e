//! `switchboard serve --tls-self-signed`: TLS for a local trial. A certificate authority and
//! a server certificate for `localhost`, `127.0.0.1`, `::1` (and the listen address) are made
//! once and kept in `<data_dir>/tls/` (0700; files 0600): `ca.pem` to trust, `cert.pem` and
//! `key.pem` served. They are made again when missing, expiring within a week, or when the
//! listen address is not covered. The CA's key is never written: it cannot sign anything
//! else. The banner says how to trust `ca.pem` (curl, the sample app, the SDK, browsers).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use switchboard_server::files;
use switchboard_server::tls::{TlsSettings, TrialCertificate};

/// Validity of a trial certificate.
const VALID_DAYS: i64 = 90;
/// Made again when it expires sooner than this.
const RENEW_BEFORE_DAYS: i64 = 7;

/// What the trial certificate's files are, and how to trust them.
#[derive(Debug, Clone)]
pub struct Trial {
    pub ca: PathBuf,
    pub settings: TlsSettings,
    pub spki_sha256: String,
    /// Whether the files were made at this start.
    pub created: bool,
}

/// Kept beside the files, to know when to make them again.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Meta {
    hosts: Vec<String>,
    not_after: i64,
    spki_sha256: String,
}

fn hosts_for(listen: SocketAddr) -> Vec<String> {
    let mut hosts = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
    let ip = listen.ip();
    if !ip.is_unspecified() && !hosts.contains(&ip.to_string()) {
        hosts.push(ip.to_string());
    }
    hosts
}

fn now_secs() -> i64 {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX)
}

/// The trial certificate in `data_dir`, made if needed.
pub fn ensure(data_dir: &Path, listen: SocketAddr) -> anyhow::Result<Trial> {
    let dir = data_dir.join("tls");
    files::create_private_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let (ca, cert, key, meta_path) =
        (dir.join("ca.pem"), dir.join("cert.pem"), dir.join("key.pem"), dir.join("trial.json"));
    let hosts = hosts_for(listen);
    let now = now_secs();
    let existing = std::fs::read(&meta_path).ok().and_then(|bytes| serde_json::from_slice::<Meta>(&bytes).ok());
    let settings = TlsSettings::new(&cert, &key);
    if let Some(meta) = existing
        && meta.hosts == hosts
        && meta.not_after > now + RENEW_BEFORE_DAYS * 86_400
        && ca.exists()
        && switchboard_server::tls::load(&cert, &key).is_ok()
    {
        return Ok(Trial { ca, settings, spki_sha256: meta.spki_sha256, created: false });
    }
    let not_after = now + VALID_DAYS * 86_400;
    // A day of slack before now, for clocks that disagree a little.
    let made = TrialCertificate::generate(&hosts, now - 86_400, not_after)?;
    for (path, pem) in [(&ca, &made.ca_pem), (&cert, &made.chain_pem), (&key, &made.key_pem)] {
        files::write_private(path, pem.as_bytes()).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let meta = Meta { hosts, not_after, spki_sha256: made.spki_sha256.clone() };
    let json = serde_json::to_vec_pretty(&meta).expect("trial metadata serializes");
    files::write_private(&meta_path, &json).with_context(|| format!("cannot write {}", meta_path.display()))?;
    Ok(Trial { ca, settings, spki_sha256: made.spki_sha256, created: true })
}

/// The lines the banner prints: what to trust and how.
pub fn instructions(trial: &Trial, base_url: &str, chat_command: &str) -> Vec<String> {
    let ca = trial.ca.display();
    vec![
        format!(
            "TLS with a self-signed certificate for a local trial ({}; not for production):",
            if trial.created { "made now" } else { "made earlier" }
        ),
        format!("  trust this certificate authority: {ca}"),
        format!("  curl:        curl --cacert {ca} {base_url}/healthz"),
        format!("  sample app:  {chat_command} --ca-cert {ca} --server {base_url} --anonymous"),
        format!("  SDK:         ClientBuilder::extra_root_certificate_pem(<the contents of {ca}>)"),
        format!("  Chromium:    chromium --ignore-certificate-errors-spki-list={} {base_url}/", trial.spki_sha256),
        "               or import the CA in the browser's certificate settings, under Authorities".to_owned(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn the_trial_certificate_is_made_once_and_kept_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("sb-trial-tls-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let listen: SocketAddr = "127.0.0.1:8443".parse().unwrap();
        let first = ensure(&dir, listen).unwrap();
        assert!(first.created);
        for name in ["ca.pem", "cert.pem", "key.pem", "trial.json"] {
            let mode = std::fs::metadata(dir.join("tls").join(name)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{name}");
        }
        assert_eq!(std::fs::metadata(dir.join("tls")).unwrap().permissions().mode() & 0o777, 0o700);
        let again = ensure(&dir, listen).unwrap();
        assert!(!again.created, "reused");
        assert_eq!(again.spki_sha256, first.spki_sha256);
        // Another listen address that the certificate does not name: made again.
        let other = ensure(&dir, "10.1.2.3:8443".parse().unwrap()).unwrap();
        assert!(other.created);
        assert!(
            instructions(&other, "https://127.0.0.1:8443", "switchboard-chat")
                .iter()
                .any(|line| line.contains(&format!("--ignore-certificate-errors-spki-list={}", other.spki_sha256)))
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
