//! Wire formats of Stalwart's extension points, and nothing else.
//!
//! Every byte the gateway exchanges with Stalwart over HTTP is typed here, with the exact serde rules
//! Stalwart uses (see `CONTRACT.md` §1.4–1.5 in the project's shared notes): lower-case actions,
//! `enhanced_status` in snake case, `modifications`/`parameters` omitted rather than `null`, and
//! parameter values that are only strings. The management API (v0.15 [`settings`], v0.16 JMAP
//! [`registry`] objects, the HTTP client [`management`]) is read by `stalwart check`.

pub mod hook;
pub mod hook_stream;
pub mod management;
pub mod registry;
pub mod render;
pub mod settings;
pub mod webhook;
