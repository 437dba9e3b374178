//! Verifying the chain: every record's hash against its content, every `prev_hash` link, dense
//! sequence numbers, and the last record against the chain head. Each finding says which record.

use std::collections::VecDeque;

use serde::Serialize;

use super::record::{Record, GENESIS};

/// One way the log differs from what was appended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum Finding {
    /// The record's content no longer matches its hash.
    Edited { seq: i64 },
    /// The record's content and hash were both rewritten: it is self-consistent, but the next record
    /// links to a hash that no longer exists.
    Replaced { seq: i64 },
    /// Records that are not part of the chain: the next record links past them.
    Inserted { seqs: Vec<i64> },
    /// Records that were appended and are gone (`first..=last`).
    Deleted { first: i64, last: i64 },
    /// A link is broken in a way no single edit, insertion or deletion explains, at this record.
    Broken { seq: i64 },
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Finding::Edited { seq } => {
                write!(f, "record {seq} was edited: its content does not match its hash")
            }
            Finding::Replaced { seq } => write!(
                f,
                "record {seq} was replaced: content and hash rewritten (the next record links to the original)"
            ),
            Finding::Inserted { seqs } => write!(
                f,
                "record{} {} inserted: not part of the chain (the next record links past {})",
                if seqs.len() == 1 { "" } else { "s" },
                join(seqs),
                if seqs.len() == 1 { "it" } else { "them" }
            ),
            Finding::Deleted { first, last } if first == last => {
                write!(f, "record {first} was deleted")
            }
            Finding::Deleted { first, last } => {
                write!(f, "records {first} to {last} were deleted")
            }
            Finding::Broken { seq } => write!(f, "chain broken before record {seq}"),
        }
    }
}

fn join(seqs: &[i64]) -> String {
    seqs.iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The result of a verification.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    pub records: u64,
    pub head_seq: i64,
    pub head_hash: String,
    pub findings: Vec<Finding>,
}

impl Verification {
    pub fn ok(&self) -> bool {
        self.findings.is_empty()
    }
}

/// How far back an insertion is recognised as such (a longer run is still reported, as a broken link).
const WINDOW: usize = 4096;

/// Incremental verifier: feed records in `seq` order (the store pages through the log), then
/// [`Verifier::finish`] with the chain head.
#[derive(Default)]
pub struct Verifier {
    records: u64,
    /// `(hash, seq)` of the last [`WINDOW`] records (to recognise links that skip inserted records;
    /// searched only when a link is broken).
    recent: VecDeque<(String, i64)>,
    /// `(seq, hash, intact)` of the previous record.
    prev: Option<(i64, String, bool)>,
    /// Records after the last good link, not yet explained (candidates for "inserted").
    pending: VecDeque<i64>,
    findings: Vec<Finding>,
}

impl Verifier {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, r: &Record) {
        self.records += 1;
        let intact = r.is_intact();
        if !intact {
            self.findings.push(Finding::Edited { seq: r.seq });
        }
        let (prev_seq, prev_hash, prev_intact) =
            self.prev.clone().unwrap_or((0, GENESIS.to_string(), true));
        if r.prev_hash != prev_hash {
            let linked = self
                .recent
                .iter()
                .find(|(h, _)| *h == r.prev_hash)
                .map(|(_, s)| *s)
                // The first record links to the genesis value.
                .or((r.prev_hash == GENESIS).then_some(0));
            if let Some(linked) = linked {
                // Links past the records between `linked` and this one: those were inserted.
                let inserted: Vec<i64> = self
                    .pending
                    .iter()
                    .copied()
                    .filter(|s| *s > linked && *s < r.seq)
                    .collect();
                if inserted.is_empty() {
                    self.findings.push(Finding::Broken { seq: r.seq });
                } else {
                    self.findings.push(Finding::Inserted { seqs: inserted });
                }
            } else if r.seq > prev_seq + 1 {
                self.findings.push(Finding::Deleted {
                    first: prev_seq + 1,
                    last: r.seq - 1,
                });
            } else if prev_intact && self.prev.is_some() {
                self.findings.push(Finding::Replaced { seq: prev_seq });
            } else if self.prev.is_some() && !prev_intact {
                // Already reported as edited (its hash was changed with the content).
            } else {
                self.findings.push(Finding::Broken { seq: r.seq });
            }
            self.pending.clear();
        } else if r.seq != prev_seq + 1 {
            // Linked correctly but renumbered: the numbering itself was changed.
            self.findings.push(Finding::Broken { seq: r.seq });
        }
        self.pending.push_back(r.seq);
        if self.pending.len() > WINDOW {
            self.pending.pop_front();
        }
        self.recent.push_back((r.hash.clone(), r.seq));
        if self.recent.len() > WINDOW {
            self.recent.pop_front();
        }
        self.prev = Some((r.seq, r.hash.clone(), intact));
    }

    /// Compares the last record with the chain head (`seq`, `hash`) the appends maintain.
    pub fn finish(mut self, head_seq: i64, head_hash: &str) -> Verification {
        let (last_seq, last_hash, _) = self.prev.clone().unwrap_or((0, GENESIS.to_string(), true));
        if head_seq > last_seq {
            self.findings.push(Finding::Deleted {
                first: last_seq + 1,
                last: head_seq,
            });
        } else if head_seq < last_seq {
            let after: Vec<i64> = self
                .pending
                .iter()
                .copied()
                .filter(|s| *s > head_seq)
                .collect();
            self.findings.push(Finding::Inserted { seqs: after });
        } else if last_hash != head_hash
            && !self.findings.contains(&Finding::Edited { seq: last_seq })
        {
            self.findings.push(Finding::Replaced { seq: last_seq });
        }
        Verification {
            records: self.records,
            head_seq,
            head_hash: head_hash.to_string(),
            findings: self.findings,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::record::hash_fields;

    fn chain(n: i64) -> Vec<Record> {
        let mut prev = GENESIS.to_string();
        (1..=n)
            .map(|seq| {
                let details = format!("{{\"n\":{seq}}}");
                let hash = hash_fields(seq, "k", None, None, None, Some("r"), &details, &prev);
                let r = Record {
                    seq,
                    at: seq,
                    kind: "k".into(),
                    message_ref: None,
                    message_sha256: None,
                    sender: None,
                    recipient: Some("r".into()),
                    details,
                    prev_hash: prev.clone(),
                    hash: hash.clone(),
                };
                prev = hash;
                r
            })
            .collect()
    }

    fn verify(records: &[Record], head: (i64, &str)) -> Vec<Finding> {
        let mut v = Verifier::new();
        records.iter().for_each(|r| v.push(r));
        v.finish(head.0, head.1).findings
    }

    #[test]
    fn intact_chain_has_no_findings() {
        let c = chain(5);
        assert_eq!(verify(&c, (5, &c[4].hash.clone())), vec![]);
    }

    #[test]
    fn rewritten_record_with_recomputed_hash_is_replaced() {
        let mut c = chain(5);
        let head = c[4].hash.clone();
        c[2].recipient = Some("mallory".into());
        c[2].hash = c[2].compute_hash();
        assert_eq!(verify(&c, (5, &head)), vec![Finding::Replaced { seq: 3 }]);
    }

    #[test]
    fn renumbered_deletion_is_still_reported() {
        let mut c = chain(5);
        let head = c[4].hash.clone();
        c.remove(2);
        for r in c.iter_mut().skip(2) {
            r.seq -= 1;
        }
        let f = verify(&c, (5, &head));
        assert!(!f.is_empty());
    }
}
