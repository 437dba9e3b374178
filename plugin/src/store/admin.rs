//! Admin operations on the database (recipients, exemptions, peers, held messages, domain settings).
//! Every change commits together with its audit record (one transaction); values arrive validated
//! (see `crate::admin::validate`). Hold state changes go through [`super::holds::transition`]. May call
//! the rest of `store`, `audit` event types, `policy` values, `ids` and `time`.

use serde::Serialize;
use serde_json::json;
use sqlx::Row;

use super::{
    audit::append,
    holds::{transition, HoldState, HoldUpdate, Holds},
    Store, StoreError,
};
use crate::{
    audit::{Event, MaskedPhone},
    policy::Outcome,
    time::rfc3339,
};

/// Who made a change, for the audit record (`api`, `cli:<user>`).
pub type Actor<'a> = &'a str;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecipientOut {
    pub address: String,
    pub phone: Option<String>,
    pub verified_until: Option<String>,
}

/// A recipient to store: E.164 phone, verified-until in unix seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientIn {
    pub address: String,
    pub phone: Option<String>,
    pub verified_until: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExemptionOut {
    pub id: String,
    pub kind: String,
    pub value: String,
    pub reason: String,
    pub expires_at: Option<String>,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PeerOut {
    pub domain: String,
    pub provider: String,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct HeldOut {
    pub id: String,
    pub sender: String,
    pub sha256: String,
    pub size: i64,
    pub created_at: String,
    pub expires_at: String,
    pub recipients: Vec<HoldOut>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HoldOut {
    pub recipient: String,
    pub outcome: String,
    pub state: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SettingsOut {
    pub domain: String,
    pub retention_days: Option<i64>,
    pub groups: Vec<String>,
    /// The sender's hold confirmation with a withdraw link (`None`: the `[portal]` default).
    pub hold_confirmation: Option<bool>,
    /// The sender's collection receipt (`None`: the `[portal]` default).
    pub collection_receipt: Option<bool>,
    pub updated_at: String,
}

/// A sender domain's settings to store (`None` notices: the `[portal]` defaults apply).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SettingsIn {
    pub retention_days: Option<i64>,
    pub groups: Vec<String>,
    pub hold_confirmation: Option<bool>,
    pub collection_receipt: Option<bool>,
}

/// The settings as a [`TaggedRead`](super::tagged::TaggedRead) branch reads them (tag `s`: domain,
/// groups, —, retention days, updated at, hold confirmation, collection receipt): every read of
/// them, tagged or not, decodes them with [`take_settings`].
const SETTINGS_SELECT: &str = "SELECT 's', domain, groups, CAST(NULL AS TEXT), retention_days, \
     updated_at, hold_confirmation, collection_receipt FROM domain_settings";

fn admin(
    actor: Actor<'_>,
    action: &str,
    target: &str,
    message_ref: Option<&str>,
    details: serde_json::Value,
) -> Event {
    Event::Admin {
        actor: actor.to_string(),
        action: action.to_string(),
        target: target.to_string(),
        message_ref: message_ref.map(str::to_string),
        details,
    }
}

fn recipient_out(row: &sqlx::any::AnyRow) -> Result<RecipientOut, sqlx::Error> {
    Ok(RecipientOut {
        address: row.try_get(0)?,
        phone: row.try_get(1)?,
        verified_until: row.try_get::<Option<i64>, _>(2)?.map(rfc3339),
    })
}

fn masked(phone: Option<&str>) -> Option<String> {
    phone.map(|p| MaskedPhone::from_e164(p).as_str().to_string())
}

impl Store {
    /// Recipients in address order, after `after`.
    pub async fn list_recipients(
        &self,
        after: &str,
        limit: i64,
    ) -> Result<Vec<RecipientOut>, StoreError> {
        let rows = sqlx::query(
            "SELECT address, phone, verified_until FROM recipients WHERE address > $1 ORDER BY address LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(recipient_out).collect::<Result<_, _>>()?)
    }

    pub async fn get_recipient(&self, address: &str) -> Result<Option<RecipientOut>, StoreError> {
        let row =
            sqlx::query("SELECT address, phone, verified_until FROM recipients WHERE address = $1")
                .bind(address)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.as_ref().map(recipient_out).transpose()?)
    }

    /// Creates or replaces a recipient. The audit record carries the masked phone number.
    pub async fn put_recipient(
        &self,
        actor: Actor<'_>,
        r: &RecipientIn,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        upsert_recipient(&mut tx, r, now).await?;
        append(
            &mut tx,
            now,
            &[admin(
                actor,
                "recipient.put",
                &r.address,
                None,
                json!({
                    "phone": masked(r.phone.as_deref()),
                    "verified_until": r.verified_until.map(rfc3339),
                }),
            )],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Imports recipients (create or replace) in one transaction with one audit record.
    pub async fn import_recipients(
        &self,
        actor: Actor<'_>,
        rows: &[RecipientIn],
        rejected: usize,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        for r in rows {
            upsert_recipient(&mut tx, r, now).await?;
        }
        append(
            &mut tx,
            now,
            &[admin(
                actor,
                "recipients.import",
                "recipients",
                None,
                json!({ "imported": rows.len(), "rejected_rows": rejected }),
            )],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes a recipient; `false` when there was none.
    pub async fn delete_recipient(
        &self,
        actor: Actor<'_>,
        address: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.change(
            "DELETE FROM recipients WHERE address = $1",
            &[address],
            admin(actor, "recipient.delete", address, None, json!({})),
            now,
        )
        .await
    }

    /// Clears the recipient's verification: the next message needs 2FA again.
    pub async fn reset_verification(
        &self,
        actor: Actor<'_>,
        address: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(
            "UPDATE recipients SET verified_until = NULL, updated_at = $2 WHERE address = $1",
        )
        .bind(address)
        .bind(now)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        append(
            &mut tx,
            now,
            &[admin(
                actor,
                "recipient.reset_verification",
                address,
                None,
                json!({}),
            )],
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// One statement with text parameters, audited when it changed a row; `false` when it did not.
    async fn change(
        &self,
        sql: &str,
        params: &[&str],
        event: Event,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let mut q = sqlx::query(sql);
        for p in params {
            q = q.bind(*p);
        }
        if q.execute(&mut **tx).await?.rows_affected() == 0 {
            return Ok(false);
        }
        append(&mut tx, now, &[event]).await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn list_exemptions(&self) -> Result<Vec<ExemptionOut>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, kind, value, reason, expires_at, created_at FROM exemptions ORDER BY kind, value",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ExemptionOut {
                    id: r.try_get(0)?,
                    kind: r.try_get(1)?,
                    value: r.try_get(2)?,
                    reason: r.try_get(3)?,
                    expires_at: r.try_get::<Option<i64>, _>(4)?.map(rfc3339),
                    created_at: rfc3339(r.try_get(5)?),
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// Adds (or replaces the reason and expiry of) an exemption; returns its id.
    pub async fn put_exemption(
        &self,
        actor: Actor<'_>,
        kind: &str,
        value: &str,
        reason: &str,
        expires_at: Option<i64>,
        now: i64,
    ) -> Result<String, StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO exemptions (id, kind, value, reason, expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (kind, value) DO UPDATE SET reason = excluded.reason, expires_at = excluded.expires_at",
        )
        .bind(crate::ids::new_id("ex"))
        .bind(kind)
        .bind(value)
        .bind(reason)
        .bind(expires_at)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        let id: String = sqlx::query("SELECT id FROM exemptions WHERE kind = $1 AND value = $2")
            .bind(kind)
            .bind(value)
            .fetch_one(&mut **tx)
            .await?
            .try_get(0)?;
        append(
            &mut tx,
            now,
            &[admin(
                actor,
                "exemption.put",
                &format!("{kind} {value}"),
                None,
                json!({ "id": id, "reason": reason, "expires_at": expires_at.map(rfc3339) }),
            )],
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn delete_exemption(
        &self,
        actor: Actor<'_>,
        id: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.change(
            "DELETE FROM exemptions WHERE id = $1",
            &[id],
            admin(actor, "exemption.delete", id, None, json!({})),
            now,
        )
        .await
    }

    pub async fn list_peers(&self) -> Result<Vec<PeerOut>, StoreError> {
        let rows = sqlx::query("SELECT domain, provider, created_at FROM peers ORDER BY domain")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(PeerOut {
                    domain: r.try_get(0)?,
                    provider: r.try_get(1)?,
                    created_at: rfc3339(r.try_get(2)?),
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    pub async fn put_peer(
        &self,
        actor: Actor<'_>,
        domain: &str,
        provider: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO peers (domain, provider, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (domain) DO UPDATE SET provider = excluded.provider",
        )
        .bind(domain)
        .bind(provider)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        append(
            &mut tx,
            now,
            &[admin(
                actor,
                "peer.put",
                domain,
                None,
                json!({ "provider": provider }),
            )],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn delete_peer(
        &self,
        actor: Actor<'_>,
        domain: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.change(
            "DELETE FROM peers WHERE domain = $1",
            &[domain],
            admin(actor, "peer.delete", domain, None, json!({})),
            now,
        )
        .await
    }

    /// Messages with at least one recipient still held, newest first.
    pub async fn list_held(&self, limit: i64) -> Result<Vec<HeldOut>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, sender, sha256, size, created_at, expires_at FROM held_messages m \
             WHERE purged_at IS NULL AND EXISTS (SELECT 1 FROM holds h WHERE h.message_id = m.id AND h.state = $2) \
             ORDER BY created_at DESC, id LIMIT $1",
        )
        .bind(limit)
        .bind(HoldState::Held.as_str())
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let id: String = r.try_get(0)?;
            let recipients = self
                .holds(&id)
                .await?
                .into_iter()
                .map(|(recipient, outcome, state, _)| HoldOut {
                    recipient,
                    outcome,
                    state,
                })
                .collect();
            out.push(HeldOut {
                id,
                sender: r.try_get(1)?,
                sha256: r.try_get(2)?,
                size: r.try_get(3)?,
                created_at: rfc3339(r.try_get(4)?),
                expires_at: rfc3339(r.try_get(5)?),
                recipients,
            });
        }
        Ok(out)
    }

    /// Whether a held message with this id exists (purged or not).
    pub async fn held_exists(&self, id: &str) -> Result<bool, StoreError> {
        Ok(sqlx::query("SELECT 1 FROM held_messages WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .is_some())
    }

    /// Sends the message's still-held recipients (or one of them) to the portal instead of their
    /// inbox: their hold's outcome becomes `portal`. Returns the recipients changed.
    pub async fn release_to_portal(
        &self,
        actor: Actor<'_>,
        id: &str,
        recipient: Option<&str>,
        now: i64,
    ) -> Result<Vec<String>, StoreError> {
        let mut tx = self.begin_write().await?;
        let rows = sqlx::query(
            "SELECT recipient FROM holds WHERE message_id = $1 AND state = $2 AND outcome <> $3 \
             ORDER BY recipient",
        )
        .bind(id)
        .bind(HoldState::Held.as_str())
        .bind(Outcome::Portal.as_str())
        .fetch_all(&mut **tx)
        .await?;
        let targets: Vec<String> = rows
            .iter()
            .map(|r| r.try_get::<String, _>(0))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .filter(|r| recipient.is_none_or(|only| only == r))
            .collect();
        for rcpt in &targets {
            sqlx::query(
                "UPDATE holds SET outcome = $4, updated_at = $3 WHERE message_id = $1 AND recipient = $2",
            )
            .bind(id)
            .bind(rcpt)
            .bind(now)
            .bind(Outcome::Portal.as_str())
            .execute(&mut **tx)
            .await?;
        }
        if !targets.is_empty() {
            append(
                &mut tx,
                now,
                &[admin(
                    actor,
                    "held.release_to_portal",
                    id,
                    Some(id),
                    json!({ "recipients": targets }),
                )],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(targets)
    }

    /// Settles an `uncertain` hold (a release to the inbox whose reply was lost) once the operator has
    /// checked Stalwart's queue or the mailbox: `delivered` makes it `released` (the content goes when no
    /// other recipient still needs it); not delivered makes it `releasing` now, and the release worker
    /// sends it again. Holds in any other state are left alone.
    pub async fn resolve_uncertain(
        &self,
        actor: Actor<'_>,
        id: &str,
        recipient: &str,
        delivered: bool,
        now: i64,
    ) -> Result<Resolved, StoreError> {
        let mut tx = self.begin_write().await?;
        let state: Option<String> =
            sqlx::query("SELECT state FROM holds WHERE message_id = $1 AND recipient = $2")
                .bind(id)
                .bind(recipient)
                .fetch_optional(&mut **tx)
                .await?
                .map(|r| r.try_get(0))
                .transpose()?;
        let from = match state.as_deref().map(HoldState::parse).transpose()? {
            None => return Ok(Resolved::NoSuchHold),
            Some(HoldState::Uncertain) => HoldState::Uncertain,
            Some(other) => return Ok(Resolved::NotUncertain(other)),
        };
        let to = if delivered {
            HoldState::Released
        } else {
            HoldState::Releasing
        };
        let which = Holds::One {
            message_id: id,
            recipient,
        };
        let again = HoldUpdate {
            next_attempt_at: Some(now),
            ..HoldUpdate::default()
        };
        transition(&mut **tx, which, from, to, now, again).await?;
        if delivered {
            Store::erase_if_unneeded(&mut tx, id, now).await?;
        }
        append(
            &mut tx,
            now,
            &[admin(
                actor,
                "held.resolve",
                id,
                Some(id),
                json!({ "recipient": recipient, "delivered": delivered, "state": to }),
            )],
        )
        .await?;
        tx.commit().await?;
        Ok(Resolved::Done(to))
    }

    /// Deletes a held message: its content is erased now, its holds become `deleted`; the metadata
    /// stays for the audit trail. `false` when there is no such message.
    pub async fn delete_held(
        &self,
        actor: Actor<'_>,
        id: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(
            "UPDATE held_messages SET wrapped_key = NULL, nonce = NULL, ciphertext = NULL, \
             purged_at = COALESCE(purged_at, $2) WHERE id = $1",
        )
        .bind(id)
        .bind(now)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        let holds = transition(
            &mut **tx,
            Holds::OfMessage(id),
            HoldState::Held,
            HoldState::Deleted,
            now,
            HoldUpdate::default(),
        )
        .await?;
        append(
            &mut tx,
            now,
            &[admin(
                actor,
                "held.delete",
                id,
                Some(id),
                json!({ "holds_deleted": holds }),
            )],
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn list_settings(&self) -> Result<Vec<SettingsOut>, StoreError> {
        let rows = sqlx::query(&format!("{SETTINGS_SELECT} ORDER BY domain"))
            .fetch_all(&self.pool)
            .await?;
        let mut all = Vec::with_capacity(rows.len());
        for row in rows {
            all.extend(take_settings(&super::exec::Row::Sqlx(row))?);
        }
        Ok(all)
    }

    pub async fn get_settings(&self, domain: &str) -> Result<Option<SettingsOut>, StoreError> {
        get_settings_on(&mut *self.pool.acquire().await?, domain).await
    }

    /// Stores retention and groups (the notices left to the `[portal]` defaults).
    pub async fn put_settings(
        &self,
        actor: Actor<'_>,
        domain: &str,
        retention_days: Option<i64>,
        groups: &[String],
        now: i64,
    ) -> Result<(), StoreError> {
        let settings = SettingsIn {
            retention_days,
            groups: groups.to_vec(),
            ..SettingsIn::default()
        };
        self.put_settings_with(actor, domain, &settings, now).await
    }

    /// Stores a sender domain's settings (all of them: a PUT), audited.
    pub async fn put_settings_with(
        &self,
        actor: Actor<'_>,
        domain: &str,
        settings: &SettingsIn,
        now: i64,
    ) -> Result<(), StoreError> {
        let SettingsIn {
            retention_days,
            groups,
            hold_confirmation,
            collection_receipt,
        } = settings;
        let groups_json = serde_json::to_string(groups).unwrap_or_else(|_| "[]".into());
        let flag = |b: &Option<bool>| b.map(i64::from);
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO domain_settings (domain, retention_days, groups, updated_at, hold_confirmation, \
             collection_receipt) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (domain) DO UPDATE SET retention_days = excluded.retention_days, \
             groups = excluded.groups, updated_at = excluded.updated_at, \
             hold_confirmation = excluded.hold_confirmation, collection_receipt = excluded.collection_receipt",
        )
        .bind(domain)
        .bind(retention_days)
        .bind(&groups_json)
        .bind(now)
        .bind(flag(hold_confirmation))
        .bind(flag(collection_receipt))
        .execute(&mut **tx)
        .await?;
        let details = json!({
            "retention_days": retention_days, "groups": groups,
            "hold_confirmation": hold_confirmation, "collection_receipt": collection_receipt,
        });
        append(
            &mut tx,
            now,
            &[admin(actor, "settings.put", domain, None, details)],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn delete_settings(
        &self,
        actor: Actor<'_>,
        domain: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.change(
            "DELETE FROM domain_settings WHERE domain = $1",
            &[domain],
            admin(actor, "settings.delete", domain, None, json!({})),
            now,
        )
        .await
    }
}

/// The branch of a [`TaggedRead`](super::tagged::TaggedRead) with a sender domain's settings.
pub(super) fn settings_branch<'a>(read: &mut super::tagged::TaggedRead<'a>, domain: &'a str) {
    let domain = read.text(domain);
    read.branch(format!("{SETTINGS_SELECT} WHERE domain = {domain}"));
}

/// The settings in a row of [`settings_branch`]; none when the row is of another branch.
pub(super) fn take_settings(r: &super::exec::Row) -> Result<Option<SettingsOut>, StoreError> {
    if r.get::<String>(0)? != "s" {
        return Ok(None);
    }
    let groups: String = r.get(2)?;
    Ok(Some(SettingsOut {
        domain: r.get(1)?,
        retention_days: r.get(4)?,
        groups: serde_json::from_str(&groups).unwrap_or_default(),
        hold_confirmation: r.get::<Option<i64>>(6)?.map(|v| v != 0),
        collection_receipt: r.get::<Option<i64>>(7)?.map(|v| v != 0),
        updated_at: rfc3339(r.get(5)?),
    }))
}

/// A sender domain's settings, read on `conn` (the hook reads them with its other facts).
pub(super) async fn get_settings_on(
    conn: &mut sqlx::AnyConnection,
    domain: &str,
) -> Result<Option<SettingsOut>, StoreError> {
    let mut read = super::tagged::TaggedRead::default();
    settings_branch(&mut read, domain);
    let rows = read.fetch_all(conn).await?;
    Ok(rows.first().map(take_settings).transpose()?.flatten())
}

async fn upsert_recipient(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    r: &RecipientIn,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO recipients (address, phone, verified_until, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $4) \
         ON CONFLICT (address) DO UPDATE SET phone = excluded.phone, \
         verified_until = excluded.verified_until, updated_at = excluded.updated_at",
    )
    .bind(&r.address)
    .bind(r.phone.as_deref())
    .bind(r.verified_until)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// What [`Store::resolve_uncertain`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Resolved {
    /// The hold is now in this state.
    Done(HoldState),
    /// The message has no hold for that recipient.
    NoSuchHold,
    /// The hold is not `uncertain` (its state); nothing changed.
    NotUncertain(HoldState),
}
