//! # stalwart-nta7516
//!
//! An NTA 7516 secure-mail gateway that runs next to the Stalwart mail server. Stalwart calls the gateway's
//! MTA hook at the DATA stage of every authenticated submission; the gateway decides per recipient whether
//! the message goes out now (the recipient's servers pass SmartTLS and no 2FA is needed), waits for the
//! recipient's 2FA, goes to the portal, or is refused — and holds what must wait, encrypted, before it
//! answers. Every error ends in "held" or "temporary failure", never in an insecure delivery.
//!
//! Layout (one job per module):
//! - [`stalwart`]: wire types of Stalwart's hook protocol and webhook, and the renderers of its configuration
//!   formats, nothing else;
//! - [`deployment`]: the Stalwart side of a deployment (render, check, trust);
//! - [`policy`]: the typed decision pipeline and its seams (policy, TLS verdicts);
//! - [`submission`]: one hook call, from facts to decisions to the hook answer;
//! - [`hold`]: envelope encryption of held content and the retention job;
//! - [`store`]: the database (SQLite or PostgreSQL through sqlx);
//! - [`challenge`]: recipient 2FA (tokens, codes, rate limits, SMS, notification mails, the worker);
//! - [`portal`]: the recipient's and sender's web pages;
//! - [`stalwart_submit`]: the SMTP client that submits releases and notifications to Stalwart;
//! - [`http`]: the axum application — it mounts hook, webhook, admin API and portal; the leaves
//!   [`http::problem`] and [`http::auth`] are what those surfaces share;
//! - [`config`]: the TOML configuration, one file per section group; [`metrics`]: Prometheus;
//! - [`audit`]: the hash-chained audit log, delivery evidence and proof-of-delivery reports;
//! - [`admin`]: the admin REST API (recipients, exemptions, peers, holds, settings, audit) and its CLI;
//! - [`doctor`]: the readiness check of the organisation's own domain;
//! - [`bulk`]: personalised secure mail from a CSV, submitted through Stalwart (`bulk check`, `bulk send`);
//! - [`fsperm`]: the private modes of the data directory, the database and the secret files.

pub mod admin;
pub mod audit;
pub mod bulk;
pub mod challenge;
pub mod config;
pub mod deployment;
pub mod doctor;
pub mod escape;
pub mod fsperm;
#[doc(hidden)]
pub mod fuzzing;
pub mod hold;
pub mod http;
pub mod ids;
pub mod inbound;
pub mod metrics;
pub mod policy;
pub mod portal;
pub mod secrets;
pub mod stalwart;
pub mod stalwart_submit;
pub mod store;
pub mod submission;
pub mod time;

use std::sync::{Arc, RwLock};

use config::Config;
use hold::MasterKey;
use metrics::Metrics;
use policy::{Policy, TlsVerdicts};
use store::Store;

/// The running gateway: configuration, storage, keys and the two decision seams. Shared by every handler.
pub struct Gateway {
    pub config: Config,
    pub store: Store,
    pub master: MasterKey,
    pub hook_token: String,
    pub tls: Arc<dyn TlsVerdicts>,
    policy: RwLock<Arc<dyn Policy>>,
    pub metrics: Metrics,
    /// Secrets created on this start (embedded default), named for the start-up banner.
    pub generated: Vec<&'static str>,
    /// Keys for link tokens, code hashes and CSRF values (derived from the master key).
    pub keys: challenge::Keys,
    /// The SMS sender (`[sms] mode`).
    pub sms: Arc<dyn challenge::sms::SmsSender>,
    /// Wakes the notification/release worker (after a hook commit, a verification, a phone number).
    pub wake: Arc<challenge::worker::Wake>,
    /// The worker's SMTP sessions to Stalwart's notify and release listeners, kept between passes.
    pub notify_session: stalwart_submit::Kept,
    pub release_session: stalwart_submit::Kept,
    /// HMAC key of Stalwart's webhook; `None`: the intake refuses every request.
    pub webhook_key: Option<String>,
    /// Admin API bearer token; `None`: the admin API refuses every request.
    pub admin_token: Option<String>,
    /// The last `stalwart check` (`[stalwart] management_url`): what the hook reads without a lock.
    pub stalwart_check: Arc<deployment::check::monitor::Monitor>,
    /// Verifies received mail (SPF, DKIM, DMARC, ARC) for the inbound hook, with its DNS caches; none
    /// while `[inbound] enabled = false`.
    pub inbound: Option<inbound::Verifier>,
    /// The organisation's looks (`[branding]`, logos read and checked at start), per sender domain.
    pub brands: config::Brands,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Key(#[from] hold::crypto::KeyError),
    #[error(transparent)]
    Secret(#[from] secrets::SecretError),
    #[error("SMS configuration: {0}")]
    Sms(String),
    #[error("inbound checks: {0}")]
    Inbound(String),
    #[error(transparent)]
    Config(#[from] config::ConfigError),
}

impl Gateway {
    /// Opens the store (running migrations) and loads the secrets. With `generate_secrets`, missing
    /// secret files are created (the embedded default, 0600 in a 0700 folder); otherwise a missing secret
    /// is an error. Logs a warning for each private file or folder that is more open than that.
    pub async fn start(
        config: Config,
        tls: Arc<dyn TlsVerdicts>,
        policy: Arc<dyn Policy>,
        generate_secrets: bool,
    ) -> Result<Arc<Gateway>, StartError> {
        let hook_token = secrets::resolve(
            "hook token",
            config.hook.token.as_deref(),
            config.hook.token_file.as_deref(),
            generate_secrets,
            secrets::new_token,
        )?;
        let master_hex = secrets::resolve(
            "hold master key",
            config.hold.master_key.as_deref(),
            config.hold.master_key_file.as_deref(),
            generate_secrets,
            || MasterKey::generate_hex().map_err(|e| e.to_string()),
        )?;
        let master = MasterKey::from_hex(&master_hex.value)?;
        let webhook_key = secrets::resolve_optional(
            "webhook HMAC key",
            config.webhook.hmac_key.as_deref(),
            config.webhook.hmac_key_file.as_deref(),
            generate_secrets,
            secrets::new_token,
        )?;
        let admin_token = secrets::resolve_optional(
            "admin token",
            config.admin.token.as_deref(),
            config.admin.token_file.as_deref(),
            generate_secrets,
            secrets::new_token,
        )?;
        let generated = [
            ("hook token", hook_token.generated),
            ("hold master key", master_hex.generated),
            (
                "webhook HMAC key",
                webhook_key.as_ref().is_some_and(|s| s.generated),
            ),
            (
                "admin token",
                admin_token.as_ref().is_some_and(|s| s.generated),
            ),
        ]
        .into_iter()
        .filter_map(|(what, g)| g.then_some(what))
        .collect();
        let store = Store::connect(&config.storage.url, config.storage.max_connections).await?;
        fsperm::warn_if_open(&config.private_paths());
        let keys = challenge::Keys::derive(&master_hex.value);
        let sms = challenge::sms::from_config(&config.sms)
            .await
            .map_err(StartError::Sms)?;
        let inbound = match config.inbound.enabled {
            true => Some(inbound_verifier(&config).map_err(StartError::Inbound)?),
            false => None,
        };
        let brands = config::Brands::load(&config.branding)?;
        Ok(Arc::new(Gateway {
            brands,
            inbound,
            stalwart_check: Arc::new(deployment::check::monitor::Monitor::new(&config)),
            keys,
            sms,
            wake: Arc::default(),
            notify_session: Default::default(),
            release_session: Default::default(),
            config,
            store,
            master,
            hook_token: hook_token.value,
            tls,
            policy: RwLock::new(policy),
            metrics: Metrics::default(),
            generated,
            webhook_key: webhook_key.map(|s| s.value),
            admin_token: admin_token.map(|s| s.value),
        }))
    }

    /// The active policy.
    pub fn policy(&self) -> Arc<dyn Policy> {
        self.policy
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Swaps in a new policy (after it compiled).
    pub fn set_policy(&self, policy: Arc<dyn Policy>) {
        *self.policy.write().unwrap_or_else(|p| p.into_inner()) = policy;
    }
}

/// mail-auth on the configured resolver (`smarttls.resolver`, else the system's), with SmartTLS's DNS
/// timeout; the summary header's host name as SPF's receiver. `policy test --inbound` uses the same.
pub fn inbound_verifier(config: &Config) -> Result<inbound::Verifier, String> {
    let probe = &config.smarttls.probe;
    inbound::Verifier::new(
        probe.resolver,
        std::time::Duration::from_millis(probe.dns_timeout_ms),
        config.inbound_host(),
    )
}
