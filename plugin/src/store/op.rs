//! Store operations written once against [`Exec`] and run where they cost least: on a SQLite file a
//! write on the group writer's own connection and thread ([`super::lite`]: its page cache stays warm,
//! no statement crosses to a sqlx worker thread and back) and a read on the caller's thread; on
//! PostgreSQL on a kept connection ([`super::kept`]: no pool ping). For the
//! background worker's small transactions (the notice outbox), where sqlx's per-statement hops were
//! most of their cost.

use std::{future::Future, pin::Pin};

use super::{
    exec::{self, Arg, Exec, LiteTx, Row},
    lite::ready_now,
    Store, StoreError,
};

/// An operation's future, borrowing the connection it runs on.
pub(crate) type OpFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// The connection an operation runs on.
pub(crate) enum Db<'c> {
    /// A SQLite connection of this process (in a transaction for a write): every statement runs when
    /// it is called.
    Lite(&'c mut rusqlite::Connection),
    /// A sqlx connection (in a transaction for a write).
    Sqlx(&'c mut sqlx::AnyConnection),
}

impl Exec for Db<'_> {
    fn sqlite(&self) -> bool {
        match self {
            Db::Lite(_) => true,
            Db::Sqlx(conn) => conn.sqlite(),
        }
    }

    async fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64, StoreError> {
        match self {
            Db::Lite(conn) => exec::run(conn, sql, args),
            Db::Sqlx(conn) => conn.execute(sql, args).await,
        }
    }

    async fn fetch_all(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<Row>, StoreError> {
        match self {
            Db::Lite(conn) => exec::rows(conn, sql, args),
            Db::Sqlx(conn) => conn.fetch_all(sql, args).await,
        }
    }
}

impl Store {
    /// Runs `op` in a write transaction of its own and commits it (rolled back on an error). On a
    /// SQLite file: this process's writer turn, then the writer's thread (see [`Store::begin_write`]).
    pub(super) async fn write_op<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'a, 'c> FnOnce(&'a mut Db<'c>) -> OpFuture<'a, T> + Send + 'static,
    {
        if let Some(lite) = &self.lite {
            // A closed store writes nothing more ([`Store::close`]), as the pool's connections.
            if self.pool.is_closed() {
                return Err(StoreError::Db(sqlx::Error::PoolClosed));
            }
            let _turn = self.writer_turn().await?;
            return lite
                .run(move |conn| {
                    let mut tx = LiteTx::begin(conn)?;
                    let out = ready_now(op(&mut tx.db()))?;
                    tx.commit()?;
                    Ok(out)
                })
                .await?;
        }
        let mut conn = self.kept.take().await?;
        let result = async {
            let (mut tx, _turn) = self.begin_write_on(&mut conn).await?;
            let out = op(&mut Db::Sqlx(&mut tx)).await?;
            tx.commit().await?;
            Ok(out)
        }
        .await;
        self.kept.put(conn, &result);
        result
    }

    /// Runs the reads `op`: on a SQLite file on the caller's thread (see
    /// [`super::lite::Lite::read_now`]), else — or when that would wait — on a kept connection
    /// (which fails once the store is closed). `op` may be called twice (the first read stepped
    /// aside), so its future owns what it needs.
    pub(super) async fn read_op<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        F: for<'a, 'c> Fn(&'a mut Db<'c>) -> OpFuture<'a, T>,
    {
        let inline = self
            .lite
            .as_ref()
            .filter(|_| !self.pool.is_closed())
            .and_then(|lite| lite.read_now(|read| ready_now(op(&mut Db::Lite(&mut *read.conn)))));
        if let Some(result) = inline {
            return result;
        }
        let mut conn = self.kept.take().await?;
        let result = op(&mut Db::Sqlx(&mut conn)).await;
        self.kept.put(conn, &result);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A SQLite file: writes on the writer's thread, reads on the caller's (PostgreSQL's kept
    /// connections run the same operations in the integration tests' PostgreSQL variants).
    async fn stores() -> (tempfile::TempDir, Vec<Store>) {
        let dir = tempfile::tempdir().unwrap();
        let file = format!("sqlite://{}", dir.path().join("db.sqlite").display());
        let file = Store::connect(&file, 2).await.unwrap();
        assert!(file.lite.is_some());
        (dir, vec![file])
    }

    #[tokio::test]
    async fn an_in_memory_database_is_refused_with_the_reason() {
        for url in ["sqlite::memory:", "sqlite://x.db?mode=memory"] {
            let e = Store::connect(url, 2).await.err().expect("refused");
            assert!(
                matches!(&e, StoreError::InMemory(u) if u.starts_with(url)),
                "{e}"
            );
            assert!(e.to_string().contains("loses every held message"), "{e}");
        }
    }

    async fn count(store: &Store) -> Result<i64, StoreError> {
        store
            .read_op(|db| {
                Box::pin(async move {
                    db.fetch_one("SELECT COUNT(*) FROM rate_events WHERE scope = 'op'", &[])
                        .await?
                        .get(0)
                })
            })
            .await
    }

    fn insert<'a>(db: &'a mut Db<'_>, key: &'static str) -> OpFuture<'a, u64> {
        Box::pin(async move {
            db.execute(
                "INSERT INTO rate_events (scope, key, at) VALUES ('op', $1, 1)",
                &[key.into()],
            )
            .await
        })
    }

    #[tokio::test]
    async fn a_write_commits_whole_or_not_at_all_and_reads_see_it() {
        let (_dir, stores) = stores().await;
        for store in stores {
            let n = store.write_op(|db| insert(db, "a")).await.unwrap();
            assert_eq!(n, 1);
            assert_eq!(count(&store).await.unwrap(), 1);
            // A statement that fails after one that ran: neither stays.
            let failed = store
                .write_op(|db| {
                    Box::pin(async move {
                        insert(db, "b").await?;
                        db.execute("INSERT INTO no_such_table VALUES (1)", &[])
                            .await
                    })
                })
                .await;
            assert!(failed.is_err());
            assert_eq!(count(&store).await.unwrap(), 1, "rolled back");
            // An operation that would wait on the writer's thread is an error, not a hang.
            if store.lite.is_some() {
                let waits = store
                    .write_op(|_| Box::pin(std::future::pending::<Result<(), StoreError>>()))
                    .await;
                assert!(matches!(
                    waits,
                    Err(StoreError::Db(sqlx::Error::WorkerCrashed))
                ));
                assert_eq!(store.write_op(|db| insert(db, "w")).await.unwrap(), 1);
                assert_eq!(count(&store).await.unwrap(), 2, "the writer goes on");
            }
            // Closed: neither writes nor reads.
            store.close().await;
            assert!(store.write_op(|db| insert(db, "c")).await.is_err());
            assert!(count(&store).await.is_err());
        }
    }
}
