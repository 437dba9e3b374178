//! The authentication of one received message with `mail-auth` (Stalwart's own library): SPF for the
//! MAIL FROM and EHLO identities against the client's address, every DKIM signature, DMARC alignment
//! and the sender's policy, and the ARC chain where there is one. DNS answers are cached for their TTL
//! per name (the key record `selector._domainkey.domain`, the SPF and DMARC records), so a second
//! message from the same sender costs no lookup.
//!
//! mail-auth's results become the typed [`AuthResults`]: nothing after this step sees mail-auth types.

use std::{
    borrow::Borrow,
    collections::HashMap,
    hash::Hash,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::Mutex,
    time::{Duration, Instant},
};

use crate::policy::{AuthResult, AuthResults, DkimCheck, DmarcCheck, DmarcPolicy};
use mail_auth::{
    dmarc::{verify::DmarcParameters, Policy},
    hickory_resolver::config::{ResolverConfig, ResolverOpts},
    spf::verify::SpfParameters,
    AuthenticatedMessage, DkimResult, DmarcResult, MessageAuthenticator, Parameters, RecordSet,
    ResolverCache, SpfResult, Txt, MX,
};

/// The shortest time a denial (no such name, no TXT record) is cached.
const NEGATIVE_TTL_SECS: u64 = 60;

/// mail-auth's parameters with the gateway's caches.
macro_rules! cached {
    ($c:expr, $p:expr) => {
        Parameters::new($p)
            .with_txt_cache(&$c.txt)
            .with_mx_cache(&$c.mx)
            .with_ipv4_cache(&$c.ipv4)
            .with_ipv6_cache(&$c.ipv6)
            .with_ptr_cache(&$c.ptr)
    };
}

/// mail-auth with the configured resolver and TTL caches. One per gateway.
pub struct Verifier {
    auth: MessageAuthenticator,
    caches: Caches,
    /// The host name SPF macros call the receiver (`%{r}`).
    host: String,
}

/// What the message came with.
pub struct Envelope<'a> {
    pub ip: IpAddr,
    pub helo: &'a str,
    /// MAIL FROM; "" for a null sender.
    pub mail_from: &'a str,
}

impl Verifier {
    /// `resolver`: the recursive resolver (`smarttls.resolver`), else the system's.
    pub fn new(
        resolver: Option<SocketAddr>,
        timeout: Duration,
        host: &str,
    ) -> Result<Verifier, String> {
        let mut opts = ResolverOpts::default();
        opts.timeout = timeout;
        opts.attempts = 2;
        opts.ndots = 0;
        // mail-auth caches records it parsed, never a missing one (a HELO name without SPF, a
        // domain without DMARC): without a floor, hickory keeps a denial without SOA for 0 s and
        // every message would ask again.
        opts.negative_min_ttl = Some(Duration::from_secs(NEGATIVE_TTL_SECS));
        let auth = match resolver {
            Some(addr) => {
                let ns = nta7516_smarttls::dns::name_server(addr);
                MessageAuthenticator::new(ResolverConfig::from_parts(None, vec![], vec![ns]), opts)
            }
            None => {
                let (config, _) = mail_auth::hickory_resolver::system_conf::read_system_conf()
                    .map_err(|e| format!("system resolver configuration: {e}"))?;
                MessageAuthenticator::new(config, opts)
            }
        }
        .map_err(|e| format!("inbound verification resolver: {e}"))?;
        Ok(Verifier {
            auth,
            caches: Caches::default(),
            host: host.to_string(),
        })
    }

    /// Verifies one message. Never fails: a DNS problem is a `temperror` in the result it affects.
    pub async fn verify(&self, raw: &[u8], body_altered: bool, env: &Envelope<'_>) -> AuthResults {
        let c = &self.caches;
        let helo = if env.helo.is_empty() {
            "unknown"
        } else {
            env.helo
        };
        let spf_helo = self
            .auth
            .verify_spf(cached!(
                c,
                SpfParameters::verify_ehlo(env.ip, helo, &self.host)
            ))
            .await;
        let spf_mail_from = match env.mail_from {
            "" => spf_helo.clone(),
            from => {
                let p = SpfParameters::verify_mail_from(env.ip, helo, &self.host, from);
                self.auth.verify_spf(cached!(c, p)).await
            }
        };
        let spf_results = (spf(spf_mail_from.result()), spf(spf_helo.result()));
        let Some(msg) = AuthenticatedMessage::parse(raw) else {
            let why = "the message's header cannot be parsed";
            return AuthResults::unjudged(
                spf_results.0,
                spf_results.1,
                AuthResult::PermError,
                why,
                false,
            );
        };
        let dkim_out = match body_altered {
            true => Vec::new(),
            false => self.auth.verify_dkim(cached!(c, &msg)).await,
        };
        let arc = match msg.as_headers.is_empty() {
            true => AuthResult::None,
            false => dkim(self.auth.verify_arc(cached!(c, &msg)).await.result()),
        };
        let mail_from_domain = env
            .mail_from
            .rsplit_once('@')
            .map_or(helo, |(_, d)| d)
            .to_ascii_lowercase();
        let spf_for_dmarc = match env.mail_from {
            "" => &spf_helo,
            _ => &spf_mail_from,
        };
        let p = DmarcParameters::new(&msg, &dkim_out, &mail_from_domain, spf_for_dmarc);
        let dmarc_out = self.auth.verify_dmarc(cached!(c, p)).await;
        AuthResults {
            spf_mail_from: spf_results.0,
            spf_helo: spf_results.1,
            dkim: dkim_out.iter().map(dkim_check).collect(),
            dmarc: dmarc_check(&dmarc_out),
            arc,
            body_altered,
        }
    }
}

fn dkim_check(o: &mail_auth::DkimOutput<'_>) -> DkimCheck {
    DkimCheck {
        result: dkim(o.result()),
        domain: o
            .signature()
            .map(|s| s.d.to_ascii_lowercase())
            .unwrap_or_default(),
        selector: o.signature().map(|s| s.s.clone()).unwrap_or_default(),
        detail: dkim_detail(o.result()),
    }
}

fn dmarc_check(o: &mail_auth::DmarcOutput) -> DmarcCheck {
    let (result, detail) = dmarc(&o.result());
    DmarcCheck {
        result,
        domain: o.domain().to_ascii_lowercase(),
        policy: match o.policy() {
            Policy::Reject => DmarcPolicy::Reject,
            Policy::Quarantine => DmarcPolicy::Quarantine,
            Policy::None | Policy::Unspecified => DmarcPolicy::None,
        },
        detail,
    }
}

fn spf(r: SpfResult) -> AuthResult {
    match r {
        SpfResult::Pass => AuthResult::Pass,
        SpfResult::Fail => AuthResult::Fail,
        SpfResult::SoftFail => AuthResult::SoftFail,
        SpfResult::Neutral => AuthResult::Neutral,
        SpfResult::TempError => AuthResult::TempError,
        SpfResult::PermError => AuthResult::PermError,
        SpfResult::None => AuthResult::None,
    }
}

fn dkim(r: &DkimResult) -> AuthResult {
    match r {
        DkimResult::Pass => AuthResult::Pass,
        DkimResult::Neutral(_) => AuthResult::Neutral,
        DkimResult::Fail(_) => AuthResult::Fail,
        DkimResult::PermError(_) => AuthResult::PermError,
        DkimResult::TempError(_) => AuthResult::TempError,
        DkimResult::None => AuthResult::None,
    }
}

fn dkim_detail(r: &DkimResult) -> Option<String> {
    match r {
        DkimResult::Neutral(e)
        | DkimResult::Fail(e)
        | DkimResult::PermError(e)
        | DkimResult::TempError(e) => Some(e.to_string()),
        DkimResult::Pass | DkimResult::None => None,
    }
}

fn dmarc(r: &DmarcResult) -> (AuthResult, Option<String>) {
    match r {
        DmarcResult::Pass => (AuthResult::Pass, None),
        DmarcResult::Fail(e) => (AuthResult::Fail, Some(e.to_string())),
        DmarcResult::TempError(e) => (AuthResult::TempError, Some(e.to_string())),
        DmarcResult::PermError(e) => (AuthResult::PermError, Some(e.to_string())),
        DmarcResult::None => (AuthResult::None, None),
    }
}

/// The most names each cache keeps; past that, expired entries go first, then everything.
const CACHE_ENTRIES: usize = 16_384;

/// A DNS answer cache honouring the TTL mail-auth hands in (`valid_until`).
pub struct TtlCache<K, V>(Mutex<HashMap<K, (V, Instant)>>);

impl<K, V> Default for TtlCache<K, V> {
    fn default() -> Self {
        TtlCache(Mutex::new(HashMap::new()))
    }
}

impl<K: Hash + Eq, V: Clone> ResolverCache<K, V> for TtlCache<K, V> {
    fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key)
            .filter(|(_, until)| *until > Instant::now())
            .map(|(v, _)| v.clone())
    }

    fn remove<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(key).map(|(v, _)| v)
    }

    fn insert(&self, key: K, value: V, valid_until: Instant) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= CACHE_ENTRIES {
            let now = Instant::now();
            map.retain(|_, (_, until)| *until > now);
            if map.len() >= CACHE_ENTRIES {
                map.clear();
            }
        }
        map.insert(key, (value, valid_until));
    }
}

#[derive(Default)]
struct Caches {
    txt: TtlCache<Box<str>, Txt>,
    mx: TtlCache<Box<str>, RecordSet<MX>>,
    ipv4: TtlCache<Box<str>, RecordSet<Ipv4Addr>>,
    ipv6: TtlCache<Box<str>, RecordSet<Ipv6Addr>>,
    ptr: TtlCache<IpAddr, RecordSet<Box<str>>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_forgets_an_answer_when_its_ttl_ends() {
        let c: TtlCache<Box<str>, u32> = TtlCache::default();
        c.insert("a.".into(), 1, Instant::now() + Duration::from_secs(60));
        c.insert("b.".into(), 2, Instant::now() - Duration::from_secs(1));
        assert_eq!(c.get("a."), Some(1));
        assert_eq!(c.get("b."), None, "expired");
        assert_eq!(c.remove("a."), Some(1));
        assert_eq!(c.get("a."), None);
    }

    #[test]
    fn the_cache_stays_bounded() {
        let c: TtlCache<u32, u32> = TtlCache::default();
        let later = Instant::now() + Duration::from_secs(60);
        for i in 0..(CACHE_ENTRIES as u32 + 10) {
            c.insert(i, i, later);
        }
        assert!(c.0.lock().unwrap().len() <= CACHE_ENTRIES);
    }
}
