//! `stalwart-nta7516`: the gateway binary. See the crate docs of `stalwart_nta7516`.
//!
//! It parses the command line ([`cli`]) and runs the command: `serve` wires the configuration, the
//! SmartTLS seam, the policy and the [`Gateway`] into the HTTP application and the background jobs;
//! the other commands call the library's probe, doctor, policy, admin client and `stalwart check`.

use std::{process::ExitCode, sync::Arc, time::Duration};

use clap::Parser;
use stalwart_nta7516::{
    config::{Config, LogFormat},
    hold,
    policy::{
        smarttls::SmartTlsVerdicts, DefaultPolicy, NoSmartTls, Policy, SievePolicy, TlsVerdicts,
    },
    Gateway,
};

mod cli;
mod policy_inbound;
use cli::{Cli, Command, PolicyCommand, StalwartCommand};

/// jemalloc, as in Stalwart: the hook's 50 KB bodies and the webhook's many small JSON values made
/// glibc's malloc (its consolidation of freed chunks) some 10 % of the gateway's CPU under load.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `serve` starts its log once it has read the configuration (`[log] format`).
    if !matches!(cli.command, Command::Serve { .. }) {
        init_log(LogFormat::Text);
    }
    // `serve` reads its configuration before the runtime starts: `[server] worker_threads` sizes it.
    let mut serve_config = None;
    if let Command::Serve { config, data_dir } = &cli.command {
        match serve_config_of(config.as_deref(), data_dir) {
            Ok(c) => serve_config = Some(c),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    // One thread (the default): the current-thread runtime, where a request's tasks never wake
    // another runtime thread (with a one-worker pool every accepted connection and every database
    // answer was a cross-thread wake: about a third of the gateway's CPU under the load bench).
    let threads = serve_config.as_ref().map(|c| c.server.runtime_threads());
    let mut builder = match threads {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve { config, data_dir } => {
                let read = serve_config.expect("read before the runtime started");
                serve(read, config.is_none(), &data_dir).await
            }
            Command::Probe { domain, json, net } => {
                let (_, settings) = net.resolve().unwrap_or_else(|e| usage_error(&e));
                return probe(&domain, json, settings).await;
            }
            Command::Doctor {
                domain,
                json,
                net,
                dkim_selectors,
            } => {
                let (config, settings) = net.resolve().unwrap_or_else(|e| usage_error(&e));
                let mut selectors = config.map(|c| c.doctor.dkim_selectors).unwrap_or_default();
                selectors.extend(dkim_selectors);
                return doctor(&domain, json, settings, selectors).await;
            }
            Command::CheckConfig { config } => Config::load(&config)
                .map(|_| println!("{}: valid", config.display()))
                .map_err(|e| e.to_string()),
            Command::Admin(args) => stalwart_nta7516::admin::client::run_admin(args).await,
            Command::Audit(args) => stalwart_nta7516::admin::client::run_audit(args).await,
            Command::Bulk(cmd) => stalwart_nta7516::bulk::run(cmd).await,
            Command::Policy(PolicyCommand::Reload { url, token }) => {
                stalwart_nta7516::admin::client::reload_policy(url, token).await
            }
            Command::Policy(PolicyCommand::Check { file }) => {
                SievePolicy::load(&file).map(|_| println!("{}: ok", file.display()))
            }
            Command::Policy(test @ PolicyCommand::Test { .. }) => {
                policy_test_command(test).await.map(|out| print!("{out}"))
            }
            Command::Stalwart(StalwartCommand::Render { version, config }) => {
                stalwart_render(version.into(), config.as_deref()).map(|out| print!("{out}"))
            }
            Command::Stalwart(StalwartCommand::Trust {
                address,
                config,
                write,
                yes,
            }) => {
                let args = stalwart_nta7516::deployment::trust::TrustArgs {
                    address,
                    config,
                    write,
                    yes,
                };
                stalwart_nta7516::deployment::trust::run(args)
                    .await
                    .unwrap_or_else(|e| usage_error(&e));
                Ok(())
            }
            Command::Stalwart(StalwartCommand::Check {
                url,
                user,
                password_file,
                token_file,
                ca_file,
                version,
                config,
                json,
            }) => {
                let auth = stalwart_auth(user, password_file, token_file);
                return stalwart_check(&url, auth, ca_file, version, config, json).await;
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The configuration `serve` runs with: the file given, or the embedded default in `data_dir`.
fn serve_config_of(
    config_path: Option<&std::path::Path>,
    data_dir: &std::path::Path,
) -> Result<Config, String> {
    match config_path {
        Some(path) => Config::load(path),
        None => Config::embedded(data_dir, std::env::vars()),
    }
    .map_err(|e| e.to_string())
}

async fn serve(config: Config, embedded: bool, data_dir: &std::path::Path) -> Result<(), String> {
    init_log(config.log.format);
    let tls: Arc<dyn TlsVerdicts> = if config.smarttls.enabled {
        let prober = nta7516_smarttls::SmartTls::new(config.smarttls.probe.clone())
            .map_err(|e| format!("SmartTLS: {e}"))?;
        let check = prober.clone();
        tokio::spawn(async move {
            match check.check_resolver().await.warning() {
                Some(w) => tracing::warn!("{w}"),
                None => tracing::info!("the DNS resolver validates DNSSEC"),
            }
        });
        Arc::new(SmartTlsVerdicts(prober))
    } else {
        tracing::warn!("SmartTLS is disabled: every external recipient will be held");
        Arc::new(NoSmartTls)
    };
    // A policy that does not compile stops the start: never run with a policy other than the one asked.
    let policy: Arc<dyn Policy> = match &config.policy.file {
        Some(path) => {
            let p = SievePolicy::load(path)?;
            tracing::info!(policy = %path.display(), "Sieve policy loaded");
            Arc::new(p)
        }
        None => Arc::new(DefaultPolicy),
    };
    let gw = Gateway::start(config, tls, policy, embedded)
        .await
        .map_err(|e| e.to_string())?;
    spawn_sighup_reload(gw.clone());
    let listener = tokio::net::TcpListener::bind(gw.config.server.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", gw.config.server.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    banner(&gw, embedded, data_dir, addr);
    tokio::spawn(hold::retention::run(
        gw.store.clone(),
        Duration::from_secs(3600),
    ));
    tokio::spawn(stalwart_nta7516::challenge::worker::run(gw.clone()));
    stalwart_nta7516::deployment::check::monitor::spawn(gw.clone());
    let app = stalwart_nta7516::http::router(gw.clone())
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| e.to_string())?;
    gw.store.close().await;
    Ok(())
}

/// The process's one log subscriber: to stderr, `RUST_LOG` or `info,sqlx=warn` with hickory on errors
/// only (its DNSSEC warnings name every unsigned answer; SmartTLS reports what they mean), colours only
/// on a terminal (a file, a pipe or journald gets plain text), as text or JSON lines.
fn init_log(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,sqlx=warn,hickory_net=error,hickory_proto=error".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// SIGHUP re-reads `[policy] file`; a policy that does not compile is refused and logged, the active one
/// stays. The handler is installed before this returns (before the banner says the gateway listens), so
/// an early SIGHUP never meets the default action, which would end the process.
fn spawn_sighup_reload(gw: Arc<Gateway>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP: policy reload only through the admin API");
                return;
            }
        };
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                tracing::info!("SIGHUP: reloading the policy");
                // Errors are logged by reload(); the previous policy stays active.
                let _ = stalwart_nta7516::policy::sieve::reload(&gw);
            }
        });
    }
    #[cfg(not(unix))]
    let _ = gw;
}

/// `policy test`, for mail sent (facts from `--fact`) or, with `--inbound`, for mail received.
async fn policy_test_command(test: PolicyCommand) -> Result<String, String> {
    match test {
        PolicyCommand::Test {
            file,
            eml,
            from,
            to,
            inbound: true,
            config: Some(config),
            client_ip: Some(client_ip),
            helo: Some(helo),
            tls_version,
            ..
        } => {
            policy_inbound::run(policy_inbound::Args {
                policy: &file,
                eml: &eml,
                config: &config,
                mail_from: &from,
                to: &to,
                client_ip,
                helo: &helo,
                tls_version,
            })
            .await
        }
        PolicyCommand::Test { inbound: true, .. } => {
            usage_error("--inbound needs --config, --client-ip and --helo")
        }
        PolicyCommand::Test {
            file,
            eml,
            from,
            to,
            fact,
            ..
        } => policy_test(&file, &eml, &from, &to, &fact),
        _ => Err("not a policy test".into()),
    }
}

/// `policy test`: the decision and reasons per recipient, as the gateway's policy step would see them.
fn policy_test(
    file: &std::path::Path,
    eml: &std::path::Path,
    from: &str,
    to: &[String],
    fact: &[String],
) -> Result<String, String> {
    use std::fmt::Write;
    let policy = SievePolicy::load(file)?;
    let raw = std::fs::read(eml).map_err(|e| format!("{}: {e}", eml.display()))?;
    let mut facts = nta7516_sieve::Facts::default();
    for f in fact {
        let (k, v) = f
            .split_once('=')
            .ok_or_else(|| format!("--fact {f:?}: expected KEY=VALUE"))?;
        facts.set(k, v)?;
    }
    let message = nta7516_sieve::PreparedMessage::new(&raw);
    let mut out = String::new();
    for rcpt in to {
        let v = policy.inner().evaluate(&message, from, rcpt, &facts);
        let decision = v
            .requirement
            .map_or("none (the [policy] default applies)", |r| r.code());
        let _ = writeln!(out, "{rcpt}: {decision}");
        for r in &v.reasons {
            let _ = writeln!(out, "  {}: {}", r.requirement.code(), r.text);
        }
        if let Some(reason) = &v.attachments_by_link {
            let _ = writeln!(out, "  attachments by secure link: {reason}");
        }
        if !v.groups.is_empty() {
            let _ = writeln!(out, "  groups: {}", v.groups.join(", "));
        }
        if let Some(e) = &v.error {
            let _ = writeln!(out, "  error (fails closed): {e}");
        }
    }
    Ok(out)
}

/// `probe`: exit 0 when secure, 1 when not, 2 on a usage error.
async fn probe(
    domain: &str,
    json: bool,
    settings: nta7516_smarttls::SmartTlsConfig,
) -> Result<(), String> {
    let prober = nta7516_smarttls::SmartTls::new(settings)
        .unwrap_or_else(|e| usage_error(&format!("SmartTLS: {e}")));
    let (check, report) = tokio::join!(prober.check_resolver(), prober.probe_uncached(domain));
    if let Some(warning) = check.warning() {
        eprintln!("{warning}");
    }
    if json {
        println!("{}", report.to_json());
    } else {
        print!("{}", nta7516_smarttls::render_text(&report));
    }
    if report.verdict.is_deliverable() {
        Ok(())
    } else {
        std::process::exit(1)
    }
}

/// `doctor`: exit 0 when no check failed, 1 when one did, 2 on a usage or configuration error.
async fn doctor(
    domain: &str,
    json: bool,
    smarttls: nta7516_smarttls::SmartTlsConfig,
    dkim_selectors: Vec<String>,
) -> Result<(), String> {
    let opts = stalwart_nta7516::doctor::DoctorOptions {
        smarttls,
        dkim_selectors,
    };
    let report = stalwart_nta7516::doctor::run(domain, opts)
        .await
        .unwrap_or_else(|e| usage_error(&e.to_string()));
    if json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.render_text());
    }
    match report.exit_code() {
        0 => Ok(()),
        code => std::process::exit(i32::from(code)),
    }
}

/// `stalwart render`: the Stalwart side of the configuration at `path` (a usage error without one: the
/// embedded default has no `[stalwart]` section).
fn stalwart_render(
    version: stalwart_nta7516::stalwart::render::StalwartVersion,
    path: Option<&std::path::Path>,
) -> Result<String, String> {
    use stalwart_nta7516::deployment::side::StalwartSide;
    let Some(path) = path else {
        usage_error(
            "stalwart render needs --config: a gateway configuration with [stalwart] and \
             organisation.local_domains (see config/gateway.example.toml)",
        );
    };
    let config = Config::load(path).unwrap_or_else(|e| usage_error(&e.to_string()));
    let side = StalwartSide::from_config(&config)
        .unwrap_or_else(|e| usage_error(&format!("{}: {e}", path.display())));
    Ok(stalwart_nta7516::stalwart::render::render(
        &side,
        version,
        &path.display().to_string(),
    ))
}

fn stalwart_auth(
    user: Option<String>,
    password_file: Option<std::path::PathBuf>,
    token_file: Option<std::path::PathBuf>,
) -> stalwart_nta7516::stalwart::management::Auth {
    stalwart_nta7516::stalwart::management::Auth::from_files(
        user.as_deref(),
        password_file.as_deref(),
        token_file.as_deref(),
    )
    .unwrap_or_else(|e| usage_error(&e))
}

/// `stalwart check`: exit 0 when no rule failed, 1 when one did, 2 on a usage or connection error.
async fn stalwart_check(
    url: &str,
    auth: stalwart_nta7516::stalwart::management::Auth,
    ca_file: Option<std::path::PathBuf>,
    version: stalwart_nta7516::deployment::check::VersionChoice,
    config: Option<std::path::PathBuf>,
    json: bool,
) -> Result<(), String> {
    use stalwart_nta7516::deployment::check::{fetch, Expectations, Report};
    let config = config.map(|p| Config::load(&p).unwrap_or_else(|e| usage_error(&e.to_string())));
    let client = stalwart_nta7516::stalwart::management::Management::new(
        url,
        auth,
        ca_file.as_deref(),
        Duration::from_secs(30),
    )
    .unwrap_or_else(|e| usage_error(&e.to_string()));
    let want = Expectations::from_config(config.as_ref());
    let view = fetch(&client, version, &want).await.unwrap_or_else(|e| {
        usage_error(&format!(
            "cannot read Stalwart's configuration at {url}: {e}"
        ))
    });
    let report = Report::new(url, &view, &want);
    if json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.render_text());
    }
    match report.exit_code() {
        0 => Ok(()),
        code => std::process::exit(i32::from(code)),
    }
}

fn usage_error(message: &str) -> ! {
    eprintln!("error: {message}");
    std::process::exit(2)
}

fn banner(gw: &Gateway, embedded: bool, data_dir: &std::path::Path, addr: std::net::SocketAddr) {
    eprintln!(
        "stalwart-nta7516 {} listening on http://{addr}",
        env!("CARGO_PKG_VERSION")
    );
    eprintln!("  MTA hook:  POST http://{addr}/v1/mta-hook   (Authorization: Bearer <hook token>)");
    eprintln!(
        "  portal:    {}/p/<link token>   (links arrive by mail)",
        gw.config.server.public_url
    );
    eprintln!("  health:    GET  http://{addr}/healthz   metrics: GET http://{addr}/metrics");
    if embedded {
        eprintln!(
            "  embedded default: SQLite and secrets under {}",
            data_dir.display()
        );
    }
    if gw.generated.contains(&"hook token") {
        eprintln!(
            "  generated hook token (first start; kept in {}):",
            data_dir.join("hook-token").display()
        );
        eprintln!("      {}", gw.hook_token);
    }
    eprintln!(
        "  webhook:   POST http://{addr}/v1/stalwart-events   (X-Signature: HMAC of the body)"
    );
    eprintln!("  admin API: http://{addr}/v1/admin/   (Authorization: Bearer <admin token>; OpenAPI at /v1/admin/openapi.json)");
    for (what, file, value) in [
        ("webhook HMAC key", "webhook-key", gw.webhook_key.as_deref()),
        ("admin token", "admin-token", gw.admin_token.as_deref()),
    ] {
        match value {
            Some(v) if gw.generated.contains(&what) => {
                eprintln!(
                    "  generated {what} (first start; kept in {}):",
                    data_dir.join(file).display()
                );
                eprintln!("      {v}");
            }
            Some(_) => {}
            None => eprintln!("  {what} not configured: that endpoint refuses every request"),
        }
    }
    if gw.generated.contains(&"hold master key") {
        eprintln!(
            "  generated hold master key in {} — back it up: held messages cannot be read without it",
            data_dir.join("master.key").display()
        );
    }
    if gw.config.sms.mode == stalwart_nta7516::config::SmsMode::Log {
        eprintln!();
        eprintln!(
            "  ################################################################################"
        );
        eprintln!(
            "  ##  DEVELOPMENT MODE: SMS codes are NOT sent. They are written to this log.    ##"
        );
        eprintln!(
            "  ##  Configure [sms] mode = \"sns\" before any real recipient uses the gateway.  ##"
        );
        eprintln!(
            "  ################################################################################"
        );
        eprintln!();
        tracing::warn!(
            "SMS development sink active: verification codes go to the log, not to phones"
        );
    }
}
