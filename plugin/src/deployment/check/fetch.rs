//! Reading a live Stalwart through its management API into a [`StalwartView`]: the version (asked or
//! detected), then one request per settings prefix (v0.15) or per registry object (v0.16).

use std::collections::BTreeMap;

use super::rule::Expectations;
use super::view::{self, Registry, StalwartView, Version};
use crate::stalwart::{
    management::{Management, ManagementError},
    registry::{self, RegistryError},
    settings::{self, Settings},
};

/// `--version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionChoice {
    Auto,
    Fixed(Version),
}

impl std::str::FromStr for VersionChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(VersionChoice::Auto),
            "0.15" => Ok(VersionChoice::Fixed(Version::V015)),
            "0.16" => Ok(VersionChoice::Fixed(Version::V016)),
            other => Err(format!("--version {other:?}: auto, 0.15 or 0.16")),
        }
    }
}

/// Why the configuration could not be read (the checker's "unknown").
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(transparent)]
    Http(#[from] ManagementError),
    #[error("{what}: {source}")]
    Registry {
        what: &'static str,
        source: RegistryError,
    },
    #[error("{prefix}: not a settings answer: {source}")]
    Settings {
        prefix: &'static str,
        source: serde_json::Error,
    },
    #[error("neither a v0.16 registry nor a v0.15 settings API answered ({0})")]
    NoVersion(String),
}

/// The view of the server behind `client`, with what the rules for `want` read (the Sieve limits only
/// when `want.inbound`).
pub async fn fetch(
    client: &Management,
    version: VersionChoice,
    want: &Expectations,
) -> Result<StalwartView, FetchError> {
    let version = match version {
        VersionChoice::Fixed(v) => v,
        VersionChoice::Auto => detect(client).await?,
    };
    match version {
        Version::V015 => fetch_v015(client, want.inbound).await,
        Version::V016 => fetch_v016(client, want.inbound).await,
    }
}

/// v0.16 answers `x:MtaTlsStrategy/get`; v0.15 has no such method (an error, a 404, or a refusal of
/// the JMAP endpoint) but answers the settings list. A server that cannot be reached stops at once;
/// a refused login is reported only when the settings API refuses it too.
async fn detect(client: &Management) -> Result<Version, FetchError> {
    let jmap = client
        .post_json(
            registry::PATH,
            &registry::get_request("MtaTlsStrategy", false),
        )
        .await;
    let jmap_error = match jmap {
        Ok(body) => {
            match registry::parse_list::<registry::MtaTlsStrategy>("MtaTlsStrategy", &body) {
                Ok(_) => return Ok(Version::V016),
                Err(e) => e.to_string(),
            }
        }
        Err(
            e @ (ManagementError::Connect { .. }
            | ManagementError::Tls(_)
            | ManagementError::Timeout(_)),
        ) => return Err(e.into()),
        Err(e) => e.to_string(),
    };
    match client.get(&settings::list_path("queue.tls")).await {
        Ok(body) if Settings::parse(&body).is_ok() => Ok(Version::V015),
        Ok(_) => Err(FetchError::NoVersion(jmap_error)),
        Err(e @ ManagementError::Unauthorized { .. }) => Err(e.into()),
        Err(e) => Err(FetchError::NoVersion(format!("{jmap_error}; {e}"))),
    }
}

async fn fetch_v015(client: &Management, inbound: bool) -> Result<StalwartView, FetchError> {
    let mut by_prefix = BTreeMap::new();
    let extra = if inbound {
        settings::INBOUND_PREFIXES
    } else {
        &[]
    };
    for &prefix in settings::PREFIXES.iter().chain(extra) {
        let body = client.get(&settings::list_path(prefix)).await?;
        let s = Settings::parse(&body).map_err(|source| FetchError::Settings { prefix, source })?;
        by_prefix.insert(prefix.to_string(), s);
    }
    Ok(view::from_v015(&by_prefix))
}

async fn get<T: serde::de::DeserializeOwned>(
    client: &Management,
    what: &'static str,
    singleton: bool,
) -> Result<Vec<T>, FetchError> {
    let body = client
        .post_json(registry::PATH, &registry::get_request(what, singleton))
        .await?;
    registry::parse_list(what, &body).map_err(|source| FetchError::Registry { what, source })
}

async fn fetch_v016(c: &Management, inbound: bool) -> Result<StalwartView, FetchError> {
    let sieve_user = if inbound {
        // An empty answer is the singleton at its defaults.
        let list = get(c, "SieveUserInterpreter", true).await?;
        Some(list.into_iter().next().unwrap_or_default())
    } else {
        None
    };
    let r = Registry {
        tls_strategies: get(c, "MtaTlsStrategy", false).await?,
        outbound: get(c, "MtaOutboundStrategy", true)
            .await?
            .into_iter()
            .next(),
        hooks: get(c, "MtaHook", false).await?,
        listeners: get(c, "NetworkListener", false).await?,
        webhooks: get(c, "WebHook", false).await?,
        resolver: get(c, "DnsResolver", true).await?.into_iter().next(),
        stage_auth: get(c, "MtaStageAuth", true).await?.into_iter().next(),
        sender_auth: get(c, "SenderAuth", true).await?.into_iter().next(),
        domains: get(c, "Domain", false).await?,
        dkim: get(c, "DkimSignature", false).await?,
        sieve_user,
    };
    Ok(view::from_v016(&r))
}
