//! TLS for the server: the certificate and key from PEM files, the rustls configuration (the
//! aws-lc-rs provider, the workspace's one crypto provider) and reloading the certificate
//! when its files change, without a restart.
//!
//! Reloading watches the files' modification times (every [`TlsSettings::reload_interval`],
//! 10 s by default): a renewal tool that rewrites them (certbot, cert-manager, acme.sh) is
//! picked up without a signal. A new pair is checked before it is used (both files parse,
//! the key matches the certificate); a bad one is logged and the old certificate stays in
//! use. New connections get the new certificate; open ones keep theirs.
//!
//! `serve` uses [`Acceptor`] for every connection; `ServerConfig::tls` turns it on.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::sync::watch;

/// Where the server's certificate chain and key are, and how often to look for new ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM: the server's certificate first, then the intermediates (a full chain).
    pub cert: PathBuf,
    /// PEM: the private key (PKCS#8, PKCS#1 RSA or SEC1 EC).
    pub key: PathBuf,
    /// How often the files' modification times are checked.
    pub reload_interval: Duration,
}

impl TlsSettings {
    /// Certificate and key files, checked for changes every 10 s.
    pub fn new(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> TlsSettings {
        TlsSettings { cert: cert.into(), key: key.into(), reload_interval: Duration::from_secs(10) }
    }
}

/// Why a certificate or key could not be used; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)")]
    NoCertificate { path: PathBuf },
    #[error("{path} is not a PEM certificate chain: {reason}")]
    BadCertificate { path: PathBuf, reason: String },
    #[error("{path} holds no PEM private key (expected PKCS#8, RSA or EC PRIVATE KEY): {reason}")]
    NoKey { path: PathBuf, reason: String },
    #[error("the key in {key} cannot sign with the aws-lc-rs provider: {reason}")]
    UnsupportedKey { key: PathBuf, reason: String },
    #[error("the key in {key} does not belong to the certificate in {cert}")]
    Mismatch { cert: PathBuf, key: PathBuf },
}

/// The crypto provider of every TLS configuration in the workspace.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Reads and checks a certificate chain and its key.
pub fn load(cert_path: &Path, key_path: &Path) -> Result<CertifiedKey, TlsError> {
    let cert_pem = std::fs::read(cert_path).map_err(|source| TlsError::Read { path: cert_path.into(), source })?;
    let key_pem = std::fs::read(key_path).map_err(|source| TlsError::Read { path: key_path.into(), source })?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| TlsError::BadCertificate { path: cert_path.into(), reason: error.to_string() })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate { path: cert_path.into() });
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|error| TlsError::NoKey { path: key_path.into(), reason: error.to_string() })?;
    let provider = provider();
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|error| TlsError::UnsupportedKey { key: key_path.into(), reason: error.to_string() })?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        // `Unknown` means the key type cannot tell (never for aws-lc-rs keys); accept it.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(certified),
        Err(_) => Err(TlsError::Mismatch { cert: cert_path.into(), key: key_path.into() }),
    }
}

/// Modification times of the two files, to notice a renewal.
type Stamp = (Option<SystemTime>, Option<SystemTime>);

fn stamp(settings: &TlsSettings) -> Stamp {
    let modified = |path: &Path| std::fs::metadata(path).and_then(|meta| meta.modified()).ok();
    (modified(&settings.cert), modified(&settings.key))
}

/// The certificate presented to clients, swapped in place when its files change.
#[derive(Debug)]
pub struct ReloadingCert {
    /// Read on every handshake, written by the reload task on a renewal. A std `RwLock`:
    /// held only to clone or replace an `Arc`, never across `.await`.
    current: RwLock<Arc<CertifiedKey>>,
    settings: TlsSettings,
}

impl ReloadingCert {
    /// Loads the files; fails if they cannot be used.
    pub fn open(settings: TlsSettings) -> Result<ReloadingCert, TlsError> {
        let certified = load(&settings.cert, &settings.key)?;
        Ok(ReloadingCert { current: RwLock::new(Arc::new(certified)), settings })
    }

    /// The certificate chain presented now (leaf first).
    pub fn chain(&self) -> Vec<CertificateDer<'static>> {
        self.current.read().unwrap_or_else(|poisoned| poisoned.into_inner()).cert.clone()
    }

    /// Loads the files again; keeps the current certificate if they are not usable.
    pub fn reload(&self) -> Result<(), TlsError> {
        let certified = load(&self.settings.cert, &self.settings.key)?;
        *self.current.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(certified);
        Ok(())
    }

    /// Watches the files until `shutdown` flips, reloading after each change. Runs as a task
    /// of the server; ends with it.
    pub async fn watch(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut last = stamp(&self.settings);
        let mut tick = tokio::time::interval(self.settings.reload_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = async { shutdown.wait_for(|stop| *stop).await.is_ok() } => return,
            }
            let now = stamp(&self.settings);
            if now == last {
                continue;
            }
            // A renewal writes two files; one seen without the other fails to match and is
            // tried again at the next tick (`last` is kept until a reload succeeds).
            match self.reload() {
                Ok(()) => {
                    last = now;
                    metrics::counter!(crate::metrics::TLS_RELOADS, "outcome" => "ok").increment(1);
                    tracing::info!(cert = %self.settings.cert.display(), "TLS certificate reloaded");
                }
                Err(error) => {
                    metrics::counter!(crate::metrics::TLS_RELOADS, "outcome" => "failed").increment(1);
                    tracing::warn!(%error, "TLS certificate files changed but cannot be used; keeping the current one");
                }
            }
        }
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone())
    }
}

/// The rustls server configuration: TLS 1.2 and 1.3 from the aws-lc-rs provider, HTTP/1.1
/// by ALPN (WebSocket upgrades need it), the certificate from `cert`.
pub fn server_config(cert: Arc<ReloadingCert>) -> rustls::ServerConfig {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("the aws-lc-rs provider supports the default protocol versions")
        .with_no_client_auth()
        .with_cert_resolver(cert);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

/// What the server needs to accept TLS connections.
#[derive(Clone)]
pub struct Acceptor {
    pub acceptor: tokio_rustls::TlsAcceptor,
    pub cert: Arc<ReloadingCert>,
}

impl std::fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acceptor").field("cert", &self.cert.settings.cert).finish_non_exhaustive()
    }
}

impl Acceptor {
    /// Loads the certificate and builds the acceptor.
    pub fn new(settings: TlsSettings) -> Result<Acceptor, TlsError> {
        let cert = Arc::new(ReloadingCert::open(settings)?);
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config(cert.clone())));
        Ok(Acceptor { acceptor, cert })
    }
}

/// A certificate authority and a server certificate signed by it, made on the spot: for a
/// local trial (`switchboard serve --tls-self-signed`) and for tests. Never for production:
/// the CA's key is discarded, so it cannot sign anything else, and nobody trusts it until
/// told to.
#[derive(Debug, Clone)]
pub struct TrialCertificate {
    /// PEM of the certificate authority to trust.
    pub ca_pem: String,
    /// PEM chain: the server certificate, then the CA.
    pub chain_pem: String,
    /// PEM (PKCS#8) of the server certificate's key.
    pub key_pem: String,
    /// Base64 SHA-256 of the server certificate's public key (SubjectPublicKeyInfo): what
    /// Chromium's `--ignore-certificate-errors-spki-list` takes.
    pub spki_sha256: String,
}

/// Why a trial certificate could not be made.
#[derive(Debug, thiserror::Error)]
#[error("cannot make a certificate: {0}")]
pub struct TrialCertificateError(#[from] rcgen::Error);

impl TrialCertificate {
    /// A CA and a certificate for `hosts` (DNS names or IP addresses), valid from
    /// `not_before` to `not_after` (Unix seconds). ECDSA P-256 keys.
    pub fn generate(
        hosts: &[String],
        not_before: i64,
        not_after: i64,
    ) -> Result<TrialCertificate, TrialCertificateError> {
        use rcgen::{
            BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
            KeyPair, KeyUsagePurpose, PublicKeyData,
        };
        let time =
            |secs: i64| time::OffsetDateTime::from_unix_timestamp(secs).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.distinguished_name = DistinguishedName::new();
        ca_params.distinguished_name.push(DnType::CommonName, "Switchboard local trial CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca_params.not_before = time(not_before);
        ca_params.not_after = time(not_after);
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate()?;
        let mut params = CertificateParams::new(hosts.to_vec())?;
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, hosts.first().map_or("localhost", String::as_str));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = time(not_before);
        params.not_after = time(not_after);
        let server_cert = params.signed_by(&server_key, &issuer)?;

        let spki = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &server_key.subject_public_key_info());
        use base64::Engine;
        Ok(TrialCertificate {
            ca_pem: ca_cert.pem(),
            chain_pem: format!("{}{}", server_cert.pem(), ca_cert.pem()),
            key_pem: server_key.serialize_pem(),
            spki_sha256: base64::engine::general_purpose::STANDARD.encode(spki.as_ref()),
        })
    }
}
