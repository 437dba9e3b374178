//! `stalwart-nta7516 stalwart trust HOST:PORT [--config gateway.toml] [--write] [--yes]`.
//!
//! Connects to a Stalwart listener, EHLO, STARTTLS, and takes the certificate it presents *without
//! trusting it* ([`crate::stalwart_submit::pinned::peek`]; no AUTH, no password sent). Prints subject,
//! issuer, names, validity, the certificate's SHA-256 and the SPKI pin; with `--write` puts
//! `pin_spki_sha256` into the `[stalwart]` section of the configuration file (toml_edit: comments and
//! layout kept; a `ca_file` there is removed, since the two exclude each other) and checks that the file
//! still loads, restoring it otherwise.
//!
//! Trust on first use is only as good as the path it runs over: over anything but loopback the first
//! answer could come from an interceptor, so a non-loopback address needs `--yes` (or a "yes" typed at a
//! terminal) after the operator compared the pin out of band.

use std::{
    io::{BufRead, IsTerminal, Write},
    path::{Path, PathBuf},
    time::Duration,
};

use rustls_pki_types::{CertificateDer, ServerName};

use crate::{
    config::{Config, SpkiPin, StalwartConfig},
    stalwart_submit::{host_part, pinned},
};

/// The command's arguments (clap fills them in the binary).
#[derive(Debug, Clone)]
pub struct TrustArgs {
    /// `host:port` of the listener; the config's `stalwart.release` when absent.
    pub address: Option<String>,
    pub config: Option<PathBuf>,
    pub write: bool,
    pub yes: bool,
}

/// What the listener presented, as shown to the operator.
#[derive(Debug, Clone)]
pub struct Presented {
    pub subject: String,
    pub issuer: String,
    pub names: Vec<String>,
    pub not_before: String,
    pub not_after: String,
    pub cert_sha256: String,
    pub pin: SpkiPin,
    pub chain_len: usize,
}

impl Presented {
    pub fn from_chain(chain: &[CertificateDer<'_>]) -> Result<Presented, String> {
        let leaf = chain.first().ok_or("no certificate presented")?;
        let (_, x) = x509_parser::parse_x509_certificate(leaf.as_ref())
            .map_err(|e| format!("the listener's certificate does not parse: {e}"))?;
        let names = x
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|ext| {
                ext.value
                    .general_names
                    .iter()
                    .map(|n| match n {
                        x509_parser::extensions::GeneralName::DNSName(d) => d.to_string(),
                        other => other.to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let digest = ring::digest::digest(&ring::digest::SHA256, leaf.as_ref());
        Ok(Presented {
            subject: x.subject().to_string(),
            issuer: x.issuer().to_string(),
            names,
            not_before: crate::time::rfc3339(x.validity().not_before.timestamp()),
            not_after: crate::time::rfc3339(x.validity().not_after.timestamp()),
            cert_sha256: hex_colons(digest.as_ref()),
            pin: pinned::spki_pin(leaf)?,
            chain_len: chain.len(),
        })
    }

    /// Stalwart's built-in certificate, or one made like it: self-signed, for "localhost" (in the
    /// subject alternative names or, as `openssl req -x509 -subj /CN=localhost` makes it, the CN only).
    pub fn looks_like_stalwart_default(&self) -> bool {
        self.subject == self.issuer
            && (self.names.iter().any(|n| n == "localhost") || self.subject == "CN=localhost")
    }

    pub fn render(&self, address: &str) -> String {
        let mut out = format!(
            "Stalwart listener {address} (STARTTLS; certificate not verified, nothing authenticated)\n\
             \x20 subject:        {}\n  issuer:         {}\n  names:          {}\n\
             \x20 valid:          {} to {}\n  chain:          {} certificate(s)\n\
             \x20 SHA-256 (cert): {}\n  SPKI pin:       {} (hex {})\n",
            self.subject,
            self.issuer,
            if self.names.is_empty() { "-".into() } else { self.names.join(", ") },
            self.not_before,
            self.not_after,
            self.chain_len,
            self.cert_sha256,
            self.pin,
            self.pin.to_hex(),
        );
        if self.looks_like_stalwart_default() {
            out.push_str(
                "  note: this looks like Stalwart's built-in self-signed \"localhost\" certificate, which it\n\
                 \x20       generates anew at every start: a pin of it breaks at Stalwart's next restart.\n\
                 \x20       Give Stalwart a [certificate] (a real one, or a stable self-signed one) and pin that.\n",
            );
        }
        out
    }
}

fn hex_colons(bytes: &[u8]) -> String {
    let h: Vec<String> = bytes.iter().map(|b| format!("{b:02X}")).collect();
    h.join(":")
}

/// Runs the command; the error is a message for exit code 2.
pub async fn run(args: TrustArgs) -> Result<(), String> {
    let config = match &args.config {
        Some(path) => Some(Config::load(path).map_err(|e| e.to_string())?),
        None if args.write => return Err("--write needs --config FILE".into()),
        None => None,
    };
    let stalwart = config.as_ref().and_then(|c| c.stalwart.as_ref());
    let address = match (&args.address, stalwart) {
        (Some(a), _) => a.clone(),
        (None, Some(s)) => s.release.clone(),
        (None, None) => return Err("give HOST:PORT (or --config with a [stalwart] section)".into()),
    };
    confirm_path(&address, args.yes).await?;
    let presented = fetch(&address, stalwart).await?;
    print!("{}", presented.render(&address));
    if let Some(current) = stalwart.and_then(|s| s.pin_spki_sha256) {
        let same = current == presented.pin;
        println!(
            "  configured pin: {current} ({})",
            if same { "the same" } else { "DIFFERENT" }
        );
    }
    println!("\npin_spki_sha256 = \"{}\"", presented.pin);
    if let (true, Some(path)) = (args.write, &args.config) {
        let removed_ca = write_pin(path, presented.pin)?;
        if removed_ca {
            println!("removed stalwart.ca_file (a pin replaces it)");
        }
        println!("wrote stalwart.pin_spki_sha256 to {}", path.display());
    }
    Ok(())
}

/// Trust on first use only over loopback, unless the operator says yes (flag, or at a terminal).
async fn confirm_path(address: &str, yes: bool) -> Result<(), String> {
    let resolved: Vec<std::net::SocketAddr> = tokio::net::lookup_host(address)
        .await
        .map_err(|e| format!("{address}: {e} (expected HOST:PORT)"))?
        .collect();
    if resolved.is_empty() {
        return Err(format!("{address}: no address"));
    }
    if yes || resolved.iter().all(|a| a.ip().is_loopback()) {
        return Ok(());
    }
    let warning = format!(
        "{address} is not a loopback address: whoever answers first on the way is trusted. Compare the pin \
         with the one Stalwart's host shows (e.g. run this command there against 127.0.0.1)."
    );
    if !std::io::stdin().is_terminal() {
        return Err(format!("{warning} Refusing without --yes."));
    }
    eprint!("{warning}\nTrust what {address} presents? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| e.to_string())?;
    match answer.trim() {
        "y" | "Y" | "yes" | "YES" => Ok(()),
        _ => Err("not confirmed; nothing changed".into()),
    }
}

/// EHLO and STARTTLS with the config's EHLO name, SNI and timeout (defaults without a config).
async fn fetch(address: &str, stalwart: Option<&StalwartConfig>) -> Result<Presented, String> {
    let helo = stalwart.map_or("nta7516-gateway", |s| s.helo.as_str());
    let timeout = Duration::from_millis(stalwart.map_or(10_000, |s| s.timeout_ms));
    let host = stalwart
        .and_then(|s| s.tls_server_name.clone())
        .unwrap_or_else(|| host_part(address).to_string());
    let name =
        ServerName::try_from(host.clone()).map_err(|e| format!("TLS server name {host:?}: {e}"))?;
    let chain = pinned::peek(address, helo, name, timeout)
        .await
        .map_err(|e| match e {
            crate::stalwart_submit::SmtpError::Missing(what) => {
                format!(
                    "{address} does not offer {what}: is this a Stalwart SMTP listener with TLS?"
                )
            }
            e => format!("{address}: {e}"),
        })?;
    Presented::from_chain(&chain)
}

/// Sets `[stalwart] pin_spki_sha256` in the file (removing `ca_file`), keeps everything else, and checks
/// that the result loads; on failure the original stays. Returns whether `ca_file` was removed.
pub fn write_pin(path: &Path, pin: SpkiPin) -> Result<bool, String> {
    let show = path.display();
    let original = std::fs::read_to_string(path).map_err(|e| format!("{show}: {e}"))?;
    let mut doc: toml_edit::DocumentMut = original
        .parse()
        .map_err(|e: toml_edit::TomlError| format!("{show}: {e}"))?;
    let section = doc
        .get_mut("stalwart")
        .and_then(|s| s.as_table_like_mut())
        .ok_or_else(|| {
            format!("{show} has no [stalwart] section: add it first (see the README)")
        })?;
    let removed_ca = section.remove("ca_file").is_some();
    section.insert("pin_spki_sha256", toml_edit::value(pin.to_string()));
    let updated = doc.to_string();
    Config::parse(&updated, path, std::env::vars())
        .map_err(|e| format!("with the pin, {show} would not load ({e}); left unchanged"))?;
    let tmp = path.with_extension("toml.trust-tmp");
    std::fs::write(&tmp, &updated).map_err(|e| format!("{}: {e}", tmp.display()))?;
    if let Ok(meta) = std::fs::metadata(path) {
        let _ = std::fs::set_permissions(&tmp, meta.permissions());
    }
    std::fs::rename(&tmp, path).map_err(|e| format!("{show}: {e}"))?;
    Ok(removed_ca)
}
