//! Posture grade per the internet.nl mail test / NCSC-NL TLS guidelines 2025-05.
//!
//! Lists and thresholds from internet.nl `checks/tasks/tls/tls_constants.py`: TLS 1.3 Good, 1.2
//! Sufficient, everything older Insufficient; the Good/Sufficient/Phase-out suite lists, everything
//! else Insufficient; EC groups, FFDHE ≥ 3072 Phase-out; certificate keys (RSA ≥ 3072 Good,
//! 2048–3071 Sufficient) and signature algorithms (SHA-2/EdDSA Sufficient, SHA-224 Phase-out).

use serde::Serialize;

/// NCSC-NL category. Ordered from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// "Goed".
    Good,
    /// "Voldoende".
    Sufficient,
    /// "Uit te faseren".
    PhaseOut,
    /// "Onvoldoende".
    Insufficient,
}

impl Category {
    /// Short text.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Good => "good",
            Category::Sufficient => "sufficient",
            Category::PhaseOut => "phase_out",
            Category::Insufficient => "insufficient",
        }
    }
}

/// What a finding grades (serialized and shown as the snake_case name, e.g. `tls_version`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingItem {
    /// The negotiated protocol version.
    TlsVersion,
    /// The negotiated cipher suite.
    CipherSuite,
    /// The negotiated key-exchange group.
    KeyExchange,
    /// A protocol version the server also accepts (legacy ClientHellos).
    ProtocolAccepted,
    /// A cipher suite the server also accepts (legacy ClientHellos).
    SuiteAccepted,
    /// The public key of a certificate of the chain.
    CertPublicKey,
    /// The signature algorithm of a certificate of the chain.
    CertSignature,
    /// STARTTLS offered or not.
    Starttls,
}

impl FindingItem {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            FindingItem::TlsVersion => "tls_version",
            FindingItem::CipherSuite => "cipher_suite",
            FindingItem::KeyExchange => "key_exchange",
            FindingItem::ProtocolAccepted => "protocol_accepted",
            FindingItem::SuiteAccepted => "suite_accepted",
            FindingItem::CertPublicKey => "cert_public_key",
            FindingItem::CertSignature => "cert_signature",
            FindingItem::Starttls => "starttls",
        }
    }
}

impl std::fmt::Display for FindingItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// One graded fact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What was graded.
    pub item: FindingItem,
    /// The value seen (e.g. `TLSv1.3`, `TLS_AES_256_GCM_SHA384`, `X25519`, `RSA 2048`).
    pub value: String,
    /// Its category.
    pub category: Category,
}

/// A grade: the worst category of its findings, and the findings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Grade {
    /// Worst category among the findings (`insufficient` when nothing could be graded).
    pub category: Category,
    /// The findings.
    pub findings: Vec<Finding>,
}

impl Grade {
    /// Grade from findings.
    pub fn from_findings(findings: Vec<Finding>) -> Self {
        let category = findings
            .iter()
            .map(|f| f.category)
            .max()
            .unwrap_or(Category::Insufficient);
        Grade { category, findings }
    }
    /// Worst of several grades (findings concatenated).
    pub fn worst<'a>(grades: impl IntoIterator<Item = &'a Grade>) -> Grade {
        let mut findings = Vec::new();
        let mut category = None::<Category>;
        for g in grades {
            category = Some(category.map_or(g.category, |c| c.max(g.category)));
            findings.extend(g.findings.iter().cloned());
        }
        Grade {
            category: category.unwrap_or(Category::Insufficient),
            findings,
        }
    }
}

/// A finding.
pub fn finding(item: FindingItem, value: impl Into<String>, category: Category) -> Finding {
    Finding {
        item,
        value: value.into(),
        category,
    }
}

/// CIPHERS_GOOD (TLS 1.3).
pub const GOOD_SUITES: &[u16] = &[0x1302, 0x1303];
/// CIPHERS_SUFFICIENT, TLS 1.3 part.
pub const SUFFICIENT_SUITES_TLS13: &[u16] = &[0x1301, 0x1304];
/// CIPHERS_SUFFICIENT, TLS 1.2 part (ECDHE AEAD).
pub const SUFFICIENT_SUITES_TLS12: &[u16] = &[
    0xCCA9, 0xC02C, 0xC0AD, 0xC02B, 0xC0AC, 0xCCA8, 0xC030, 0xC02F,
];
/// CIPHERS_PHASE_OUT (36 suites).
pub const PHASE_OUT_SUITES: &[u16] = &[
    // ECDHE CAMELLIA / ARIA
    0xC072, 0xC073, 0xC076, 0xC077, 0xC086, 0xC087, 0xC08A, 0xC08B, 0xC048, 0xC049, 0xC04C, 0xC04D,
    0xC05C, 0xC05D, 0xC060, 0xC061, // ECDHE AES CBC SHA-2
    0xC024, 0xC028, 0xC023, 0xC027, // DHE-RSA
    0xCCAA, 0xC07D, 0xC07C, 0x00C4, 0x00BE, 0xC053, 0xC052, 0xC045, 0xC044, 0x009F, 0xC09F, 0x006B,
    0x009E, 0xC09E, 0x0067,
];

/// Category of a cipher suite code.
pub fn suite_category(code: u16) -> Category {
    if GOOD_SUITES.contains(&code) {
        Category::Good
    } else if SUFFICIENT_SUITES_TLS13.contains(&code) || SUFFICIENT_SUITES_TLS12.contains(&code) {
        Category::Sufficient
    } else if PHASE_OUT_SUITES.contains(&code) {
        Category::PhaseOut
    } else {
        Category::Insufficient
    }
}

/// IANA name of a cipher suite code.
pub fn suite_name(code: u16) -> String {
    let n = format!("{:?}", rustls::CipherSuite::from(code));
    if let Some(rest) = n.strip_prefix("TLS13_") {
        format!("TLS_{rest}")
    } else if n.starts_with("Unknown") {
        format!("0x{code:04X}")
    } else {
        n
    }
}

/// Name of a negotiated protocol version: `TLSv1.3`, `TLSv1.2`, or the rustls name of another.
pub fn protocol_name(v: rustls::ProtocolVersion) -> String {
    match v {
        rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".into(),
        rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".into(),
        other => format!("{other:?}"),
    }
}

/// Category of a negotiated protocol version.
pub fn version_category(v: rustls::ProtocolVersion) -> Category {
    match v {
        rustls::ProtocolVersion::TLSv1_3 => Category::Good,
        rustls::ProtocolVersion::TLSv1_2 => Category::Sufficient,
        _ => Category::Insufficient,
    }
}

/// Name and category of a key-exchange group.
pub fn group_category(g: rustls::NamedGroup) -> (String, Category) {
    use rustls::NamedGroup as G;
    let name = format!("{g:?}");
    let cat = match g {
        G::X25519 | G::X448 | G::secp256r1 | G::secp384r1 | G::secp521r1 => Category::Good,
        G::X25519MLKEM768 | G::secp256r1MLKEM768 => Category::Good,
        G::FFDHE3072 | G::FFDHE4096 | G::FFDHE6144 | G::FFDHE8192 => Category::PhaseOut,
        _ => Category::Insufficient,
    };
    (name, cat)
}

/// Grades the public key and signature algorithm of one certificate (internet.nl grades every
/// non-root certificate of the chain).
pub fn cert_findings(der: &[u8], position: usize) -> Vec<Finding> {
    let mut out = Vec::new();
    let Ok((_, c)) = x509_parser::parse_x509_certificate(der) else {
        out.push(finding(
            FindingItem::CertPublicKey,
            format!("#{position}: unparsable"),
            Category::Insufficient,
        ));
        return out;
    };
    if position > 0 && c.subject().as_raw() == c.issuer().as_raw() {
        return out; // a root sent along: not graded
    }
    let (key, kcat) = public_key(&c);
    out.push(finding(
        FindingItem::CertPublicKey,
        format!("#{position}: {key}"),
        kcat,
    ));
    let (sig, scat) = signature(&c);
    out.push(finding(
        FindingItem::CertSignature,
        format!("#{position}: {sig}"),
        scat,
    ));
    out
}

/// Name and category of a certificate's public key (RSA by size, ECDSA by curve, EdDSA).
fn public_key(c: &x509_parser::certificate::X509Certificate<'_>) -> (String, Category) {
    use x509_parser::public_key::PublicKey;
    let spki = c.public_key();
    let key_oid = spki.algorithm.algorithm.to_id_string();
    match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => {
            let bits = rsa.key_size();
            let cat = if bits >= 3072 {
                Category::Good
            } else if bits >= 2048 {
                Category::Sufficient
            } else {
                Category::Insufficient
            };
            (format!("RSA {bits}"), cat)
        }
        Ok(PublicKey::EC(_)) => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string())
                .unwrap_or_default();
            match curve.as_str() {
                "1.2.840.10045.3.1.7" => ("ECDSA P-256".into(), Category::Good),
                "1.3.132.0.34" => ("ECDSA P-384".into(), Category::Good),
                "1.3.132.0.35" => ("ECDSA P-521".into(), Category::Good),
                "1.3.36.3.3.2.8.1.1.7" => ("ECDSA brainpoolP256r1".into(), Category::Good),
                "1.3.36.3.3.2.8.1.1.11" => ("ECDSA brainpoolP384r1".into(), Category::Good),
                "1.3.36.3.3.2.8.1.1.13" => ("ECDSA brainpoolP512r1".into(), Category::Good),
                "1.3.132.0.33" => ("ECDSA secp224r1".into(), Category::Sufficient),
                other => (format!("ECDSA curve {other}"), Category::Insufficient),
            }
        }
        _ => match key_oid.as_str() {
            "1.3.101.112" => ("Ed25519".into(), Category::Good),
            "1.3.101.113" => ("Ed448".into(), Category::Good),
            other => (format!("key algorithm {other}"), Category::Insufficient),
        },
    }
}

/// Name and category of a certificate's signature algorithm (the OID when unknown).
fn signature(c: &x509_parser::certificate::X509Certificate<'_>) -> (String, Category) {
    let sig_oid = c.signature_algorithm.algorithm.to_id_string();
    let (sig, scat) = match sig_oid.as_str() {
        "1.2.840.113549.1.1.11" => ("sha256WithRSAEncryption", Category::Sufficient),
        "1.2.840.113549.1.1.12" => ("sha384WithRSAEncryption", Category::Sufficient),
        "1.2.840.113549.1.1.13" => ("sha512WithRSAEncryption", Category::Sufficient),
        "1.2.840.113549.1.1.10" => ("RSASSA-PSS", Category::Sufficient),
        "1.2.840.10045.4.3.2" => ("ecdsa-with-SHA256", Category::Sufficient),
        "1.2.840.10045.4.3.3" => ("ecdsa-with-SHA384", Category::Sufficient),
        "1.2.840.10045.4.3.4" => ("ecdsa-with-SHA512", Category::Sufficient),
        "1.3.101.112" => ("Ed25519", Category::Sufficient),
        "1.3.101.113" => ("Ed448", Category::Sufficient),
        "1.2.840.113549.1.1.14" => ("sha224WithRSAEncryption", Category::PhaseOut),
        "1.2.840.10045.4.3.1" => ("ecdsa-with-SHA224", Category::PhaseOut),
        "1.2.840.113549.1.1.5" => ("sha1WithRSAEncryption", Category::Insufficient),
        "1.2.840.10045.4.1" => ("ecdsa-with-SHA1", Category::Insufficient),
        "1.2.840.113549.1.1.4" => ("md5WithRSAEncryption", Category::Insufficient),
        _ => ("", Category::Insufficient),
    };
    let sig = if sig.is_empty() {
        sig_oid
    } else {
        sig.to_string()
    };
    (sig, scat)
}
