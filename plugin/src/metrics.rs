//! Prometheus metrics: hook latency, decisions per outcome, hook answers per action, received messages
//! per inbound action. Labels are typed
//! (an [`Outcome`], an [`Answer`]) and become their strings only when `/metrics` is rendered.

use prometheus_client::{
    encoding::{text::encode, EncodeLabelSet, EncodeLabelValue, LabelValueEncoder},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

use crate::{
    deployment::check::Rule,
    policy::{self, Outcome},
    stalwart::hook::Action,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReceivedLabel {
    pub action: policy::Action,
}

impl EncodeLabelValue for policy::Action {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, self.as_str())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: Outcome,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleLabel {
    pub rule: Rule,
}

impl EncodeLabelValue for Rule {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, self.as_str())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabel {
    pub action: Answer,
}

/// How the hook answered: Stalwart's action, or the HTTP error Stalwart got instead.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Answer {
    Accept,
    Discard,
    Reject,
    Quarantine,
    /// 503: Stalwart answers `451 4.3.5` and the client retries.
    Error,
    /// 401: wrong or missing token.
    Unauthorized,
    /// 400: malformed request.
    BadRequest,
}

impl Answer {
    pub fn as_str(self) -> &'static str {
        match self {
            Answer::Accept => "accept",
            Answer::Discard => "discard",
            Answer::Reject => "reject",
            Answer::Quarantine => "quarantine",
            Answer::Error => "error",
            Answer::Unauthorized => "unauthorized",
            Answer::BadRequest => "bad_request",
        }
    }
}

impl From<Action> for Answer {
    fn from(action: Action) -> Self {
        match action {
            Action::Accept => Answer::Accept,
            Action::Discard => Answer::Discard,
            Action::Reject => Answer::Reject,
            Action::Quarantine => Answer::Quarantine,
        }
    }
}

impl EncodeLabelValue for Answer {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, self.as_str())
    }
}

impl EncodeLabelValue for Outcome {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, self.as_str())
    }
}

pub struct Metrics {
    registry: Registry,
    pub hook_latency: Histogram,
    pub decisions: Family<OutcomeLabel, Counter>,
    pub hook_answers: Family<ActionLabel, Counter>,
    /// Received messages by the inbound decision's action.
    pub received: Family<ReceivedLabel, Counter>,
    /// 1 while `stalwart check` finds a safety rule failing or cannot read the configuration.
    pub stalwart_unsafe: Gauge,
    /// 1 when the last check could read Stalwart's configuration.
    pub stalwart_check_ok: Gauge,
    /// 1 per rule the last check found failing.
    pub stalwart_rule_failed: Family<RuleLabel, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("nta7516");
        let hook_latency = Histogram::new([
            0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 3.0, 10.0,
        ]);
        registry.register(
            "hook_latency_seconds",
            "Time from hook request to answer",
            hook_latency.clone(),
        );
        let decisions = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "decisions",
            "Per-recipient decisions by outcome",
            decisions.clone(),
        );
        let received = Family::<ReceivedLabel, Counter>::default();
        registry.register(
            "received",
            "Messages received from the internet by inbound action (accept, quarantine, tempfail, reject)",
            received.clone(),
        );
        let hook_answers = Family::<ActionLabel, Counter>::default();
        registry.register(
            "hook_answers",
            "Hook answers by action (accept, discard, reject, error, unauthorized, bad_request)",
            hook_answers.clone(),
        );
        let stalwart_unsafe = Gauge::default();
        registry.register(
            "stalwart_unsafe",
            "1 while stalwart check finds a safety rule failing or cannot read Stalwart's configuration",
            stalwart_unsafe.clone(),
        );
        let stalwart_check_ok = Gauge::default();
        registry.register(
            "stalwart_check_ok",
            "1 when the last stalwart check could read Stalwart's configuration",
            stalwart_check_ok.clone(),
        );
        let stalwart_rule_failed = Family::<RuleLabel, Gauge>::default();
        registry.register(
            "stalwart_rule_failed",
            "1 per stalwart check rule that failed in the last check",
            stalwart_rule_failed.clone(),
        );
        Metrics {
            registry,
            hook_latency,
            decisions,
            hook_answers,
            received,
            stalwart_unsafe,
            stalwart_check_ok,
            stalwart_rule_failed,
        }
    }
}

impl Metrics {
    pub fn answer(&self, action: Answer) {
        self.hook_answers
            .get_or_create(&ActionLabel { action })
            .inc();
    }

    pub fn received(&self, action: policy::Action) {
        self.received.get_or_create(&ReceivedLabel { action }).inc();
    }

    pub fn decision(&self, outcome: Outcome) {
        self.decisions
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }

    /// The gauges of one `stalwart check` (every rule is set, 0 or 1; none when it could not read).
    pub fn stalwart_state(&self, safe: bool, read: bool, failed: &[Rule]) {
        self.stalwart_unsafe.set(i64::from(!safe));
        self.stalwart_check_ok.set(i64::from(read));
        for rule in Rule::ALL.into_iter().chain(Rule::INBOUND) {
            self.stalwart_rule_failed
                .get_or_create(&RuleLabel { rule })
                .set(i64::from(failed.contains(&rule)));
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_render_as_their_strings() {
        let m = Metrics::default();
        m.decision(Outcome::Reject);
        m.answer(Answer::BadRequest);
        m.answer(Action::Discard.into());
        let text = m.render();
        assert!(
            text.contains("nta7516_decisions_total{outcome=\"reject\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("nta7516_hook_answers_total{action=\"bad_request\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("nta7516_hook_answers_total{action=\"discard\"} 1"),
            "{text}"
        );
    }
}
