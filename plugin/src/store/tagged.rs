//! A read of several tables in one statement (`UNION ALL` of tagged branches), for the hot paths: on
//! SQLite each statement is a hop to the connection's worker thread and back, on PostgreSQL a round
//! trip. Each table's branch and its decoder live with that table's module.

use sqlx::{any::AnyRow, AnyConnection, Row};

use super::StoreError;

/// A read of several tables in one statement: `UNION ALL` of branches whose rows all have the
/// columns (tag, key, text, text, integer, integer, integer, integer), each row tagged with the
/// table it comes from. The hook's reads as one of these instead of three statements (together with
/// the group writer's kept chain head) cut the gateway's context switches per message by 16 % on
/// SQLite and 8 % on PostgreSQL under the load bench.
#[derive(Default)]
pub(super) struct TaggedRead<'a> {
    branches: Vec<String>,
    binds: Vec<Bind<'a>>,
}

enum Bind<'a> {
    Text(&'a str),
    Int(i64),
}

impl<'a> TaggedRead<'a> {
    /// The next parameter's placeholder, bound to `value`.
    pub(super) fn text(&mut self, value: &'a str) -> String {
        self.binds.push(Bind::Text(value));
        format!("${}", self.binds.len())
    }

    pub(super) fn int(&mut self, value: i64) -> String {
        self.binds.push(Bind::Int(value));
        format!("${}", self.binds.len())
    }

    /// Adds a branch (its `SELECT`, columns as above).
    pub(super) fn branch(&mut self, select: String) {
        self.branches.push(select);
    }

    pub(super) async fn fetch_all(
        self,
        conn: &mut AnyConnection,
    ) -> Result<Vec<AnyRow>, StoreError> {
        let sql = self.branches.join(" UNION ALL ");
        let mut q = sqlx::query(&sql);
        for b in self.binds {
            q = match b {
                Bind::Text(t) => q.bind(t),
                Bind::Int(i) => q.bind(i),
            };
        }
        Ok(q.fetch_all(&mut *conn).await?)
    }
}

/// A typed NULL for a text column of a [`TaggedRead`] branch (PostgreSQL types a `UNION` pair by
/// pair: two untyped NULLs become text, which a later integer column cannot match).
pub(super) const NT: &str = "CAST(NULL AS TEXT)";
/// A typed NULL for an integer column.
pub(super) const NI: &str = "CAST(NULL AS BIGINT)";

/// A row whose tag no branch of the read knows.
pub(super) fn unknown_tag(row: &AnyRow) -> sqlx::Error {
    let tag: String = row.try_get(0).unwrap_or_default();
    sqlx::Error::Decode(format!("unknown table tag {tag:?}").into())
}
