//! The embedded store: SQLite through sqlx, WAL mode, `synchronous = FULL` (a
//! committed nonce reservation survives `kill -9` and power loss), one connection
//! (SQLite serialises writers anyway; one connection makes every transaction
//! immediate and free of busy retries). The statements are `store/sql`'s; this
//! file holds what only SQLite does.

use super::sql::{Dialect, SqlStore, Stmt, runners};
use crate::error::{Error, Result};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Pool, Sqlite, Transaction};
use std::path::Path;

/// The embedded SQLite store.
pub type SqliteStore = SqlStore<Sqlite>;

impl SqlStore<Sqlite> {
    /// Opens (creating if needed) `dir/fleetkey.db` and runs migrations.
    pub async fn open(dir: &Path) -> Result<Self> {
        crate::secret_file::private_dir(dir).map_err(|source| Error::Io {
            path: dir.display().to_string(),
            source,
        })?;
        let opts = SqliteConnectOptions::new()
            .filename(dir.join("fleetkey.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            // 32 MiB of page cache (the default is 2 MiB): registrations insert into
            // indexes on random keys, which otherwise miss the cache once the
            // registry outgrows it. Grows only as pages are used.
            .pragma("cache_size", "-32768")
            .busy_timeout(std::time::Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts)
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        Ok(Self {
            pool,
            state: (),
            custody: Default::default(),
        })
    }
}

#[async_trait::async_trait]
impl Dialect for Sqlite {
    type Record = sqlx::sqlite::SqliteRow;
    type State = ();
    const SYSTEM: &'static str = "sqlite";
    const INSERTION_ORDER: &'static str = "rowid";

    fn json_text_elements(n: usize) -> String {
        format!("json_each(${n})")
    }

    runners!(Sqlite);

    /// Anonymous `?` where the placeholders are in order, `?N` elsewhere
    /// ([`Stmt::for_sqlite`]): a registration group's multi-row `VALUES` (up to
    /// 13 × 512 parameters) binds in linear time.
    fn adapt(s: Stmt<'_>) -> Stmt<'_> {
        s.for_sqlite()
    }

    /// SQLite reports a unique violation by its extended result code
    /// (`SQLITE_CONSTRAINT_UNIQUE`, `SQLITE_CONSTRAINT_PRIMARYKEY`) and names the
    /// index only through its columns, `UNIQUE constraint failed: devices.x25519`;
    /// those are read back into the index's name, `devices_x25519`. This is the
    /// one place that reads SQLite's text, and only after the code said what
    /// kind of error it is.
    fn unique_violation(e: &sqlx::Error) -> Option<String> {
        let sqlx::Error::Database(d) = e else {
            return None;
        };
        if !d.is_unique_violation() {
            return None;
        }
        let cols = d.message().rsplit(": ").next().unwrap_or_default();
        let first = cols.split(", ").next().unwrap_or_default();
        Some(first.replacen('.', "_", 1))
    }

    /// One connection: every transaction is the only writer.
    async fn lock_audit(_: &mut Transaction<'_, Self>, _: &()) -> Result<()> {
        Ok(())
    }

    /// One connection: the transaction is the only writer, so the budget check
    /// and the grant are one step.
    async fn lock_version(_: &mut Transaction<'_, Self>, _: &(), _: &str, _: u32) -> Result<()> {
        Ok(())
    }

    /// The embedded store has one instance: it always leads.
    async fn scheduler_leader(_: &Pool<Self>, _: &()) -> Result<bool> {
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_unique_violation_names_its_index_and_nothing_else_does() {
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .connect("sqlite::memory:")
            .await
            .unwrap();
        for s in [
            "CREATE TABLE devices (id TEXT PRIMARY KEY, x25519 BLOB, ed25519 BLOB)",
            "CREATE UNIQUE INDEX devices_x25519 ON devices (x25519)",
            "CREATE UNIQUE INDEX devices_ed25519 ON devices (ed25519)",
            "INSERT INTO devices VALUES ('a', x'01', x'02')",
        ] {
            sqlx::query(s).execute(&pool).await.unwrap();
        }
        let violated = |sql: &'static str| {
            let pool = pool.clone();
            async move {
                let e = sqlx::query(sql).execute(&pool).await.unwrap_err();
                Sqlite::unique_violation(&e)
            }
        };
        assert_eq!(
            violated("INSERT INTO devices VALUES ('b', x'01', x'03')")
                .await
                .as_deref(),
            Some("devices_x25519")
        );
        assert_eq!(
            violated("INSERT INTO devices VALUES ('b', x'04', x'02')")
                .await
                .as_deref(),
            Some("devices_ed25519")
        );
        assert_eq!(
            violated("INSERT INTO devices VALUES ('a', x'05', x'06')")
                .await
                .as_deref(),
            Some("devices_id")
        );
        assert_eq!(violated("INSERT INTO nowhere VALUES (1)").await, None);
    }
}
