//! # fleetkey-server
//!
//! The service: keyrings with rotation, revocation and crash-safe nonce allocation
//! ([`keys`]), fleets and their devices ([`fleet`]), API tokens ([`tokens`]),
//! root-key custody ([`custody`]), storage ([`store`], embedded SQLite by default,
//! PostgreSQL shared by many instances), coordination between instances
//! ([`coord`]) and the hash-chained audit log ([`audit`]). Domain modules never
//! know about transports; the HTTP API and the device listener ([`api`]) are an
//! edge over them (docs/architecture.md).
//!
//! ## Example
//!
//! ```no_run
//! # async fn demo() -> fleetkey_server::Result<()> {
//! use fleetkey_server::{clock::SystemClock, custody::local::{KekSource, LocalCustody}, keys::{KeyConfig, KeyService}, store::{Policy, sqlite::SqliteStore}};
//! use std::{path::Path, sync::Arc};
//!
//! let dir = Path::new("./fleetkey-data");
//! let store = Arc::new(SqliteStore::open(dir).await?);
//! let custody = Arc::new(LocalCustody::open(dir, KekSource::from_env()?).await?);
//! let keys = KeyService::open(store, custody, Arc::new(SystemClock::default()), KeyConfig::default()).await?;
//! let aes = fleetkey_server::key_type::KeyType::from_name("aes-256-gcm")?;
//! keys.create("cli:root", &"payments".parse()?, aes, Policy::default()).await?;
//! let ring = keys.keyring("payments").await?;
//! let sealed = ring.seal(b"4242", b"order-17").await?;
//! assert_eq!(ring.unseal(&sealed, b"order-17").await?, b"4242");
//! # Ok(()) }
//! ```
//!
//! ## Design decisions
//!
//! * **Every change is one transaction with its audit entry**, so the log cannot
//!   miss a change and an unwritable log stops the change (fail closed).
//! * **Nonces are reserved before use**, in blocks, so sealing needs no store write
//!   per envelope and a crash cannot repeat a nonce.
//! * **Time is injected** ([`clock::Clock`]) so tests drive rotations.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod audit;
pub mod backup;
pub mod clock;
pub mod compliance;
pub mod config;
pub mod coord;
pub mod custody;
pub mod data_lock;
pub(crate) mod directory;
mod error;
pub mod fleet;
pub mod ingest;
pub mod key_type;
pub mod keys;
pub mod names;
pub mod observability;
pub mod rewrap;
pub mod secret_file;
pub mod store;
pub mod telemetry;
pub mod tokens;

pub use error::{Error, Result};
