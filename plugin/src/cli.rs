//! Command-line interface (clap): `serve`, `probe`, `doctor`, `check-config`, `policy`, `stalwart` and the admin
//! and audit tools ([`stalwart_nta7516::admin::client`] defines those). Definitions only: `main` runs
//! them.

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
    /// Probe a recipient domain's mail servers with SmartTLS and print the report (exit 0 = secure,
    /// 1 = insecure or unknown, 2 = usage or configuration error).
    Probe {
        /// The recipient domain, e.g. `example.nl`.
        domain: String,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        net: ProbeArgs,
    },
    /// Check your own domain's mail readiness, internet.nl style: DNSSEC, MX, STARTTLS/TLS,
    /// certificates, DANE, SPF, DKIM, DMARC, MTA-STS, TLS-RPT and the v=NTA7516-1 record
    /// (exit 0 = no check failed, warnings allowed; 1 = a check failed; 2 = usage or configuration error).
    Doctor {
        /// Your mail domain, e.g. `zorg.example.nl`.
        domain: String,
        /// Print the report as JSON (schema in the README, "doctor").
        #[arg(long)]
        json: bool,
        /// (`--config` also supplies [doctor] dkim_selectors; `--dkim-selector` adds to them.)
        #[command(flatten)]
        net: ProbeArgs,
        /// A DKIM selector whose key must be published (repeatable; added to [doctor] dkim_selectors).
        #[arg(long = "dkim-selector", value_name = "S")]
        dkim_selectors: Vec<String>,
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
    /// Personalised secure mail from a CSV: check a template and a CSV, or send them through Stalwart.
    #[command(subcommand)]
    Bulk(stalwart_nta7516::bulk::BulkCommand),
    /// Sieve policies (`vnd.nta7516`): check one before deploying it, or dry-run it on a message.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// The Stalwart side of the deployment: render it, check a live Stalwart, trust its listener's
    /// certificate.
    #[command(subcommand)]
    Stalwart(StalwartCommand),
}

#[derive(Debug, Subcommand)]
pub enum StalwartCommand {
    /// Print the complete Stalwart configuration this gateway needs (v0.15: TOML to merge into
    /// config.toml; v0.16: an NDJSON plan for `stalwart-cli apply`, safe to apply again).
    Render {
        /// Stalwart's release line.
        #[arg(long, value_enum)]
        version: VersionArg,
        /// Gateway configuration file (TOML) with [stalwart] and organisation.local_domains (the
        /// embedded default has neither, so this is needed in practice).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Fetch the certificate of Stalwart's nta-release/nta-notify listener (EHLO, STARTTLS, not
    /// trusted, no AUTH), print it with its SPKI pin, and with --write pin it in the config
    /// (exit 0 = shown/written, 2 = error). Over a non-loopback address only with --yes or a confirmation.
    Trust {
        /// The listener, e.g. 127.0.0.1:10025 (default: the config's stalwart.release).
        #[arg(value_name = "HOST:PORT")]
        address: Option<String>,
        /// Gateway configuration: EHLO name, TLS server name and timeout from [stalwart]; the file
        /// --write changes.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Write stalwart.pin_spki_sha256 into --config (comments kept; a ca_file there is removed).
        #[arg(long)]
        write: bool,
        /// Trust what a non-loopback address presents without asking (compare the pin out of band first).
        #[arg(long)]
        yes: bool,
    },
    /// Read a live Stalwart's configuration through its management API and check it rule by rule
    /// (exit 0 = no rule failed, warnings allowed; 1 = a rule failed; 2 = usage or connection error).
    Check {
        /// Stalwart's management (HTTP) URL, e.g. http://127.0.0.1:8080
        #[arg(long)]
        url: String,
        /// HTTP Basic user (Stalwart's administrator).
        #[arg(long, requires = "password_file")]
        user: Option<String>,
        /// File with the user's password.
        #[arg(long, value_name = "FILE", requires = "user")]
        password_file: Option<PathBuf>,
        /// File with a bearer token instead of user and password.
        #[arg(long, value_name = "FILE", conflicts_with = "user")]
        token_file: Option<PathBuf>,
        /// PEM roots for an https URL (else the Mozilla roots).
        #[arg(long, value_name = "PEM")]
        ca_file: Option<PathBuf>,
        /// Stalwart's line: auto (detect), 0.15 (settings API) or 0.16 (JMAP registry).
        #[arg(long, default_value = "auto")]
        version: stalwart_nta7516::deployment::check::VersionChoice,
        /// This gateway's configuration: its URL, service account and local domains.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Stalwart release lines, as typed on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum VersionArg {
    #[value(name = "0.15")]
    V015,
    #[value(name = "0.16")]
    V016,
}

impl From<VersionArg> for stalwart_nta7516::stalwart::render::StalwartVersion {
    fn from(v: VersionArg) -> Self {
        match v {
            VersionArg::V015 => Self::V015,
            VersionArg::V016 => Self::V016,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Compile and check a policy (exit 0 = deployable, 1 = refused; errors as FILE:LINE:COLUMN: message).
    Check {
        /// The Sieve policy file.
        file: PathBuf,
    },
    /// Evaluate a policy on a message for each recipient and print the decision and reasons.
    Test {
        /// The Sieve policy file.
        file: PathBuf,
        /// The message (RFC 5322, e.g. a saved .eml).
        #[arg(long, value_name = "MSG")]
        eml: PathBuf,
        /// Envelope sender (MAIL FROM; with --inbound, "" is the null sender).
        #[arg(long, value_name = "ADDR", visible_alias = "mail-from")]
        from: String,
        /// Envelope recipient; repeat for more (each is evaluated on its own).
        #[arg(long, value_name = "ADDR", required = true)]
        to: Vec<String>,
        /// A fact for every recipient, e.g. `tls=insecure`, `peer_provider=ZorgMail`, `sender_group=gdpr`
        /// (names without the `vnd.nta7516.` prefix; unknown names become extra facts).
        #[arg(long, value_name = "KEY=VALUE", conflicts_with = "inbound")]
        fact: Vec<String>,
        /// Received mail: verify the message's SPF, DKIM and DMARC as the inbound hook does (DNS through
        /// the configuration's smarttls.resolver), look up the From domain's peer status ([[peers]],
        /// then its DNS record) and print the results, the facts the policy sees and the inbound action.
        #[arg(long, requires_all = ["config", "client_ip", "helo"])]
        inbound: bool,
        /// With --inbound: the gateway configuration ([inbound] rules, [smarttls], [[peers]]).
        #[arg(long, short, value_name = "FILE", requires = "inbound")]
        config: Option<PathBuf>,
        /// With --inbound: the sending server's address.
        #[arg(long, value_name = "IP", requires = "inbound")]
        client_ip: Option<std::net::IpAddr>,
        /// With --inbound: the sending server's EHLO name.
        #[arg(long, value_name = "NAME", requires = "inbound")]
        helo: Option<String>,
        /// With --inbound: the TLS version of the sending server's connection (TLSv1.0 … TLSv1.3);
        /// absent means plaintext.
        #[arg(long, value_name = "VERSION", requires = "inbound", value_parser = tls_version)]
        tls_version: Option<stalwart_nta7516::policy::TlsVersion>,
    },
    /// Make a running gateway re-read its policy file (like SIGHUP; a policy that does not compile is
    /// refused and the running one stays). Exit 0 = reloaded.
    Reload {
        /// The gateway, e.g. http://127.0.0.1:8470
        #[arg(long)]
        url: String,
        /// Admin token (a generated one may begin with `-`).
        #[arg(
            long,
            env = "NTA7516_ADMIN_TOKEN",
            hide_env_values = true,
            allow_hyphen_values = true
        )]
        token: Option<String>,
    },
}

/// `--tls-version`: Stalwart's names only.
fn tls_version(s: &str) -> Result<stalwart_nta7516::policy::TlsVersion, String> {
    match stalwart_nta7516::policy::TlsVersion::parse(s) {
        stalwart_nta7516::policy::TlsVersion::Unrecognised => Err(format!(
            "{s:?} is not a TLS version: TLSv1.0, TLSv1.1, TLSv1.2 or TLSv1.3"
        )),
        v => Ok(v),
    }
}

/// SmartTLS settings shared by `probe` and `doctor`: a gateway configuration's `[smarttls]`, with the
/// flags taking precedence.
#[derive(Debug, clap::Args)]
pub struct ProbeArgs {
    /// Take the [smarttls] settings from this gateway configuration; the flags below override them.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// DNS resolver to query (default: the system's), e.g. 127.0.0.1:5353.
    #[arg(long, value_name = "IP:PORT")]
    pub resolver: Option<std::net::SocketAddr>,
    /// DNSSEC trust anchor file (DNSKEY/DS records in zone-file syntax) instead of the IANA root keys.
    #[arg(long, value_name = "FILE")]
    pub trust_anchor: Option<PathBuf>,
    /// Extra trusted root certificates (PEM), e.g. a private PKI.
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// SMTP port to probe instead of 25 (DANE then uses _<port>._tcp).
    #[arg(long, value_name = "N")]
    pub smtp_port: Option<u16>,
}

impl ProbeArgs {
    /// The gateway configuration (when `--config` was given) and the SmartTLS settings with the flags
    /// applied.
    pub fn resolve(
        self,
    ) -> Result<
        (
            Option<stalwart_nta7516::config::Config>,
            nta7516_smarttls::SmartTlsConfig,
        ),
        String,
    > {
        let config = match &self.config {
            Some(path) => {
                Some(stalwart_nta7516::config::Config::load(path).map_err(|e| e.to_string())?)
            }
            None => None,
        };
        let mut settings = config
            .as_ref()
            .map(|c| c.smarttls.probe.clone())
            .unwrap_or_default();
        if self.resolver.is_some() {
            settings.resolver = self.resolver;
        }
        if self.trust_anchor.is_some() {
            settings.trust_anchor_file = self.trust_anchor;
        }
        if self.ca_file.is_some() {
            settings.ca_file = self.ca_file;
        }
        if let Some(port) = self.smtp_port {
            settings.smtp_port = port;
        }
        Ok((config, settings))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A generated admin token is base64url: one in 64 begins with `-`, and must still be taken as the
    /// value of `--token` (it once failed the reload test as "unexpected argument '-7…'").
    #[test]
    fn a_token_that_begins_with_a_hyphen_is_a_value() {
        let cli = Cli::try_parse_from([
            "stalwart-nta7516",
            "policy",
            "reload",
            "--url",
            "http://127.0.0.1:8470",
            "--token",
            "-7abc_DEF",
        ])
        .unwrap();
        match cli.command {
            Command::Policy(PolicyCommand::Reload { token, .. }) => {
                assert_eq!(token.as_deref(), Some("-7abc_DEF"))
            }
            other => panic!("parsed as {other:?}"),
        }
        let cli = Cli::try_parse_from([
            "stalwart-nta7516",
            "admin",
            "--url",
            "http://127.0.0.1:8470",
            "--token",
            "-x",
            "peers",
            "list",
        ])
        .unwrap();
        match cli.command {
            Command::Admin(args) => assert_eq!(args.target.token.as_deref(), Some("-x")),
            other => panic!("parsed as {other:?}"),
        }
    }
}
