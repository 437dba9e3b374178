//! Audit log storage: chained appends (in the caller's transaction), queries, verification and the
//! webhook intake's dedup and correlation.

use std::collections::HashMap;

use sqlx::{Any, Row, Transaction};

use super::{Store, StoreError};
use crate::{
    audit::{
        self,
        delivery::{self, Correlation},
        record::hash_fields,
        Event, Record, Verification, Verifier,
    },
    stalwart::webhook,
};

/// A transaction on the gateway's database.
pub type Tx = Transaction<'static, Any>;

const COLUMNS: &str =
    "seq, at, kind, message_ref, message_sha256, sender, recipient, details, prev_hash, hash";

/// Appends `events` to the chain inside `tx`, in order, all at time `now` unless an event carries its
/// own time. The chain head is locked first (PostgreSQL: row lock; SQLite: the write lock), so appends
/// from any number of connections or gateway instances form one chain; make it the last write of the
/// transaction to keep the lock short. Returns the sequence numbers given.
pub async fn append(
    tx: &mut Transaction<'_, Any>,
    now: i64,
    events: &[Event],
) -> Result<Vec<i64>, StoreError> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    // Locks the head row (the chain is appended by one transaction at a time) and reads it.
    let head = sqlx::query("UPDATE audit_head SET seq = seq WHERE id = 1 RETURNING seq, hash")
        .fetch_one(&mut **tx)
        .await?;
    let (mut seq, mut prev): (i64, String) = (head.try_get(0)?, head.try_get(1)?);

    // Releases link their queue id to the message, and bring in delivery events that came first.
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

    let mut records = Vec::with_capacity(entries.len());
    for e in entries {
        seq += 1;
        let at = e.at.unwrap_or(now);
        let details = e.details.to_string();
        let hash = hash_fields(
            at,
            e.kind,
            e.message_ref.as_deref(),
            e.message_sha256.as_deref(),
            e.sender.as_deref(),
            e.recipient.as_deref(),
            &details,
            &prev,
        );
        records.push(Record {
            seq,
            at,
            kind: e.kind.to_string(),
            message_ref: e.message_ref,
            message_sha256: e.message_sha256,
            sender: e.sender,
            recipient: e.recipient,
            details,
            prev_hash: std::mem::replace(&mut prev, hash.clone()),
            hash,
        });
    }
    insert_records(tx, &records).await?;
    sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
        .bind(seq)
        .bind(&prev)
        .execute(&mut **tx)
        .await?;
    Ok(records.iter().map(|r| r.seq).collect())
}

/// Writes already-chained records (multi-row inserts).
async fn insert_records(
    tx: &mut Transaction<'_, Any>,
    records: &[Record],
) -> Result<(), StoreError> {
    for chunk in records.chunks(500) {
        let rows = (0..chunk.len())
            .map(|i| {
                let p = i * 10;
                format!(
                    "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
                    p + 1,
                    p + 2,
                    p + 3,
                    p + 4,
                    p + 5,
                    p + 6,
                    p + 7,
                    p + 8,
                    p + 9,
                    p + 10
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!("INSERT INTO audit_log ({COLUMNS}) VALUES {rows}");
        let mut q = sqlx::query(&sql);
        for r in chunk {
            q = q
                .bind(r.seq)
                .bind(r.at)
                .bind(r.kind.as_str())
                .bind(r.message_ref.as_deref())
                .bind(r.message_sha256.as_deref())
                .bind(r.sender.as_deref())
                .bind(r.recipient.as_deref())
                .bind(r.details.as_str())
                .bind(r.prev_hash.as_str())
                .bind(r.hash.as_str());
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Records the link queue id → message and returns the audit events for webhook events of that queue
/// id that arrived before the link (they are removed from the waiting table).
async fn link_queue(
    tx: &mut Transaction<'_, Any>,
    queue_id: u64,
    message_ref: &str,
    now: i64,
) -> Result<Vec<Event>, StoreError> {
    let hex = format!("{queue_id:x}");
    sqlx::query(
        "INSERT INTO queue_links (queue_id, message_ref, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (queue_id) DO NOTHING",
    )
    .bind(&hex)
    .bind(message_ref)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    let waiting = sqlx::query(
        "SELECT key, event FROM webhook_unmatched WHERE queue_id = $1 ORDER BY received_at, key",
    )
    .bind(&hex)
    .fetch_all(&mut **tx)
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
        let text: String = row.try_get(1)?;
        // Stored by the intake from a validated event; an unreadable row is kept, not dropped.
        if let Ok(ev) = serde_json::from_str::<webhook::Event>(&text) {
            if let Ok(at) = ev.created_unix() {
                events.push(delivery::to_audit(&ev, queue_id, at, &corr));
            }
        }
    }
    sqlx::query("DELETE FROM webhook_unmatched WHERE queue_id = $1")
        .bind(&hex)
        .execute(&mut **tx)
        .await?;
    Ok(events)
}

/// The message behind a Stalwart queue id: the hook's decisions first, then recorded releases.
async fn correlate(
    tx: &mut Transaction<'_, Any>,
    queue_id: u64,
) -> Result<Option<Correlation>, StoreError> {
    let hex = format!("{queue_id:x}");
    if let Some(row) = sqlx::query(
        "SELECT message_ref, sha256, sender FROM decisions WHERE queue_id = $1 ORDER BY id LIMIT 1",
    )
    .bind(&hex)
    .fetch_optional(&mut **tx)
    .await?
    {
        return Ok(Some(Correlation {
            message_ref: row.try_get(0)?,
            sha256: row.try_get(1)?,
            sender: row.try_get(2)?,
        }));
    }
    let row = sqlx::query(
        "SELECT q.message_ref, h.sha256, h.sender FROM queue_links q \
         LEFT JOIN held_messages h ON h.id = q.message_ref WHERE q.queue_id = $1",
    )
    .bind(&hex)
    .fetch_optional(&mut **tx)
    .await?;
    row.map(|row| {
        Ok(Correlation {
            message_ref: row.try_get(0)?,
            sha256: row.try_get(1)?,
            sender: row.try_get(2)?,
        })
    })
    .transpose()
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

/// Filters, de-duplicates, correlates and records one webhook delivery in one transaction. `events`
/// were validated by the caller (queue ids and times parse).
pub async fn record_webhook(
    tx: &mut Transaction<'_, Any>,
    events: &[webhook::Event],
    now: i64,
) -> Result<Intake, StoreError> {
    let mut intake = Intake::default();
    let mut audit_events = Vec::new();
    let mut cache: HashMap<u64, Option<Correlation>> = HashMap::new();
    // Lock the chain head first: concurrent deliveries of the same batch are then serialised, and the
    // second one sees the first one's dedup keys.
    sqlx::query("UPDATE audit_head SET seq = seq WHERE id = 1")
        .execute(&mut **tx)
        .await?;
    for ev in events {
        let queue_id = match ev.queue_id() {
            Ok(Some(q)) if delivery::is_recorded(&ev.kind) => q,
            _ => {
                intake.ignored += 1;
                continue;
            }
        };
        let key = delivery::dedup_key(ev);
        let fresh = sqlx::query(
            "INSERT INTO webhook_seen (key, received_at) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        )
        .bind(&key)
        .bind(now)
        .execute(&mut **tx)
        .await?
        .rows_affected()
            == 1;
        if !fresh {
            intake.duplicates += 1;
            continue;
        }
        let corr = match cache.get(&queue_id) {
            Some(known) => known.clone(),
            None => {
                let found = correlate(tx, queue_id).await?;
                cache.insert(queue_id, found.clone());
                found
            }
        };
        let at = ev.created_unix().unwrap_or(now);
        match corr {
            Some(corr) => {
                audit_events.push(delivery::to_audit(ev, queue_id, at, &corr));
                intake.recorded += 1;
            }
            None => {
                sqlx::query(
                    "INSERT INTO webhook_unmatched (key, queue_id, event, received_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (key) DO NOTHING",
                )
                .bind(&key)
                .bind(format!("{queue_id:x}"))
                .bind(serde_json::to_string(ev).unwrap_or_default())
                .bind(now)
                .execute(&mut **tx)
                .await?;
                intake.waiting += 1;
            }
        }
    }
    append(tx, now, &audit_events).await?;
    Ok(intake)
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

    /// Records a webhook delivery (see [`record_webhook`]) in its own transaction.
    pub async fn record_webhook(
        &self,
        events: &[webhook::Event],
        now: i64,
    ) -> Result<Intake, StoreError> {
        let mut tx = self.begin_write().await?;
        let intake = record_webhook(&mut tx, events, now).await?;
        tx.commit().await?;
        Ok(intake)
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
