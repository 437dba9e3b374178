//! Audit log storage: chained appends (in the caller's transaction), queries, verification and the
//! webhook intake's dedup and correlation.

use std::collections::{HashMap, HashSet};

use sqlx::Row;

use super::{
    exec::{Arg, Exec},
    placeholders, Store, StoreError,
};
use crate::{
    audit::{
        self,
        delivery::{self, Correlation},
        Event, Record, Verification, Verifier,
    },
    stalwart::webhook,
};

/// A write transaction on the gateway's database.
pub type Tx = super::WriteTx;

const COLUMNS: &str =
    "seq, at, kind, message_ref, message_sha256, sender, recipient, details, prev_hash, hash";

/// Appends `events` to the chain inside `tx`, in order, all at time `now` unless an event carries its
/// own time. The chain head is locked first (PostgreSQL: row lock; SQLite: the write lock), so appends
/// from any number of connections or gateway instances form one chain; make it the last write of the
/// transaction to keep the lock short. Returns the sequence numbers given.
pub async fn append<E: Exec>(
    tx: &mut E,
    now: i64,
    events: &[Event],
) -> Result<Vec<i64>, StoreError> {
    let (mut seqs, _) = append_segments(tx, &[(now, events)], HeadHint::Unknown).await?;
    Ok(seqs.pop().unwrap_or_default())
}

/// The chain head: the sequence number and hash of the last record.
#[derive(Debug, Clone)]
pub(super) struct Head {
    pub seq: i64,
    pub hash: String,
}

/// What an append knows of the head before it starts.
pub(super) enum HeadHint {
    /// Nothing: it locks and reads the head.
    Unknown,
    /// Read under the lock earlier in this transaction ([`lock_head`]).
    Locked(Head),
    /// What this process's group writer committed last: right unless something else appended since
    /// (another connection, another instance). Checked by the head's update itself, which locks it;
    /// when it was stale, the head is read under the lock and the records chained anew.
    Cached(Head),
}

impl HeadHint {
    /// The head as far as it is known (unchanged by an append of nothing).
    fn known(self) -> Option<Head> {
        match self {
            HeadHint::Unknown => None,
            HeadHint::Locked(head) | HeadHint::Cached(head) => Some(head),
        }
    }
}

/// [`append`] for several callers' events at once (one head lock, one insert per 500 records, one
/// head update): each segment's events at its own time, the segments in order. Returns the sequence
/// numbers per segment and the new head. With a [`HeadHint::Cached`] head that is right, the head is
/// locked, checked and moved by one statement.
pub(super) async fn append_segments<E: Exec>(
    tx: &mut E,
    segments: &[(i64, &[Event])],
    hint: HeadHint,
) -> Result<(Vec<Vec<i64>>, Option<Head>), StoreError> {
    if segments.iter().all(|(_, events)| events.is_empty()) {
        return Ok((vec![Vec::new(); segments.len()], hint.known()));
    }
    let mut records = Vec::new();
    let mut ends = Vec::with_capacity(segments.len());
    for (now, events) in segments {
        for e in entries_with_late(tx, *now, events).await? {
            records.push(unchained(e, *now));
        }
        ends.push(records.len());
    }
    let head = match hint {
        HeadHint::Locked(head) => head,
        HeadHint::Unknown => lock_head(tx).await?,
        HeadHint::Cached(head) => {
            let new = chain(&mut records, &head);
            match move_head(tx, Some(&head), &new).await? {
                true => return finish(tx, records, &ends, new).await,
                false => lock_head(tx).await?,
            }
        }
    };
    let new = chain(&mut records, &head);
    move_head(tx, None, &new).await?;
    finish(tx, records, &ends, new).await
}

/// Inserts the chained records; the sequence numbers per segment (`ends`: where each one ends).
async fn finish<E: Exec>(
    tx: &mut E,
    records: Vec<Record>,
    ends: &[usize],
    head: Head,
) -> Result<(Vec<Vec<i64>>, Option<Head>), StoreError> {
    insert_records(tx, &records).await?;
    let mut start = 0;
    let seqs = ends
        .iter()
        .map(|&end| {
            let seqs = records[start..end].iter().map(|r| r.seq).collect();
            start = end;
            seqs
        })
        .collect();
    Ok((seqs, Some(head)))
}

/// Moves the head to `new`; with `from`, only if the head is still there (false: it was not, and
/// nothing changed). Locks the head row either way.
async fn move_head<E: Exec>(
    tx: &mut E,
    from: Option<&Head>,
    new: &Head,
) -> Result<bool, StoreError> {
    let mut args = vec![new.seq.into(), Arg::from(&new.hash)];
    let sql = match from {
        Some(from) => {
            args.extend([from.seq.into(), Arg::from(&from.hash)]);
            "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1 AND seq = $3 AND hash = $4"
        }
        None => "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1",
    };
    Ok(tx.execute(sql, &args).await? == 1)
}

/// The entries of `events`; a release linking its queue id brings in the delivery events that came
/// before it, right after it.
async fn entries_with_late<E: Exec>(
    tx: &mut E,
    now: i64,
    events: &[Event],
) -> Result<Vec<audit::Entry>, StoreError> {
    let mut entries = Vec::with_capacity(events.len());
    for event in events {
        entries.push(event.entry());
        if let Event::Released {
            message_ref,
            queue_id: Some(q),
            ..
        } = event
        {
            for late in link_queue(tx, *q, message_ref, now).await? {
                entries.push(late.entry());
            }
        }
    }
    Ok(entries)
}

/// The record of one entry, not yet chained (see [`chain`]).
fn unchained(e: audit::Entry, now: i64) -> Record {
    Record {
        seq: 0,
        at: e.at.unwrap_or(now),
        kind: e.kind.to_string(),
        message_ref: e.message_ref,
        message_sha256: e.message_sha256,
        sender: e.sender,
        recipient: e.recipient,
        details: e.details.to_string(),
        prev_hash: String::new(),
        hash: String::new(),
    }
}

/// Numbers and chains `records` after `head`; returns the new head.
fn chain(records: &mut [Record], head: &Head) -> Head {
    let (mut seq, mut prev) = (head.seq, head.hash.clone());
    for r in records.iter_mut() {
        seq += 1;
        r.seq = seq;
        r.prev_hash = prev;
        r.hash = r.compute_hash();
        prev = r.hash.clone();
    }
    Head { seq, hash: prev }
}

/// Writes already-chained records (multi-row inserts).
async fn insert_records<E: Exec>(tx: &mut E, records: &[Record]) -> Result<(), StoreError> {
    for chunk in records.chunks(500) {
        let sql = format!(
            "INSERT INTO audit_log ({COLUMNS}) VALUES {}",
            placeholders(tx.sqlite(), chunk.len(), 10)
        );
        let mut args = Vec::with_capacity(chunk.len() * 10);
        for r in chunk {
            args.extend([
                r.seq.into(),
                r.at.into(),
                (&r.kind).into(),
                r.message_ref.as_deref().into(),
                r.message_sha256.as_deref().into(),
                r.sender.as_deref().into(),
                r.recipient.as_deref().into(),
                (&r.details).into(),
                (&r.prev_hash).into(),
                Arg::from(&r.hash),
            ]);
        }
        tx.execute(&sql, &args).await?;
    }
    Ok(())
}

/// Records the link queue id → message and returns the audit events for webhook events of that queue
/// id that arrived before the link (they are removed from the waiting table).
async fn link_queue<E: Exec>(
    tx: &mut E,
    queue_id: u64,
    message_ref: &str,
    now: i64,
) -> Result<Vec<Event>, StoreError> {
    let hex = format!("{queue_id:x}");
    tx.execute(
        "INSERT INTO queue_links (queue_id, message_ref, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (queue_id) DO NOTHING",
        &[(&hex).into(), message_ref.into(), now.into()],
    )
    .await?;
    let waiting = tx
        .fetch_all(
            "SELECT key, event FROM webhook_unmatched WHERE queue_id = $1 ORDER BY received_at, key",
            &[(&hex).into()],
        )
        .await?;
    if waiting.is_empty() {
        return Ok(Vec::new());
    }
    let corr = correlate(tx, queue_id)
        .await?
        .unwrap_or_else(|| Correlation {
            message_ref: message_ref.to_string(),
            sha256: None,
            sender: None,
        });
    let mut events = Vec::with_capacity(waiting.len());
    for row in waiting {
        let text: String = row.get(1)?;
        // Stored by the intake from a validated event; an unreadable row is kept, not dropped.
        if let Ok(ev) = serde_json::from_str::<webhook::Event>(&text) {
            if let Ok(at) = ev.created_unix() {
                events.push(delivery::to_audit(&ev, queue_id, at, &corr));
            }
        }
    }
    tx.execute(
        "DELETE FROM webhook_unmatched WHERE queue_id = $1",
        &[(&hex).into()],
    )
    .await?;
    Ok(events)
}

/// The message behind a Stalwart queue id: the hook's decisions first, then recorded releases.
async fn correlate<E: Exec>(tx: &mut E, queue_id: u64) -> Result<Option<Correlation>, StoreError> {
    Ok(correlate_all(tx, &[queue_id]).await?.remove(&queue_id))
}

/// [`correlate`] for many queue ids at once: two queries per 500 ids, whatever the batch holds.
async fn correlate_all<E: Exec>(
    tx: &mut E,
    queue_ids: &[u64],
) -> Result<HashMap<u64, Correlation>, StoreError> {
    let mut found = HashMap::with_capacity(queue_ids.len());
    for chunk in queue_ids.chunks(500) {
        let hex: HashMap<String, u64> = chunk.iter().map(|q| (format!("{q:x}"), *q)).collect();
        let list = placeholders(tx.sqlite(), 1, hex.len());
        // The first decision of a queue id names its message (a retry adds later rows).
        let sql = format!(
            "SELECT queue_id, message_ref, sha256, sender FROM decisions WHERE queue_id IN {list} \
             ORDER BY id"
        );
        found_rows(tx, &sql, &hex, &mut found).await?;
        let missing: HashMap<String, u64> = hex
            .into_iter()
            .filter(|(_, q)| !found.contains_key(q))
            .collect();
        if missing.is_empty() {
            continue;
        }
        let sql = format!(
            "SELECT q.queue_id, q.message_ref, h.sha256, h.sender FROM queue_links q \
             LEFT JOIN held_messages h ON h.id = q.message_ref WHERE q.queue_id IN {}",
            placeholders(tx.sqlite(), 1, missing.len())
        );
        found_rows(tx, &sql, &missing, &mut found).await?;
    }
    Ok(found)
}

/// Runs a correlation query over the hex queue ids of `ids` and keeps the first row of each.
async fn found_rows<E: Exec>(
    tx: &mut E,
    sql: &str,
    ids: &HashMap<String, u64>,
    found: &mut HashMap<u64, Correlation>,
) -> Result<(), StoreError> {
    let args: Vec<Arg> = ids.keys().map(Arg::from).collect();
    for row in tx.fetch_all(sql, &args).await? {
        let hex: String = row.get(0)?;
        if let Some(queue_id) = ids.get(&hex) {
            if !found.contains_key(queue_id) {
                let corr = Correlation {
                    message_ref: row.get(1)?,
                    sha256: row.get(2)?,
                    sender: row.get(3)?,
                };
                found.insert(*queue_id, corr);
            }
        }
    }
    Ok(())
}

/// What one webhook delivery did.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Intake {
    /// Events recorded in the audit log.
    pub recorded: usize,
    /// Already recorded before (a re-sent batch).
    pub duplicates: usize,
    /// Recorded types whose queue id matches no message yet: kept until a release names it.
    pub waiting: usize,
    /// Types the audit log does not record, or events without a queue id.
    pub ignored: usize,
}

/// A recorded webhook event with its queue id, time (unix seconds) and dedup key.
type Candidate<'e> = (&'e webhook::Event, u64, i64, String);

/// How long a webhook event's dedup key is kept after the event's time. Stalwart re-sends a batch
/// only until its events are older than `discard-after` (5 minutes by default, a day in the shipped
/// configuration); a week covers any setting an admin would choose.
pub const DEDUP_WINDOW: i64 = 7 * 86_400;
/// Rows deleted per transaction by [`Store::purge_webhook_keys`].
const PURGE_PART: i64 = 5_000;

/// Locks the chain head without changing it and reads it: on PostgreSQL concurrent deliveries of the
/// same webhook batch are then serialised, and the second one sees the first one's dedup keys (on
/// SQLite a write transaction holds the database's write lock from its start).
pub(super) async fn lock_head<E: Exec>(tx: &mut E) -> Result<Head, StoreError> {
    let sql = "UPDATE audit_head SET seq = seq WHERE id = 1 RETURNING seq, hash";
    let row = tx.fetch_one(sql, &[]).await?;
    Ok(Head {
        seq: row.get(0)?,
        hash: row.get(1)?,
    })
}

/// Filters, de-duplicates and correlates one webhook delivery inside `tx` (after [`lock_head`]): stores
/// its dedup keys and the events still waiting for their message, and returns the audit events to
/// append. `events` were validated by the caller (queue ids and times parse). A fixed number of
/// statements whatever the batch's size: the dedup keys in one insert, the correlations in one query,
/// the waiting events in one insert.
pub(super) async fn webhook_events<E: Exec>(
    tx: &mut E,
    events: &[webhook::Event],
    now: i64,
    legacy: bool,
) -> Result<(Intake, Vec<Event>), StoreError> {
    let mut intake = Intake::default();
    let mut keys = HashSet::new();
    let mut candidates: Vec<Candidate> = Vec::new();
    for ev in events {
        match ev.queue_id() {
            Ok(Some(q)) if delivery::is_recorded(&ev.kind) => {
                let key = delivery::dedup_key(ev);
                let at = ev.created_unix().unwrap_or(now);
                match keys.insert(key.clone()) {
                    true => candidates.push((ev, q, at, key)),
                    false => intake.duplicates += 1,
                }
            }
            _ => intake.ignored += 1,
        }
    }
    let mut fresh = insert_seen(tx, &candidates, now).await?;
    if legacy {
        drop_legacy_seen(tx, &mut fresh).await?;
    }
    let before = candidates.len();
    candidates.retain(|(_, _, _, key)| fresh.contains(key));
    intake.duplicates += before - candidates.len();

    let mut queue_ids: Vec<u64> = candidates.iter().map(|(_, q, _, _)| *q).collect();
    queue_ids.sort_unstable();
    queue_ids.dedup();
    let corr = correlate_all(tx, &queue_ids).await?;
    let (mut audit_events, mut waiting) = (Vec::new(), Vec::new());
    for (ev, queue_id, at, key) in candidates {
        match corr.get(&queue_id) {
            Some(c) => audit_events.push(delivery::to_audit(ev, queue_id, at, c)),
            None => waiting.push((ev, queue_id, at, key)),
        }
    }
    (intake.recorded, intake.waiting) = (audit_events.len(), waiting.len());
    insert_unmatched(tx, &waiting, now).await?;
    Ok((intake, audit_events))
}

/// Inserts the dedup keys under their events' times; returns the ones that were new (a re-sent
/// event's key is already there, under the same time).
async fn insert_seen<E: Exec>(
    tx: &mut E,
    candidates: &[Candidate<'_>],
    now: i64,
) -> Result<HashSet<String>, StoreError> {
    let mut fresh = HashSet::with_capacity(candidates.len());
    for chunk in candidates.chunks(500) {
        let sql = format!(
            "INSERT INTO webhook_keys (created_at, key, received_at) VALUES {} \
             ON CONFLICT (created_at, key) DO NOTHING RETURNING key",
            placeholders(tx.sqlite(), chunk.len(), 3)
        );
        let mut args = Vec::with_capacity(chunk.len() * 3);
        for (_, _, at, key) in chunk {
            args.extend([Arg::from(*at), key.into(), now.into()]);
        }
        for row in tx.fetch_all(&sql, &args).await? {
            fresh.insert(row.get::<String>(0)?);
        }
    }
    Ok(fresh)
}

/// Removes from `fresh` the keys recorded before migration 0007, in the old `webhook_seen`, while it
/// still has any (see [`Store::purge_webhook_keys`]).
async fn drop_legacy_seen<E: Exec>(
    tx: &mut E,
    fresh: &mut HashSet<String>,
) -> Result<(), StoreError> {
    let keys: Vec<String> = fresh.iter().cloned().collect();
    for chunk in keys.chunks(500) {
        let sql = format!(
            "SELECT key FROM webhook_seen WHERE key IN {}",
            placeholders(tx.sqlite(), 1, chunk.len())
        );
        let args: Vec<Arg> = chunk.iter().map(Arg::from).collect();
        for row in tx.fetch_all(&sql, &args).await? {
            fresh.remove(&row.get::<String>(0)?);
        }
    }
    Ok(())
}

/// Keeps events whose queue id names no message yet, until a release links it.
async fn insert_unmatched<E: Exec>(
    tx: &mut E,
    waiting: &[Candidate<'_>],
    now: i64,
) -> Result<(), StoreError> {
    for chunk in waiting.chunks(500) {
        let sql = format!(
            "INSERT INTO webhook_unmatched (key, queue_id, event, received_at) VALUES {} \
             ON CONFLICT (key) DO NOTHING",
            placeholders(tx.sqlite(), chunk.len(), 4)
        );
        let texts: Vec<(String, String)> = chunk
            .iter()
            .map(|(ev, queue_id, _, _)| {
                let event = serde_json::to_string(ev).unwrap_or_default();
                (format!("{queue_id:x}"), event)
            })
            .collect();
        let mut args = Vec::with_capacity(chunk.len() * 4);
        for ((_, _, _, key), (queue_id, event)) in chunk.iter().zip(&texts) {
            args.extend([Arg::from(key), queue_id.into(), event.into(), now.into()]);
        }
        tx.execute(&sql, &args).await?;
    }
    Ok(())
}

fn record_from(row: &sqlx::any::AnyRow) -> Result<Record, sqlx::Error> {
    Ok(Record {
        seq: row.try_get(0)?,
        at: row.try_get(1)?,
        kind: row.try_get(2)?,
        message_ref: row.try_get(3)?,
        message_sha256: row.try_get(4)?,
        sender: row.try_get(5)?,
        recipient: row.try_get(6)?,
        details: row.try_get(7)?,
        prev_hash: row.try_get(8)?,
        hash: row.try_get(9)?,
    })
}

/// Filters for audit queries; all optional. Results are in `seq` order, after `after_seq`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct AuditQuery {
    pub message_id: Option<String>,
    pub recipient: Option<String>,
    pub kind: Option<String>,
    /// Unix seconds, inclusive.
    pub since: Option<i64>,
    /// Unix seconds, exclusive.
    pub until: Option<i64>,
    pub after_seq: Option<i64>,
    pub limit: Option<i64>,
}

impl Store {
    /// A write transaction (see [`Store::begin_write`]), for changes that record their audit event with
    /// [`append`].
    pub async fn transaction(&self) -> Result<Tx, StoreError> {
        self.begin_write().await
    }

    /// Appends events in a transaction of their own.
    pub async fn append_audit(&self, events: &[Event]) -> Result<Vec<i64>, StoreError> {
        let mut tx = self.begin_write().await?;
        let seqs = append(&mut tx, crate::time::now(), events).await?;
        tx.commit().await?;
        Ok(seqs)
    }

    /// Filters, de-duplicates, correlates and records one webhook delivery (see [`webhook_events`]),
    /// committed with its audit records before this returns, in parts of at most 50 events, each in a
    /// transaction that may be shared with other deliveries ([`super::group`]). On an error the parts
    /// committed before it stay: Stalwart re-sends the batch and their dedup keys recognise them.
    pub async fn record_webhook(
        &self,
        events: Vec<webhook::Event>,
        now: i64,
    ) -> Result<Intake, StoreError> {
        self.grouped_webhook(events, now).await
    }

    /// Deletes the dedup keys of webhook events older than [`DEDUP_WINDOW`], and the keys of the old
    /// `webhook_seen` (before migration 0007) received before it; in parts of [`PURGE_PART`] rows,
    /// each in a write transaction of its own, so a hook waits for one part at most. Returns how many
    /// were deleted. Once `webhook_seen` is empty the intake stops reading it.
    pub async fn purge_webhook_keys(&self, now: i64) -> Result<u64, StoreError> {
        let cutoff = now - DEDUP_WINDOW;
        let mut deleted = self
            .purge_parts(
                "DELETE FROM webhook_keys WHERE (created_at, key) IN (SELECT created_at, key \
                 FROM webhook_keys WHERE created_at < $1 ORDER BY created_at LIMIT $2)",
                cutoff,
            )
            .await?;
        if self.legacy_keys.load(std::sync::atomic::Ordering::Relaxed) {
            deleted += self
                .purge_parts(
                    "DELETE FROM webhook_seen WHERE key IN \
                     (SELECT key FROM webhook_seen WHERE received_at < $1 LIMIT $2)",
                    cutoff,
                )
                .await?;
            if !self.has_legacy_keys().await? {
                self.legacy_keys
                    .store(false, std::sync::atomic::Ordering::Relaxed);
            }
        }
        Ok(deleted)
    }

    /// Runs `delete` (`$1` the cutoff, `$2` the part's size) until a part deletes less than a part.
    async fn purge_parts(&self, delete: &str, cutoff: i64) -> Result<u64, StoreError> {
        let mut deleted = 0;
        loop {
            let mut tx = self.begin_write().await?;
            let n = sqlx::query(delete)
                .bind(cutoff)
                .bind(PURGE_PART)
                .execute(&mut **tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            deleted += n;
            if n < PURGE_PART as u64 {
                return Ok(deleted);
            }
        }
    }

    /// Whether the old `webhook_seen` still holds keys (read at start, see [`Store::connect`]).
    pub(super) async fn has_legacy_keys(&self) -> Result<bool, StoreError> {
        Ok(sqlx::query("SELECT key FROM webhook_seen LIMIT 1")
            .fetch_optional(&self.pool)
            .await?
            .is_some())
    }

    /// The chain head: `(seq, hash)` of the last appended record.
    pub async fn audit_head(&self) -> Result<(i64, String), StoreError> {
        let row = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        Ok((row.try_get(0)?, row.try_get(1)?))
    }

    /// Records of one message, in `seq` order (index `audit_log_message`).
    pub async fn audit_for_message(&self, message_ref: &str) -> Result<Vec<Record>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM audit_log WHERE message_ref = $1 ORDER BY seq"
        ))
        .bind(message_ref)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(record_from)
            .collect::<Result<_, sqlx::Error>>()?)
    }

    /// Records matching `q` (at most `q.limit`, default 1000, at most 10 000).
    pub async fn audit_query(&self, q: &AuditQuery) -> Result<Vec<Record>, StoreError> {
        let mut sql = format!("SELECT {COLUMNS} FROM audit_log WHERE seq > $1");
        let mut n = 1;
        let mut next = |col: &str, op: &str| {
            n += 1;
            format!(" AND {col} {op} ${n}")
        };
        if q.message_id.is_some() {
            sql.push_str(&next("message_ref", "="));
        }
        if q.recipient.is_some() {
            sql.push_str(&next("recipient", "="));
        }
        if q.kind.is_some() {
            sql.push_str(&next("kind", "="));
        }
        if q.since.is_some() {
            sql.push_str(&next("at", ">="));
        }
        if q.until.is_some() {
            sql.push_str(&next("at", "<"));
        }
        sql.push_str(&format!(" ORDER BY seq LIMIT ${}", n + 1));
        let mut query = sqlx::query(&sql).bind(q.after_seq.unwrap_or(0));
        for v in [&q.message_id, &q.recipient, &q.kind].into_iter().flatten() {
            query = query.bind(v.as_str());
        }
        for v in [q.since, q.until].into_iter().flatten() {
            query = query.bind(v);
        }
        query = query.bind(q.limit.unwrap_or(1000).clamp(1, 10_000));
        let rows = query.fetch_all(&self.pool).await?;
        Ok(rows
            .iter()
            .map(record_from)
            .collect::<Result<_, sqlx::Error>>()?)
    }

    /// Verifies the whole chain, paging through it in `seq` order. The head is read after the last page:
    /// an append commits its records and the head together, so every record seen is covered by the head
    /// unless it was inserted behind the gateway's back; records appended while verifying are read up
    /// to that head and no further.
    pub async fn verify_audit(&self) -> Result<Verification, StoreError> {
        let mut verifier = Verifier::new();
        let mut after = 0i64;
        after = self.verify_pages(&mut verifier, after, i64::MAX).await?;
        let (head_seq, head_hash) = self.audit_head().await?;
        self.verify_pages(&mut verifier, after, head_seq).await?;
        Ok(verifier.finish(head_seq, &head_hash))
    }

    /// Feeds records with `after < seq <= upto` to the verifier; returns the last seq read.
    async fn verify_pages(
        &self,
        verifier: &mut Verifier,
        mut after: i64,
        upto: i64,
    ) -> Result<i64, StoreError> {
        loop {
            let rows = sqlx::query(&format!(
                "SELECT {COLUMNS} FROM audit_log WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT 5000"
            ))
            .bind(after)
            .bind(upto)
            .fetch_all(&self.pool)
            .await?;
            if rows.is_empty() {
                return Ok(after);
            }
            for row in &rows {
                let r = record_from(row)?;
                after = r.seq;
                verifier.push(&r);
            }
        }
    }

    /// The proof-of-delivery report of a message, `None` when the log has nothing about it.
    pub async fn audit_report(
        &self,
        message_ref: &str,
    ) -> Result<Option<audit::Report>, StoreError> {
        let records = self.audit_for_message(message_ref).await?;
        if records.is_empty() {
            return Ok(None);
        }
        Ok(Some(audit::report::build(message_ref, &records)))
    }
}
