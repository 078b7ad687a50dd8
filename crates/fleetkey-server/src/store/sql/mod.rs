//! The SQL store, written once for both databases.
//!
//! Every statement is one text with `$1, $2, …` placeholders: PostgreSQL reads
//! them natively and sqlx's SQLite driver binds `$N` by number, so the text runs
//! on both. Arguments are bound through [`Arg`] (typed, so a NULL keeps its
//! column type on PostgreSQL) and rows are read through [`StoreRow`]. What differs
//! between the databases is in [`Dialect`]: locks (PostgreSQL's advisory locks
//! where several instances share a database; nothing for SQLite's single writer),
//! the scheduler's leadership, a JSON table function and the column that orders
//! rows by insertion. Everything else ([`SqlStore`]) is generic over the dialect.
//!
//! SQL the statements use that both databases accept as written: `ON CONFLICT …
//! DO UPDATE/NOTHING`, `RETURNING` (SQLite ≥ 3.35), `CAST(x AS BIGINT)` (not
//! `::`), `CASE` instead of `GREATEST`/`MAX(a, b)`, `COALESCE`.

mod changes;
mod custody;
mod device_changes;
mod devices;
mod history;
mod keyring_changes;
mod queries;

use super::rows::{Column, StoreRow};
use crate::error::{Error, Result};
use sqlx::{Database, Pool, Transaction};
use std::borrow::Cow;
use tracing::Instrument as _;

/// One argument of a statement. Each kind carries its own NULL, so PostgreSQL sees
/// the column's type even when the value is absent.
#[derive(Debug)]
pub enum Arg<'a> {
    /// BIGINT.
    Int(Option<i64>),
    /// TEXT.
    Text(Option<Cow<'a, str>>),
    /// BYTEA / BLOB.
    Bytes(Option<Cow<'a, [u8]>>),
}

macro_rules! arg_from {
    ($variant:ident, $t:ty, |$v:ident| $e:expr) => {
        impl<'a> From<$t> for Arg<'a> {
            fn from($v: $t) -> Self {
                Arg::$variant($e)
            }
        }
    };
}
arg_from!(Int, i64, |v| Some(v));
arg_from!(Int, &i64, |v| Some(*v));
arg_from!(Int, Option<i64>, |v| v);
arg_from!(Int, &Option<i64>, |v| *v);
arg_from!(Text, &'a str, |v| Some(Cow::Borrowed(v)));
arg_from!(Text, &'a String, |v| Some(Cow::Borrowed(v.as_str())));
arg_from!(Text, String, |v| Some(Cow::Owned(v)));
arg_from!(Text, Option<&'a str>, |v| v.map(Cow::Borrowed));
arg_from!(Text, &'a Option<String>, |v| v
    .as_deref()
    .map(Cow::Borrowed));
arg_from!(Bytes, &'a [u8], |v| Some(Cow::Borrowed(v)));
arg_from!(Bytes, &'a Vec<u8>, |v| Some(Cow::Borrowed(v.as_slice())));
arg_from!(Bytes, Vec<u8>, |v| Some(Cow::Owned(v)));
arg_from!(Bytes, Option<&'a [u8]>, |v| v.map(Cow::Borrowed));
arg_from!(Bytes, &'a Option<Vec<u8>>, |v| v
    .as_deref()
    .map(Cow::Borrowed));

/// Where a statement runs: on a pooled connection, or inside a transaction.
pub enum On<'c, D: Database> {
    /// A connection from the pool, for this statement alone.
    Pool(&'c Pool<D>),
    /// The transaction's connection.
    Conn(&'c mut D::Connection),
}

impl<'c, D: Database> From<&'c Pool<D>> for On<'c, D> {
    fn from(p: &'c Pool<D>) -> Self {
        On::Pool(p)
    }
}

impl<'c, 't, D: Database> From<&'c mut Transaction<'t, D>> for On<'c, D> {
    fn from(tx: &'c mut Transaction<'t, D>) -> Self {
        On::Conn(&mut **tx)
    }
}

/// A statement and its arguments.
#[derive(Debug)]
pub struct Stmt<'a> {
    sql: Cow<'a, str>,
    args: Vec<Arg<'a>>,
}

/// A statement with `$N` placeholders.
pub(crate) fn stmt(sql: &str) -> Stmt<'_> {
    Stmt {
        sql: Cow::Borrowed(sql),
        args: Vec::new(),
    }
}

impl<'a> Stmt<'a> {
    /// The statement as SQLite is best given it: when its placeholders are
    /// `$1, $2, …, $n` in order (every multi-row `VALUES` list), each becomes an
    /// anonymous `?`; otherwise each `$N` becomes `?N`. (SQLite keeps a list of
    /// named and numbered parameters that it searches linearly on every bind, so
    /// binding a statement with thousands of them is quadratic; anonymous ones are
    /// not in the list.) The statements hold no `$` but in placeholders.
    pub(crate) fn for_sqlite(self) -> Self {
        if !self.sql.contains('$') {
            return self;
        }
        let numbers = placeholders(&self.sql);
        let in_order = numbers.iter().enumerate().all(|(i, n)| *n == i + 1);
        let mut out = String::with_capacity(self.sql.len());
        let mut rest: &str = &self.sql;
        while let Some(at) = rest.find('$') {
            out.push_str(&rest[..at]);
            let digits = rest[at + 1..]
                .bytes()
                .take_while(u8::is_ascii_digit)
                .count();
            out.push('?');
            if !in_order {
                out.push_str(&rest[at + 1..at + 1 + digits]);
            }
            rest = &rest[at + 1 + digits..];
        }
        out.push_str(rest);
        Stmt {
            sql: Cow::Owned(out),
            args: self.args,
        }
    }

    /// A statement whose text was built at run time.
    pub(crate) fn owned(sql: String) -> Self {
        Stmt {
            sql: Cow::Owned(sql),
            args: Vec::new(),
        }
    }

    /// Binds the next placeholder.
    pub(crate) fn bind(mut self, a: impl Into<Arg<'a>>) -> Self {
        self.args.push(a.into());
        self
    }

    /// Runs it; the number of rows it changed.
    pub(crate) async fn execute<'c, D: Dialect>(
        self,
        on: impl Into<On<'c, D>>,
    ) -> std::result::Result<u64, sqlx::Error> {
        let span = crate::observability::spans::store_statement(D::SYSTEM, &self.sql);
        let s = D::adapt(self);
        D::execute(on.into(), &s).instrument(span).await
    }

    /// Every row it returns.
    pub(crate) async fn all<'c, D: Dialect>(
        self,
        on: impl Into<On<'c, D>>,
    ) -> std::result::Result<Vec<D::Record>, sqlx::Error> {
        let span = crate::observability::spans::store_statement(D::SYSTEM, &self.sql);
        let s = D::adapt(self);
        D::fetch_all(on.into(), &s).instrument(span).await
    }

    /// Its row, if any.
    pub(crate) async fn optional<'c, D: Dialect>(
        self,
        on: impl Into<On<'c, D>>,
    ) -> std::result::Result<Option<D::Record>, sqlx::Error> {
        let span = crate::observability::spans::store_statement(D::SYSTEM, &self.sql);
        let s = D::adapt(self);
        D::fetch_optional(on.into(), &s).instrument(span).await
    }

    /// Its first column of its row, if any.
    pub(crate) async fn scalar_optional<'c, T: Column, D: Dialect>(
        self,
        on: impl Into<On<'c, D>>,
    ) -> Result<Option<T>> {
        self.optional(on).await?.map(|r| r.col_at(0)).transpose()
    }

    /// The first column of its one row.
    pub(crate) async fn scalar<'c, T: Column, D: Dialect>(
        self,
        on: impl Into<On<'c, D>>,
    ) -> Result<T> {
        self.scalar_optional(on)
            .await?
            .ok_or_else(|| Error::from(sqlx::Error::RowNotFound))
    }

    /// Its row, if any, read by `read`.
    pub(crate) async fn record<'c, T, D: Dialect>(
        self,
        on: impl Into<On<'c, D>>,
        read: impl Fn(&D::Record) -> Result<T>,
    ) -> Result<Option<T>> {
        self.optional(on).await?.as_ref().map(read).transpose()
    }

    /// Every row, read by `read`.
    pub(crate) async fn records<'c, T, D: Dialect>(
        self,
        on: impl Into<On<'c, D>>,
        read: impl Fn(&D::Record) -> Result<T>,
    ) -> Result<Vec<T>> {
        self.all(on).await?.iter().map(read).collect()
    }

    /// The first column of every row.
    pub(crate) async fn scalars<'c, T: Column, D: Dialect>(
        self,
        on: impl Into<On<'c, D>>,
    ) -> Result<Vec<T>> {
        self.all(on).await?.iter().map(|r| r.col_at(0)).collect()
    }
}

/// The numbers of a statement's `$N` placeholders, in the order they appear.
fn placeholders(sql: &str) -> Vec<usize> {
    sql.split('$')
        .skip(1)
        .map(|after| {
            let digits = after.bytes().take_while(u8::is_ascii_digit).count();
            after[..digits].parse().unwrap_or(0)
        })
        .collect()
}

/// `($1, …, $cols), ($cols+1, …), …` for a multi-row `VALUES` list.
pub(crate) fn values_list(rows: usize, cols: usize) -> String {
    let mut s = String::with_capacity(rows * cols * 5);
    for r in 0..rows {
        if r > 0 {
            s.push_str(", ");
        }
        s.push('(');
        for c in 0..cols {
            if c > 0 {
                s.push_str(", ");
            }
            s.push('$');
            s.push_str(&(r * cols + c + 1).to_string());
        }
        s.push(')');
    }
    s
}

/// A statement running on the database.
pub type Pending<'a, T> = std::pin::Pin<
    Box<dyn std::future::Future<Output = std::result::Result<T, sqlx::Error>> + Send + 'a>,
>;

/// What differs between the databases. Implemented for [`sqlx::Sqlite`] (in
/// `store/sqlite.rs`) and [`sqlx::Postgres`] (in `store/postgres.rs`).
#[async_trait::async_trait]
pub trait Dialect: Database {
    /// A row as the store reads it.
    type Record: StoreRow + Send + Sync;
    /// What the store keeps besides its pool (PostgreSQL: lock keys and the
    /// leader's connection).
    type State: Send + Sync;
    /// The database's name in traces (OpenTelemetry's `db.system.name`).
    const SYSTEM: &'static str;
    /// The column that orders a table's rows by insertion (`device_commands`).
    const INSERTION_ORDER: &'static str;

    /// A table of one text column `value`, one row per element of the JSON array
    /// of strings bound at placeholder `$n`.
    fn json_text_elements(n: usize) -> String;

    /// The unique index `e` violates (`devices_x25519`, `fleets_pkey`), or `None`
    /// when `e` is not a unique violation. Indexes are named `<table>_<column>`
    /// in both migration trees, so callers match one name for both databases.
    fn unique_violation(e: &sqlx::Error) -> Option<String>;

    /// The statement as this database is given it (PostgreSQL: as written).
    fn adapt(s: Stmt<'_>) -> Stmt<'_> {
        s
    }

    /// Runs `s`; the number of rows changed.
    fn execute<'a>(on: On<'a, Self>, s: &'a Stmt<'a>) -> Pending<'a, u64>;
    /// Every row `s` returns.
    fn fetch_all<'a>(on: On<'a, Self>, s: &'a Stmt<'a>) -> Pending<'a, Vec<Self::Record>>;
    /// The row `s` returns, if any.
    fn fetch_optional<'a>(on: On<'a, Self>, s: &'a Stmt<'a>) -> Pending<'a, Option<Self::Record>>;

    /// Taken first by every transaction that appends to the audit log, so entries
    /// from every instance form one chain.
    async fn lock_audit(tx: &mut Transaction<'_, Self>, state: &Self::State) -> Result<()>;
    /// Serialises nonce reservations for one keyring version (budget check and
    /// grant are one step).
    async fn lock_version(
        tx: &mut Transaction<'_, Self>,
        state: &Self::State,
        keyring: &str,
        version: u32,
    ) -> Result<()>;
    /// Whether this instance runs the scheduled jobs.
    async fn scheduler_leader(pool: &Pool<Self>, state: &Self::State) -> Result<bool>;
}

/// Binds `s`'s arguments to a sqlx query of database `DB` (one generic function
/// for both dialects' `execute`/`fetch_*`).
pub fn bound<'q, DB>(s: &'q Stmt<'q>) -> sqlx::query::Query<'q, DB, DB::Arguments<'q>>
where
    DB: Database,
    Option<i64>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<&'q str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<&'q [u8]>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let mut q = sqlx::query::<DB>(&s.sql);
    for a in &s.args {
        q = match a {
            Arg::Int(v) => q.bind(*v),
            Arg::Text(v) => q.bind(v.as_deref()),
            Arg::Bytes(v) => q.bind(v.as_deref()),
        };
    }
    q
}

/// Implements [`Dialect`]'s three statement runners for a concrete database
/// (the bodies are the same; only the types differ).
macro_rules! runners {
    ($db:ty) => {
        fn execute<'a>(
            on: $crate::store::sql::On<'a, Self>,
            s: &'a $crate::store::sql::Stmt<'a>,
        ) -> $crate::store::sql::Pending<'a, u64> {
            Box::pin(async move {
                let q = $crate::store::sql::bound::<$db>(s);
                Ok(match on {
                    $crate::store::sql::On::Pool(p) => q.execute(p).await?,
                    $crate::store::sql::On::Conn(c) => q.execute(c).await?,
                }
                .rows_affected())
            })
        }

        fn fetch_all<'a>(
            on: $crate::store::sql::On<'a, Self>,
            s: &'a $crate::store::sql::Stmt<'a>,
        ) -> $crate::store::sql::Pending<'a, Vec<Self::Record>> {
            Box::pin(async move {
                let q = $crate::store::sql::bound::<$db>(s);
                match on {
                    $crate::store::sql::On::Pool(p) => q.fetch_all(p).await,
                    $crate::store::sql::On::Conn(c) => q.fetch_all(c).await,
                }
            })
        }

        fn fetch_optional<'a>(
            on: $crate::store::sql::On<'a, Self>,
            s: &'a $crate::store::sql::Stmt<'a>,
        ) -> $crate::store::sql::Pending<'a, Option<Self::Record>> {
            Box::pin(async move {
                let q = $crate::store::sql::bound::<$db>(s);
                match on {
                    $crate::store::sql::On::Pool(p) => q.fetch_optional(p).await,
                    $crate::store::sql::On::Conn(c) => q.fetch_optional(c).await,
                }
            })
        }
    };
}
pub(crate) use runners;

/// The store over a database of dialect `D`: `SqliteStore` and `PostgresStore`.
pub struct SqlStore<D: Dialect> {
    pub(crate) pool: Pool<D>,
    pub(crate) state: D::State,
    /// The custody identity this handle's instance holds, once it has checked
    /// it ([`crate::store::CustodyStore::expect_custody`]).
    pub(crate) custody: parking_lot::RwLock<Option<crate::store::CustodyIdentity>>,
}

impl<D: Dialect> SqlStore<D> {
    /// The pool (for tests and tools).
    pub fn pool(&self) -> &Pool<D> {
        &self.pool
    }

    /// A transaction that will append to the audit log: the audit lock is taken.
    pub(crate) async fn begin_audited(&self) -> Result<Transaction<'static, D>> {
        let mut tx = self.pool.begin().await?;
        D::lock_audit(&mut tx, &self.state).await?;
        custody::guard(self, &mut tx).await?;
        Ok(tx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_gets_anonymous_placeholders_when_they_are_in_order() {
        let s = stmt("SELECT a FROM t WHERE b = $1 AND c = $12").for_sqlite();
        assert_eq!(s.sql, "SELECT a FROM t WHERE b = ?1 AND c = ?12");
        let s = stmt("UPDATE t SET a = $2 WHERE b = $1").for_sqlite();
        assert_eq!(s.sql, "UPDATE t SET a = ?2 WHERE b = ?1");
        let s = stmt("SELECT $1 WHERE $1 = 2").for_sqlite();
        assert_eq!(s.sql, "SELECT ?1 WHERE ?1 = 2");
        let many = Stmt::owned(format!("INSERT INTO t VALUES {}", values_list(2, 2))).for_sqlite();
        assert_eq!(many.sql, "INSERT INTO t VALUES (?, ?), (?, ?)");
        assert_eq!(stmt("SELECT 1").for_sqlite().sql, "SELECT 1");
    }

    #[test]
    fn values_lists_number_placeholders_row_by_row() {
        assert_eq!(values_list(1, 1), "($1)");
        assert_eq!(values_list(2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(values_list(0, 3), "");
    }
}
