//! TLS handshake with a verifier that records every certificate problem instead of aborting.
//!
//! The [`RecordingVerifier`] runs independent checks (chain to a trusted root, validity period,
//! host name) so one problem never hides another, and classifies an untrusted chain as
//! self-signed, incomplete (a missing intermediate we know about) or unknown issuer. It accepts the
//! certificate so the probe can go on to DANE and grading, but the handshake signatures are still
//! verified by webpki: the server must prove it holds the key of the certificate it sent.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_cert_signed_by_trust_anchor, verify_server_name};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{
    CertificateError, DigitallySignedStruct, Error as TlsError, RootCertStore, SignatureScheme,
};
use serde::Serialize;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// One certificate problem, found independently of the others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CertProblem {
    /// `notAfter` is in the past.
    Expired { not_after: i64 },
    /// `notBefore` is in the future.
    NotYetValid { not_before: i64 },
    /// The leaf is self-signed (issuer = subject) and not a trusted root.
    SelfSigned,
    /// The chain does not reach a trusted root.
    UnknownIssuer,
    /// The server did not send an intermediate that is needed to reach a trusted root.
    IncompleteChain,
    /// The certificate is not valid for the MX host name.
    NameMismatch { presented: Vec<String> },
    /// Anything else webpki rejects (bad encoding, bad signature, wrong usage …).
    Invalid { error: String },
}

impl CertProblem {
    /// Stable short code (matches the `cert_*` reason codes).
    pub fn code(&self) -> &'static str {
        match self {
            CertProblem::Expired { .. } => "cert_expired",
            CertProblem::NotYetValid { .. } => "cert_not_yet_valid",
            CertProblem::SelfSigned => "cert_self_signed",
            CertProblem::UnknownIssuer => "cert_unknown_issuer",
            CertProblem::IncompleteChain => "cert_incomplete_chain",
            CertProblem::NameMismatch { .. } => "cert_name_mismatch",
            CertProblem::Invalid { .. } => "cert_invalid",
        }
    }
}

/// Roots and known intermediates used for PKIX validation.
#[derive(Debug)]
pub struct TrustStore {
    /// Trusted roots (webpki-roots plus the configured `ca_file`).
    pub roots: Arc<RootCertStore>,
    /// Intermediates seen in earlier handshakes, used only to tell "incomplete chain" from
    /// "unknown issuer".
    pub known_intermediates: Mutex<Vec<CertificateDer<'static>>>,
}

/// A verifier that records instead of rejecting.
#[derive(Debug)]
pub struct RecordingVerifier {
    store: Arc<TrustStore>,
    algs: WebPkiSupportedAlgorithms,
    /// Filled during the handshake.
    pub record: Mutex<Option<CertCheck>>,
}

/// What the verifier saw.
#[derive(Debug, Clone, Default)]
pub struct CertCheck {
    /// Every problem found.
    pub problems: Vec<CertProblem>,
    /// The certificates sent by the server, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
}

impl RecordingVerifier {
    /// New verifier for one handshake.
    pub fn new(store: Arc<TrustStore>, provider: &CryptoProvider) -> Self {
        Self {
            store,
            algs: provider.signature_verification_algorithms,
            record: Mutex::new(None),
        }
    }

    /// Every problem of the presented chain, each found independently of the others.
    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        now: UnixTime,
    ) -> CertCheck {
        let mut chain = vec![end_entity.clone().into_owned()];
        chain.extend(intermediates.iter().map(|c| c.clone().into_owned()));
        let mut problems = Vec::new();
        let parsed = match ParsedCertificate::try_from(end_entity) {
            Ok(p) => p,
            Err(e) => {
                problems.push(CertProblem::Invalid {
                    error: e.to_string(),
                });
                return CertCheck { problems, chain };
            }
        };
        // 1. Host name, independently of everything else.
        problems.extend(name_problem(&parsed, server_name));
        // 2. Chain + time: dates first, then trust.
        let chain_check = ChainCheck {
            parsed: &parsed,
            roots: &self.store.roots,
            intermediates,
            algs: &self.algs,
        };
        let (result, at) = chain_check.dates(end_entity, now, &mut problems);
        match result {
            Ok(()) => self.remember_intermediates(intermediates),
            Err(e) => problems.push(self.trust_problem(e, end_entity, &chain_check, at)),
        }
        CertCheck { problems, chain }
    }

    /// What a chain that failed verification (after the dates were dealt with) is: self-signed,
    /// incomplete (it verifies with intermediates seen before), unknown issuer, or otherwise invalid.
    fn trust_problem(
        &self,
        e: TlsError,
        end_entity: &CertificateDer<'_>,
        chain_check: &ChainCheck<'_, '_>,
        at: UnixTime,
    ) -> CertProblem {
        // A self-signed leaf is self-signed whatever webpki stumbles on first: `UnknownIssuer` for a
        // `CA:FALSE` one, `CaUsedAsEndEntity` for the `CA:TRUE` one `openssl req -x509` makes.
        if is_self_signed(end_entity)
            && matches!(
                e,
                TlsError::InvalidCertificate(
                    CertificateError::UnknownIssuer | CertificateError::Other(_)
                )
            )
        {
            return CertProblem::SelfSigned;
        }
        match e {
            TlsError::InvalidCertificate(CertificateError::UnknownIssuer) => {
                let known = self
                    .store
                    .known_intermediates
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone();
                if !known.is_empty() && chain_check.verify(at, &known).is_ok() {
                    CertProblem::IncompleteChain
                } else {
                    CertProblem::UnknownIssuer
                }
            }
            TlsError::InvalidCertificate(CertificateError::ExpiredContext { .. })
            | TlsError::InvalidCertificate(CertificateError::NotValidYetContext { .. }) => {
                // An intermediate is out of its validity period as well; already recorded for the leaf
                // or not: record as invalid.
                CertProblem::Invalid {
                    error: "a certificate in the chain is outside its validity period".into(),
                }
            }
            e => CertProblem::Invalid {
                error: e.to_string(),
            },
        }
    }

    /// Keeps the intermediates of a chain that verified (up to 1000), to recognise incomplete chains
    /// later.
    fn remember_intermediates(&self, intermediates: &[CertificateDer<'_>]) {
        let mut known = self
            .store
            .known_intermediates
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for c in intermediates {
            if !known.iter().any(|k| k.as_ref() == c.as_ref()) && known.len() < 1000 {
                known.push(c.clone().into_owned());
            }
        }
    }
}

/// The host name problem of the leaf, if any.
fn name_problem(
    parsed: &ParsedCertificate<'_>,
    server_name: &ServerName<'_>,
) -> Option<CertProblem> {
    let e = verify_server_name(parsed, server_name).err()?;
    let presented = match e {
        TlsError::InvalidCertificate(CertificateError::NotValidForNameContext {
            presented,
            ..
        }) => presented,
        _ => vec![],
    };
    Some(CertProblem::NameMismatch { presented })
}

/// Verification of the leaf against the trusted roots with the sent (and possibly extra)
/// intermediates, at a chosen moment.
struct ChainCheck<'a, 'c> {
    parsed: &'a ParsedCertificate<'c>,
    roots: &'a RootCertStore,
    intermediates: &'a [CertificateDer<'c>],
    algs: &'a WebPkiSupportedAlgorithms,
}

impl ChainCheck<'_, '_> {
    fn verify(&self, at: UnixTime, extra: &[CertificateDer<'_>]) -> Result<(), TlsError> {
        let mut all: Vec<CertificateDer<'_>> = self.intermediates.to_vec();
        all.extend(extra.iter().cloned());
        verify_server_cert_signed_by_trust_anchor(self.parsed, self.roots, &all, at, self.algs.all)
    }

    /// Verifies at `now`; on a time error records it and verifies again at a moment inside the
    /// validity period (at most twice), so that the trust question is answered too. Returns the last
    /// result and the moment it was verified at.
    fn dates(
        &self,
        end_entity: &CertificateDer<'_>,
        now: UnixTime,
        problems: &mut Vec<CertProblem>,
    ) -> (Result<(), TlsError>, UnixTime) {
        let mut result = self.verify(now, &[]);
        let mut at = now;
        for _ in 0..2 {
            let Some(next) = date_problem(&result, end_entity, now, problems) else {
                break;
            };
            at = next;
            result = self.verify(at, &[]);
        }
        (result, at)
    }
}

/// If `result` is a time error: records it in `problems` and returns a moment inside the validity
/// period to verify at again. `None`: not a time error (or no dates to be found), stop.
fn date_problem(
    result: &Result<(), TlsError>,
    end_entity: &CertificateDer<'_>,
    now: UnixTime,
    problems: &mut Vec<CertProblem>,
) -> Option<UnixTime> {
    let at = |secs: u64| UnixTime::since_unix_epoch(Duration::from_secs(secs));
    match result {
        Err(TlsError::InvalidCertificate(CertificateError::ExpiredContext {
            not_after, ..
        })) => {
            problems.push(CertProblem::Expired {
                not_after: not_after.as_secs() as i64,
            });
            Some(at(not_after.as_secs().saturating_sub(1)))
        }
        Err(TlsError::InvalidCertificate(CertificateError::NotValidYetContext {
            not_before,
            ..
        })) => {
            problems.push(CertProblem::NotYetValid {
                not_before: not_before.as_secs() as i64,
            });
            Some(at(not_before.as_secs() + 1))
        }
        Err(TlsError::InvalidCertificate(CertificateError::Expired))
        | Err(TlsError::InvalidCertificate(CertificateError::NotValidYet)) => {
            // Context-free variants: use x509-parser for the dates.
            let (nb, na) = validity(end_entity)?;
            if now.as_secs() as i64 > na {
                problems.push(CertProblem::Expired { not_after: na });
                Some(at((na - 1).max(0) as u64))
            } else {
                problems.push(CertProblem::NotYetValid { not_before: nb });
                Some(at((nb + 1).max(0) as u64))
            }
        }
        _ => None,
    }
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        let rec = self.check(end_entity, intermediates, server_name, now);
        *self.record.lock().unwrap_or_else(|e| e.into_inner()) = Some(rec);
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// `(notBefore, notAfter)` in Unix seconds.
pub fn validity(der: &CertificateDer<'_>) -> Option<(i64, i64)> {
    let (_, c) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    Some((
        c.validity().not_before.timestamp(),
        c.validity().not_after.timestamp(),
    ))
}

/// Issuer equals subject.
pub fn is_self_signed(der: &CertificateDer<'_>) -> bool {
    match x509_parser::parse_x509_certificate(der.as_ref()) {
        Ok((_, c)) => c.subject().as_raw() == c.issuer().as_raw(),
        Err(_) => false,
    }
}

/// Facts of a completed handshake.
#[derive(Debug, Clone)]
pub struct Session {
    /// e.g. `TLSv1_3`.
    pub version: rustls::ProtocolVersion,
    /// Negotiated suite.
    pub suite: rustls::CipherSuite,
    /// Key-exchange group, if any.
    pub group: Option<rustls::NamedGroup>,
    /// Certificate facts.
    pub cert: CertCheck,
}

/// Why the handshake did not complete.
#[derive(Debug, Clone)]
pub enum HandshakeError {
    /// No answer in time.
    Timeout,
    /// The server sent an alert / closed / spoke something else.
    Failed(String),
    /// The server refused our versions (protocol_version alert) or had no common suite.
    NoCommonProtocol(String),
}

/// The crypto provider used everywhere (ring).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Performs the TLS 1.2/1.3 handshake on `tcp` for `host` (SNI and name check) and closes it.
pub async fn handshake(
    tcp: TcpStream,
    host: &str,
    store: Arc<TrustStore>,
    timeout: Duration,
) -> Result<Session, HandshakeError> {
    let provider = provider();
    let verifier = Arc::new(RecordingVerifier::new(store, &provider));
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| HandshakeError::Failed(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    let name = ServerName::try_from(host.trim_end_matches('.').to_string())
        .map_err(|e| HandshakeError::Failed(format!("bad server name: {e}")))?;
    let connector = TlsConnector::from(Arc::new(config));
    let tls = match tokio::time::timeout(timeout, connector.connect(name, tcp)).await {
        Err(_) => return Err(HandshakeError::Timeout),
        Ok(Err(e)) => {
            let msg = e.to_string();
            let inner = e.get_ref().and_then(|i| i.downcast_ref::<TlsError>());
            return Err(match inner {
                Some(TlsError::AlertReceived(
                    rustls::AlertDescription::ProtocolVersion
                    | rustls::AlertDescription::HandshakeFailure
                    | rustls::AlertDescription::InsufficientSecurity,
                ))
                | Some(TlsError::PeerIncompatible(_)) => HandshakeError::NoCommonProtocol(msg),
                _ => HandshakeError::Failed(msg),
            });
        }
        Ok(Ok(t)) => t,
    };
    let (_, conn) = tls.get_ref();
    let version = conn
        .protocol_version()
        .unwrap_or(rustls::ProtocolVersion::Unknown(0));
    let suite = conn
        .negotiated_cipher_suite()
        .map(|s| s.suite())
        .unwrap_or(rustls::CipherSuite::Unknown(0));
    let group = conn.negotiated_key_exchange_group().map(|g| g.name());
    let cert = verifier
        .record
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .unwrap_or_default();
    // Polite close: close_notify; the SMTP session is abandoned (the server sees EOF).
    let mut tls = tls;
    let _ = tokio::time::timeout(
        Duration::from_millis(200),
        tokio::io::AsyncWriteExt::shutdown(&mut tls),
    )
    .await;
    Ok(Session {
        version,
        suite,
        group,
        cert,
    })
}
