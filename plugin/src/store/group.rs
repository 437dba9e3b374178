//! Group commit: the store's writes that come in at a high rate — the hook's record, Stalwart's webhook
//! deliveries, audit appends — share transactions, so one commit (one `fsync` on SQLite, one round
//! trip on PostgreSQL) and one chain append record many of them. Each caller still returns only once
//! its own writes are committed: nothing is answered before it is durable.
//!
//! One writer task per store takes what is waiting and writes it in one transaction: the waiting
//! hooks and appends (at most [`MAX_JOBS`]) in arrival order; when none wait, the webhook deliveries
//! in arrival order as long as their events fit [`WEBHOOK_EVENTS`] (at least one). A hook then waits
//! for at most one delivery batch, never shares its commit with one. The decisions of all hooks go in one insert, the audit records of all
//! jobs in one append, in job order. If the shared transaction fails, every job in it is written again
//! in a transaction of its own, so each caller gets its own result (and its own error: a hook that
//! lost a race gets `DuplicateSubmission` as before). Without a running writer (its runtime gone) a
//! job runs in a transaction of its own. On a SQLite file a batch is handed to the writer's own
//! connection and thread ([`super::lite`]) and runs there in one go.

use std::collections::VecDeque;

use tokio::sync::{mpsc, oneshot};

use super::{
    audit::{self, Head, HeadHint, Intake},
    exec::{Exec, LiteTx},
    hook::{self, HookRecord},
    lite::{ready_now, Lite},
    Store, StoreError,
};
use crate::{audit::Event, stalwart::webhook};

/// Hooks and appends written together at most.
const MAX_JOBS: usize = 64;
/// Webhook events written together at most: a delivery with more is written in parts of this size
/// (see [`Store::grouped_webhook`]), so that a hook waits for at most this many events' write.
const WEBHOOK_EVENTS: usize = 50;

/// One caller's write.
enum Work {
    Append(Vec<Event>),
    Hook(Box<HookRecord>),
    Webhook(Vec<webhook::Event>),
}

/// Where a caller waits for its result.
enum Reply {
    Append(oneshot::Sender<Result<Vec<i64>, StoreError>>),
    Hook(oneshot::Sender<Result<(), StoreError>>),
    Webhook(oneshot::Sender<Result<Intake, StoreError>>),
}

pub(super) struct Job {
    work: Work,
    now: i64,
    reply: Reply,
}

/// What a job wrote: its records' sequence numbers, and for a webhook delivery what it did.
#[derive(Default)]
struct Written {
    seqs: Vec<i64>,
    intake: Intake,
}

impl Job {
    fn answer(self, result: Result<Written, StoreError>) {
        // A caller that stopped waiting (its request dropped) still had its writes committed.
        let _ = match self.reply {
            Reply::Append(tx) => tx.send(result.map(|w| w.seqs)).map_err(drop),
            Reply::Hook(tx) => tx.send(result.map(drop)).map_err(drop),
            Reply::Webhook(tx) => tx.send(result.map(|w| w.intake)).map_err(drop),
        };
    }

    fn is_webhook(&self) -> bool {
        matches!(self.work, Work::Webhook(_))
    }

    fn webhook_events(&self) -> usize {
        match &self.work {
            Work::Webhook(events) => events.len(),
            _ => 0,
        }
    }
}

/// The writer task's queue, started on first use in the caller's runtime.
#[derive(Default)]
pub(super) struct Group(std::sync::Mutex<Option<mpsc::UnboundedSender<Job>>>);

impl Store {
    /// Appends `events` in a transaction shared with the writes waiting at the same time; returns the
    /// sequence numbers once they are committed.
    pub async fn append_audit_grouped(&self, events: Vec<Event>) -> Result<Vec<i64>, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.submit(Work::Append(events), crate::time::now(), Reply::Append(tx));
        rx.await.unwrap_or_else(|_| Err(crashed()))
    }

    pub(super) async fn grouped_hook(&self, rec: HookRecord) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        let now = rec.now;
        self.submit(Work::Hook(Box::new(rec)), now, Reply::Hook(tx));
        rx.await.unwrap_or_else(|_| Err(crashed()))
    }

    /// A delivery in parts of at most [`WEBHOOK_EVENTS`], each committed when its turn comes (hooks
    /// in between). What it did, once every part is committed; the first error otherwise — the parts
    /// committed before stay, and Stalwart's re-sent batch finds their events recorded (dedup keys).
    pub(super) async fn grouped_webhook(
        &self,
        events: Vec<webhook::Event>,
        now: i64,
    ) -> Result<Intake, StoreError> {
        let mut waits = Vec::new();
        let mut events = events.into_iter().peekable();
        while events.peek().is_some() {
            let part: Vec<webhook::Event> = events.by_ref().take(WEBHOOK_EVENTS).collect();
            let (tx, rx) = oneshot::channel();
            self.submit(Work::Webhook(part), now, Reply::Webhook(tx));
            waits.push(rx);
        }
        let mut intake = Intake::default();
        for rx in waits {
            let part = rx.await.unwrap_or_else(|_| Err(crashed()))?;
            intake.recorded += part.recorded;
            intake.duplicates += part.duplicates;
            intake.waiting += part.waiting;
            intake.ignored += part.ignored;
        }
        Ok(intake)
    }

    /// Queues a job for the writer; without one, writes it here, on its own (in a task, so that the
    /// caller's wait is the same either way).
    fn submit(&self, work: Work, now: i64, reply: Reply) {
        let job = Job { work, now, reply };
        if let Err(mpsc::error::SendError(job)) = self.group_queue().send(job) {
            let store = self.detached();
            tokio::spawn(async move {
                if let (Some(job), result) = write_one(&store, job).await {
                    job.answer(result);
                }
            });
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

fn crashed() -> StoreError {
    StoreError::Db(sqlx::Error::WorkerCrashed)
}

/// Takes what is waiting, writes a batch of it in one transaction, answers each caller.
async fn writer(store: Store, mut rx: mpsc::UnboundedReceiver<Job>) {
    let (mut waiting, mut hooks_last) = (VecDeque::new(), false);
    // The chain head this writer committed last (see [`HeadHint::Cached`]); none after an error.
    let mut head = None;
    loop {
        if waiting.is_empty() {
            match rx.recv().await {
                Some(job) => waiting.push_back(job),
                None => return,
            }
        }
        while let Ok(job) = rx.try_recv() {
            waiting.push_back(job);
        }
        let batch = take_batch(&mut waiting, hooks_last);
        hooks_last = batch.first().is_some_and(|j| !j.is_webhook());
        match write_batch(&store, batch, &mut head).await {
            (batch, Ok(written)) => {
                for (job, w) in batch.into_iter().zip(written) {
                    job.answer(Ok(w));
                }
            }
            (batch, Err(e)) if batch.len() == 1 => {
                if let Some(job) = batch.into_iter().next() {
                    job.answer(Err(e));
                }
            }
            (batch, Err(_)) => {
                for job in batch {
                    if let (Some(job), result) = write_one(&store, job).await {
                        job.answer(result);
                    }
                }
            }
        }
    }
}

/// The next batch: the waiting hooks and appends (at most [`MAX_JOBS`]) in arrival order, or the
/// webhook deliveries in arrival order that fit [`WEBHOOK_EVENTS`] (at least one) — never both, so a
/// hook never shares its commit with a delivery backlog. The kinds take turns while both wait
/// (`hooks_last`: the previous batch was hooks), so neither waits for more than one batch of the
/// other. The rest keeps its place.
fn take_batch(waiting: &mut VecDeque<Job>, hooks_last: bool) -> Vec<Job> {
    let webhooks_turn = waiting.iter().any(Job::is_webhook);
    let hooks_turn = waiting.iter().any(|j| !j.is_webhook()) && !(hooks_last && webhooks_turn);
    let (mut jobs, mut events) = (0usize, 0usize);
    let mut batch = Vec::new();
    let mut rest = VecDeque::with_capacity(waiting.len());
    for job in waiting.drain(..) {
        let fits = match job.is_webhook() {
            true => {
                let n = job.webhook_events();
                let fits = !hooks_turn && (events == 0 || events + n <= WEBHOOK_EVENTS);
                events += if fits { n } else { WEBHOOK_EVENTS };
                fits
            }
            false => {
                jobs += 1;
                hooks_turn && jobs <= MAX_JOBS
            }
        };
        match fits {
            true => batch.push(job),
            false => rest.push_back(job),
        }
    }
    *waiting = rest;
    batch
}

/// [`write_batch`] of one job; the job back (none if the SQLite writer was gone) with its result.
async fn write_one(store: &Store, job: Job) -> (Option<Job>, Result<Written, StoreError>) {
    let (jobs, written) = write_batch(store, vec![job], &mut None).await;
    let written = written.map(|mut w| w.pop().unwrap_or_default());
    (jobs.into_iter().next(), written)
}

/// Writes the jobs in one transaction ([`write_jobs`]): on a SQLite file on the group writer's own
/// connection ([`super::lite`]), otherwise on a kept sqlx connection. `head`: the head committed
/// last, taken (and given back once this batch is committed). The jobs come back with the result.
async fn write_batch(
    store: &Store,
    batch: Vec<Job>,
    head: &mut Option<Head>,
) -> (Vec<Job>, Result<Vec<Written>, StoreError>) {
    let hint = head.take().map_or(HeadHint::Unknown, HeadHint::Cached);
    let legacy = store.legacy_keys.load(std::sync::atomic::Ordering::Relaxed);
    let (batch, written) = match &store.lite {
        Some(lite) => on_lite(store, lite, batch, hint, legacy).await,
        None => {
            let written = on_kept(store, &batch, hint, legacy).await;
            (batch, written)
        }
    };
    match written {
        Ok((written, new)) => {
            *head = new;
            (batch, Ok(written))
        }
        Err(e) => (batch, Err(e)),
    }
}

type Batch = Result<(Vec<Written>, Option<Head>), StoreError>;

async fn on_kept(store: &Store, batch: &[Job], hint: HeadHint, legacy: bool) -> Batch {
    let mut conn = store.kept.take().await?;
    let written = async {
        let (mut tx, _turn) = store.begin_write_on(&mut conn).await?;
        let written = write_jobs(&mut tx, batch, hint, legacy).await?;
        tx.commit().await?;
        Ok(written)
    }
    .await;
    store.kept.put(conn, &written);
    written
}

/// The batch on the SQLite writer's thread, in this process's writer turn; fails like a kept
/// connection once the pool is closed.
async fn on_lite(
    store: &Store,
    lite: &Lite,
    batch: Vec<Job>,
    hint: HeadHint,
    legacy: bool,
) -> (Vec<Job>, Batch) {
    if store.pool.is_closed() {
        return (batch, Err(StoreError::Db(sqlx::Error::PoolClosed)));
    }
    let _turn = match store.writer_turn().await {
        Ok(turn) => turn,
        Err(e) => return (batch, Err(e)),
    };
    let ran = lite
        .run(move |conn| {
            let written = LiteTx::begin(conn).and_then(|mut tx| {
                let written = ready_now(write_jobs(&mut tx, &batch, hint, legacy))?;
                tx.commit()?;
                Ok(written)
            });
            (batch, written)
        })
        .await;
    // A writer gone took the jobs with it: their callers' waits end with an error.
    ran.unwrap_or_else(|e| (Vec::new(), Err(e)))
}

/// Writes the jobs inside `tx`: the webhook deliveries' dedup keys under the head lock (SQLite: the
/// write lock), the hooks' rows, then one chain append of everyone's audit records in job order.
async fn write_jobs<E: Exec>(tx: &mut E, batch: &[Job], mut hint: HeadHint, legacy: bool) -> Batch {
    // SQLite's write transaction holds the write lock from its start; PostgreSQL's needs the head's
    // row lock before the dedup keys are read.
    let webhooks = batch.iter().any(|j| matches!(j.work, Work::Webhook(_)));
    if webhooks && !tx.sqlite() {
        hint = HeadHint::Locked(audit::lock_head(tx).await?);
    }
    let hooks: Vec<&HookRecord> = batch
        .iter()
        .filter_map(|j| match &j.work {
            Work::Hook(rec) => Some(&**rec),
            _ => None,
        })
        .collect();
    let mut hook_events = hook::write_hooks(tx, &hooks).await?.into_iter();
    let mut written = Vec::with_capacity(batch.len());
    let mut segments: Vec<(i64, Vec<Event>)> = Vec::with_capacity(batch.len());
    for job in batch {
        let (events, intake) = match &job.work {
            Work::Append(events) => (events.clone(), Intake::default()),
            Work::Hook(_) => (hook_events.next().unwrap_or_default(), Intake::default()),
            Work::Webhook(events) => {
                let (intake, audit) = audit::webhook_events(tx, events, job.now, legacy).await?;
                (audit, intake)
            }
        };
        segments.push((job.now, events));
        written.push(Written {
            seqs: Vec::new(),
            intake,
        });
    }
    let borrowed: Vec<(i64, &[Event])> = segments.iter().map(|(t, e)| (*t, &e[..])).collect();
    let (seqs, head) = audit::append_segments(tx, &borrowed, hint).await?;
    for (w, s) in written.iter_mut().zip(seqs) {
        w.seqs = s;
    }
    Ok((written, head))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn append() -> Job {
        let (tx, _) = oneshot::channel();
        Job {
            work: Work::Append(Vec::new()),
            now: 0,
            reply: Reply::Append(tx),
        }
    }

    fn webhook(events: usize) -> Job {
        let event: webhook::Event = serde_json::from_value(serde_json::json!({
            "id": "1", "createdAt": "2026-11-22T08:00:00Z", "type": "delivery.delivered", "data": {}
        }))
        .unwrap();
        let (tx, _) = oneshot::channel();
        Job {
            work: Work::Webhook(vec![event; events]),
            now: 0,
            reply: Reply::Webhook(tx),
        }
    }

    fn kinds(jobs: &[Job]) -> Vec<usize> {
        jobs.iter().map(Job::webhook_events).collect()
    }

    #[test]
    fn hooks_and_deliveries_take_turns_and_never_share_a_batch() {
        let mut waiting: VecDeque<Job> = [webhook(5), append(), webhook(7), append()].into();
        let batch = take_batch(&mut waiting, false);
        assert_eq!(kinds(&batch), [0, 0], "the hooks first");
        assert_eq!(kinds(waiting.make_contiguous()), [5, 7]);
        waiting.push_back(append());
        let batch = take_batch(&mut waiting, true);
        assert_eq!(
            kinds(&batch),
            [5, 7],
            "then the deliveries, although a hook waits"
        );
        assert_eq!(kinds(waiting.make_contiguous()), [0]);
        let batch = take_batch(&mut waiting, false);
        assert_eq!(kinds(&batch), [0]);
        assert!(waiting.is_empty());
        // Only hooks waiting after a batch of hooks: hooks again.
        waiting.push_back(append());
        assert_eq!(kinds(&take_batch(&mut waiting, true)), [0]);
    }

    #[test]
    fn deliveries_fill_the_event_budget_in_arrival_order() {
        const W: usize = WEBHOOK_EVENTS;
        let mut waiting: VecDeque<Job> =
            [webhook(3 * W), webhook(W / 2), webhook(W / 4), webhook(1)].into();
        assert_eq!(
            kinds(&take_batch(&mut waiting, false)),
            [3 * W],
            "one, however large"
        );
        assert_eq!(kinds(&take_batch(&mut waiting, false)), [W / 2, W / 4, 1]);
        let mut waiting: VecDeque<Job> = [webhook(W - 1), webhook(2), webhook(1)].into();
        assert_eq!(
            kinds(&take_batch(&mut waiting, false)),
            [W - 1],
            "a later small one does not overtake"
        );
        assert_eq!(waiting.len(), 2);
    }

    #[test]
    fn hooks_are_batched_up_to_the_limit() {
        let mut waiting: VecDeque<Job> = (0..MAX_JOBS + 3).map(|_| append()).collect();
        assert_eq!(take_batch(&mut waiting, false).len(), MAX_JOBS);
        assert_eq!(take_batch(&mut waiting, true).len(), 3);
    }
}
