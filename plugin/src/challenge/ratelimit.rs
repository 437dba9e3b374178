//! Sliding-window rate limits kept in the database (so they hold across restarts and instances).

use sqlx::Row;

use crate::store::{Store, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    SmsRecipient,
    SmsPhone,
    SmsIp,
}

impl Scope {
    fn as_str(self) -> &'static str {
        match self {
            Scope::SmsRecipient => "sms_recipient",
            Scope::SmsPhone => "sms_phone",
            Scope::SmsIp => "sms_ip",
        }
    }
}

/// Counts events of `(scope, key)` since `now - window`.
pub async fn count(
    store: &Store,
    scope: Scope,
    key: &str,
    window: i64,
    now: i64,
) -> Result<i64, StoreError> {
    let row =
        sqlx::query("SELECT COUNT(*) FROM rate_events WHERE scope = $1 AND key = $2 AND at > $3")
            .bind(scope.as_str())
            .bind(key)
            .bind(now - window)
            .fetch_one(store.pool())
            .await?;
    Ok(row.try_get(0)?)
}

/// Checks every `(scope, key, limit)` and, when all are under their limit, records one event for each.
/// Returns the first scope that is exhausted.
pub async fn take(
    store: &Store,
    checks: &[(Scope, &str, i64)],
    window: i64,
    now: i64,
) -> Result<Result<(), Scope>, StoreError> {
    for (scope, key, limit) in checks {
        if count(store, *scope, key, window, now).await? >= *limit {
            return Ok(Err(*scope));
        }
    }
    let mut tx = store.pool().begin().await?;
    for (scope, key, _) in checks {
        sqlx::query("INSERT INTO rate_events (scope, key, at) VALUES ($1, $2, $3)")
            .bind(scope.as_str())
            .bind(*key)
            .bind(now)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query("DELETE FROM rate_events WHERE at < $1")
        .bind(now - 7 * 86_400)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Ok(()))
}
