//! `bulk send`'s one write before anything is sent: the recipients' mobile numbers from the CSV
//! (table `recipients`), each with its `PhoneNumber` audit record (source `bulk`), in one transaction.
//! A recipient's known number — verified or not — is kept unless the operator asked to replace it.
//! Numbers arrive validated (E.164); may call the rest of `store` and the `audit` event types.

use sqlx::Row;

use super::{audit::append, recipients::set_phone_if_unknown, Store, StoreError};
use crate::audit::{Event, MaskedPhone, PhoneOutcome, PhoneSource};

/// What became of one CSV number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkPhone {
    /// The recipient had no number; this one is stored.
    Recorded,
    /// The recipient already has this number.
    Unchanged,
    /// The recipient has another number, kept (no `--update-phones`).
    Kept,
    /// The recipient's other number was replaced (`--update-phones`).
    Replaced,
}

impl Store {
    /// Records `(address, E.164 number)` pairs given by `sender`, in order, in one transaction with
    /// one audit record each (masked number). `replace`: overwrite a different known number.
    pub async fn record_bulk_phones(
        &self,
        sender: &str,
        rows: &[(&str, &str)],
        replace: bool,
        now: i64,
    ) -> Result<Vec<BulkPhone>, StoreError> {
        let mut tx = self.begin_write().await?;
        let mut outcomes = Vec::with_capacity(rows.len());
        let mut events = Vec::with_capacity(rows.len());
        for &(address, phone) in rows {
            let known: Option<String> =
                sqlx::query("SELECT phone FROM recipients WHERE address = $1")
                    .bind(address)
                    .fetch_optional(&mut **tx)
                    .await?
                    .and_then(|r| r.try_get::<Option<String>, _>(0).ok().flatten());
            let outcome = match known.as_deref() {
                None if set_phone_if_unknown(&mut tx, address, phone, now).await? => {
                    BulkPhone::Recorded
                }
                None => BulkPhone::Kept,
                Some(p) if p == phone => BulkPhone::Unchanged,
                Some(_) if replace => {
                    sqlx::query(
                        "UPDATE recipients SET phone = $2, updated_at = $3 WHERE address = $1",
                    )
                    .bind(address)
                    .bind(phone)
                    .bind(now)
                    .execute(&mut **tx)
                    .await?;
                    BulkPhone::Replaced
                }
                Some(_) => BulkPhone::Kept,
            };
            outcomes.push(outcome);
            events.push(Event::PhoneNumber {
                message_ref: None,
                recipient: address.to_string(),
                sender: sender.to_string(),
                source: PhoneSource::Bulk,
                outcome: match outcome {
                    BulkPhone::Recorded => PhoneOutcome::Recorded,
                    BulkPhone::Replaced => PhoneOutcome::Replaced,
                    BulkPhone::Unchanged | BulkPhone::Kept => PhoneOutcome::AlreadyKnown,
                },
                phone: Some(MaskedPhone::from_e164(phone)),
            });
        }
        append(&mut tx, now, &events).await?;
        tx.commit().await?;
        Ok(outcomes)
    }
}
