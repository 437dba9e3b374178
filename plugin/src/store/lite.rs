//! The SQLite group writer's own connection, on its own thread, and the hook's read-only connection,
//! used on the caller's thread ([`Lite::read_now`]).
//!
//! sqlx runs each SQLite connection on a worker thread and hands every statement's result back over a
//! channel: one wake of the runtime thread and one of the worker per statement. A group-commit batch
//! is a dozen statements or more, and those wakes were a large part of the gateway's CPU under load
//! (thread switches, not SQL). Here a batch is handed over once: the thread runs all its statements
//! and the commit on a rusqlite connection and answers once. Same file, same settings
//! ([`super::SQLITE_PRAGMAS`]); the process's writer turn ([`super::Store::begin_write`]) is taken
//! before a batch is handed over, so it still writes one at a time with the pool's writers.

use std::sync::{mpsc, Mutex};

use tokio::sync::oneshot;

use super::{exec::LiteRead, StoreError};

/// Statements kept prepared: the batches' multi-row inserts differ by their row count.
const STATEMENT_CACHE: usize = 256;

type Task = Box<dyn FnOnce(&mut rusqlite::Connection) + Send>;

/// The writer thread's queue (the thread ends when the last store handle is dropped) and the hook's
/// read-only connection.
pub(super) struct Lite {
    tasks: mpsc::Sender<Task>,
    reader: Mutex<rusqlite::Connection>,
}

/// A connection to `path` with the store's settings, `extra` after them.
fn connect(path: &std::path::Path, extra: &[&str]) -> Result<rusqlite::Connection, StoreError> {
    let conn = rusqlite::Connection::open(path)?;
    for pragma in super::SQLITE_PRAGMAS.iter().chain(extra) {
        // `journal_mode` answers with a row: read and dropped.
        conn.query_row(pragma, [], |_| Ok(()))
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(()),
                e => Err(e),
            })?;
    }
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// Whether an error is SQLite's "busy" or "locked": the statement would have had to wait.
fn busy(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, _))
            if matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

impl Lite {
    /// Opens `path` (migrated already) with the store's settings and starts the thread.
    pub(super) fn open(path: &std::path::Path) -> Result<Lite, StoreError> {
        let mut conn = connect(path, &[])?;
        // Never waits (a busy read is handed to the pool instead) and never writes.
        let reader = connect(path, &["PRAGMA busy_timeout = 0", "PRAGMA query_only = 1"])?;
        let (tx, rx) = mpsc::channel::<Task>();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || {
                for task in rx {
                    // A panic ends its task (its transaction rolled back, its caller answered with an
                    // error), not the writer.
                    let _ =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| task(&mut conn)));
                }
            })
            .map_err(|e| StoreError::Db(sqlx::Error::Io(e)))?;
        Ok(Lite {
            tasks: tx,
            reader: Mutex::new(reader),
        })
    }

    /// Runs the reads `f` on the read-only connection, on the caller's thread: a WAL read neither
    /// waits for the writer nor makes it wait, and a hop to another thread and back costs more than
    /// the hook's reads. `None` when it would have had to wait (the connection in use by another
    /// thread, or SQLite busy): the caller then reads through the pool, whose connections wait on
    /// their own threads.
    pub(super) fn read_now<T>(
        &self,
        f: impl FnOnce(&mut LiteRead<'_>) -> Result<T, StoreError>,
    ) -> Option<Result<T, StoreError>> {
        let mut conn = self.reader.try_lock().ok()?;
        match f(&mut LiteRead { conn: &mut conn }) {
            Err(e) if busy(&e) => None,
            result => Some(result),
        }
    }

    /// Runs `f` on the writer's connection; its result once it ran.
    pub(super) async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut rusqlite::Connection) -> T + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = oneshot::channel();
        let task: Task = Box::new(move |conn| {
            let _ = tx.send(f(conn));
        });
        if self.tasks.send(task).is_err() {
            return Err(StoreError::Db(sqlx::Error::WorkerCrashed));
        }
        rx.await
            .map_err(|_| StoreError::Db(sqlx::Error::WorkerCrashed))
    }
}

/// The output of a future that is ready at once (a write on [`super::exec::LiteTx`], which never
/// waits); an error if it would wait.
pub(super) fn ready_now<T>(
    f: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    futures_util::FutureExt::now_or_never(f)
        .unwrap_or(Err(StoreError::Db(sqlx::Error::WorkerCrashed)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_task_that_panics_fails_alone_and_the_writer_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let lite = Lite::open(&dir.path().join("db.sqlite")).unwrap();
        let mode: String = lite
            .run(|conn| conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(mode, "wal", "the store's settings");
        let panicked = lite.run(|_| -> i64 { panic!("a bug in a batch") }).await;
        assert!(matches!(
            panicked,
            Err(StoreError::Db(sqlx::Error::WorkerCrashed))
        ));
        let after = lite
            .run(|conn| conn.query_row("SELECT 41 + 1", [], |r| r.get::<_, i64>(0)))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(after, 42);
    }

    #[tokio::test]
    async fn reads_on_the_callers_thread_see_commits_never_write_and_step_aside_when_in_use() {
        use crate::store::exec::Exec;
        let dir = tempfile::tempdir().unwrap();
        let lite = Lite::open(&dir.path().join("db.sqlite")).unwrap();
        lite.run(|conn| conn.execute_batch("CREATE TABLE t (a INTEGER); INSERT INTO t VALUES (7)"))
            .await
            .unwrap()
            .unwrap();
        let read = |lite: &Lite| {
            lite.read_now(|r| ready_now(r.fetch_one("SELECT a FROM t", &[])))
                .map(|row| row.and_then(|row| row.get::<i64>(0)))
        };
        assert_eq!(
            read(&lite).unwrap().unwrap(),
            7,
            "the writer's commit is seen"
        );
        let write = lite.read_now(|r| ready_now(r.execute("INSERT INTO t VALUES (8)", &[])));
        assert!(
            matches!(write, Some(Err(StoreError::Sqlite(_)))),
            "a write on the read connection is refused, not retried elsewhere"
        );
        // In use by another thread: the caller is told to read elsewhere instead of waiting.
        let held = lite.reader.lock().unwrap();
        assert!(read(&lite).is_none());
        drop(held);
        // SQLite busy or locked: the read would have had to wait, and steps aside; other errors stay.
        for code in [rusqlite::ffi::SQLITE_BUSY, rusqlite::ffi::SQLITE_LOCKED] {
            let e = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None);
            assert!(lite
                .read_now(|_| -> Result<(), _> { Err(e.into()) })
                .is_none());
        }
        let other = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
            None,
        );
        let kept = lite.read_now(|_| -> Result<(), _> { Err(other.into()) });
        assert!(matches!(kept, Some(Err(StoreError::Sqlite(_)))));
    }

    #[test]
    fn a_future_that_would_wait_is_an_error() {
        let pending = std::future::pending::<Result<(), StoreError>>();
        assert!(matches!(
            ready_now(pending),
            Err(StoreError::Db(sqlx::Error::WorkerCrashed))
        ));
        assert_eq!(ready_now(async { Ok(3) }).unwrap(), 3);
    }
}
