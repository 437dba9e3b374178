//! Test PKI with rcgen: a root CA, an intermediate CA, an untrusted CA, and leaf certificates with
//! chosen defects. All keys are ECDSA P-256 (ring cannot generate RSA keys).

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, CertifiedIssuer, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Kinds of leaf certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeafKind {
    /// Valid, issued by the intermediate, chain includes the intermediate.
    Good,
    /// Expired (2020–2021).
    Expired,
    /// Valid only from 2040.
    NotYetValid,
    /// Self-signed, `CA:FALSE` (rcgen's end-entity shape).
    SelfSigned,
    /// Self-signed the way `openssl req -x509` makes one: `basicConstraints = critical, CA:TRUE`, no
    /// extended key usage.
    SelfSignedCa,
    /// The `openssl req -x509` shape, expired as well.
    SelfSignedCaExpired,
    /// Issued by the intermediate, but the server sends only the leaf.
    NoIntermediate,
    /// Issued by a CA nobody trusts.
    UntrustedCa,
}

/// A certificate chain and its key.
#[derive(Debug)]
pub struct CertKey {
    /// Leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// PKCS#8 key DER.
    pub key_der: Vec<u8>,
    /// Chain as PEM.
    pub chain_pem: String,
    /// Key as PEM.
    pub key_pem: String,
}

impl CertKey {
    /// The key for rustls.
    pub fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }
    /// TLSA `3 1 1` data (hex SHA-256 of the leaf SPKI).
    pub fn tlsa_311(&self) -> String {
        crate::dane::spki_sha256_hex(&self.chain[0]).unwrap_or_default()
    }
}

impl Clone for CertKey {
    fn clone(&self) -> Self {
        CertKey {
            chain: self.chain.clone(),
            key_der: self.key_der.clone(),
            chain_pem: self.chain_pem.clone(),
            key_pem: self.key_pem.clone(),
        }
    }
}

/// The test PKI.
pub struct TestPki {
    root: CertifiedIssuer<'static, KeyPair>,
    inter: CertifiedIssuer<'static, KeyPair>,
    untrusted: CertifiedIssuer<'static, KeyPair>,
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, cn);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = date_time_ymd(2019, 1, 1);
    p.not_after = date_time_ymd(2049, 1, 1);
    p
}

fn pem(der: &[u8]) -> String {
    use std::fmt::Write;
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b = String::new();
    for c in der.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                b.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                b.push('=');
            }
        }
    }
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b.as_bytes().chunks(64) {
        let _ = writeln!(out, "{}", std::str::from_utf8(line).unwrap_or(""));
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

impl TestPki {
    /// Generates the CAs.
    pub fn new() -> Self {
        let root = CertifiedIssuer::self_signed(
            ca_params("SmartTLS Test Root"),
            KeyPair::generate().expect("key"),
        )
        .expect("root");
        let inter = CertifiedIssuer::signed_by(
            ca_params("SmartTLS Test Intermediate"),
            KeyPair::generate().expect("key"),
            &root,
        )
        .expect("intermediate");
        let untrusted = CertifiedIssuer::self_signed(
            ca_params("Untrusted Test CA"),
            KeyPair::generate().expect("key"),
        )
        .expect("untrusted");
        TestPki {
            root,
            inter,
            untrusted,
        }
    }

    /// PEM for `ca_file`: the root and the intermediate (the intermediate only helps diagnose
    /// incomplete chains).
    pub fn ca_file_pem(&self) -> String {
        format!("{}{}", self.root.pem(), self.inter.pem())
    }

    /// Root certificate PEM.
    pub fn root_pem(&self) -> String {
        self.root.pem()
    }

    /// Root certificate DER.
    pub fn root_der(&self) -> CertificateDer<'static> {
        self.root.der().clone()
    }

    /// A leaf for `names` of the given kind.
    pub fn leaf(&self, names: &[&str], kind: LeafKind) -> CertKey {
        let names: Vec<String> = names
            .iter()
            .map(|s| s.trim_end_matches('.').to_string())
            .collect();
        let mut p = CertificateParams::new(names.clone()).expect("params");
        p.distinguished_name.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_default(),
        );
        p.is_ca = IsCa::NoCa;
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.not_before = date_time_ymd(2024, 1, 1);
        p.not_after = date_time_ymd(2045, 1, 1);
        if matches!(kind, LeafKind::SelfSignedCa | LeafKind::SelfSignedCaExpired) {
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.extended_key_usages = vec![];
            p.key_usages = vec![];
        }
        match kind {
            LeafKind::Expired | LeafKind::SelfSignedCaExpired => {
                p.not_before = date_time_ymd(2020, 1, 1);
                p.not_after = date_time_ymd(2021, 1, 1);
            }
            LeafKind::NotYetValid => {
                p.not_before = date_time_ymd(2040, 1, 1);
                p.not_after = date_time_ymd(2045, 1, 1);
            }
            _ => {}
        }
        let key = KeyPair::generate().expect("key");
        let (leaf, chain_extra): (CertificateDer<'static>, Vec<CertificateDer<'static>>) =
            match kind {
                LeafKind::SelfSigned | LeafKind::SelfSignedCa | LeafKind::SelfSignedCaExpired => {
                    (p.self_signed(&key).expect("sign").der().clone(), vec![])
                }
                LeafKind::UntrustedCa => (
                    p.signed_by(&key, &self.untrusted)
                        .expect("sign")
                        .der()
                        .clone(),
                    vec![self.untrusted.der().clone()],
                ),
                LeafKind::NoIntermediate => (
                    p.signed_by(&key, &self.inter).expect("sign").der().clone(),
                    vec![],
                ),
                _ => (
                    p.signed_by(&key, &self.inter).expect("sign").der().clone(),
                    vec![self.inter.der().clone()],
                ),
            };
        let mut chain = vec![leaf];
        chain.extend(chain_extra);
        let chain_pem = chain.iter().map(|c| pem(c.as_ref())).collect::<String>();
        CertKey {
            chain,
            key_der: key.serialize_der(),
            chain_pem,
            key_pem: key.serialize_pem(),
        }
    }
}

impl Default for TestPki {
    fn default() -> Self {
        Self::new()
    }
}
