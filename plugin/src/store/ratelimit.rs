//! Sliding-window rate limits (table `rate_events`), kept in the database so they hold across restarts
//! and instances. Calls nothing outside the store.

use sqlx::Row;

use super::{Store, StoreError};

/// What is limited (SMS per recipient, per phone number, per client IP).
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

/// Events older than this are deleted.
const KEEP_SECS: i64 = 7 * 86_400;

impl Store {
    /// Counts events of `(scope, key)` since `now - window`.
    pub async fn rate_count(
        &self,
        scope: Scope,
        key: &str,
        window: i64,
        now: i64,
    ) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) FROM rate_events WHERE scope = $1 AND key = $2 AND at > $3",
        )
        .bind(scope.as_str())
        .bind(key)
        .bind(now - window)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get(0)?)
    }

    /// Checks every `(scope, key, limit)` and, when all are under their limit, records one event for
    /// each. Returns the first scope that is exhausted.
    pub async fn take_rate(
        &self,
        checks: &[(Scope, &str, i64)],
        window: i64,
        now: i64,
    ) -> Result<Result<(), Scope>, StoreError> {
        // The counts are read before the insert transaction: concurrent requests may each pass the
        // last free slot (a bounded overshoot, not a bypass).
        for (scope, key, limit) in checks {
            if self.rate_count(*scope, key, window, now).await? >= *limit {
                return Ok(Err(*scope));
            }
        }
        let mut tx = self.begin_write().await?;
        for (scope, key, _) in checks {
            sqlx::query("INSERT INTO rate_events (scope, key, at) VALUES ($1, $2, $3)")
                .bind(scope.as_str())
                .bind(*key)
                .bind(now)
                .execute(&mut **tx)
                .await?;
        }
        sqlx::query("DELETE FROM rate_events WHERE at < $1")
            .bind(now - KEEP_SECS)
            .execute(&mut **tx)
            .await?;
        tx.commit().await?;
        Ok(Ok(()))
    }
}
