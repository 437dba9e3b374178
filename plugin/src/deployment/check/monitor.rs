//! `stalwart check` inside `serve`: at start and every `stalwart.check_interval_secs` when
//! `stalwart.management_url` is set.
//!
//! The state is one atomic the hook reads without a lock ([`Monitor::gate`]). Policy, decided here:
//! - a failing **safety** rule makes Stalwart *unsafe*;
//! - a configuration that cannot be read (connection, authentication, an answer that does not parse —
//!   and the time before the first check finished) is *unknown*, which counts as unsafe: fail closed;
//! - with `on_unsafe = "hold"` (default) the hook then holds every external recipient that would leave
//!   now ([`crate::policy::StalwartGate`]); with `warn` it only logs.
//!
//! Every change of state (or of the failing rules) is logged once, as an error while unsafe or unknown;
//! the gauges `nta7516_stalwart_unsafe`, `nta7516_stalwart_check_ok` and
//! `nta7516_stalwart_rule_failed{rule}` and the `/healthz` detail show the current state.

use std::{
    sync::{
        atomic::{AtomicU8, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use super::{fetch, Expectations, Report, Rule, VersionChoice};
use crate::{
    config::{Config, ManagementVersion, OnUnsafe, StalwartConfig},
    policy::StalwartGate,
    stalwart::management::{Auth, Management},
    Gateway,
};

/// The state of the last check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum State {
    /// No management URL: nothing is checked.
    NotChecked = 0,
    Safe = 1,
    Unsafe = 2,
    Unknown = 3,
}

impl State {
    fn from_u8(v: u8) -> State {
        match v {
            0 => State::NotChecked,
            1 => State::Safe,
            2 => State::Unsafe,
            _ => State::Unknown,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            State::NotChecked => "not checked",
            State::Safe => "safe",
            State::Unsafe => "unsafe",
            State::Unknown => "unknown",
        }
    }
}

/// The shared state: read by the hook (atomic) and `/healthz`, written by the check task.
pub struct Monitor {
    state: AtomicU8,
    hold: bool,
    /// The management URL (named in the log lines).
    url: String,
    /// `/healthz` detail of the last check, and what was last logged (to log changes only).
    last: Mutex<(String, String)>,
}

impl Monitor {
    pub fn new(config: &Config) -> Monitor {
        let s = config.stalwart.as_ref();
        let checked = s.is_some_and(|s| s.management_url.is_some());
        let initial = if checked {
            State::Unknown
        } else {
            State::NotChecked
        };
        Monitor {
            state: AtomicU8::new(initial as u8),
            hold: s.is_none_or(|s| s.on_unsafe == OnUnsafe::Hold),
            url: s.and_then(|s| s.management_url.clone()).unwrap_or_default(),
            last: Mutex::new(("first check pending".into(), String::new())),
        }
    }

    pub fn state(&self) -> State {
        State::from_u8(self.state.load(Ordering::Acquire))
    }

    /// What the hook decides with (one atomic load).
    pub fn gate(&self) -> StalwartGate {
        match (self.state(), self.hold) {
            (State::Unsafe, true) => StalwartGate::Unsafe,
            (State::Unknown, true) => StalwartGate::Unknown,
            _ => StalwartGate::Open,
        }
    }

    /// The `/healthz` line (none when nothing is checked).
    pub fn health(&self) -> Option<String> {
        let state = self.state();
        if state == State::NotChecked {
            return None;
        }
        let detail = self
            .last
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .clone();
        let policy = if self.hold { "hold" } else { "warn" };
        Some(format!(
            "stalwart: {} ({detail}; on_unsafe = {policy})",
            state.as_str()
        ))
    }

    /// Records one check: state, gauges, `/healthz` detail, and a log line when something changed.
    pub fn record(&self, result: Result<Report, String>, metrics: &crate::metrics::Metrics) {
        let (state, detail, failed) = match &result {
            Ok(report) => {
                let unsafe_rules = report.unsafe_rules();
                let failed: Vec<Rule> = report
                    .results
                    .iter()
                    .filter(|r| r.outcome == super::Outcome::Fail)
                    .map(|r| r.rule)
                    .collect();
                let state = if unsafe_rules.is_empty() {
                    State::Safe
                } else {
                    State::Unsafe
                };
                (state, rule_list(&failed), failed)
            }
            Err(e) => (State::Unknown, format!("management API: {e}"), vec![]),
        };
        self.state.store(state as u8, Ordering::Release);
        metrics.stalwart_state(state == State::Safe, result.is_ok(), &failed);
        let signature = format!("{state:?} {failed:?}");
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        last.0 = detail.clone();
        if last.1 != signature {
            last.1 = signature;
            drop(last);
            self.log(state, &detail, result.as_ref().ok());
        }
    }

    fn log(&self, state: State, detail: &str, report: Option<&Report>) {
        let effect = if self.hold {
            "external recipients are held until Stalwart is safe (on_unsafe = \"hold\")"
        } else {
            "delivery continues (on_unsafe = \"warn\")"
        };
        let url = self.url.as_str();
        match state {
            State::Safe if detail.is_empty() => tracing::info!(url, "stalwart check: Stalwart's configuration is safe"),
            State::Safe => tracing::warn!(url, failed = detail, "stalwart check: safe, but rules fail"),
            State::Unsafe => {
                for r in report.into_iter().flat_map(|r| &r.results).filter(|r| r.outcome == super::Outcome::Fail) {
                    tracing::error!(url, rule = r.rule.as_str(), fix = r.fix.as_deref().unwrap_or(""), "stalwart check: {}", r.detail);
                }
                tracing::error!(url, failed = detail, "stalwart check: Stalwart is UNSAFE: {effect}");
            }
            State::Unknown => tracing::error!(
                url,
                error = detail,
                "stalwart check: cannot read Stalwart's configuration; unknown counts as unsafe: {effect}"
            ),
            State::NotChecked => {}
        }
    }
}

fn rule_list(rules: &[Rule]) -> String {
    rules
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The management client of `[stalwart]` (secrets read now, so a rotated file applies at the next check).
pub fn client(s: &StalwartConfig) -> Result<(Management, VersionChoice), String> {
    let url = s
        .management_url
        .as_deref()
        .ok_or("no stalwart.management_url")?;
    let auth = Auth::from_files(
        s.management_user.as_deref(),
        s.management_password_file.as_deref(),
        s.management_token_file.as_deref(),
    )?;
    let timeout = Duration::from_secs(s.check_interval_secs.clamp(1, 10));
    let m = Management::new(url, auth, s.management_ca_file.as_deref(), timeout)
        .map_err(|e| e.to_string())?;
    let version = match s.management_version {
        ManagementVersion::Auto => VersionChoice::Auto,
        ManagementVersion::V015 => VersionChoice::Fixed(super::Version::V015),
        ManagementVersion::V016 => VersionChoice::Fixed(super::Version::V016),
    };
    Ok((m, version))
}

/// One check with the gateway's own configuration.
pub async fn check_once(config: &Config) -> Result<Report, String> {
    let s = config.stalwart.as_ref().ok_or("no [stalwart] section")?;
    let (m, version) = client(s)?;
    let want = Expectations::from_config(Some(config));
    let view = fetch(&m, version, &want).await.map_err(|e| e.to_string())?;
    let url = s.management_url.as_deref().unwrap_or_default();
    Ok(Report::new(url, &view, &want))
}

/// Starts the check task when a management URL is configured.
pub fn spawn(gw: Arc<Gateway>) -> Option<tokio::task::JoinHandle<()>> {
    let s = gw.config.stalwart.as_ref()?;
    s.management_url.as_ref()?;
    let interval = Duration::from_secs(s.check_interval_secs.max(1));
    Some(tokio::spawn(async move {
        loop {
            let result = check_once(&gw.config).await;
            gw.stalwart_check.record(result, &gw.metrics);
            tokio::time::sleep(interval).await;
        }
    }))
}
