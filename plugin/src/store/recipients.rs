//! The recipients, exemptions and peers (tables `recipients`, `exemptions`, `peers`): the facts the
//! pipeline reads per submission, phone numbers and verified-until. May call `ids`; nothing above the
//! store.

use std::collections::HashMap;

use sqlx::{Any, AnyConnection, Row, Transaction};

use super::{Store, StoreError};

/// Recipient facts the pipeline needs.
#[derive(Debug, Clone, Default)]
pub struct RecipientRow {
    pub phone: Option<String>,
    pub verified_until: Option<i64>,
}

/// Stored facts about a set of recipients: by address (recipients), by address or domain (the admin's
/// reason of an unexpired exemption; keys are addresses or domains, which never collide) and by domain
/// (peers → provider).
#[derive(Debug, Default)]
pub struct StoredFacts {
    pub recipients: HashMap<String, RecipientRow>,
    pub exemptions: HashMap<String, String>,
    pub peers: HashMap<String, String>,
}

impl Store {
    /// Everything the pipeline needs about these recipients (see [`recipient_facts_on`]).
    pub async fn recipient_facts(
        &self,
        addresses: &[&str],
        now: i64,
    ) -> Result<StoredFacts, StoreError> {
        let mut conn = self.pool.acquire().await?;
        recipient_facts_on(&mut conn, addresses, now).await
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

    /// The recipient's mobile number (E.164), when known.
    /// The provider of a peer on the admin's database list (received mail: is the sender a peer?).
    pub async fn peer_provider(&self, domain: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT provider FROM peers WHERE domain = $1")
                .bind(domain)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    pub async fn phone(&self, recipient: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query("SELECT phone FROM recipients WHERE address = $1")
                .bind(recipient)
                .fetch_optional(&self.pool)
                .await?
                .and_then(|r| r.try_get::<Option<String>, _>(0).ok().flatten()),
        )
    }
}

/// Records a number for a recipient who has none, inside `tx`. Returns false (and changes nothing)
/// when one is known.
pub(super) async fn set_phone_if_unknown(
    tx: &mut Transaction<'_, Any>,
    recipient: &str,
    phone: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "INSERT INTO recipients (address, phone, verified_until, created_at, updated_at) \
         VALUES ($1, $2, NULL, $3, $3) ON CONFLICT (address) DO UPDATE SET phone = excluded.phone, \
         updated_at = excluded.updated_at WHERE recipients.phone IS NULL",
    )
    .bind(recipient)
    .bind(phone)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The recipient is verified until `until` (created when unknown), inside `tx`.
pub(super) async fn set_verified_until(
    tx: &mut Transaction<'_, Any>,
    recipient: &str,
    until: i64,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO recipients (address, phone, verified_until, created_at, updated_at) \
         VALUES ($1, NULL, $2, $3, $3) ON CONFLICT (address) DO UPDATE SET \
         verified_until = excluded.verified_until, updated_at = excluded.updated_at",
    )
    .bind(recipient)
    .bind(until)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The recipient's verified-until, inside `tx`.
pub(super) async fn verified_until(
    tx: &mut Transaction<'_, Any>,
    recipient: &str,
) -> Result<Option<i64>, StoreError> {
    Ok(
        sqlx::query("SELECT verified_until FROM recipients WHERE address = $1")
            .bind(recipient)
            .fetch_optional(&mut **tx)
            .await?
            .and_then(|r| r.try_get::<Option<i64>, _>(0).ok().flatten()),
    )
}

/// Everything the pipeline needs about these recipients, in one query on `conn` whatever their number:
/// stored recipient data, unexpired admin exemptions (address or domain) and peer-list entries, each
/// row tagged with its table. One statement: on SQLite each statement is a hop to the connection's
/// worker thread and back, on PostgreSQL a round trip (as three statements, the read connection's
/// thread switched 12 % more under the load bench).
pub(super) async fn recipient_facts_on(
    conn: &mut AnyConnection,
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
    // $1 = now, then the addresses, then the domains; each list is used twice.
    let (addrs, doms) = (
        list(2, addresses.len()),
        list(2 + addresses.len(), domains.len()),
    );
    let sql = format!(
        "SELECT 'r', address, phone, verified_until FROM recipients WHERE address IN ({addrs}) \
         UNION ALL SELECT 'e', value, reason, NULL FROM exemptions \
         WHERE (expires_at IS NULL OR expires_at > $1) \
         AND ((kind = 'address' AND value IN ({addrs})) OR (kind = 'domain' AND value IN ({doms}))) \
         UNION ALL SELECT 'p', domain, provider, NULL FROM peers WHERE domain IN ({doms})"
    );
    let mut q = sqlx::query(&sql).bind(now);
    for a in addresses.iter().chain(domains.iter()) {
        q = q.bind(*a);
    }
    for row in q.fetch_all(&mut *conn).await? {
        let (table, key): (String, String) = (row.try_get(0)?, row.try_get(1)?);
        match table.as_str() {
            "r" => {
                let row = RecipientRow {
                    phone: row.try_get(2)?,
                    verified_until: row.try_get(3)?,
                };
                facts.recipients.insert(key, row);
            }
            "e" => {
                facts.exemptions.insert(key, row.try_get(2)?);
            }
            "p" => {
                facts.peers.insert(key, row.try_get(2)?);
            }
            other => {
                return Err(
                    sqlx::Error::Decode(format!("unknown table tag {other:?}").into()).into(),
                )
            }
        }
    }
    Ok(facts)
}
