//! Connections kept open for the hot paths (the hook's reads, the group writer), outside the sqlx pool.
//!
//! sqlx pings a connection every time it returns to its pool (and, on PostgreSQL, before it hands one
//! out): on SQLite a ping is a round trip to the connection's own thread, on PostgreSQL one to the
//! server. At hundreds of hook calls a second those pings were a large part of the gateway's CPU
//! (thread switches). A kept connection is taken and put back without one. One that failed is never
//! put back — an error drops every idle one, so after a database restart the next call connects anew
//! instead of trying the stale ones one by one (a failed call answers 503 and Stalwart retries it).

use std::sync::Mutex;

use sqlx::{any::AnyConnectOptions, AnyConnection, AnyPool, ConnectOptions};

use super::{Backend, StoreError};

/// Idle connections kept at most.
const IDLE: usize = 4;

/// Kept connections to the pool's database; closing the pool closes them too.
pub(super) struct Kept {
    options: AnyConnectOptions,
    backend: Backend,
    pool: AnyPool,
    idle: Mutex<Vec<AnyConnection>>,
}

impl Kept {
    pub(super) fn new(options: AnyConnectOptions, backend: Backend, pool: AnyPool) -> Kept {
        Kept {
            options,
            backend,
            pool,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// An idle kept connection, or a new one; none once the pool is closed.
    pub(super) async fn take(&self) -> Result<AnyConnection, StoreError> {
        if self.pool.is_closed() {
            self.lock().clear();
            return Err(StoreError::Db(sqlx::Error::PoolClosed));
        }
        if let Some(conn) = self.lock().pop() {
            return Ok(conn);
        }
        let mut conn = self.options.connect().await?;
        super::configure(&mut conn, self.backend).await?;
        Ok(conn)
    }

    /// Gives a connection back after a call: kept when the call succeeded (and room is left); after
    /// an error it is dropped, and so is every idle one.
    pub(super) fn put<T>(&self, conn: AnyConnection, result: &Result<T, StoreError>) {
        let mut idle = self.lock();
        match result {
            Ok(_) if !self.pool.is_closed() && idle.len() < IDLE => idle.push(conn),
            Ok(_) => {}
            Err(_) => idle.clear(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<AnyConnection>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }
}
