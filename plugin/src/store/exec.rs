//! One write transaction's statements, whichever connection runs them: a sqlx transaction (PostgreSQL,
//! every write outside the group writer) or the SQLite group writer's own connection
//! on its own thread ([`super::lite`]). The writes of the hot path — the hook's record, the webhook
//! intake, the chain append — are written once, against [`Exec`], and run on either.
//!
//! Arguments and rows are the few SQL types the store uses ([`Arg`], [`Row::get`]); the SQL text is
//! the same for both: `$N` placeholders are bound by their number on SQLite too, anonymous `?` (see
//! [`super::placeholders`]) in order.

use std::future::Future;

use rusqlite::types::{FromSql, ToSqlOutput, Value, ValueRef};
use sqlx::{Any, Row as _};

use super::StoreError;

/// A statement argument.
#[derive(Debug, Clone, Copy)]
pub enum Arg<'a> {
    Null,
    /// A NULL where PostgreSQL expects `BYTEA` (a plain [`Arg::Null`] is bound as text).
    NullBytes,
    Int(i64),
    Text(&'a str),
    Bytes(&'a [u8]),
}

impl From<i64> for Arg<'_> {
    fn from(v: i64) -> Self {
        Arg::Int(v)
    }
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(v: &'a str) -> Self {
        Arg::Text(v)
    }
}

impl<'a> From<&'a String> for Arg<'a> {
    fn from(v: &'a String) -> Self {
        Arg::Text(v)
    }
}

impl<'a> From<&'a [u8]> for Arg<'a> {
    fn from(v: &'a [u8]) -> Self {
        Arg::Bytes(v)
    }
}

impl<'a> From<&'a Vec<u8>> for Arg<'a> {
    fn from(v: &'a Vec<u8>) -> Self {
        Arg::Bytes(v)
    }
}

impl<'a, T: Into<Arg<'a>>> From<Option<T>> for Arg<'a> {
    fn from(v: Option<T>) -> Self {
        v.map_or(Arg::Null, Into::into)
    }
}

impl rusqlite::ToSql for Arg<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match *self {
            Arg::Null | Arg::NullBytes => ValueRef::Null,
            Arg::Int(v) => ValueRef::Integer(v),
            Arg::Text(v) => ValueRef::Text(v.as_bytes()),
            Arg::Bytes(v) => ValueRef::Blob(v),
        }))
    }
}

/// A result row.
pub enum Row {
    Sqlx(sqlx::any::AnyRow),
    Lite(Vec<Value>),
}

/// A column type both connections decode.
pub trait Column: for<'r> sqlx::Decode<'r, Any> + sqlx::Type<Any> + FromSql {}
impl<T: for<'r> sqlx::Decode<'r, Any> + sqlx::Type<Any> + FromSql> Column for T {}

impl Row {
    /// Column `i`, as `T`.
    pub fn get<T: Column>(&self, i: usize) -> Result<T, StoreError> {
        match self {
            Row::Sqlx(row) => Ok(row.try_get(i)?),
            Row::Lite(values) => {
                let value = values
                    .get(i)
                    .ok_or(rusqlite::Error::InvalidColumnIndex(i))?;
                T::column_result(ValueRef::from(value)).map_err(|e| {
                    rusqlite::Error::FromSqlConversionFailure(i, value.data_type(), Box::new(e))
                        .into()
                })
            }
        }
    }
}

/// Runs statements inside one transaction. The futures are `Send`, so a generic write runs in a
/// spawned task (sqlx) as well as on the SQLite writer's thread (where they are ready at once).
pub trait Exec: Send {
    /// Whether the connection is SQLite (anonymous placeholders, see [`super::placeholders`]).
    fn sqlite(&self) -> bool;

    /// Runs a statement; the number of rows it changed.
    fn execute(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Runs a query; all its rows.
    fn fetch_all(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> impl Future<Output = Result<Vec<Row>, StoreError>> + Send;

    /// Runs a query; its first row, if any.
    fn fetch_optional(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> impl Future<Output = Result<Option<Row>, StoreError>> + Send {
        async move { Ok(self.fetch_all(sql, args).await?.into_iter().next()) }
    }

    /// Runs a query that returns a row.
    fn fetch_one(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> impl Future<Output = Result<Row, StoreError>> + Send {
        async move {
            self.fetch_optional(sql, args)
                .await?
                .ok_or(StoreError::Db(sqlx::Error::RowNotFound))
        }
    }
}

fn bound<'q>(
    sql: &'q str,
    args: &[Arg<'q>],
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>> {
    let mut q = sqlx::query(sql);
    for arg in args {
        q = match *arg {
            Arg::Null => q.bind(None::<String>),
            Arg::NullBytes => q.bind(None::<Vec<u8>>),
            Arg::Int(v) => q.bind(v),
            Arg::Text(v) => q.bind(v),
            Arg::Bytes(v) => q.bind(v),
        };
    }
    q
}

impl Exec for sqlx::AnyConnection {
    fn sqlite(&self) -> bool {
        self.backend_name() == "SQLite"
    }

    async fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64, StoreError> {
        Ok(bound(sql, args).execute(&mut *self).await?.rows_affected())
    }

    async fn fetch_all(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<Row>, StoreError> {
        let rows = bound(sql, args).fetch_all(&mut *self).await?;
        Ok(rows.into_iter().map(Row::Sqlx).collect())
    }
}

impl Exec for sqlx::Transaction<'_, Any> {
    fn sqlite(&self) -> bool {
        let conn: &sqlx::AnyConnection = self;
        conn.sqlite()
    }

    async fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64, StoreError> {
        (**self).execute(sql, args).await
    }

    async fn fetch_all(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<Row>, StoreError> {
        (**self).fetch_all(sql, args).await
    }
}

impl Exec for super::WriteTx {
    fn sqlite(&self) -> bool {
        (**self).sqlite()
    }

    async fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64, StoreError> {
        (**self).execute(sql, args).await
    }

    async fn fetch_all(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<Row>, StoreError> {
        (**self).fetch_all(sql, args).await
    }
}

/// A transaction on the SQLite writer's own connection ([`super::lite`]): every statement runs when it
/// is called, the futures are ready at once. Begun `IMMEDIATE` (the write lock from the start, as
/// [`super::Store::begin_write`]); rolled back unless [`LiteTx::commit`] is reached.
pub(crate) struct LiteTx<'c> {
    conn: &'c mut rusqlite::Connection,
    open: bool,
}

impl<'c> LiteTx<'c> {
    pub(crate) fn begin(conn: &'c mut rusqlite::Connection) -> Result<Self, StoreError> {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        Ok(LiteTx { conn, open: true })
    }

    pub(crate) fn commit(mut self) -> Result<(), StoreError> {
        self.open = false;
        if let Err(e) = self.conn.execute_batch("COMMIT") {
            // A failed COMMIT (busy, I/O) may leave the transaction open: end it.
            let _ = self.conn.execute_batch("ROLLBACK");
            return Err(e.into());
        }
        Ok(())
    }

    /// The transaction's connection, for an operation written against [`super::op::Db`].
    pub(crate) fn db(&mut self) -> super::op::Db<'_> {
        super::op::Db::Lite(self.conn)
    }

    fn run(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64, StoreError> {
        run(self.conn, sql, args)
    }

    fn rows(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<Row>, StoreError> {
        rows(self.conn, sql, args)
    }
}

/// `sql` prepared (cached) on `conn` with `args` bound: `$N` by its number, `?` in order.
fn statement<'c>(
    conn: &'c rusqlite::Connection,
    sql: &str,
    args: &[Arg<'_>],
) -> rusqlite::Result<rusqlite::CachedStatement<'c>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut next = 0;
    for i in 1..=stmt.parameter_count() {
        let numbered = stmt
            .parameter_name(i)
            .and_then(|n| n.strip_prefix('$'))
            .and_then(|n| n.parse::<usize>().ok());
        let at = numbered.map_or_else(|| next, |n| n.saturating_sub(1));
        next = at + 1;
        let arg = args
            .get(at)
            .ok_or(rusqlite::Error::InvalidParameterCount(at + 1, args.len()))?;
        stmt.raw_bind_parameter(i, arg)?;
    }
    Ok(stmt)
}

pub(super) fn run(
    conn: &rusqlite::Connection,
    sql: &str,
    args: &[Arg<'_>],
) -> Result<u64, StoreError> {
    let mut stmt = statement(conn, sql, args)?;
    Ok(stmt.raw_execute()? as u64)
}

pub(super) fn rows(
    conn: &rusqlite::Connection,
    sql: &str,
    args: &[Arg<'_>],
) -> Result<Vec<Row>, StoreError> {
    let mut stmt = statement(conn, sql, args)?;
    let columns = stmt.column_count();
    let mut rows = stmt.raw_query();
    let mut all = Vec::new();
    while let Some(row) = rows.next()? {
        let values = (0..columns)
            .map(|i| row.get::<_, Value>(i))
            .collect::<rusqlite::Result<_>>()?;
        all.push(Row::Lite(values));
    }
    Ok(all)
}

impl Drop for LiteTx<'_> {
    fn drop(&mut self) {
        if self.open {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

impl Exec for LiteTx<'_> {
    fn sqlite(&self) -> bool {
        true
    }

    fn execute(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        std::future::ready(self.run(sql, args))
    }

    fn fetch_all(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> impl Future<Output = Result<Vec<Row>, StoreError>> + Send {
        std::future::ready(self.rows(sql, args))
    }
}

/// Reads on a read-only SQLite connection of this process ([`super::lite::Lite::read_now`]): each
/// statement is its own read transaction and runs when it is called, on the caller's thread.
pub(crate) struct LiteRead<'c> {
    pub(super) conn: &'c mut rusqlite::Connection,
}

impl Exec for LiteRead<'_> {
    fn sqlite(&self) -> bool {
        true
    }

    fn execute(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        std::future::ready(run(self.conn, sql, args))
    }

    fn fetch_all(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> impl Future<Output = Result<Vec<Row>, StoreError>> + Send {
        std::future::ready(rows(self.conn, sql, args))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::lite::ready_now;

    fn conn() -> rusqlite::Connection {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (a INTEGER, b TEXT, c BLOB)")
            .unwrap();
        conn
    }

    fn rows(conn: &mut rusqlite::Connection) -> Vec<(i64, Option<String>, Option<Vec<u8>>)> {
        let mut tx = LiteTx::begin(conn).unwrap();
        let rows = tx.rows("SELECT a, b, c FROM t ORDER BY a", &[]).unwrap();
        rows.iter()
            .map(|r| (r.get(0).unwrap(), r.get(1).unwrap(), r.get(2).unwrap()))
            .collect()
    }

    #[test]
    fn numbered_placeholders_bind_by_their_number_and_anonymous_ones_in_order() {
        let mut conn = conn();
        let mut tx = LiteTx::begin(&mut conn).unwrap();
        // `$2` before `$1`, `$1` twice: bound by number, as sqlx does.
        let n = tx
            .run(
                "INSERT INTO t (b, a, c) VALUES ($2, $1, $3), ($2 || 'x', $1 + 1, NULL)",
                &[7.into(), "seven".into(), Arg::Bytes(b"\x00\x01")],
            )
            .unwrap();
        assert_eq!(n, 2);
        let n = tx
            .run(
                "INSERT INTO t (a, b, c) VALUES (?, ?, ?)",
                &[9.into(), Arg::Null, Arg::Null],
            )
            .unwrap();
        assert_eq!(n, 1);
        tx.commit().unwrap();
        assert_eq!(
            rows(&mut conn),
            [
                (7, Some("seven".into()), Some(vec![0, 1])),
                (8, Some("sevenx".into()), None),
                (9, None, None),
            ]
        );
    }

    #[test]
    fn too_few_arguments_and_wrong_column_types_are_errors() {
        let mut conn = conn();
        let mut tx = LiteTx::begin(&mut conn).unwrap();
        let missing = tx.run("INSERT INTO t (a, b) VALUES ($1, $2)", &[1.into()]);
        assert!(matches!(
            missing,
            Err(StoreError::Sqlite(rusqlite::Error::InvalidParameterCount(
                2, 1
            )))
        ));
        tx.run("INSERT INTO t (a, b) VALUES (1, 'one')", &[])
            .unwrap();
        let row = tx.rows("SELECT a, b FROM t", &[]).unwrap().remove(0);
        assert!(row.get::<i64>(1).is_err(), "text is not an integer");
        assert!(row.get::<String>(2).is_err(), "no third column");
        assert_eq!(row.get::<String>(1).unwrap(), "one");
    }

    #[test]
    fn a_transaction_not_committed_is_rolled_back() {
        let mut conn = conn();
        {
            let mut tx = LiteTx::begin(&mut conn).unwrap();
            tx.run("INSERT INTO t (a) VALUES (1)", &[]).unwrap();
        }
        assert!(rows(&mut conn).is_empty());
        // The connection is usable again: a new transaction begins and commits.
        let mut tx = LiteTx::begin(&mut conn).unwrap();
        let changed = ready_now(tx.execute("INSERT INTO t (a) VALUES (2)", &[])).unwrap();
        assert_eq!(changed, 1);
        tx.commit().unwrap();
        assert_eq!(rows(&mut conn), [(2, None, None)]);
    }
}
