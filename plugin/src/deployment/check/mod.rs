//! `stalwart-nta7516 stalwart check`: reads a live Stalwart's configuration through its management API
//! and reports, rule by rule, whether it is safe to run next to this gateway.
//!
//! [`fetch`] reads (v0.15 settings API or v0.16 JMAP registry) into the normalised [`view`]; [`rules`]
//! and [`tls`] judge it (pure) into the values of [`rule`]; this file renders the [`Report`] (text like `doctor`, or JSON);
//! [`monitor`] runs the same check inside `serve`, every `stalwart.check_interval_secs`.
//!
//! Exit codes: 0 = no rule failed (warnings allowed), 1 = a rule failed, 2 = usage or connection error.

pub mod fetch;
pub mod monitor;
pub mod rule;
pub mod rules;
pub mod tls;
pub mod view;

use std::fmt::Write as _;

use serde::Serialize;

pub use fetch::{fetch, FetchError, VersionChoice};
pub use rule::{Expectations, Outcome, Rule, RuleResult, Severity};
pub use rules::check;
pub use view::{StalwartView, Version};

/// The result of one check.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Schema version of the JSON (1).
    pub schema: u32,
    pub url: String,
    pub version: Version,
    pub results: Vec<RuleResult>,
    pub checked_at: String,
}

impl Report {
    pub fn new(url: &str, view: &StalwartView, want: &Expectations) -> Report {
        Report {
            schema: 1,
            url: url.to_string(),
            version: view.version,
            results: check(view, want),
            checked_at: crate::time::rfc3339(crate::time::now()),
        }
    }

    /// The failing safety rules (what makes `serve` hold).
    pub fn unsafe_rules(&self) -> Vec<Rule> {
        self.results
            .iter()
            .filter(|r| r.outcome == Outcome::Fail && r.severity == Severity::Safety)
            .map(|r| r.rule)
            .collect()
    }

    pub fn failed(&self) -> usize {
        self.count(Outcome::Fail)
    }

    fn count(&self, o: Outcome) -> usize {
        self.results.iter().filter(|r| r.outcome == o).count()
    }

    /// 0 when no rule failed (warnings allowed), 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        u8::from(self.failed() > 0)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// One line per rule (✓ pass, ! warning, ✗ failure) with its fix below.
    pub fn render_text(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "Stalwart {} at {} ({})",
            self.version.as_str(),
            self.url,
            self.checked_at
        );
        let _ = writeln!(o);
        for r in &self.results {
            let mark = match r.outcome {
                Outcome::Pass => "✓",
                Outcome::Warn => "!",
                Outcome::Fail => "✗",
            };
            let _ = writeln!(o, "{mark} {:<22} {}", r.rule.as_str(), r.detail);
            if let Some(f) = &r.fix {
                let _ = writeln!(o, "  {:<22} fix: {f}", "");
            }
        }
        let _ = writeln!(o);
        let verdict = match (self.failed(), self.unsafe_rules().is_empty()) {
            (0, _) => "OK",
            (_, false) => "UNSAFE",
            (_, true) => "FAILED",
        };
        let _ = writeln!(
            o,
            "{verdict}: {} passed, {} warnings, {} failed",
            self.count(Outcome::Pass),
            self.count(Outcome::Warn),
            self.failed()
        );
        o
    }
}

#[cfg(test)]
mod tests;
