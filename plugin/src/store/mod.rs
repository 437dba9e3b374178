//! Storage: the only place that talks to the database. One sqlx `Any` pool, the same queries for SQLite
//! (embedded default) and PostgreSQL (several gateway instances), with a migration set for each.

use std::{collections::HashMap, str::FromStr, time::Duration};

use sqlx::{
    any::{AnyConnectOptions, AnyPoolOptions},
    AnyPool, Executor, Row,
};

use crate::{hold::Sealed, policy::Decision};

pub mod admin;
pub mod audit;
mod checkpoint;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot create the database directory {0}: {1}")]
    Dir(String, std::io::Error),
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

/// Recipient facts the pipeline needs.
#[derive(Debug, Clone, Default)]
pub struct RecipientRow {
    pub phone: Option<String>,
    pub verified_until: Option<i64>,
}

/// Stored facts about a set of recipients: by address (recipients), by address or domain (exemption
/// texts; keys are addresses or domains, which never collide) and by domain (peers → provider).
#[derive(Debug, Default)]
pub struct StoredFacts {
    pub recipients: HashMap<String, RecipientRow>,
    pub exemptions: HashMap<String, String>,
    pub peers: HashMap<String, String>,
}

/// What the hook commits in one transaction.
pub struct HookRecord<'a> {
    pub message_ref: &'a str,
    pub idem_key: &'a str,
    pub queue_id: Option<&'a str>,
    pub sender: &'a str,
    pub sha256: &'a str,
    pub size: usize,
    pub decisions: &'a [Decision],
    /// Present when at least one recipient is held.
    pub sealed: Option<&'a Sealed>,
    pub now: i64,
    pub hold_expires_at: i64,
    /// Audit events (decisions, holds) appended in the same transaction.
    pub audit: &'a [crate::audit::Event],
    /// A number from the sender's `[sms:+…]` subject tag for the one held recipient:
    /// `(recipient, E.164)`. Stored when the recipient has none, and recorded either way.
    pub tag_phone: Option<(&'a str, &'a str)>,
}

/// A held message as stored.
pub struct HeldRow {
    pub id: String,
    pub sender: String,
    pub sha256: String,
    pub size: i64,
    pub sealed: Option<Sealed>,
}

impl Store {
    /// Connects and runs the migrations. For SQLite the file (and its directory) is created when
    /// missing; it runs in WAL mode with `synchronous = FULL`, so a committed hold survives a power cut.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        };
        let mut url = url.to_string();
        if backend == Backend::Sqlite {
            let path = url
                .trim_start_matches("sqlite://")
                .trim_start_matches("sqlite:");
            let path = path.split('?').next().unwrap_or_default();
            if let Some(dir) = std::path::Path::new(path)
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
            {
                std::fs::create_dir_all(dir)
                    .map_err(|e| StoreError::Dir(dir.display().to_string(), e))?;
            }
            if !url.contains('?') {
                url.push_str("?mode=rwc");
            }
        }
        let options = AnyConnectOptions::from_str(&url)?;
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            // A SQLite connection is a file handle that cannot go stale: no ping before each use (on
            // SQLite every statement is a hop to the connection's thread). PostgreSQL keeps the check.
            .test_before_acquire(backend == Backend::Postgres)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = FULL").await?;
                        conn.execute("PRAGMA busy_timeout = 5000").await?;
                        // Checkpoints run in the background (see `checkpoint`), not in a commit.
                        conn.execute("PRAGMA wal_autocheckpoint = 0").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        match backend {
            Backend::Sqlite => {
                sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
                checkpoint::spawn(pool.clone());
            }
            Backend::Postgres => sqlx::migrate!("./migrations/postgres").run(&pool).await?,
        }
        Ok(Store { pool, backend })
    }

    /// The pool, for the feature modules that keep their own queries (challenge, portal, release).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes the pool: every later call fails (used for shutdown, and by tests to make the database
    /// unavailable).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Everything the pipeline needs about these recipients, in three queries on one connection,
    /// whatever their number: stored recipient data, unexpired admin exemptions (address or domain) and peer-list entries.
    pub async fn recipient_facts(
        &self,
        addresses: &[&str],
        now: i64,
    ) -> Result<StoredFacts, StoreError> {
        let mut facts = StoredFacts::default();
        if addresses.is_empty() {
            return Ok(facts);
        }
        let domains: Vec<&str> = {
            let mut d: Vec<&str> = addresses
                .iter()
                .map(|a| a.rsplit_once('@').map_or("", |(_, d)| d))
                .collect();
            d.sort_unstable();
            d.dedup();
            d
        };
        let list = |start: usize, n: usize| {
            (start..start + n)
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ")
        };

        let sql_recipients = format!(
            "SELECT address, phone, verified_until FROM recipients WHERE address IN ({})",
            list(1, addresses.len())
        );
        let sql_exemptions = format!(
            "SELECT kind, value, reason FROM exemptions WHERE (expires_at IS NULL OR expires_at > $1) AND \
             ((kind = 'address' AND value IN ({})) OR (kind = 'domain' AND value IN ({})))",
            list(2, addresses.len()),
            list(2 + addresses.len(), domains.len())
        );
        let sql_peers = format!(
            "SELECT domain, provider FROM peers WHERE domain IN ({})",
            list(1, domains.len())
        );
        // Three reads on one connection, one after the other: on SQLite each statement is a hop to the
        // connection's worker thread, and running them on three connections at once measured slower.
        let mut conn = self.pool.acquire().await?;
        let mut q = sqlx::query(&sql_recipients);
        for a in addresses {
            q = q.bind(*a);
        }
        let recipients = q.fetch_all(&mut *conn).await?;
        let mut q = sqlx::query(&sql_exemptions).bind(now);
        for a in addresses.iter().chain(domains.iter()) {
            q = q.bind(*a);
        }
        let exemptions = q.fetch_all(&mut *conn).await?;
        let mut q = sqlx::query(&sql_peers);
        for d in &domains {
            q = q.bind(*d);
        }
        let peers = q.fetch_all(&mut *conn).await?;
        for row in recipients {
            facts.recipients.insert(
                row.try_get(0)?,
                RecipientRow {
                    phone: row.try_get(1)?,
                    verified_until: row.try_get(2)?,
                },
            );
        }
        for row in exemptions {
            let kind: String = row.try_get(0)?;
            let value: String = row.try_get(1)?;
            let reason: String = row.try_get(2)?;
            facts
                .exemptions
                .insert(value.clone(), format!("{kind} {value}: {reason}"));
        }
        for row in peers {
            facts.peers.insert(row.try_get(0)?, row.try_get(1)?);
        }
        Ok(facts)
    }

    pub async fn upsert_recipient(
        &self,
        address: &str,
        phone: Option<&str>,
        verified_until: Option<i64>,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO recipients (address, phone, verified_until, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $4) \
             ON CONFLICT (address) DO UPDATE SET phone = excluded.phone, \
             verified_until = excluded.verified_until, updated_at = excluded.updated_at",
        )
        .bind(address)
        .bind(phone)
        .bind(verified_until)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn add_exemption(
        &self,
        kind: &str,
        value: &str,
        reason: &str,
        expires_at: Option<i64>,
        now: i64,
    ) -> Result<String, StoreError> {
        let id = crate::ids::new_id("ex");
        sqlx::query(
            "INSERT INTO exemptions (id, kind, value, reason, expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (kind, value) DO UPDATE SET reason = excluded.reason, expires_at = excluded.expires_at",
        )
        .bind(&id)
        .bind(kind)
        .bind(value)
        .bind(reason)
        .bind(expires_at)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(id)
    }

    pub async fn add_peer(&self, domain: &str, provider: &str, now: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO peers (domain, provider, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (domain) DO UPDATE SET provider = excluded.provider",
        )
        .bind(domain)
        .bind(provider)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Holds already recorded for this submission (a client retry after a 451): message ref and
    /// `(recipient, outcome)` pairs.
    pub async fn existing_holds(
        &self,
        idem_key: &str,
    ) -> Result<Option<(String, Vec<(String, String)>)>, StoreError> {
        let Some(row) = sqlx::query("SELECT id FROM held_messages WHERE idem_key = $1")
            .bind(idem_key)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let id: String = row.try_get(0)?;
        let holds = sqlx::query(
            "SELECT recipient, outcome FROM holds WHERE message_id = $1 ORDER BY recipient",
        )
        .bind(&id)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
        Ok(Some((id, holds)))
    }

    /// Commits decisions, the sealed copy and the holds with their challenges in one transaction.
    /// Idempotent: a retried submission reuses the held copy, its holds and the pending challenges.
    pub async fn record_hook(&self, rec: &HookRecord<'_>) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        if !rec.decisions.is_empty() {
            let rows = (0..rec.decisions.len())
                .map(|i| {
                    let p = 6 + i * 3;
                    format!("($1, $2, $3, ${}, ${}, ${}, $4, $5)", p, p + 1, p + 2)
                })
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "INSERT INTO decisions (message_ref, queue_id, sender, recipient, outcome, reasons, sha256, created_at) \
                 VALUES {rows}"
            );
            let mut q = sqlx::query(&sql)
                .bind(rec.message_ref)
                .bind(rec.queue_id)
                .bind(rec.sender)
                .bind(rec.sha256)
                .bind(rec.now);
            for d in rec.decisions {
                q = q
                    .bind(d.recipient.as_str())
                    .bind(d.outcome.as_str())
                    .bind(serde_json::to_string(&d.reasons).unwrap_or_else(|_| "[]".into()));
            }
            q.execute(&mut *tx).await?;
        }
        let mut held = Vec::new();
        if let Some(sealed) = rec.sealed {
            sqlx::query(
                "INSERT INTO held_messages (id, idem_key, queue_id, sender, sha256, size, key_id, wrapped_key, nonce, \
                 ciphertext, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                 ON CONFLICT (idem_key) DO NOTHING",
            )
            .bind(rec.message_ref)
            .bind(rec.idem_key)
            .bind(rec.queue_id)
            .bind(rec.sender)
            .bind(rec.sha256)
            .bind(rec.size as i64)
            .bind(&sealed.key_id)
            .bind(&sealed.wrapped_key)
            .bind(&sealed.nonce)
            .bind(&sealed.ciphertext)
            .bind(rec.now)
            .bind(rec.hold_expires_at)
            .execute(&mut *tx)
            .await?;
            for d in rec.decisions.iter().filter(|d| d.outcome.is_held()) {
                let challenge_id =
                    pending_challenge(&mut tx, &d.recipient, rec.now, rec.hold_expires_at).await?;
                let inserted = sqlx::query(
                    "INSERT INTO holds (message_id, recipient, outcome, state, challenge_id, created_at, updated_at) \
                     VALUES ($1, $2, $3, 'held', $4, $5, $5) ON CONFLICT (message_id, recipient) DO NOTHING",
                )
                .bind(rec.message_ref)
                .bind(&d.recipient)
                .bind(d.outcome.as_str())
                .bind(&challenge_id)
                .bind(rec.now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if inserted == 1 {
                    held.push(crate::audit::Event::Held {
                        message_ref: rec.message_ref.to_string(),
                        sha256: rec.sha256.to_string(),
                        sender: rec.sender.to_string(),
                        recipient: d.recipient.clone(),
                        outcome: d.outcome,
                        challenge_id: Some(challenge_id),
                        expires_at: rec.hold_expires_at,
                    });
                }
            }
        }
        if let Some((recipient, phone)) = rec.tag_phone {
            let stored =
                crate::challenge::store::set_phone_if_unknown(&mut tx, recipient, phone, rec.now)
                    .await?;
            held.push(crate::audit::Event::PhoneNumber {
                message_ref: Some(rec.message_ref.to_string()),
                recipient: recipient.to_string(),
                sender: rec.sender.to_string(),
                source: crate::audit::PhoneSource::SubjectTag,
                outcome: if stored {
                    crate::audit::PhoneOutcome::Recorded
                } else {
                    crate::audit::PhoneOutcome::AlreadyKnown
                },
                phone: Some(crate::audit::MaskedPhone::from_e164(phone)),
            });
        }
        audit::append(&mut tx, rec.now, &[rec.audit, &held].concat()).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Erases a held message's sealed content once none of its holds still needs it (every hold
    /// released, expired or deleted), inside the caller's transaction.
    pub async fn erase_if_unneeded(
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        id: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE held_messages SET wrapped_key = NULL, nonce = NULL, ciphertext = NULL, purged_at = $1 \
             WHERE id = $2 AND purged_at IS NULL AND NOT EXISTS (SELECT 1 FROM holds WHERE message_id = $2 \
             AND state NOT IN ('released', 'expired', 'deleted'))",
        )
        .bind(now)
        .bind(id)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    pub async fn held(&self, id: &str) -> Result<Option<HeldRow>, StoreError> {
        let row = sqlx::query(
            "SELECT id, sender, sha256, size, key_id, wrapped_key, nonce, ciphertext FROM held_messages WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let ciphertext: Option<Vec<u8>> = row.try_get(7)?;
        let sealed = match ciphertext {
            Some(ciphertext) => Some(Sealed {
                key_id: row.try_get(4)?,
                wrapped_key: row.try_get::<Option<Vec<u8>>, _>(5)?.unwrap_or_default(),
                nonce: row.try_get::<Option<Vec<u8>>, _>(6)?.unwrap_or_default(),
                ciphertext,
            }),
            None => None,
        };
        Ok(Some(HeldRow {
            id: row.try_get(0)?,
            sender: row.try_get(1)?,
            sha256: row.try_get(2)?,
            size: row.try_get(3)?,
            sealed,
        }))
    }

    /// Deletes held content past its expiry; the metadata stays (the audit trail refers to it) and its
    /// holds become `expired`. Returns the number of messages purged.
    pub async fn purge_expired(&self, now: i64) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Each hold whose content goes: still waiting (`held`, becomes `expired`) or readable on the
        // portal (stays `portal`, but there is nothing left to read).
        let expiring = sqlx::query(
            "SELECT message_id, recipient FROM holds WHERE state IN ('held', 'portal') AND message_id IN \
             (SELECT id FROM held_messages WHERE expires_at <= $1 AND purged_at IS NULL) \
             ORDER BY message_id, recipient",
        )
        .bind(now)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| {
            Ok(crate::audit::Event::Expired {
                message_ref: r.try_get(0)?,
                recipient: r.try_get(1)?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
        sqlx::query(
            "UPDATE holds SET state = 'expired', updated_at = $1 WHERE state = 'held' AND message_id IN \
             (SELECT id FROM held_messages WHERE expires_at <= $1 AND purged_at IS NULL)",
        )
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let done = sqlx::query(
            "UPDATE held_messages SET wrapped_key = NULL, nonce = NULL, ciphertext = NULL, purged_at = $1 \
             WHERE expires_at <= $1 AND purged_at IS NULL",
        )
        .bind(now)
        .execute(&mut *tx)
        .await?;
        audit::append(&mut tx, now, &expiring).await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    /// Row count of a table, for health figures and tests. Only known table names are accepted.
    pub async fn count(&self, table: &str) -> Result<i64, StoreError> {
        const TABLES: &[&str] = &[
            "recipients",
            "exemptions",
            "peers",
            "held_messages",
            "holds",
            "challenges",
            "decisions",
            "audit_log",
            "webhook_unmatched",
        ];
        let table = TABLES.iter().find(|t| **t == table).ok_or_else(|| {
            StoreError::Db(sqlx::Error::Protocol(format!("unknown table {table}")))
        })?;
        let row = sqlx::query(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get(0)?)
    }

    /// Decisions recorded for a message ref: `(recipient, outcome, reasons JSON)`.
    pub async fn decisions(
        &self,
        message_ref: &str,
    ) -> Result<Vec<(String, String, String)>, StoreError> {
        Ok(sqlx::query(
            "SELECT recipient, outcome, reasons FROM decisions WHERE message_ref = $1 ORDER BY id",
        )
        .bind(message_ref)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
        .collect::<Result<_, sqlx::Error>>()?)
    }

    /// Holds of a message: `(recipient, outcome, state, challenge id)`.
    pub async fn holds(
        &self,
        message_ref: &str,
    ) -> Result<Vec<(String, String, String, Option<String>)>, StoreError> {
        Ok(sqlx::query(
            "SELECT recipient, outcome, state, challenge_id FROM holds WHERE message_id = $1 ORDER BY recipient",
        )
        .bind(message_ref)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?)))
        .collect::<Result<_, sqlx::Error>>()?)
    }
}

/// The recipient's pending challenge, created when there is none: several held messages for one
/// recipient share one verification.
async fn pending_challenge(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    recipient: &str,
    now: i64,
    expires_at: i64,
) -> Result<String, StoreError> {
    let id = crate::ids::new_id("c");
    sqlx::query(
        "INSERT INTO challenges (id, recipient, state, created_at, expires_at) VALUES ($1, $2, 'pending', $3, $4) \
         ON CONFLICT (recipient) WHERE state = 'pending' DO NOTHING",
    )
    .bind(&id)
    .bind(recipient)
    .bind(now)
    .bind(expires_at)
    .execute(&mut **tx)
    .await?;
    let row = sqlx::query("SELECT id FROM challenges WHERE recipient = $1 AND state = 'pending'")
        .bind(recipient)
        .fetch_one(&mut **tx)
        .await?;
    Ok(row.try_get(0)?)
}
