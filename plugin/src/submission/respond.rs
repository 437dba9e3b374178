//! Decisions → Stalwart's hook answer. Pure: the answer follows from the decisions alone.
//!
//! - any Reject → the whole message is refused: `554 5.6.0` when its body cannot be held unaltered,
//!   otherwise `550 5.7.1` with the first rejected recipient's reasons;
//! - nothing held → `accept` (with the correlation header when something goes out to an external
//!   recipient);
//! - some held → `accept` + `deleteRecipient` for each held recipient;
//! - all held → `discard` with `250 2.0.0 Held for secure delivery (id …)`. Deleting every recipient
//!   instead would leave an orphaned, never-delivered queue entry in Stalwart.

use crate::{
    policy::{Decision, Outcome, ReasonCode},
    stalwart::hook::{Modification, Response},
};

/// Header added to messages that go out now, to correlate Stalwart's delivery events with decisions.
pub const CORRELATION_HEADER: &str = "X-NTA7516-Id";

/// The answer for these decisions, recorded under `message_ref`.
pub fn respond(decisions: &[Decision], message_ref: &str) -> Response {
    if let Some(rejected) = decisions.iter().find(|d| d.outcome == Outcome::Reject) {
        return refusal(rejected);
    }
    let held: Vec<&Decision> = decisions.iter().filter(|d| d.outcome.is_held()).collect();
    if !held.is_empty() && held.len() == decisions.len() {
        return Response::discard(format!(
            "Held for secure delivery (id {message_ref}); the recipient is asked to verify before it is released"
        ));
    }
    let mut modifications: Vec<Modification> = held
        .iter()
        .map(|d| Modification::DeleteRecipient {
            value: d.recipient.clone(),
        })
        .collect();
    if decisions.iter().any(|d| d.outcome == Outcome::Deliver) {
        modifications.push(Modification::AddHeader {
            name: CORRELATION_HEADER.into(),
            value: message_ref.to_string(),
        });
    }
    Response::accept(modifications)
}

fn refusal(rejected: &Decision) -> Response {
    if rejected.has(ReasonCode::Unholdable8bitBody) {
        return Response::reject(
            554,
            "5.6.0",
            "This message needs secure delivery, but its body uses 8-bit characters that are not UTF-8, \
             so it cannot be held unaltered. Please resend it with standard encoding (UTF-8, \
             quoted-printable or base64; most mail programs do this by default)."
                .into(),
        );
    }
    Response::reject(
        550,
        "5.7.1",
        format!(
            "Message refused by the NTA 7516 policy for <{}>: {}",
            rejected.recipient,
            rejected.summary()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        policy::{Reason, Step},
        stalwart::hook::Action,
    };

    fn d(rcpt: &str, outcome: Outcome) -> Decision {
        Decision {
            recipient: rcpt.into(),
            outcome,
            reasons: Vec::new(),
            attachments: Default::default(),
        }
    }

    #[test]
    fn all_held_is_discard_never_delete_all() {
        let r = respond(
            &[
                d("a@x.test", Outcome::Challenge),
                d("b@y.test", Outcome::Portal),
            ],
            "h-1",
        );
        assert_eq!(r.action, Action::Discard);
        assert!(r.modifications.is_empty());
        let resp = r.response.unwrap();
        assert_eq!((resp.status, resp.enhanced_status.as_str()), (250, "2.0.0"));
        assert!(resp.message.contains("h-1"));
    }

    #[test]
    fn mixed_deletes_held_and_tags_the_rest() {
        let r = respond(
            &[
                d("a@x.test", Outcome::Challenge),
                d("b@y.test", Outcome::Deliver),
            ],
            "h-2",
        );
        assert_eq!(r.action, Action::Accept);
        assert_eq!(
            r.modifications,
            vec![
                Modification::DeleteRecipient {
                    value: "a@x.test".into()
                },
                Modification::AddHeader {
                    name: CORRELATION_HEADER.into(),
                    value: "h-2".into()
                }
            ]
        );
    }

    #[test]
    fn held_with_local_recipient_is_accept() {
        let r = respond(
            &[
                d("a@x.test", Outcome::Portal),
                d("me@zorg.test", Outcome::Local),
            ],
            "h-3",
        );
        assert_eq!(r.action, Action::Accept);
        assert_eq!(
            r.modifications,
            vec![Modification::DeleteRecipient {
                value: "a@x.test".into()
            }]
        );
    }

    #[test]
    fn a_reject_refuses_the_message_with_its_reasons() {
        let mut rejected = d("b@y.test", Outcome::Reject);
        rejected.reasons.push(Reason::new(
            Step::Policy,
            ReasonCode::PolicyReject,
            "no mail to y",
        ));
        let r = respond(&[d("a@x.test", Outcome::Deliver), rejected], "m-1");
        assert_eq!(r.action, Action::Reject);
        assert!(r.modifications.is_empty());
        let resp = r.response.unwrap();
        assert_eq!((resp.status, resp.enhanced_status.as_str()), (550, "5.7.1"));
        assert_eq!(
            resp.message,
            "Message refused by the NTA 7516 policy for <b@y.test>: no mail to y"
        );
    }

    #[test]
    fn an_unholdable_body_is_a_554() {
        let mut rejected = d("b@y.test", Outcome::Reject);
        rejected.reasons.push(Reason::new(
            Step::Hold,
            ReasonCode::Unholdable8bitBody,
            "cannot be held",
        ));
        let r = respond(&[d("a@x.test", Outcome::Deliver), rejected], "");
        assert_eq!(r.action, Action::Reject);
        let resp = r.response.unwrap();
        assert_eq!((resp.status, resp.enhanced_status.as_str()), (554, "5.6.0"));
        assert!(resp
            .message
            .starts_with("This message needs secure delivery"));
        assert!(resp
            .message
            .contains("Please resend it with standard encoding"));
    }
}
