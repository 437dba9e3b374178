//! Exemptions: what lifts a recipient's 2FA requirement other than the policy itself, as typed values
//! with where each came from, and the one precedence rule that picks the one that applies.
//!
//! Precedence (DESIGN §3): a current verification, then an NTA 7516 peer, then an admin exemption.
//! Among peers: the configuration's peer list, then the database's, then a DNSSEC-validated
//! `v=NTA7516-1` record. Among admin exemptions: the configuration's (address, then domain), then the
//! database's (address, then domain). The reason texts are those recorded in the audit log.

use super::ReasonCode;

/// The kinds of exemption, in precedence order (the first that applies wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ExemptionKind {
    Verified,
    Peer,
    Admin,
}

impl ExemptionKind {
    pub fn code(self) -> ReasonCode {
        match self {
            ExemptionKind::Verified => ReasonCode::Verified,
            ExemptionKind::Peer => ReasonCode::NtaPeer,
            ExemptionKind::Admin => ReasonCode::AdminExemption,
        }
    }
}

/// Where an NTA 7516 peer is known from, in precedence order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerSource {
    /// `[[peers]]` in the configuration.
    ConfigList,
    /// The admin API's peer list (`peers` table).
    DatabaseList,
    /// The domain's DNSSEC-validated `v=NTA7516-1` TXT record (SmartTLS).
    DnsRecord,
}

impl PeerSource {
    /// How the reason text names the source.
    pub fn label(self) -> &'static str {
        match self {
            PeerSource::ConfigList | PeerSource::DatabaseList => "admin peer list",
            PeerSource::DnsRecord => "v=NTA7516-1 record",
        }
    }
}

/// What an admin exemption covers, in precedence order within one source.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    Address(String),
    Domain(String),
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scope::Address(a) => write!(f, "address {a}"),
            Scope::Domain(d) => write!(f, "domain {d}"),
        }
    }
}

/// Where an admin exemption comes from, in precedence order, with the admin's reason when recorded.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AdminReason {
    /// `[exemptions]` in the configuration (no reason is recorded there).
    Config,
    /// The admin API's exemption list, with the reason the admin gave.
    Database(String),
}

/// One exemption that may apply to a recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exemption {
    /// The recipient passed 2FA and is verified until this unix time (applies only while current).
    Verified { until: i64 },
    /// The recipient's domain is an NTA 7516 peer.
    Peer {
        provider: String,
        source: PeerSource,
    },
    /// An admin exemption for the recipient's address or domain.
    Admin { scope: Scope, reason: AdminReason },
}

impl Exemption {
    pub fn kind(&self) -> ExemptionKind {
        match self {
            Exemption::Verified { .. } => ExemptionKind::Verified,
            Exemption::Peer { .. } => ExemptionKind::Peer,
            Exemption::Admin { .. } => ExemptionKind::Admin,
        }
    }

    /// Whether it exempts the recipient at `now` (a verification expires; the others are current when
    /// gathered).
    pub fn applies(&self, now: i64) -> bool {
        match self {
            Exemption::Verified { until } => *until > now,
            Exemption::Peer { .. } | Exemption::Admin { .. } => true,
        }
    }

    /// The reason text, as recorded.
    pub fn text(&self) -> String {
        match self {
            Exemption::Verified { until } => {
                format!("recipient verified until {}", crate::time::rfc3339(*until))
            }
            Exemption::Peer { provider, source } => format!(
                "recipient domain is an NTA 7516 peer ({provider}, {})",
                source.label()
            ),
            Exemption::Admin {
                scope,
                reason: AdminReason::Config,
            } => format!("admin exemption: {scope} in the configuration"),
            Exemption::Admin {
                scope,
                reason: AdminReason::Database(why),
            } => format!("admin exemption: {scope}: {why}"),
        }
    }

    /// Orders exemptions by precedence: kind, then source, then scope.
    fn rank(&self) -> (ExemptionKind, u8, Option<&Scope>) {
        match self {
            Exemption::Verified { .. } => (ExemptionKind::Verified, 0, None),
            Exemption::Peer { source, .. } => (ExemptionKind::Peer, *source as u8, None),
            Exemption::Admin { scope, reason } => (
                ExemptionKind::Admin,
                matches!(reason, AdminReason::Database(_)) as u8,
                Some(scope),
            ),
        }
    }
}

/// The exemption that applies at `now`, by precedence; `None` when none does.
pub fn applicable(exemptions: &[Exemption], now: i64) -> Option<&Exemption> {
    exemptions
        .iter()
        .filter(|e| e.applies(now))
        .min_by(|a, b| a.rank().cmp(&b.rank()))
}

/// The peer that counts (by source precedence): its provider is what the policy sees.
pub fn peer(exemptions: &[Exemption]) -> Option<(&str, PeerSource)> {
    exemptions
        .iter()
        .filter_map(|e| match e {
            Exemption::Peer { provider, source } => Some((provider.as_str(), *source)),
            _ => None,
        })
        .min_by_key(|(_, source)| *source)
}

/// The recipient's verification time, current or not (a fact the policy reads).
pub fn verified_until(exemptions: &[Exemption]) -> Option<i64> {
    exemptions.iter().find_map(|e| match e {
        Exemption::Verified { until } => Some(*until),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer_from(source: PeerSource) -> Exemption {
        Exemption::Peer {
            provider: format!("{source:?}"),
            source,
        }
    }

    fn admin(scope: Scope, db: bool) -> Exemption {
        Exemption::Admin {
            scope,
            reason: if db {
                AdminReason::Database("why".into())
            } else {
                AdminReason::Config
            },
        }
    }

    #[test]
    fn precedence_is_verified_peer_admin_and_config_first() {
        let addr = || Scope::Address("a@x.test".into());
        let dom = || Scope::Domain("x.test".into());
        // Listed worst first: each step adds a better one, which must then win.
        let ladder = [
            admin(dom(), true),
            admin(addr(), true),
            admin(dom(), false),
            admin(addr(), false),
            peer_from(PeerSource::DnsRecord),
            peer_from(PeerSource::DatabaseList),
            peer_from(PeerSource::ConfigList),
            Exemption::Verified { until: 10 },
        ];
        for n in 1..=ladder.len() {
            let mut all = ladder[..n].to_vec();
            all.reverse();
            assert_eq!(applicable(&all, 0), Some(&ladder[n - 1]), "{n}");
            all.reverse();
            assert_eq!(applicable(&all, 0), Some(&ladder[n - 1]), "{n} reversed");
        }
    }

    #[test]
    fn an_expired_verification_does_not_apply() {
        let list = [Exemption::Verified { until: 10 }];
        assert_eq!(applicable(&list, 10), None);
        assert_eq!(applicable(&list, 9), Some(&list[0]));
        assert_eq!(verified_until(&list), Some(10));
    }

    #[test]
    fn peer_prefers_the_lists_over_dns() {
        let list = [
            peer_from(PeerSource::DnsRecord),
            peer_from(PeerSource::DatabaseList),
        ];
        assert_eq!(
            peer(&list),
            Some(("DatabaseList", PeerSource::DatabaseList))
        );
        assert_eq!(peer(&[]), None);
    }

    #[test]
    fn texts_are_the_recorded_ones() {
        assert_eq!(
            peer_from(PeerSource::ConfigList).text(),
            "recipient domain is an NTA 7516 peer (ConfigList, admin peer list)"
        );
        assert_eq!(
            peer_from(PeerSource::DnsRecord).text(),
            "recipient domain is an NTA 7516 peer (DnsRecord, v=NTA7516-1 record)"
        );
        assert_eq!(
            admin(Scope::Address("a@x.test".into()), false).text(),
            "admin exemption: address a@x.test in the configuration"
        );
        assert_eq!(
            admin(Scope::Domain("x.test".into()), true).text(),
            "admin exemption: domain x.test: why"
        );
        assert_eq!(
            Exemption::Verified { until: 0 }.text(),
            "recipient verified until 1970-01-01T00:00:00Z"
        );
    }
}
