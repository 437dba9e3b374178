//! The retention job: held content is deleted once its period (default 90 days) has passed, and
//! webhook dedup keys once Stalwart can no longer re-send their events. Calls `store` only.

use std::time::Duration;

use crate::store::Store;

/// Runs [`Store::purge_expired`] now and then every `every`, until the task is dropped.
pub async fn run(store: Store, every: Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        match store.purge_expired(crate::time::now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(purged = n, "retention: held content deleted"),
            Err(e) => tracing::warn!(error = %e, "retention job failed; will retry"),
        }
        // Sent portal replies keep their content as long as the message they answer.
        if let Err(e) = store.purge_replies(crate::time::now()).await {
            tracing::warn!(error = %e, "retention of portal replies failed; will retry");
        }
        // Webhook dedup keys are needed only while Stalwart may re-send their events.
        match store.purge_webhook_keys(crate::time::now()).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(deleted = n, "retention: webhook dedup keys deleted"),
            Err(e) => {
                tracing::warn!(error = %e, "retention of webhook dedup keys failed; will retry")
            }
        }
    }
}
