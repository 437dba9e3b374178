//! Storage: the only place that talks to the database. One sqlx `Any` pool, the same queries for SQLite
//! (embedded default) and PostgreSQL (several gateway instances), with a migration set for each. On a
//! SQLite file the group writer ([`group`]) has its own connection on its own thread ([`lite`]); its
//! statements are written once against [`exec::Exec`] and run on either.
//!
//! One file per table group, each adding its methods to [`Store`]:
//! - [`hook`]: the hook's one transaction (decisions, the sealed copy, holds, challenges);
//! - [`holds`]: held messages and holds — the hold state machine, release steps, retention;
//! - [`challenges`]: challenges (their state machine) and portal sessions;
//! - [`recipients`]: recipients, exemptions, peers;
//! - [`outbox`]: notification mails; [`ratelimit`]: SMS limits;
//! - [`audit`]: the hash-chained log and the webhook intake; [`admin`]: operator changes;
//! - [`bulk`]: the mobile numbers of a `bulk send` CSV;
//! - [`queue`]: the outbox's rows as values and their insert (shared by holds, withdrawal, the outbox);
//! - [`sealed`]: the stored form of encrypted content; `checkpoint`: SQLite WAL checkpoints;
//! - [`withdraw`]: withdrawal by the sender, the portal's first opening, the sender's notices.
//!
//! State columns are enums here; strings exist only at the SQL boundary. The store is the lowest
//! layer with I/O: it may use `audit` (event types), `policy` (decision values), `stalwart` (wire
//! types), `ids` and `time`; never `challenge`, `hold`, `portal`, `admin`, `http` or `submission`,
//! which all call into it.

use std::{str::FromStr, time::Duration};

use sqlx::{
    any::{AnyConnectOptions, AnyPoolOptions},
    AnyPool, Executor, Row,
};

pub mod admin;
pub mod audit;
pub mod blobs;
pub mod bulk;
pub mod challenges;
mod checkpoint;
pub mod exec;
mod group;
pub mod holds;
pub mod hook;
mod kept;
mod lite;
mod op;
pub mod outbox;
pub mod queue;
pub mod ratelimit;
pub mod recipients;
pub mod replies;
pub mod sealed;
mod tagged;
pub mod withdraw;

pub use challenges::{Challenge, ChallengeState, Purpose};
pub use holds::{HeldFor, HeldRow, HoldState};
pub use hook::HookRecord;
pub use recipients::{RecipientRow, StoredFacts};
pub use sealed::Sealed;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// The SQLite group writer's connection ([`lite`]).
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot create the database directory {0}: {1}")]
    Dir(String, std::io::Error),
    #[error("cannot create the database file {0}: {1}")]
    File(String, std::io::Error),
    /// `storage.url` names an in-memory SQLite database: every hold would be lost when the gateway
    /// stops (and each connection would see a database of its own).
    #[error("storage.url {0:?} is an in-memory SQLite database, which loses every held message when the gateway stops: use a file (sqlite://data/gateway.db) or PostgreSQL")]
    InMemory(String),
    /// A state change the state machine does not allow; nothing was changed.
    #[error("illegal {what} state change: {from} → {to}")]
    IllegalTransition {
        what: &'static str,
        from: &'static str,
        to: &'static str,
    },
    #[error("unknown {what} state in the database: {value:?}")]
    UnknownState { what: &'static str, value: String },
    /// The same submission, hooked twice at once, was committed by the other call first (its held
    /// copy has this idempotency key); nothing of this call was kept. Deciding again finds that copy.
    #[error("a concurrent call committed the same submission first")]
    DuplicateSubmission,
    /// A recipient this call would challenge passed its verification after the call gathered its
    /// facts (the verification committed first); nothing of this call was kept. Deciding again sees
    /// the verification, so the recipient is not asked a second time.
    #[error("a recipient was verified while this call decided")]
    VerifiedMeanwhile,
}

impl StoreError {
    /// Whether the database could not be reached (connection refused or cut, no connection within the
    /// pool's timeout, the server shutting down or starting up): the same call may succeed later.
    /// Anything else (a constraint, an illegal transition, a closed pool) fails the same way again.
    pub fn is_unavailable(&self) -> bool {
        let StoreError::Db(e) = self else {
            return false;
        };
        match e {
            sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Tls(_) => true,
            // PostgreSQL's connection exceptions (08…) and operator interventions (57P01 admin
            // shutdown, 57P02 crash shutdown, 57P03 cannot connect now).
            sqlx::Error::Database(d) => d
                .code()
                .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
            _ => false,
        }
    }
}

/// How long [`until_available`] keeps trying: well below the leases of a claimed release (600 s) or
/// outbox row (300 s), so no other worker takes the claim meanwhile.
pub const RECORD_PATIENCE: Duration = Duration::from_secs(120);

/// Runs `op` again while it fails with [`StoreError::is_unavailable`], pausing 0.25 s, doubling up to
/// 5 s, for at most [`RECORD_PATIENCE`]; any other result is returned at once. For writes that record
/// what has already happened outside the database (Stalwart accepted a mail): lost to a database
/// restart, they would leave the row claimed, and the mail reported uncertain or sent again.
pub async fn until_available<T, F, Fut>(what: &'static str, mut op: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let deadline = std::time::Instant::now() + RECORD_PATIENCE;
    let mut pause = Duration::from_millis(250);
    loop {
        match op().await {
            Err(e) if e.is_unavailable() && std::time::Instant::now() + pause < deadline => {
                tracing::warn!(error = %e, what, "database unavailable; recording again shortly");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
            other => return other,
        }
    }
}

/// The settings of every new connection. SQLite: WAL with `synchronous = FULL` (a committed hold
/// survives a power cut), a busy timeout for writers outside this process's queue, checkpoints in the
/// background (see `checkpoint`) instead of in a commit, and foreign keys. No memory-mapped reads
/// (`mmap_size`): the file grows with every checkpoint, and each growth made every connection unmap
/// and map it again (with a TLB shootdown on each core); under the load bench reads through `read()`
/// cost 7 % less CPU per message and 5 MiB less memory. Temporary tables and statement journals stay in memory: on files (the default)
/// every hold's notice planning opened, wrote and deleted one in `TMPDIR` — write system calls, and
/// pages of the database outside its own file.
async fn configure(conn: &mut sqlx::AnyConnection, backend: Backend) -> Result<(), sqlx::Error> {
    if backend == Backend::Sqlite {
        for pragma in SQLITE_PRAGMAS {
            conn.execute(pragma).await?;
        }
    }
    Ok(())
}

/// The settings of every SQLite connection (see [`configure`]).
const SQLITE_PRAGMAS: [&str; 6] = [
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = FULL",
    "PRAGMA busy_timeout = 5000",
    "PRAGMA wal_autocheckpoint = 0",
    "PRAGMA foreign_keys = ON",
    "PRAGMA temp_store = MEMORY",
];

/// Creates a missing SQLite database file empty with mode 0600 and its folders 0700 (existing ones are
/// left as they are; `serve` warns when they are more open).
fn create_sqlite_file(path: &std::path::Path) -> Result<(), StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::fsperm::create_private_dir_all(dir)
            .map_err(|e| StoreError::Dir(dir.display().to_string(), e))?;
    }
    crate::fsperm::create_private_file(path)
        .map_err(|e| StoreError::File(path.display().to_string(), e))
}

/// The placeholders of a multi-row `VALUES` list (or, with one row, an `IN` list): `rows` groups of
/// `cols`, numbered from 1. SQLite gets anonymous `?`: it resolves every `$N` by a linear search of the
/// statement's parameter names, once when preparing and again for each value sqlx binds — quadratic in
/// a statement of thousands of values (it was most of the webhook intake's CPU). PostgreSQL needs `$N`.
/// `sqlite`: the statement is for SQLite.
pub(crate) fn placeholders(sqlite: bool, rows: usize, cols: usize) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(rows * (cols * 5 + 4));
    for r in 0..rows {
        s.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..cols {
            if c > 0 {
                s.push_str(", ");
            }
            match sqlite {
                true => s.push('?'),
                false => write!(s, "${}", r * cols + c + 1).expect("write to a String"),
            }
        }
        s.push(')');
    }
    s
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// SQLite's writers, one at a time in arrival order (see [`Store::begin_write`]).
    writer: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// The group-commit writer of the hook's records, webhook deliveries and audit appends.
    group: std::sync::Arc<group::Group>,
    /// The group writer's own connection on SQLite files ([`lite`]); none on PostgreSQL.
    lite: Option<std::sync::Arc<lite::Lite>>,
    /// Connections of the hot paths, kept open without sqlx's pings ([`kept`]).
    kept: std::sync::Arc<kept::Kept>,
    /// The old `webhook_seen` still has dedup keys, which the webhook intake then reads too
    /// ([`Store::purge_webhook_keys`] empties it once they are out of the window).
    legacy_keys: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// A write transaction. On SQLite it also holds this process's one writer turn until it commits or is
/// dropped; everything else is the sqlx transaction it dereferences to.
pub struct WriteTx {
    tx: sqlx::Transaction<'static, sqlx::Any>,
    _turn: Option<WriterTurn>,
}

/// This process's one turn to write to SQLite, held until the transaction ends.
pub(super) type WriterTurn = tokio::sync::OwnedMutexGuard<()>;

impl WriteTx {
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }

    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.tx.rollback().await
    }
}

impl std::ops::Deref for WriteTx {
    type Target = sqlx::Transaction<'static, sqlx::Any>;
    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}

impl Store {
    /// Connects and runs the migrations. For SQLite the file (mode 0600, so its `-wal`/`-shm` files are
    /// 0600 too: SQLite gives them the database's mode) and its directory (0700) are created when
    /// missing; it runs in WAL mode with `synchronous = FULL`, so a committed hold survives a power cut.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        };
        let mut url = url.to_string();
        // The SQLite file (an in-memory database is refused); none on PostgreSQL.
        let mut file = None;
        if backend == Backend::Sqlite {
            let Some(path) = crate::config::sqlite_file(&url) else {
                return Err(StoreError::InMemory(url));
            };
            let path = std::path::PathBuf::from(path);
            create_sqlite_file(&path)?;
            file = Some(path);
            if !url.contains('?') {
                url.push_str("?mode=rwc");
            }
        }
        let options = AnyConnectOptions::from_str(&url)?;
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            // A SQLite connection is a file handle that cannot go stale: no ping before each use (on
            // SQLite every statement is a hop to the connection's thread). PostgreSQL keeps the check.
            .test_before_acquire(backend == Backend::Postgres)
            .after_connect(move |conn, _| Box::pin(configure(conn, backend)))
            .connect_with(options.clone())
            .await?;
        let mut lite = None;
        match backend {
            Backend::Sqlite => {
                sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
                checkpoint::spawn(pool.clone());
                if let Some(path) = &file {
                    lite = Some(std::sync::Arc::new(lite::Lite::open(path)?));
                }
            }
            Backend::Postgres => sqlx::migrate!("./migrations/postgres").run(&pool).await?,
        }
        let store = Store {
            kept: std::sync::Arc::new(kept::Kept::new(options, backend, pool.clone())),
            pool,
            backend,
            writer: Default::default(),
            group: Default::default(),
            lite,
            legacy_keys: Default::default(),
        };
        let legacy = store.has_legacy_keys().await?;
        store
            .legacy_keys
            .store(legacy, std::sync::atomic::Ordering::Relaxed);
        Ok(store)
    }

    /// The same database and writer turn without the group-commit queue (the group writer's own
    /// handle: holding the queue would keep it open forever).
    fn detached(&self) -> Store {
        Store {
            pool: self.pool.clone(),
            backend: self.backend,
            writer: self.writer.clone(),
            group: Default::default(),
            lite: self.lite.clone(),
            kept: self.kept.clone(),
            legacy_keys: self.legacy_keys.clone(),
        }
    }

    /// The pool: for the store's own files, tests and doc examples. Code outside `store` does not
    /// query the database itself.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// A transaction that writes. On SQLite it first waits for this process's writer turn (a FIFO queue:
    /// SQLite has one writer at a time, and a writer that finds the lock taken sleeps in the busy
    /// handler with growing pauses, up to 100 ms each — the hook's tail latency under load), then takes
    /// the write lock at `BEGIN IMMEDIATE`: a deferred transaction that reads first holds a snapshot, and
    /// when another connection commits before its first write, the upgrade fails at once with "database
    /// is locked" (the busy timeout cannot help, the snapshot is stale). The busy timeout still covers
    /// writers outside the queue (another process on the file, single statements). Every write
    /// transaction of the store starts here. PostgreSQL: `BEGIN`.
    pub async fn begin_write(&self) -> Result<WriteTx, StoreError> {
        Ok(match self.backend {
            Backend::Sqlite => {
                let turn = self.writer_turn().await?;
                WriteTx {
                    tx: self.pool.begin_with("BEGIN IMMEDIATE").await?,
                    _turn: Some(turn),
                }
            }
            Backend::Postgres => WriteTx {
                tx: self.pool.begin().await?,
                _turn: None,
            },
        })
    }

    /// [`Store::begin_write`] on a connection the caller holds: the writer turn (SQLite) and the
    /// transaction on that connection.
    pub(super) async fn begin_write_on<'c>(
        &self,
        conn: &'c mut sqlx::AnyConnection,
    ) -> Result<(sqlx::Transaction<'c, sqlx::Any>, Option<WriterTurn>), StoreError> {
        use sqlx::Connection;
        Ok(match self.backend {
            Backend::Sqlite => {
                let turn = self.writer_turn().await?;
                (conn.begin_with("BEGIN IMMEDIATE").await?, Some(turn))
            }
            Backend::Postgres => (conn.begin().await?, None),
        })
    }

    /// This process's turn to write to SQLite, in arrival order (see [`Store::begin_write`]); waited
    /// for as long as the busy timeout: a turn not given by then is the database being busy.
    async fn writer_turn(&self) -> Result<WriterTurn, StoreError> {
        tokio::time::timeout(Duration::from_secs(5), self.writer.clone().lock_owned())
            .await
            .map_err(|_| StoreError::Db(sqlx::Error::PoolTimedOut))
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes the pool: every later call fails (used for shutdown, and by tests to make the database
    /// unavailable).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Row count of a table, for health figures and tests. Only known table names are accepted.
    pub async fn count(&self, table: &str) -> Result<i64, StoreError> {
        const TABLES: &[&str] = &[
            "recipients",
            "exemptions",
            "peers",
            "held_messages",
            "holds",
            "challenges",
            "decisions",
            "audit_log",
            "webhook_unmatched",
        ];
        let table = TABLES.iter().find(|t| **t == table).ok_or_else(|| {
            StoreError::Db(sqlx::Error::Protocol(format!("unknown table {table}")))
        })?;
        let row = sqlx::query(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get(0)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unavailable_is_only_the_database_being_unreachable() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert!(StoreError::Db(sqlx::Error::Io(io)).is_unavailable());
        assert!(StoreError::Db(sqlx::Error::PoolTimedOut).is_unavailable());
        assert!(!StoreError::Db(sqlx::Error::PoolClosed).is_unavailable());
        assert!(!StoreError::Db(sqlx::Error::RowNotFound).is_unavailable());
        assert!(!StoreError::DuplicateSubmission.is_unavailable());
        let illegal = StoreError::IllegalTransition {
            what: "hold",
            from: "released",
            to: "sending",
        };
        assert!(!illegal.is_unavailable());
    }

    #[tokio::test]
    async fn until_available_retries_only_while_unreachable() {
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let got = until_available("test", || async {
            match calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
                0 | 1 => Err(StoreError::Db(sqlx::Error::PoolTimedOut)),
                n => Ok(n),
            }
        })
        .await;
        assert_eq!(got.unwrap(), 2);
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let got: Result<(), _> = until_available("test", || async {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Err(StoreError::DuplicateSubmission)
        })
        .await;
        assert!(matches!(got, Err(StoreError::DuplicateSubmission)));
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
