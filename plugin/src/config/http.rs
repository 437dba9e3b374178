//! `[server]`, `[hook]`, `[webhook]` and `[admin]`: where the gateway listens and the secrets of its
//! HTTP surfaces (the MTA hook's token, Stalwart's webhook key, the admin API's token).

use std::{net::SocketAddr, path::PathBuf};

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// HTTP listen address for the hook, portal, admin API and metrics.
    pub listen: SocketAddr,
    /// The address recipients use to reach the portal.
    pub public_url: String,
    /// Threads that run the gateway's requests and workers; 0 = one per CPU core. One is the default:
    /// the gateway shares its machine with Stalwart, and one thread needs no hand-offs between threads
    /// (on a 2-core VM a quarter less CPU per message than two, and lower hook latency at Stalwart's
    /// rates). The database's own threads come on top.
    pub worker_threads: usize,
}

/// More threads than this is a typo, not a machine.
const MAX_WORKER_THREADS: usize = 1024;

impl ServerConfig {
    pub(super) fn validate(&self) -> Result<(), super::ConfigError> {
        if self.worker_threads > MAX_WORKER_THREADS {
            return Err(super::ConfigError::Invalid(format!(
                "server.worker_threads must be 0 (one per CPU core) … {MAX_WORKER_THREADS}, not {}",
                self.worker_threads
            )));
        }
        Ok(())
    }

    /// The number of runtime threads to start: `worker_threads`, or one per CPU core for 0.
    pub fn runtime_threads(&self) -> usize {
        match self.worker_threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8470".parse().expect("static address"),
            public_url: "http://127.0.0.1:8470".into(),
            worker_threads: 1,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HookConfig {
    /// Bearer token Stalwart sends (`Authorization: Bearer …`).
    pub token: Option<String>,
    pub token_file: Option<PathBuf>,
    /// How long the hook may wait for a SmartTLS verdict before treating it as unknown (held).
    #[serde(default = "default_budget")]
    pub tls_budget_ms: u64,
}

fn default_budget() -> u64 {
    3_000
}

impl Default for HookConfig {
    fn default() -> Self {
        HookConfig {
            token: None,
            token_file: None,
            tls_budget_ms: default_budget(),
        }
    }
}

/// Stalwart's webhook (`POST /v1/stalwart-events`). Without a key the intake refuses every request.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The `signature-key` configured in Stalwart (HMAC-SHA256 over the body, `X-Signature`).
    pub hmac_key: Option<String>,
    pub hmac_key_file: Option<PathBuf>,
}

/// The admin API (`/v1/admin/…`). Without a token the API refuses every request.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Bearer token for the admin API.
    pub token: Option<String>,
    pub token_file: Option<PathBuf>,
}
