//! What the gateway needs on the Stalwart side, derived from the gateway's own configuration: one typed
//! value that the renderers turn into Stalwart's formats (`crate::stalwart::render`).
//!
//! Nothing here is a Stalwart format: names, addresses, ports and URLs only.

use std::net::{IpAddr, SocketAddr};

use crate::config::Config;

/// The Stalwart listener names the gateway relies on (the hook's `enable` expression, the strategy
/// selection and the limiter exemptions name them).
pub const RELEASE_LISTENER: &str = "nta-release";
pub const NOTIFY_LISTENER: &str = "nta-notify";
/// The strict TLS strategy behind every "deliver" decision, and the notify-only one.
pub const STRICT_STRATEGY: &str = "nta7516";
pub const NOTIFY_STRATEGY: &str = "nta-notify";
/// The gateway's paths Stalwart calls (routed in `crate::http`).
pub const HOOK_PATH: &str = "/v1/mta-hook";
pub const INBOUND_HOOK_PATH: &str = "/v1/mta-hook/inbound";
pub const EVENTS_PATH: &str = "/v1/stalwart-events";
/// The environment variables Stalwart reads the hook token and the webhook key from.
pub const HOOK_TOKEN_ENV: &str = "NTA_HOOK_TOKEN";
pub const WEBHOOK_KEY_ENV: &str = "NTA_WEBHOOK_HMAC";
/// The id of Stalwart's port-25 listener, where mail from the internet arrives: the name its default
/// configuration gives it (v0.15.5 `resources/config/config.toml` `[server.listener."smtp"]`, v0.16.18
/// `crates/common/src/manager/defaults.rs` `("smtp", 25)`). The gateway has no setting for it.
pub const SMTP_LISTENER: &str = "smtp";

/// One Stalwart SMTP listener the gateway submits to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayListener {
    pub name: &'static str,
    /// The address Stalwart binds: the IP the gateway connects to, or every address when the gateway
    /// names Stalwart by host name (then a firewall must keep the port off the Internet).
    pub bind: SocketAddr,
    /// True when `bind` is the wildcard address because the gateway names the host.
    pub wildcard: bool,
}

/// The gateway's service account as Stalwart sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccount {
    /// What Stalwart's `authenticated_as` holds: the login the gateway authenticates with.
    pub login: String,
    /// The account's name inside its domain (v0.16 `Account.name`).
    pub name: String,
    pub domain: String,
}

/// Everything the rendered Stalwart configuration is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StalwartSide {
    /// Where Stalwart calls the MTA hook.
    pub hook_url: String,
    /// Where Stalwart posts its webhook events.
    pub events_url: String,
    pub release: GatewayListener,
    pub notify: GatewayListener,
    pub account: ServiceAccount,
    /// Domains whose outgoing mail Stalwart signs with DKIM.
    pub local_domains: Vec<String>,
    /// The DKIM selector of the first key (from `[doctor] dkim_selectors`, else `nta1`).
    pub dkim_selector: String,
    /// The webhook events to subscribe to: exactly those the audit records
    /// ([`crate::audit::delivery::RECORDED`]).
    pub webhook_events: &'static [&'static str],
    /// `[inbound] enabled`: the second hook and the user-Sieve redirect limit; `None` when off.
    pub inbound: Option<InboundSide>,
}

/// What inbound checks need from Stalwart: a DATA hook for mail from the internet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundSide {
    /// Where Stalwart calls the inbound hook.
    pub hook_url: String,
    /// The listener internet mail arrives on ([`SMTP_LISTENER`]).
    pub listener: &'static str,
}

/// Why a configuration cannot be rendered.
#[derive(Debug, thiserror::Error)]
pub enum SideError {
    #[error("the configuration has no [stalwart] section: add release, notify, username and notify_from (see the README, \"Deploying next to Stalwart\")")]
    NoStalwartSection,
    #[error("stalwart.{key} = {value:?} is not host:port")]
    BadAddress { key: &'static str, value: String },
    #[error("stalwart.release and stalwart.notify must use different ports (the notify port selects the notify-only TLS strategy)")]
    SamePort,
    #[error(
        "organisation.local_domains is empty: Stalwart must sign the organisation's mail with DKIM"
    )]
    NoLocalDomain,
    #[error("the service account {0:?} is not in one of organisation.local_domains")]
    AccountDomain(String),
}

impl StalwartSide {
    pub fn from_config(config: &Config) -> Result<StalwartSide, SideError> {
        let s = config
            .stalwart
            .as_ref()
            .ok_or(SideError::NoStalwartSection)?;
        let release = listener(RELEASE_LISTENER, "release", &s.release)?;
        let notify = listener(NOTIFY_LISTENER, "notify", &s.notify)?;
        if release.bind.port() == notify.bind.port() {
            return Err(SideError::SamePort);
        }
        let local_domains = config.organisation.local_domains.clone();
        let first = local_domains.first().ok_or(SideError::NoLocalDomain)?;
        let base = gateway_base_url(config);
        let account = service_account(&s.username, first);
        if !local_domains.contains(&account.domain) {
            return Err(SideError::AccountDomain(account.login));
        }
        Ok(StalwartSide {
            hook_url: format!("{base}{HOOK_PATH}"),
            events_url: format!("{base}{EVENTS_PATH}"),
            release,
            notify,
            account,
            local_domains,
            dkim_selector: config
                .doctor
                .dkim_selectors
                .first()
                .cloned()
                .unwrap_or_else(|| "nta1".into()),
            webhook_events: crate::audit::delivery::RECORDED,
            inbound: config.inbound.enabled.then(|| InboundSide {
                hook_url: format!("{base}{INBOUND_HOOK_PATH}"),
                listener: SMTP_LISTENER,
            }),
        })
    }
}

/// Stalwart reaches the gateway at `stalwart.gateway_url` when set; else at its listen address when
/// that is one address, and through `server.public_url` when the gateway listens on every address.
fn gateway_base_url(config: &Config) -> String {
    let listen = config.server.listen;
    if let Some(url) = config
        .stalwart
        .as_ref()
        .and_then(|s| s.gateway_url.as_ref())
    {
        url.trim_end_matches('/').to_string()
    } else if listen.ip().is_unspecified() {
        config.server.public_url.trim_end_matches('/').to_string()
    } else {
        format!("http://{listen}")
    }
}

fn listener(
    name: &'static str,
    key: &'static str,
    value: &str,
) -> Result<GatewayListener, SideError> {
    let bad = || SideError::BadAddress {
        key,
        value: value.into(),
    };
    if let Ok(addr) = value.parse::<SocketAddr>() {
        return Ok(GatewayListener {
            name,
            bind: addr,
            wildcard: false,
        });
    }
    let (host, port) = value.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    if host.is_empty() || host.contains(['[', ']', ' ']) {
        return Err(bad());
    }
    Ok(GatewayListener {
        name,
        bind: SocketAddr::new(IpAddr::from([0, 0, 0, 0]), port),
        wildcard: true,
    })
}

fn service_account(login: &str, first_domain: &str) -> ServiceAccount {
    match login.rsplit_once('@') {
        Some((name, domain)) => ServiceAccount {
            login: login.into(),
            name: name.into(),
            domain: domain.into(),
        },
        None => ServiceAccount {
            login: format!("{login}@{first_domain}"),
            name: login.into(),
            domain: first_domain.into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Config {
        let text = format!(
            "[organisation]\nlocal_domains = [\"zorg.test\"]\n[stalwart]\nrelease = \"127.0.0.1:10025\"\n\
             notify = \"127.0.0.1:10026\"\nusername = \"svc-nta\"\npassword = \"x\"\n\
             notify_from = \"beveiligd@zorg.test\"\n{extra}"
        );
        Config::parse(&text, std::path::Path::new("t.toml"), std::iter::empty()).unwrap()
    }

    #[test]
    fn loopback_gateway_is_called_at_its_listen_address() {
        let side = StalwartSide::from_config(&config("")).unwrap();
        assert_eq!(side.hook_url, "http://127.0.0.1:8470/v1/mta-hook");
        assert_eq!(side.account.login, "svc-nta@zorg.test");
        assert_eq!(side.release.bind.to_string(), "127.0.0.1:10025");
        assert!(!side.notify.wildcard);
        assert_eq!(side.dkim_selector, "nta1");
        assert_eq!(side.inbound, None);
        let side = StalwartSide::from_config(&config("[inbound]\nenabled = true\n")).unwrap();
        let inbound = side.inbound.unwrap();
        assert_eq!(
            inbound.hook_url,
            "http://127.0.0.1:8470/v1/mta-hook/inbound"
        );
        assert_eq!(inbound.listener, "smtp");
    }

    #[test]
    fn wildcard_gateway_is_called_at_its_public_url_and_host_names_bind_everywhere() {
        let mut c = config("");
        c.server.listen = "0.0.0.0:8470".parse().unwrap();
        c.server.public_url = "https://gw.zorg.test/".into();
        let s = c.stalwart.as_mut().unwrap();
        s.release = "mail.zorg.test:10025".into();
        let side = StalwartSide::from_config(&c).unwrap();
        assert_eq!(side.events_url, "https://gw.zorg.test/v1/stalwart-events");
        assert!(side.release.wildcard);
        assert_eq!(side.release.bind.to_string(), "0.0.0.0:10025");
        c.stalwart.as_mut().unwrap().gateway_url = Some("http://gateway:8470".into());
        let side = StalwartSide::from_config(&c).unwrap();
        assert_eq!(side.hook_url, "http://gateway:8470/v1/mta-hook");
    }

    #[test]
    fn bad_inputs_are_named() {
        let mut c = config("");
        c.stalwart.as_mut().unwrap().notify = "127.0.0.1:10025".into();
        assert!(matches!(
            StalwartSide::from_config(&c),
            Err(SideError::SamePort)
        ));
        c.stalwart.as_mut().unwrap().notify = "mail.zorg.test".into();
        let e = StalwartSide::from_config(&c).unwrap_err().to_string();
        assert!(e.contains("stalwart.notify"), "{e}");
        c.stalwart = None;
        assert!(matches!(
            StalwartSide::from_config(&c),
            Err(SideError::NoStalwartSection)
        ));
    }
}
