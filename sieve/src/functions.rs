//! The host functions of `vnd.nta7516`, called from `eval` expressions.

use sieve::FunctionMap;

/// A host function: what the script calls, and what the host does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HostFn {
    Require2fa,
    Exempt,
    Portal,
    Reject,
    Quarantine,
    Group,
    HasBsn,
    HasPhone,
    HasTag,
    PortalAttachments,
}

/// Every function: name, number of arguments, what it does. The index is the sieve-rs function id
/// (append new functions at the end: the ids of the others stay).
pub const FUNCTIONS: &[(&str, u32, &str)] = &[
    (
        "nta_require_2fa",
        1,
        "decision: the recipient must pass 2FA (reason)",
    ),
    (
        "nta_exempt",
        1,
        "decision: no 2FA needed for this recipient (reason)",
    ),
    (
        "nta_portal",
        1,
        "decision: the recipient reads the message on the portal (reason)",
    ),
    (
        "nta_reject",
        1,
        "decision: refuse the message for this recipient (reason)",
    ),
    (
        "nta_group",
        1,
        "assign the sender to a group, reported with the decision (name)",
    ),
    (
        "nta_has_bsn",
        0,
        "test: a BSN passing the 11-check in the subject, text or text attachments",
    ),
    (
        "nta_has_phone",
        0,
        "test: a phone number in the subject, text or text attachments",
    ),
    (
        "nta_has_tag",
        1,
        "test: the tag occurs in the subject or text, case-insensitively (tag)",
    ),
    (
        "nta_quarantine",
        1,
        "decision (received mail): deliver to the quarantine mailbox only (reason)",
    ),
    (
        "nta_portal_attachments",
        1,
        "decision: every attachment by a secure portal link, and so at least 2FA (reason)",
    ),
];

const BY_ID: [HostFn; 10] = [
    HostFn::Require2fa,
    HostFn::Exempt,
    HostFn::Portal,
    HostFn::Reject,
    HostFn::Group,
    HostFn::HasBsn,
    HostFn::HasPhone,
    HostFn::HasTag,
    HostFn::Quarantine,
    HostFn::PortalAttachments,
];

impl HostFn {
    pub(crate) fn from_id(id: u32) -> Option<HostFn> {
        BY_ID.get(id as usize).copied()
    }
}

/// A fresh map (sieve-rs consumes a map per compiler and per runtime).
pub(crate) fn function_map() -> FunctionMap {
    FUNCTIONS
        .iter()
        .enumerate()
        .fold(FunctionMap::new(), |map, (id, (name, args, _))| {
            map.with_external_function(*name, id as u32, *args)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sieve-rs id of a function is its index in [`FUNCTIONS`]; [`BY_ID`] must agree, or a call
    /// would do another function's work.
    #[test]
    fn ids_name_the_same_function() {
        let names = [
            (HostFn::Require2fa, "nta_require_2fa"),
            (HostFn::Exempt, "nta_exempt"),
            (HostFn::Portal, "nta_portal"),
            (HostFn::Reject, "nta_reject"),
            (HostFn::Group, "nta_group"),
            (HostFn::HasBsn, "nta_has_bsn"),
            (HostFn::HasPhone, "nta_has_phone"),
            (HostFn::HasTag, "nta_has_tag"),
            (HostFn::Quarantine, "nta_quarantine"),
            (HostFn::PortalAttachments, "nta_portal_attachments"),
        ];
        assert_eq!(FUNCTIONS.len(), BY_ID.len());
        for (f, name) in names {
            let id = FUNCTIONS.iter().position(|(n, ..)| *n == name).unwrap();
            assert_eq!(HostFn::from_id(id as u32), Some(f), "{name}");
        }
    }
}
