//! The PostgreSQL store: the same tables and statements as the SQLite store
//! (`store/sql`; `migrations/postgres` mirrors `migrations/sqlite`), for
//! several instances sharing one database. Every transaction that appends to the
//! audit log first takes one transaction-scoped advisory lock, so entries from all
//! instances form a single chain; nonce blocks are reserved with one atomic upsert
//! per block, so two instances can never be handed overlapping counters, under a
//! per-version advisory lock, so together they never reserve more than the
//! version's use budget. The scheduler's leader holds a session-level advisory
//! lock on a connection of its own.

use super::sql::{Dialect, SqlStore, runners};
use crate::error::{Error, Result};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Pool, Postgres, Transaction};

/// The PostgreSQL store.
pub type PostgresStore = SqlStore<Postgres>;

/// What the PostgreSQL store keeps besides its pool.
pub struct PgState {
    /// While this instance leads the scheduler: the connection holding the
    /// session-level advisory lock (outside the pool; released when it closes).
    leader: tokio::sync::Mutex<Option<sqlx::PgConnection>>,
    /// The advisory lock serialising audit appends.
    audit_lock: i64,
    /// The advisory lock held by the scheduler's leader.
    scheduler_lock: i64,
    /// The schema, mixed into per-keyring advisory lock keys.
    schema: String,
}

/// Advisory locks are database-wide: each key mixes in the schema, so deployments
/// (or test runs) in other schemas of the same database never contend.
fn lock_key(schema: &str, purpose: &str) -> i64 {
    let d = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        format!("fleetkey advisory lock\0{purpose}\0{schema}").as_bytes(),
    );
    let mut b = [0u8; 8];
    b.copy_from_slice(&d.as_ref()[..8]);
    i64::from_be_bytes(b)
}

/// How long a request waits for a database connection before failing, unless
/// configured (`store_wait_ms`).
pub const ACQUIRE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

impl SqlStore<Postgres> {
    /// Connects to `url` (`postgres://user@host:port/db`) and runs migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_in_schema(url, None).await
    }

    /// [`PostgresStore::connect`] with every table in `schema` (created if needed):
    /// several deployments, or test runs, in one database.
    pub async fn connect_in_schema(url: &str, schema: Option<&str>) -> Result<Self> {
        Self::connect_with(url, schema, 16, ACQUIRE_TIMEOUT).await
    }

    /// [`PostgresStore::connect_in_schema`] keeping up to `pool_size` connections.
    /// A request that finds none free and cannot open one (PostgreSQL unreachable)
    /// fails after `wait` with a store error (503 through the API).
    pub async fn connect_with(
        url: &str,
        schema: Option<&str>,
        pool_size: u32,
        wait: std::time::Duration,
    ) -> Result<Self> {
        let bad = |e: sqlx::Error| Error::StoreConnect {
            url: crate::config::redacted_url(url),
            source: e,
        };
        let mut opts: sqlx::postgres::PgConnectOptions = url.parse().map_err(bad)?;
        if let Some(schema) = schema {
            if schema.is_empty()
                || schema.len() > 48
                || !schema
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                return Err(Error::Invalid {
                    what: "postgres schema",
                    why: format!("{schema:?}: use 1-48 of a-z 0-9 _"),
                });
            }
            let pool = PgPoolOptions::new()
                .max_connections(1)
                .connect_with(opts.clone())
                .await
                .map_err(bad)?;
            sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
                .execute(&pool)
                .await?;
            pool.close().await;
            opts = opts.options([("search_path", schema)]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(pool_size.max(1))
            .acquire_timeout(wait)
            .connect_with(opts)
            .await
            .map_err(bad)?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        let current: String = sqlx::query_scalar("SELECT current_schema()")
            .fetch_one(&pool)
            .await?;
        Ok(Self {
            pool,
            state: PgState {
                leader: Default::default(),
                audit_lock: lock_key(&current, "audit"),
                scheduler_lock: lock_key(&current, "scheduler"),
                schema: current,
            },
            custody: Default::default(),
        })
    }
}

/// Takes the transaction-scoped advisory lock `key`.
async fn xact_lock(tx: &mut Transaction<'_, Postgres>, key: i64) -> Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(key)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[async_trait::async_trait]
impl Dialect for Postgres {
    type Record = sqlx::postgres::PgRow;
    type State = PgState;
    const SYSTEM: &'static str = "postgresql";
    const INSERTION_ORDER: &'static str = "ord";

    fn json_text_elements(n: usize) -> String {
        format!("json_array_elements_text(${n}::json)")
    }

    runners!(Postgres);

    fn unique_violation(e: &sqlx::Error) -> Option<String> {
        match e {
            sqlx::Error::Database(d) if d.is_unique_violation() => {
                Some(d.constraint().unwrap_or_default().to_owned())
            }
            _ => None,
        }
    }

    async fn lock_audit(tx: &mut Transaction<'_, Self>, state: &PgState) -> Result<()> {
        xact_lock(tx, state.audit_lock).await
    }

    async fn lock_version(
        tx: &mut Transaction<'_, Self>,
        state: &PgState,
        keyring: &str,
        version: u32,
    ) -> Result<()> {
        xact_lock(
            tx,
            lock_key(&state.schema, &format!("nonces\0{keyring}\0{version}")),
        )
        .await
    }

    async fn scheduler_leader(pool: &Pool<Self>, state: &PgState) -> Result<bool> {
        let mut held = state.leader.lock().await;
        if let Some(conn) = held.as_mut() {
            // Still ours while the connection holding it lives.
            if sqlx::query("SELECT 1").execute(&mut *conn).await.is_ok() {
                return Ok(true);
            }
            *held = None;
        }
        let mut conn = pool.acquire().await?;
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(state.scheduler_lock)
            .fetch_one(&mut *conn)
            .await?;
        if got {
            // Keep this connection out of the pool for as long as we lead; when this
            // store goes (or the process dies), the connection closes and the lock
            // is free for another instance.
            *held = Some(conn.detach());
        }
        Ok(got)
    }
}
