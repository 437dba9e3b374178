//! The recipients, exemptions and peers (tables `recipients`, `exemptions`, `peers`): the facts the
//! pipeline reads per submission, phone numbers and verified-until. May call `ids`; nothing above the
//! store.

use std::collections::HashMap;

use sqlx::{Any, AnyConnection, Row, Transaction};

use super::{
    exec::Exec,
    tagged::{unknown_tag, TaggedRead, NI, NT},
    Store, StoreError,
};

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
pub(super) async fn set_phone_if_unknown<E: Exec>(
    tx: &mut E,
    recipient: &str,
    phone: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let done = tx
        .execute(
            "INSERT INTO recipients (address, phone, verified_until, created_at, updated_at) \
             VALUES ($1, $2, NULL, $3, $3) ON CONFLICT (address) DO UPDATE SET phone = excluded.phone, \
             updated_at = excluded.updated_at WHERE recipients.phone IS NULL",
            &[recipient.into(), phone.into(), now.into()],
        )
        .await?;
    Ok(done == 1)
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

/// Everything the pipeline needs about these recipients, in one query on `conn` whatever their number
/// (a [`TaggedRead`]; the hook reads these facts with its other reads in one statement: [`super::hook`]).
pub(super) async fn recipient_facts_on(
    conn: &mut AnyConnection,
    addresses: &[&str],
    now: i64,
) -> Result<StoredFacts, StoreError> {
    let mut facts = StoredFacts::default();
    if addresses.is_empty() {
        return Ok(facts);
    }
    let mut read = TaggedRead::default();
    facts_branches(&mut read, addresses, now);
    for row in read.fetch_all(conn).await? {
        if !take_fact(&row, &mut facts)? {
            return Err(unknown_tag(&row).into());
        }
    }
    Ok(facts)
}

/// The branches of the stored recipient facts (tags `r`, `e`, `p`): stored recipient data, unexpired
/// admin exemptions (address or domain) and peer-list entries.
pub(super) fn facts_branches<'a>(read: &mut TaggedRead<'a>, addresses: &[&'a str], now: i64) {
    let mut domains: Vec<&str> = addresses
        .iter()
        .map(|a| a.rsplit_once('@').map_or("", |(_, d)| d))
        .collect();
    domains.sort_unstable();
    domains.dedup();
    let now = read.int(now);
    let addrs: Vec<String> = addresses.iter().map(|a| read.text(a)).collect();
    let doms: Vec<String> = domains.iter().map(|d| read.text(d)).collect();
    let (addrs, doms) = (addrs.join(", "), doms.join(", "));
    read.branch(format!(
        "SELECT 'r', address, phone, {NT}, verified_until, {NI}, {NI}, {NI} FROM recipients \
         WHERE address IN ({addrs})"
    ));
    read.branch(format!(
        "SELECT 'e', value, reason, {NT}, {NI}, {NI}, {NI}, {NI} FROM exemptions \
         WHERE (expires_at IS NULL OR expires_at > {now}) \
         AND ((kind = 'address' AND value IN ({addrs})) OR (kind = 'domain' AND value IN ({doms})))"
    ));
    read.branch(format!(
        "SELECT 'p', domain, provider, {NT}, {NI}, {NI}, {NI}, {NI} FROM peers WHERE domain IN ({doms})"
    ));
}

/// Takes a row of [`facts_branches`] into `facts`; false when the row is of another branch.
pub(super) fn take_fact(
    row: &super::exec::Row,
    facts: &mut StoredFacts,
) -> Result<bool, StoreError> {
    let (tag, key): (String, String) = (row.get(0)?, row.get(1)?);
    match tag.as_str() {
        "r" => {
            let r = RecipientRow {
                phone: row.get(2)?,
                verified_until: row.get(4)?,
            };
            facts.recipients.insert(key, r);
        }
        "e" => {
            facts.exemptions.insert(key, row.get(2)?);
        }
        "p" => {
            facts.peers.insert(key, row.get(2)?);
        }
        _ => return Ok(false),
    }
    Ok(true)
}
