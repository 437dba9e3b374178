//! A real validating recursive resolver between the prober and the test zones: Debian's `unbound`,
//! started as a child process (`-d`, foreground) on a fresh loopback port and killed on drop.
//!
//! This is how production looks: `smarttls.resolver` points at a validating resolver, which
//! answers SERVFAIL (with Extended DNS Error 6, RFC 8914) for bogus data and returns it only when
//! the query has the CD bit set. The resolver gets the zones' trust anchors, a `stub-zone` per zone
//! to the in-process authoritative server, `ede: yes`, and `local-zone: "test." nodefault` (without
//! it unbound answers NXDOMAIN for the RFC 6761 `test.` TLD). With `validate: false` it is a plain
//! caching resolver without any trust anchor (the "forwarder that cannot validate" case).
//!
//! `unbound` is a required test tool: when it is missing, [`Unbound::start`] panics under CI (`CI`
//! set) and otherwise prints `SKIPPED` and returns `None`, like the gateway's other required tools.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

/// A running unbound; killed when dropped.
pub struct Unbound {
    /// Where it listens (UDP and TCP).
    pub addr: SocketAddr,
    child: Child,
}

impl Drop for Unbound {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// The unbound binary: `$NTA7516_UNBOUND`, `/usr/sbin/unbound`, or `unbound` on `PATH`.
pub fn unbound_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("NTA7516_UNBOUND") {
        return Some(PathBuf::from(p));
    }
    let sbin = Path::new("/usr/sbin/unbound");
    if sbin.exists() {
        return Some(sbin.to_path_buf());
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("unbound"))
            .find(|p| p.exists())
    })
}

/// The unbound binary, or `None` after a loud `SKIPPED` (a panic under CI).
pub fn require_unbound() -> Option<PathBuf> {
    match unbound_binary() {
        Some(p) => Some(p),
        None if std::env::var_os("CI").is_some() => {
            panic!("CI is set but unbound is missing: run .ci/setup.d/smarttls.sh")
        }
        None => {
            eprintln!("SKIPPED: unbound not found (run .ci/setup.d/smarttls.sh)");
            None
        }
    }
}

/// The configuration text: listen on `port`, a stub zone per `(zone, server)`, anchors when
/// validating.
fn config(port: u16, stubs: &[(String, SocketAddr)], anchors: &str, validate: bool) -> String {
    let mut c = format!(
        "server:\n  interface: 127.0.0.1\n  port: {port}\n  do-ip6: no\n  do-daemonize: no\n  \
         username: \"\"\n  chroot: \"\"\n  pidfile: \"\"\n  logfile: \"\"\n  use-syslog: no\n  \
         verbosity: 0\n  num-threads: 1\n  so-reuseport: no\n  do-not-query-localhost: no\n  \
         local-zone: \"test.\" nodefault\n  qname-minimisation: no\n  ede: yes\n  \
         val-log-level: 0\n  harden-dnssec-stripped: yes\n"
    );
    if validate {
        c.push_str("  module-config: \"validator iterator\"\n");
        for line in anchors.lines().filter(|l| !l.trim().is_empty()) {
            c.push_str(&format!("  trust-anchor: \"{}\"\n", line.trim()));
        }
    } else {
        c.push_str("  module-config: \"iterator\"\n");
    }
    for (z, server) in stubs {
        let z = z.trim_end_matches('.');
        c.push_str(&format!(
            "stub-zone:\n  name: \"{z}.\"\n  stub-addr: {}@{}\n",
            server.ip(),
            server.port()
        ));
    }
    c
}

impl Unbound {
    /// Starts unbound in `dir` with a stub zone per `(zone, server)`, validating with `anchors`
    /// (zone-file DNSKEY/DS lines) when `validate`. `None`: not installed.
    pub async fn start(
        dir: &Path,
        stubs: &[(String, SocketAddr)],
        anchors: &str,
        validate: bool,
    ) -> Option<Unbound> {
        let bin = require_unbound()?;
        for _ in 0..20 {
            let port = free_udp_tcp_port();
            let conf = dir.join(format!("unbound-{port}.conf"));
            std::fs::write(&conf, config(port, stubs, anchors, validate))
                .expect("write unbound.conf");
            let mut child = Command::new(&bin)
                .arg("-d")
                .arg("-c")
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .expect("start unbound");
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            if wait_ready(addr, &mut child).await {
                return Some(Unbound { addr, child });
            }
            let _ = child.start_kill();
        }
        panic!("unbound did not start (20 tries)");
    }
}

/// A port free for both UDP and TCP on 127.0.0.1 (released again for unbound to bind).
fn free_udp_tcp_port() -> u16 {
    loop {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp bind");
        let port = udp.local_addr().expect("addr").port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Waits until unbound accepts TCP on `addr` (it binds UDP first); `false` if it exited.
async fn wait_ready(addr: SocketAddr, child: &mut Child) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(10) {
        if let Ok(Some(status)) = child.try_wait() {
            eprintln!("unbound exited: {status}");
            return false;
        }
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}
