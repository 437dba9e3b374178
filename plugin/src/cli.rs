//! Command-line interface (clap): `serve` and the admin tools.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "stalwart-nta7516",
    version,
    about = "NTA 7516 secure-mail gateway for Stalwart"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway. Without --config: the embedded default (SQLite under ./data, loopback, SMS codes
    /// in the log).
    Serve {
        /// Gateway configuration file (TOML).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Data directory of the embedded default.
        #[arg(long, default_value = "data")]
        data_dir: PathBuf,
    },
    /// Check a configuration file and exit (0 = valid).
    CheckConfig {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Manage recipients, exemptions, peers, held messages and domain settings (local database, or a
    /// running gateway with --url).
    Admin(stalwart_nta7516::admin::client::AdminArgs),
    /// The audit log: verify the hash chain, proof-of-delivery reports, exports.
    Audit(stalwart_nta7516::admin::client::AuditArgs),
}
