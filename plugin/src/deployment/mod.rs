//! The Stalwart side of a deployment: render, check, trust. Commands an operator runs while putting the
//! gateway next to a Stalwart.
//!
//! - [`side`]: what the gateway needs from Stalwart, derived from its configuration (the renderers in
//!   `crate::stalwart::render` write it in Stalwart's formats: `stalwart-nta7516 stalwart render`);
//! - [`check`]: `stalwart-nta7516 stalwart check` and `serve`'s monitor — read a live Stalwart's
//!   configuration through its management API and judge it rule by rule (`on_unsafe`);
//! - [`trust`]: `stalwart-nta7516 stalwart trust` — fetch the certificate of Stalwart's `nta-release` /
//!   `nta-notify` listener once, show it, and pin its key in the gateway's configuration.

pub mod check;
pub mod side;
pub mod trust;

/// The gateway behind the recorded Stalwart answers (the project's `tests/fixtures/v0.15` "world" and
/// `v0.16` "after-plan"): listens on 127.0.0.1:8470, service account `svc-nta@zorg.test`, local domain
/// `zorg.test`.
#[cfg(test)]
pub(crate) fn fixture_gateway() -> crate::config::Config {
    let toml = r#"
        [server]
        listen = "127.0.0.1:8470"
        public_url = "https://veilig.zorg.test"
        [organisation]
        local_domains = ["zorg.test"]
        [stalwart]
        release = "127.0.0.1:10025"
        notify = "127.0.0.1:10026"
        username = "svc-nta@zorg.test"
        password = "x"
        notify_from = "beveiligd@zorg.test"
    "#;
    crate::config::Config::parse(toml, std::path::Path::new("world.toml"), std::iter::empty())
        .expect("the fixtures' gateway configuration")
}
