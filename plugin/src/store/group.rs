//! Group commit for audit appends: callers that append at the same time share one transaction, so one
//! commit (one `fsync` on SQLite) records all of them. Each caller still returns only once its own
//! events are committed — nothing is answered before it is durable.
//!
//! One writer task per store takes the waiting appends (at most [`MAX_BATCH`]) in arrival order and
//! appends them to the chain in that order. If the shared transaction fails, every append in it is
//! tried again on its own, so each caller gets its own result (and its own error). Without a running
//! writer (its runtime gone) an append runs in a transaction of its own.

use tokio::sync::{mpsc, oneshot};

use super::{audit, Store, StoreError};
use crate::audit::Event;

/// Appends committed together at most.
const MAX_BATCH: usize = 64;

pub(super) struct Job {
    events: Vec<Event>,
    now: i64,
    done: oneshot::Sender<Result<Vec<i64>, StoreError>>,
}

/// The writer task's queue, started on first use in the caller's runtime.
#[derive(Default)]
pub(super) struct Group(std::sync::Mutex<Option<mpsc::UnboundedSender<Job>>>);

impl Store {
    /// Appends `events` in a transaction shared with the appends waiting at the same time; returns the
    /// sequence numbers once they are committed.
    pub async fn append_audit_grouped(&self, events: Vec<Event>) -> Result<Vec<i64>, StoreError> {
        let (done, wait) = oneshot::channel();
        let job = Job {
            events,
            now: crate::time::now(),
            done,
        };
        match self.group_queue().send(job) {
            Ok(()) => wait
                .await
                .unwrap_or(Err(StoreError::Db(sqlx::Error::WorkerCrashed))),
            // The writer is gone: this append on its own.
            Err(mpsc::error::SendError(job)) => self.append_audit(&job.events).await,
        }
    }

    fn group_queue(&self) -> mpsc::UnboundedSender<Job> {
        let mut slot = self.group.0.lock().unwrap_or_else(|p| p.into_inner());
        match slot.as_ref() {
            Some(tx) if !tx.is_closed() => tx.clone(),
            _ => {
                let (tx, rx) = mpsc::unbounded_channel();
                tokio::spawn(writer(self.detached(), rx));
                *slot = Some(tx.clone());
                tx
            }
        }
    }
}

/// Takes what is waiting, appends it in one transaction, answers each caller.
async fn writer(store: Store, mut rx: mpsc::UnboundedReceiver<Job>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        match append_batch(&store, &batch).await {
            Ok(seqs) => {
                for (job, seqs) in batch.into_iter().zip(seqs) {
                    let _ = job.done.send(Ok(seqs));
                }
            }
            Err(_) => {
                for job in batch {
                    let result = store.append_audit(&job.events).await;
                    let _ = job.done.send(result);
                }
            }
        }
    }
}

async fn append_batch(store: &Store, batch: &[Job]) -> Result<Vec<Vec<i64>>, StoreError> {
    let mut tx = store.begin_write().await?;
    let mut seqs = Vec::with_capacity(batch.len());
    for job in batch {
        seqs.push(audit::append(&mut tx, job.now, &job.events).await?);
    }
    tx.commit().await?;
    Ok(seqs)
}
