//! The two places where the gateway accepts a certificate that no CA vouches for — and nothing else.
//!
//! Both implement rustls's [`ServerCertVerifier`] through `rustls::client::danger`, the one door rustls
//! has for weakening certificate checks, so they stay together here, small and read in one sitting:
//!
//! - [`client_config`] for `stalwart.pin_spki_sha256`: the leaf certificate is accepted exactly when the
//!   SHA-256 of its SubjectPublicKeyInfo equals the pin. Names, issuer, chain and dates are not checked
//!   (the pin *is* the trust decision: Stalwart's self-signed certificate is for "localhost" and may be
//!   expired), but the handshake signature is, with the ring provider's algorithms, so the server must
//!   hold the pinned private key. Anything else fails the handshake with [`PinMismatch`] (both pins).
//! - [`peek`] for `stalwart-nta7516 stalwart trust`: it accepts any key (again checking the handshake
//!   signature) only to show the certificate to the operator, and closes the connection right after
//!   STARTTLS: no AUTH, no password, nothing sent over that session.

use std::sync::{Arc, Mutex};

use rustls::{
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::{verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms},
    DigitallySignedStruct, SignatureScheme,
};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::{Session, SmtpError};
use crate::config::SpkiPin;

/// The SPKI pin of a DER certificate.
pub fn spki_pin(cert: &CertificateDer<'_>) -> Result<SpkiPin, String> {
    let (_, x) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|e| format!("unparsable certificate: {e}"))?;
    Ok(SpkiPin::of_spki(x.tbs_certificate.subject_pki.raw))
}

/// A presented key that is not the pinned one (carried out of rustls in `rustls::Error::Other`).
#[derive(Debug, thiserror::Error)]
#[error("SPKI pin mismatch: expected {expected}, presented {presented}")]
pub struct PinMismatch {
    pub expected: SpkiPin,
    pub presented: SpkiPin,
}

/// A client configuration that trusts exactly the key with this pin.
pub fn client_config(pin: SpkiPin) -> rustls::ClientConfig {
    config_with(Arc::new(Verifier {
        accept: Accept::Pinned(pin),
        algorithms: ring_algorithms(),
    }))
}

/// Connects to `address`, EHLO, STARTTLS, and returns the certificate chain the listener presents
/// (leaf first), trusting nothing of it. Closes the connection without authenticating.
pub async fn peek(
    address: &str,
    helo: &str,
    server_name: ServerName<'static>,
    timeout: std::time::Duration,
) -> Result<Vec<CertificateDer<'static>>, SmtpError> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let config = config_with(Arc::new(Verifier {
        accept: Accept::AnyAndRecord(seen.clone()),
        algorithms: ring_algorithms(),
    }));
    let (session, _) = Session::connect(
        address,
        helo,
        timeout,
        Some((Arc::new(config), server_name)),
    )
    .await?;
    session.quit().await;
    let chain = std::mem::take(&mut *seen.lock().expect("not poisoned"));
    if chain.is_empty() {
        return Err(SmtpError::Tls(
            "the listener presented no certificate".into(),
        ));
    }
    Ok(chain)
}

fn ring_algorithms() -> WebPkiSupportedAlgorithms {
    rustls::crypto::ring::default_provider().signature_verification_algorithms
}

fn config_with(verifier: Arc<Verifier>) -> rustls::ClientConfig {
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the safe default versions")
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth()
}

#[derive(Debug)]
enum Accept {
    /// Exactly this key.
    Pinned(SpkiPin),
    /// Any key; the chain is recorded for the operator to look at (the `trust` command only).
    AnyAndRecord(Arc<Mutex<Vec<CertificateDer<'static>>>>),
}

#[derive(Debug)]
struct Verifier {
    accept: Accept,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented = spki_pin(end_entity).map_err(|_| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)
        })?;
        match &self.accept {
            Accept::Pinned(expected) if *expected == presented => {
                Ok(ServerCertVerified::assertion())
            }
            Accept::Pinned(expected) => Err(rustls::Error::Other(rustls::OtherError(Arc::new(
                PinMismatch {
                    expected: *expected,
                    presented,
                },
            )))),
            Accept::AnyAndRecord(seen) => {
                let mut seen = seen.lock().expect("not poisoned");
                seen.push(end_entity.clone().into_owned());
                seen.extend(intermediates.iter().map(|c| c.clone().into_owned()));
                Ok(ServerCertVerified::assertion())
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
