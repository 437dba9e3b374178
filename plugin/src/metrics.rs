//! Prometheus metrics: hook latency, decisions per outcome, hook answers per action.

use prometheus_client::{
    encoding::{text::encode, EncodeLabelSet},
    metrics::{counter::Counter, family::Family, histogram::Histogram},
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabel {
    pub action: String,
}

pub struct Metrics {
    registry: Registry,
    pub hook_latency: Histogram,
    pub decisions: Family<OutcomeLabel, Counter>,
    pub hook_answers: Family<ActionLabel, Counter>,
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
        let hook_answers = Family::<ActionLabel, Counter>::default();
        registry.register(
            "hook_answers",
            "Hook answers by action (accept, discard, reject, error, unauthorized, bad_request)",
            hook_answers.clone(),
        );
        Metrics {
            registry,
            hook_latency,
            decisions,
            hook_answers,
        }
    }
}

impl Metrics {
    pub fn answer(&self, action: &str) {
        self.hook_answers
            .get_or_create(&ActionLabel {
                action: action.to_string(),
            })
            .inc();
    }

    pub fn decision(&self, outcome: &str) {
        self.decisions
            .get_or_create(&OutcomeLabel {
                outcome: outcome.to_string(),
            })
            .inc();
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
