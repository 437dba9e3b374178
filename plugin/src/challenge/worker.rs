//! The background worker: plans and sends notifications, releases verified holds, submits portal
//! replies and deletes the files of large attachments that are due. Woken by the hook (after a
//! commit that holds someone: [`Wake::soon`], gathered), the portal (after a verification, a phone
//! number or a reply: [`Wake::now`]) and a timer. Calls
//! `challenge::notify`, `hold::release`, `hold::reply` and `hold::large`.

use std::{sync::Arc, time::Duration};

use tokio::sync::Notify;

use crate::{hold::release, Gateway};

/// How long a pass woken by a hook's hold waits for more: holds that come in meanwhile share the pass
/// (a pass costs about a dozen statements whatever it finds, and under load a hold comes every few
/// tens of milliseconds); a notice mailed a fifth of a second later changes nothing for its reader.
pub const GATHER: Duration = Duration::from_millis(200);

/// What wakes the worker before its timer: [`Wake::now`] for someone waiting on the portal (a
/// verification, a phone number, a reply), [`Wake::soon`] for a hook's hold (its notices).
#[derive(Default)]
pub struct Wake {
    now: Notify,
    soon: Notify,
}

impl Wake {
    /// A pass at once.
    pub fn now(&self) {
        self.now.notify_one();
    }

    /// A pass within [`GATHER`], shared with whatever else comes in meanwhile.
    pub fn soon(&self) {
        self.soon.notify_one();
    }

    /// Waits for a wake (a `soon` one plus its gathering time, cut short by a `now` one) or `every`.
    /// The `soon` wakes of the gathering time are taken with it: their holds were committed before
    /// they woke, so the pass that follows sees them, and they do not cause a second pass.
    async fn wait(&self, every: Duration) {
        tokio::select! {
            _ = self.now.notified() => {}
            _ = self.soon.notified() => {
                tokio::select! {
                    _ = self.now.notified() => {}
                    _ = tokio::time::sleep(GATHER) => {}
                }
                let _ = futures_util::FutureExt::now_or_never(self.soon.notified());
            }
            _ = tokio::time::sleep(every) => {}
        }
    }
}

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
    // The SMTP sessions kept for the next pass close once idle for a while.
    gw.notify_session.expire().await;
    gw.release_session.expire().await;
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
        gw.wake.wait(every).await;
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

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    const EVERY: Duration = Duration::from_secs(30);

    #[tokio::test]
    async fn a_hold_wakes_one_pass_for_all_it_gathered() {
        let wake = Wake::default();
        let start = Instant::now();
        wake.soon();
        let waiting = wake.wait(EVERY);
        tokio::pin!(waiting);
        // More holds while the first one gathers: the same pass.
        let more = async {
            tokio::time::sleep(GATHER / 4).await;
            wake.soon();
            wake.soon();
        };
        tokio::join!(&mut waiting, more);
        let took = start.elapsed();
        assert!(took >= GATHER && took < EVERY / 2, "{took:?}");
        // Nothing left over: the next wait ends with the timer.
        let next = Instant::now();
        let timer = wake.wait(GATHER * 2);
        timer.await;
        assert!(next.elapsed() >= GATHER * 2, "{:?}", next.elapsed());
    }

    #[tokio::test]
    async fn the_portal_wakes_at_once_and_cuts_a_gathering_short() {
        let wake = Wake::default();
        let start = Instant::now();
        wake.now();
        wake.wait(EVERY).await;
        wake.soon();
        let cut = async {
            tokio::time::sleep(GATHER / 10).await;
            wake.now();
        };
        tokio::join!(wake.wait(EVERY), cut);
        assert!(start.elapsed() < GATHER, "{:?}", start.elapsed());
    }
}
