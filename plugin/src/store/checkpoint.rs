//! SQLite WAL checkpoints off the request path.
//!
//! With SQLite's automatic checkpoint, the commit that pushes the write-ahead log past 1000 pages copies
//! the log into the database file and fsyncs it before it returns: about one hook in a hundred paid for
//! it, which set the hook's p99. The pool's connections turn the automatic checkpoint off and this task
//! runs a `PASSIVE` checkpoint (it never blocks readers or writers) every [`INTERVAL`] instead. What is
//! committed is durable in the log either way (`synchronous = FULL`); a checkpoint only moves it.

use std::time::Duration;

use sqlx::AnyPool;

/// How often the log is checkpointed. At the hook's peak rate the log grows by a few MB in this time.
pub const INTERVAL: Duration = Duration::from_millis(500);

/// Starts the checkpoint task for this pool; it ends when the pool is closed.
pub fn spawn(pool: AnyPool) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if pool.is_closed() {
                return;
            }
            if let Err(e) = run(&pool).await {
                if pool.is_closed() {
                    return;
                }
                tracing::warn!(error = %e, "SQLite WAL checkpoint failed; retrying");
            }
        }
    });
}

/// One passive checkpoint.
pub async fn run(pool: &AnyPool) -> Result<(), sqlx::Error> {
    sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
        .execute(pool)
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pool's connections do not checkpoint on commit; the task does, and the log stays bounded.
    #[tokio::test]
    async fn the_task_checkpoints_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("g.db").display());
        let store = crate::store::Store::connect(&url, 2).await.unwrap();
        let pool = store.pool();
        let auto: i64 = sqlx::query_scalar("PRAGMA wal_autocheckpoint")
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!(auto, 0, "no checkpoint inside a commit");
        sqlx::query("CREATE TABLE t (x TEXT)")
            .execute(pool)
            .await
            .unwrap();
        for _ in 0..300 {
            sqlx::query("INSERT INTO t VALUES ($1)")
                .bind("x".repeat(4000))
                .execute(pool)
                .await
                .unwrap();
        }
        // Only a checkpoint writes logged pages into the database file; without the task all 300
        // commits would stay in the log and the file would keep its size.
        let db = dir.path().join("g.db");
        let mut moved = false;
        for _ in 0..40 {
            tokio::time::sleep(INTERVAL / 4).await;
            if std::fs::metadata(&db).unwrap().len() > 300 * 4000 {
                moved = true;
                break;
            }
        }
        assert!(moved, "the task copied the log into the database file");
        store.close().await;
    }
}
