//! The rows of large attachments (`hold_blobs`): what each sealed blob file is (its message, name,
//! type, size, digest, wrapped key), who may download it, and which ones must go. The files themselves
//! are `hold::blob`'s; this module never touches the disk.

use sqlx::Row;

use super::{
    exec::{Arg, Exec},
    holds::HoldState,
    Store, StoreError,
};

/// Whether a blob's file is still there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobState {
    Stored,
    Deleted,
}

impl BlobState {
    pub fn as_str(self) -> &'static str {
        match self {
            BlobState::Stored => "stored",
            BlobState::Deleted => "deleted",
        }
    }
}

/// One large attachment taken out of a held message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRow {
    pub blob_id: String,
    pub message_id: String,
    /// Its position among the message's attachments.
    pub part_index: i64,
    pub filename: String,
    pub content_type: String,
    pub size: i64,
    /// SHA-256 (hex) of the decoded bytes.
    pub sha256: String,
    pub key_id: String,
    pub wrapped_key: Vec<u8>,
}

/// What a recipient's download of a blob finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobAccess {
    /// The recipient has the message (on the portal or delivered) and the blob is kept.
    Allowed(BlobRow),
    /// The recipient had it, but its retention ended or it was withdrawn.
    Gone,
    /// No such blob for this recipient.
    NotFound,
}

/// The hold states in which a blob's message is still the recipient's to download.
const DOWNLOADABLE: [HoldState; 2] = [HoldState::Portal, HoldState::Released];

const COLUMNS: &str =
    "blob_id, message_id, part_index, filename, content_type, size, sha256, key_id, wrapped_key";

fn row(r: &sqlx::any::AnyRow) -> Result<BlobRow, sqlx::Error> {
    Ok(BlobRow {
        blob_id: r.try_get(0)?,
        message_id: r.try_get(1)?,
        part_index: r.try_get(2)?,
        filename: r.try_get::<Option<String>, _>(3)?.unwrap_or_default(),
        content_type: r.try_get::<Option<String>, _>(4)?.unwrap_or_default(),
        size: r.try_get(5)?,
        sha256: r.try_get(6)?,
        key_id: r.try_get(7)?,
        wrapped_key: r.try_get::<Option<Vec<u8>>, _>(8)?.unwrap_or_default(),
    })
}

/// The blobs of a newly held message, in the hook's transaction.
pub(super) async fn insert<E: Exec>(
    tx: &mut E,
    blobs: &[BlobRow],
    now: i64,
) -> Result<(), StoreError> {
    let sql = format!(
        "INSERT INTO hold_blobs ({COLUMNS}, state, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    );
    for b in blobs {
        let args = [
            Arg::from(&b.blob_id),
            (&b.message_id).into(),
            b.part_index.into(),
            (&b.filename).into(),
            (&b.content_type).into(),
            b.size.into(),
            (&b.sha256).into(),
            (&b.key_id).into(),
            (&b.wrapped_key).into(),
            BlobState::Stored.as_str().into(),
            now.into(),
        ];
        tx.execute(&sql, &args).await?;
    }
    Ok(())
}

impl Store {
    /// The stored blobs of a message, in attachment order.
    pub async fn blobs_of(&self, message_id: &str) -> Result<Vec<BlobRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM hold_blobs WHERE message_id = $1 AND state = $2 ORDER BY part_index"
        ))
        .bind(message_id)
        .bind(BlobState::Stored.as_str())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(row).collect::<Result<_, _>>()?)
    }

    /// Whether `recipient` may download `blob_id` now: a hold of its message on the portal or
    /// delivered, the retention not over, the blob still stored.
    pub async fn blob_access(
        &self,
        blob_id: &str,
        recipient: &str,
        now: i64,
    ) -> Result<BlobAccess, StoreError> {
        let found = sqlx::query(&format!(
            "SELECT {}, h.state, b.state, m.expires_at FROM hold_blobs b \
             JOIN held_messages m ON m.id = b.message_id \
             JOIN holds h ON h.message_id = b.message_id AND h.recipient = $2 \
             WHERE b.blob_id = $1",
            COLUMNS
                .split(", ")
                .map(|c| format!("b.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .bind(blob_id)
        .bind(recipient)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = found else {
            return Ok(BlobAccess::NotFound);
        };
        let hold = HoldState::parse(&r.try_get::<String, _>(9)?)?;
        let stored = r.try_get::<String, _>(10)? == BlobState::Stored.as_str();
        let expires_at: i64 = r.try_get(11)?;
        Ok(
            if stored && expires_at > now && DOWNLOADABLE.contains(&hold) {
                BlobAccess::Allowed(row(&r)?)
            } else {
                BlobAccess::Gone
            },
        )
    }

    /// Stored blobs whose message's retention has ended, or none of whose holds is still live (every
    /// recipient's hold withdrawn, expired or deleted): their files must be deleted.
    pub async fn blobs_to_delete(&self, now: i64) -> Result<Vec<String>, StoreError> {
        let rows = self
            .read_op(|db| {
                Box::pin(async move {
                    let args = [
                        BlobState::Stored.as_str().into(),
                        now.into(),
                        HoldState::Withdrawn.as_str().into(),
                        HoldState::Expired.as_str().into(),
                        HoldState::Deleted.as_str().into(),
                    ];
                    db.fetch_all(
                        "SELECT b.blob_id FROM hold_blobs b JOIN held_messages m ON m.id = b.message_id \
                         WHERE b.state = $1 AND (m.expires_at <= $2 OR NOT EXISTS (SELECT 1 FROM holds h \
                         WHERE h.message_id = b.message_id AND h.state NOT IN ($3, $4, $5))) \
                         ORDER BY b.blob_id",
                        &args,
                    )
                    .await
                })
            })
            .await?;
        rows.iter().map(|r| r.get(0)).collect()
    }

    /// A blob's file is gone: the row keeps its size and digest (the audit trail names them), its
    /// name, type and key are erased.
    pub async fn blob_deleted(&self, blob_id: &str, now: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE hold_blobs SET state = $1, deleted_at = $2, filename = NULL, content_type = NULL, \
             wrapped_key = NULL WHERE blob_id = $3",
        )
        .bind(BlobState::Deleted.as_str())
        .bind(now)
        .bind(blob_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Whether a blob has a row (its hold committed).
    pub async fn blob_exists(&self, blob_id: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("SELECT 1 FROM hold_blobs WHERE blob_id = $1")
            .bind(blob_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(r.is_some())
    }

    /// The challenge of a recipient's hold (its link token is derived from it), if it has one.
    pub async fn hold_challenge(
        &self,
        message_id: &str,
        recipient: &str,
    ) -> Result<Option<String>, StoreError> {
        let r =
            sqlx::query("SELECT challenge_id FROM holds WHERE message_id = $1 AND recipient = $2")
                .bind(message_id)
                .bind(recipient)
                .fetch_optional(&self.pool)
                .await?;
        Ok(match r {
            Some(r) => r.try_get::<Option<String>, _>(0)?,
            None => None,
        })
    }
}
