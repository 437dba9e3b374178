//! The background worker: plans and sends notifications, releases verified holds, submits portal
//! replies and deletes the files of large attachments that are due. Woken by the hook (after a
//! commit), the portal (after a verification, a phone number or a reply) and a timer. Calls
//! `challenge::notify`, `hold::release`, `hold::reply` and `hold::large`.

use std::{sync::Arc, time::Duration};

use crate::{hold::release, Gateway};

/// One pass; errors are logged and the next pass tries again.
pub async fn pass(gw: &Gateway) {
    let now = crate::time::now();
    if let Err(e) = super::notify::plan(gw, now).await {
        tracing::warn!(error = %e, "planning notifications failed; will retry");
    }
    if let Err(e) = release::release_due(gw, now).await {
        tracing::warn!(error = %e, "release pass failed; will retry");
    }
    if let Err(e) = super::notify::send_due(gw, now).await {
        tracing::warn!(error = %e, "sending notifications failed; will retry");
    }
    if let Err(e) = crate::hold::reply::send_due(gw, now).await {
        tracing::warn!(error = %e, "sending portal replies failed; will retry");
    }
    // Large attachments whose retention ended or whose message was withdrawn: their files go.
    if let Err(e) = crate::hold::large::sweep(gw, now).await {
        tracing::warn!(error = %e, "deleting large attachments failed; will retry");
    }
}

/// Runs until the task is dropped or aborted.
pub async fn run(gw: Arc<Gateway>) {
    if gw.config.stalwart.is_none() {
        tracing::warn!(
            "no [stalwart] section: notifications and releases wait until it is configured"
        );
    }
    let every = Duration::from_millis(gw.config.portal.worker_interval_ms.max(50));
    let mut recovered: Option<std::time::Instant> = None;
    loop {
        // At start, then a few times per lease: the stale claims of a stopped process (this one before
        // the restart, or another instance), or of an outcome the database could not take in time, are
        // taken over while the others keep running.
        if recovered.is_none_or(|at| at.elapsed() >= recovery_interval(&gw)) {
            if let Err(e) = release::recover(&gw, crate::time::now()).await {
                tracing::warn!(error = %e, "release recovery failed; will retry");
            }
            if let Err(e) = crate::hold::reply::recover(&gw, crate::time::now()).await {
                tracing::warn!(error = %e, "portal reply recovery failed; will retry");
            }
            recovered = Some(std::time::Instant::now());
        }
        pass(&gw).await;
        tokio::select! {
            _ = gw.wake.notified() => {}
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// How often stale claims are looked for: a quarter of the lease, at most every minute.
fn recovery_interval(gw: &Gateway) -> Duration {
    let lease = gw
        .config
        .stalwart
        .as_ref()
        .map_or(600, |s| s.claim_lease_secs);
    Duration::from_secs((lease / 4).clamp(1, 60))
}

/// Starts the worker on the current runtime.
pub fn spawn(gw: Arc<Gateway>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(run(gw))
}
