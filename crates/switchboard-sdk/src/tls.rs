//! TLS for `https://` and `wss://` servers: rustls with the aws-lc-rs provider (the one
//! crypto provider of the workspace), trusting the webpki roots (Mozilla's list, compiled
//! in, so the SDK behaves alike on every platform) plus any certificate authority the app
//! adds (`ClientBuilder::extra_root_certificate_pem`: a private CA, a local trial). A refused
//! certificate becomes [`SdkError::Certificate`] naming why, never a generic IO error.

use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{CertificateError, RootCertStore};

use crate::error::SdkError;

/// The client configuration: webpki roots plus `extra_roots` (PEM texts, each one or more
/// certificates). A PEM that holds no certificate is refused as `InvalidInput`.
pub(crate) fn client_config(extra_roots: &[String]) -> Result<Arc<rustls::ClientConfig>, SdkError> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for pem in extra_roots {
        let certificates = CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| SdkError::InvalidInput(format!("extra root certificate is not PEM: {error}")))?;
        if certificates.is_empty() {
            return Err(SdkError::InvalidInput(
                "extra root certificate holds no -----BEGIN CERTIFICATE----- block".into(),
            ));
        }
        for certificate in certificates {
            roots
                .add(certificate)
                .map_err(|error| SdkError::InvalidInput(format!("extra root certificate cannot be used: {error}")))?;
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| SdkError::InvalidInput(format!("TLS configuration: {error}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The certificate problem inside a failed connection attempt, if that is what failed.
pub(crate) fn certificate_error(error: &tokio_tungstenite::tungstenite::Error) -> Option<SdkError> {
    use tokio_tungstenite::tungstenite::Error;
    use tokio_tungstenite::tungstenite::error::TlsError;
    let rustls_error = match error {
        Error::Io(io) => io.get_ref()?.downcast_ref::<rustls::Error>()?,
        Error::Tls(TlsError::Rustls(error)) => error,
        Error::Tls(TlsError::InvalidDnsName) => {
            return Some(SdkError::Certificate("the server's address is not a valid host name for TLS".into()));
        }
        _ => return None,
    };
    let rustls::Error::InvalidCertificate(problem) = rustls_error else { return None };
    let reason = match problem {
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => "it has expired".to_owned(),
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "it is not valid yet (check the device's clock)".to_owned()
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            "it is not valid for this host name".to_owned()
        }
        CertificateError::UnknownIssuer => {
            "it is not signed by a trusted certificate authority (add the CA with extra_root_certificate_pem)"
                .to_owned()
        }
        CertificateError::Revoked => "it has been revoked".to_owned(),
        CertificateError::BadSignature | CertificateError::BadEncoding => "it is malformed or badly signed".to_owned(),
        other => format!("{other:?}"),
    };
    Some(SdkError::Certificate(reason))
}
