//! The TLS client configuration for `wss://` (RFC 6455 §3, §4.1: "if /secure/ is true, the
//! client MUST perform a TLS handshake over the connection"): rustls with the `ring` crypto
//! provider, ALPN `http/1.1`, SNI from the URL's host, and the trust roots the user asked for.
//!
//! - Roots: the system's store (`rustls-native-certs`: `/etc/ssl/certs` and what `SSL_CERT_FILE`
//!   / `SSL_CERT_DIR` point to, the same roots `curl` and browsers on the machine trust), plus
//!   `--ca-file PEM` for a private CA.
//! - `--insecure`: any certificate is accepted (for self-signed test servers); the handshake's
//!   signatures are still checked, so the connection costs what a verified one costs.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// How a run trusts servers.
#[derive(Debug, Clone, Default)]
pub(crate) struct TrustOptions {
    /// Extra roots from a PEM file.
    pub ca_file: Option<std::path::PathBuf>,
    /// Accept any certificate.
    pub insecure: bool,
}

/// The shared client configuration. Errors are usage errors (a bad `--ca-file`).
pub(crate) fn client_config(trust: &TrustOptions) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|error| format!("TLS setup: {error}"))?;
    let mut config = if trust.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate { provider }))
            .with_no_client_auth()
    } else {
        builder
            .with_root_certificates(roots(trust.ca_file.as_deref())?)
            .with_no_client_auth()
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The system's roots plus those of `ca_file`.
fn roots(ca_file: Option<&Path>) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    let (added, _ignored) = store.add_parsable_certificates(native.certs);
    if let Some(path) = ca_file {
        let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|error| format!("--ca-file {}: {error}", path.display()))?
            .collect::<Result<_, _>>()
            .map_err(|error| format!("--ca-file {}: {error}", path.display()))?;
        if certificates.is_empty() {
            return Err(format!(
                "--ca-file {}: no PEM certificate in it",
                path.display()
            ));
        }
        for certificate in certificates {
            store.add(certificate).map_err(|error| {
                format!(
                    "--ca-file {}: not a usable CA certificate: {error}",
                    path.display()
                )
            })?;
        }
    } else if added == 0 {
        return Err(
            "no trusted roots: the system's store is empty (install ca-certificates), or give --ca-file or --insecure".into(),
        );
    }
    Ok(store)
}

/// The name the server's certificate must carry, and the SNI sent: the URL's host.
pub(crate) fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(host.to_owned())
        .map_err(|_| format!("`{host}` is not a host name TLS can check"))
}

/// `--insecure`: accepts every certificate, still checks handshake signatures.
#[derive(Debug)]
struct AcceptAnyCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            certificate,
            signature,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            certificate,
            signature,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configurations_offer_http_1_1() {
        let insecure = client_config(&TrustOptions {
            ca_file: None,
            insecure: true,
        })
        .unwrap();
        assert_eq!(insecure.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }

    #[test]
    fn a_missing_or_empty_ca_file_is_a_clear_error() {
        let error = client_config(&TrustOptions {
            ca_file: Some("/nonexistent/ca.pem".into()),
            insecure: false,
        })
        .unwrap_err();
        assert!(error.contains("--ca-file /nonexistent/ca.pem"), "{error}");
        let empty = std::env::temp_dir().join(format!("loadgen-empty-{}.pem", std::process::id()));
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let error = client_config(&TrustOptions {
            ca_file: Some(empty.clone()),
            insecure: false,
        })
        .unwrap_err();
        let _ = std::fs::remove_file(&empty);
        assert!(error.contains("no PEM certificate"), "{error}");
    }

    #[test]
    fn hosts_and_addresses_are_server_names() {
        assert!(server_name("example.com").is_ok());
        assert!(server_name("127.0.0.1").is_ok());
        assert!(server_name("bad host").is_err());
    }
}
