//! The command line: every flag and its help text.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

mod fleet;
mod keys;
pub use fleet::{
    ConfigCommand, DevicesCommand, FactoryCommand, FleetsCommand, PageArgs, SchemaCommand, StateArg,
};
pub use keys::{AliasCommand, DetailsArgs, KeysCommand};

const ABOUT: &str = "fleetkey: identities, keys and sealed data for device fleets.

The offline commands work on files and need no server:

  fleetkey keygen -o app.key                 make a symmetric key file (mode 0600)
  fleetkey seal --key app.key -i in -o out   seal a file (any size; streams)
  fleetkey unseal --key app.key -i out       open it again (to stdout)
  fleetkey keygen --recipient -o me.id       make an X-Wing identity; prints its recipient
  fleetkey seal --recipient fk1r:… -i in     seal to someone's public recipient
  fleetkey inspect -i out                    show an envelope's header as JSON

The service commands (keys, tokens, audit, fleets, factory, devices) go to a server
when FLEETKEY_ADDR (http://host:8400) and FLEETKEY_TOKEN are set, like VAULT_ADDR and
VAULT_TOKEN (FLEETKEY_CACERT: a private CA); otherwise they work on the local data
directory (--data-dir, FLEETKEY_DATA_DIR; refused while a server holds it).
Output: --format table|json (FLEETKEY_FORMAT); times are RFC 3339 in both.

A token's scopes (docs/operations.md, \"Tokens and scopes\"): admin; keys:manage;
seal:, unseal:, rewrap:, datakey:, sign:, verify:, mac:, import:, export: <keyring>;
random; audit:read; tokens:manage; fleets:manage; factory:, devices:, operate:,
ingest: <fleet>; claim. A trailing * matches a prefix (seal:*, devices:therm*).

Exit codes: 0 success, 1 refused (envelope, key, signature; HTTP 401/403/409/422/429),
2 usage error (bad flags or input; HTTP 400/413), 3 file error, 4 not found
(HTTP 404), 5 server unreachable or failing, or the store failed (retry later).
Formats are specified in docs/formats.md. Completions: fleetkey completions bash.";

#[derive(Parser, Debug)]
#[command(name = "fleetkey", version, about = ABOUT, long_about = ABOUT)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a symmetric key file, or an X-Wing identity with --recipient.
    #[command(
        long_about = "Create a symmetric key file, or with --recipient an X-Wing \
(X25519 + ML-KEM-768) identity for public-key sealing.

Key files are JSON, created with mode 0600; fleetkey refuses to read them once group \
or others can. Keep them out of version control.

Examples:
  fleetkey keygen -o app.key
  fleetkey keygen --algorithm chacha20-poly1305 --key-id backups -o backups.key
  fleetkey keygen --recipient -o me.id          # prints fk1r:… to share
  fleetkey keygen --recipient -o me.id --recipient-out me.pub"
    )]
    Keygen(KeygenArgs),
    /// Seal data with a key file or to a recipient.
    #[command(
        long_about = "Seal data into an fk1 envelope, with a symmetric key file \
(--key) or to a recipient's public key (--recipient, HPKE with X-Wing).

Input of any size is sealed in 64 KiB segments in constant memory; truncation, \
reordering and appending are all detected on unseal. --aad binds the envelope to a \
context string that is not stored: the same --aad must be given to unseal.

Examples:
  fleetkey seal --key app.key -i backup.tar -o backup.tar.fk
  echo hi | fleetkey seal --key app.key --armor
  fleetkey seal --recipient fk1r:AAAA… --aad tenant=acme -i report.pdf -o report.fk
  fleetkey seal --recipient me.pub -i notes.txt -o notes.fk"
    )]
    Seal(SealArgs),
    /// Open an envelope with a key file or an identity.
    #[command(
        long_about = "Open an fk1 envelope (binary or armored) with the key file \
or identity it was sealed for.

With -o, plaintext goes to a temporary file beside OUT that is renamed into place \
only after the last segment verifies: a failed unseal never leaves partial plaintext. \
On stdout, each segment is written only after it verifies, and a failure exits \
non-zero.

Examples:
  fleetkey unseal --key app.key -i backup.tar.fk -o backup.tar
  fleetkey unseal --identity me.id --aad tenant=acme -i report.fk -o report.pdf"
    )]
    Unseal(UnsealArgs),
    /// Manage keyrings in a local data directory (admin mode, no server needed).
    #[command(
        subcommand,
        long_about = "Manage keyrings directly in a data directory \
(default ./fleetkey-data). Custody needs FLEETKEY_ROOT_KEY_FILE (a key file made by \
`fleetkey keygen`, kept off the data volume) or FLEETKEY_PASSPHRASE; the first command \
initialises the directory.

Examples:
  export FLEETKEY_ROOT_KEY_FILE=/secure/root.kek
  fleetkey keys create payments --max-uses 1000000 --rotation-period 30d
  echo 4242 | fleetkey keys seal payments --aad order-17
  fleetkey keys rotate payments
  fleetkey keys revoke payments 1
  fleetkey keys list --format json"
    )]
    Keys(KeysCommand),
    /// Export and verify the tamper-evident audit log.
    #[command(
        subcommand,
        long_about = "The audit log records every change (create, rotate, \
revoke, policy, rewrap) in a hash chain whose head is signed with the service's \
composite Ed25519 + ML-DSA-65 key.

Examples:
  fleetkey audit export -o audit.jsonl
  fleetkey audit public-key -o service.pub
  fleetkey audit verify --export audit.jsonl --public-key service.pub"
    )]
    Audit(AuditCommand),
    /// Move the store to another custody root: another backend, or a new root in the same one.
    #[command(
        subcommand,
        long_about = "Rewrap every custody-protected key in the store (keyring \
versions, fleet issuing keys, service keys, constrained devices' secrets) from the \
custody the FLEETKEY_CUSTODY* variables name to a new root, re-sign every key record \
with the new root's signing key, and record the new custody, in one transaction with \
its audit entry. No data key changes: every envelope opens afterwards.

The target's settings are the usual variables with FLEETKEY_TO_ in place of \
FLEETKEY_ (FLEETKEY_TO_PKCS11_LABEL, FLEETKEY_TO_VAULT_TRANSIT_KEY, \
FLEETKEY_TO_AWS_KMS_KEY_ID, FLEETKEY_TO_ROOT_KEY_FILE, ...); a variable without a TO_ \
form set is shared. On the embedded store stop `fleetkey serve` first; on PostgreSQL \
instances keep serving what they hold and are restarted with the new settings. \
See docs/custody.md, \"Moving the root\".

Examples:
  fleetkey custody rotate
  FLEETKEY_TO_PKCS11_MODULE=/usr/lib/softhsm/libsofthsm2.so FLEETKEY_TO_PKCS11_TOKEN=fk \\
    FLEETKEY_TO_PKCS11_PIN_FILE=/secure/pin fleetkey custody migrate --to pkcs11"
    )]
    Custody(CustodyCommand),
    /// Back up the service's data, check a backup, restore one.
    #[command(
        subcommand,
        long_about = "A backup is an online, consistent snapshot of the embedded store \
(taken while fleetkey serve runs), the sealed root key and the configuration file, \
sealed to one or more backup recipients (fk1r:…, from `fleetkey keygen --recipient`): \
without one of their identities it is useless. The key-encryption key that seals \
the root key is never in a backup; keep it apart or split it (`fleetkey custody split`). \
On PostgreSQL the database is backed up with its own tools (docs/operations.md, \"Backups\").

Examples:
  fleetkey keygen --recipient -o backup.id --recipient-out backup.pub
  fleetkey backup create --recipient backup.pub -o fleetkey.fkbackup
  fleetkey backup verify fleetkey.fkbackup --identity backup.id
  fleetkey backup restore fleetkey.fkbackup --identity backup.id --data-dir /srv/fleetkey-new"
    )]
    Backup(BackupCommand),
    /// Compliance evidence from a running service, mapped to a framework's controls.
    #[command(
        subcommand,
        long_about = "Collects evidence from the running service (FLEETKEY_ADDR, a token \
with audit:read in FLEETKEY_TOKEN): keyring rotation, the audit chain and its last \
checkpoint, tokens and their expiries, TLS, custody, backups, rate limits, refused \
authentications; evaluates each control of the framework (pass, attention, fail) and \
says what remains the operator's duty. Mapping tables: docs/compliance/.

Examples:
  fleetkey compliance report --framework soc2
  fleetkey compliance report --framework pci-dss-4.0 --format pdf -o pci.pdf --drill-report dr.txt"
    )]
    Compliance(ComplianceCommand),
    /// Run the HTTP service (embedded store by default; no configuration needed).
    #[command(
        long_about = "Run the fleetkey service: the REST API under /v1, /healthz, \
/readyz, /metrics and /v1/openapi.json.

With no configuration it keeps data in ./fleetkey-data and listens on 127.0.0.1:8400. \
The first start initialises the data directory and custody and writes an admin token \
to fleetkey-data/admin.token (mode 0600). Custody uses FLEETKEY_ROOT_KEY_FILE or \
FLEETKEY_PASSPHRASE when set; otherwise a key-encryption key is generated under \
~/.config/fleetkey/ (outside the data directory) and its path is printed.

Configuration: --config FILE (TOML) and FLEETKEY_* variables (FLEETKEY_LISTEN, \
FLEETKEY_DATA_DIR, FLEETKEY_TLS_CERT, FLEETKEY_TLS_KEY, FLEETKEY_MAX_BODY_BYTES, \
FLEETKEY_RATE_LIMIT_PER_TOKEN, FLEETKEY_RATE_LIMIT_GLOBAL, FLEETKEY_LOG_FORMAT). \
See docs/operations.md.

Examples:
  fleetkey serve
  FLEETKEY_LISTEN=0.0.0.0:8400 fleetkey serve --config /etc/fleetkey/fleetkey.toml"
    )]
    Serve(ServeArgs),
    /// Fleets: create, show, config schema, rotation policy.
    #[command(subcommand)]
    Fleets(FleetsCommand),
    /// Factory: provision devices (or simulate a jig), factory reset.
    #[command(subcommand)]
    Factory(FactoryCommand),
    /// Devices: list, show, config, rotate, commands, decommission, claim.
    #[command(subcommand)]
    Devices(DevicesCommand),
    /// Manage API tokens in a local data directory.
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// Walk a simulated fleet of 50 devices through its whole life, checked.
    #[command(
        long_about = "Walk a simulated fleet through its whole life against a real \
server and check every step: factory provisioning (constrained devices' secrets sealed \
to the factory recipient), zero-touch onboarding, Noise sessions with telemetry and \
AES-CCM frames, a config push answered with signed receipts, a keyring rotation under \
load, credential rotation over sessions, and decommissioning (wipe, then refusal). \
Ends with a summary table and exits 0 only if every check held.

With no FLEETKEY_ADDR, a server runs in this process on a temporary directory and \
loopback ports the system picks, and everything is removed afterwards. With \
FLEETKEY_ADDR (plain http) and an admin FLEETKEY_TOKEN, the demo uses that server \
and creates its own fleet and keyring (demo-<random>) there.

Examples:
  fleetkey demo
  fleetkey demo --full 200 --constrained 50 --concurrency 32
  FLEETKEY_ADDR=http://127.0.0.1:8400 FLEETKEY_TOKEN=$(cat fleetkey-data/admin.token) fleetkey demo"
    )]
    Demo(DemoArgs),
    /// Print an envelope's header as JSON without opening it.
    #[command(
        long_about = "Print an envelope's header (format, mode, algorithm, key id, \
key version, nonce or salt, sizes) as JSON, without any key. Nothing here is secret.

Example:
  fleetkey inspect -i backup.tar.fk"
    )]
    Inspect(InspectArgs),
    /// Check a keyring's signature offline with its public key.
    #[command(
        long_about = "Check a signature made by a signing keyring (ed25519, ml-dsa-65, \
ed25519+ml-dsa-65) without the server: the public key file is what `fleetkey keys \
public-key NAME` prints (any format), or a PEM SubjectPublicKeyInfo. Exit 0 when it \
verifies, 1 when it does not.

Example:
  fleetkey keys public-key releases > releases.pub
  fleetkey verify --public-key releases.pub --signature \"$(cat fw.sig)\" -i fw.bin"
    )]
    Verify(VerifyArgs),
    /// The service's configuration file: check one, or print the defaults.
    #[command(subcommand, name = "config")]
    ServiceConfig(ServiceConfigCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(
        long_about = "Print a completion script for a shell to standard output.

Examples:
  fleetkey completions bash > /etc/bash_completion.d/fleetkey
  fleetkey completions zsh > \"${fpath[1]}/_fleetkey\"
  fleetkey completions fish > ~/.config/fish/completions/fleetkey.fish"
    )]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) to standard output, or write one per command.
    #[command(long_about = "Print fleetkey(1) as roff to standard output, or with \
--out-dir write it and a page for every subcommand (fleetkey-devices-list.1, …).

Examples:
  fleetkey man | man -l -
  fleetkey man --out-dir /usr/local/share/man/man1")]
    Man {
        /// Write fleetkey.1 and one page per subcommand into this directory.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum ServiceConfigCommand {
    /// Check a configuration file as `fleetkey serve --config FILE` reads it
    /// (without the FLEETKEY_* variables); an error names the line and key.
    Check {
        /// The TOML file.
        file: PathBuf,
    },
    /// Print every setting with its default and a comment, as TOML.
    Defaults,
}

/// Signing a digest rather than the message (docs/operations.md, "Signing and MAC
/// keyrings").
#[derive(Args, Debug, Clone)]
pub struct PrehashArgs {
    /// Hash the input here (streamed, any size) and sign or verify only its
    /// digest, in the algorithm's prehash mode: Ed25519ph, HashML-DSA-65.
    #[arg(long)]
    pub prehash: bool,
    /// The prehash's hash: sha-512 (Ed25519ph, ML-DSA-65) or sha-256 (ML-DSA-65).
    #[arg(long, default_value = "sha-512", value_parser = ["sha-256", "sha-512"], requires = "prehash")]
    pub hash: String,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Public key file (`fleetkey keys public-key` output, or PEM).
    #[arg(long, value_name = "FILE")]
    pub public_key: PathBuf,
    /// Base64 signature.
    #[arg(long, value_name = "BASE64")]
    pub signature: String,
    #[command(flatten)]
    pub prehash: PrehashArgs,
    /// The signed message (default: stdin).
    #[arg(short, long, value_name = "IN")]
    pub input: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct KeygenArgs {
    /// Where to write the new key or identity file (created with mode 0600).
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// Make an X-Wing identity for public-key sealing instead of a symmetric key.
    #[arg(long)]
    pub recipient: bool,
    /// Also write the recipient string to this file (only with --recipient).
    #[arg(long, value_name = "FILE", requires = "recipient")]
    pub recipient_out: Option<PathBuf>,
    /// AEAD algorithm of a symmetric key: aes-256-gcm, chacha20-poly1305, aes-256-gcm-siv.
    #[arg(long, default_value = "aes-256-gcm", conflicts_with = "recipient")]
    pub algorithm: String,
    /// Key id written into every envelope this key seals (default: random `k-…`).
    #[arg(long, value_name = "ID", conflicts_with = "recipient")]
    pub key_id: Option<String>,
    /// Replace OUTPUT if it exists.
    #[arg(long)]
    pub force: bool,
}

/// What an envelope is bound to: associated data or an encryption context.
#[derive(Args, Debug, Clone, Default)]
pub struct BindArgs {
    /// Associated data: authenticated, not stored, required again to unseal.
    #[arg(long, value_name = "TEXT", conflicts_with = "context")]
    pub aad: Option<String>,
    /// Encryption context pair, repeatable: the pairs are encoded canonically as the
    /// associated data (docs/formats.md), in any order; unsealing needs the same pairs.
    #[arg(long, value_name = "KEY=VALUE")]
    pub context: Vec<String>,
}

impl BindArgs {
    /// The checked binding.
    pub(crate) fn binding(&self) -> crate::error::CliResult<crate::binding::Binding> {
        crate::binding::Binding::new(self.aad.clone(), &self.context)
    }
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("with").required(true).args(["key", "recipient", "keyring"])))]
pub struct SealArgs {
    /// Keyring on the server (FLEETKEY_ADDR/FLEETKEY_TOKEN) or in FLEETKEY_DATA_DIR;
    /// input at most 16 MiB (any size with --datakey).
    #[arg(long, value_name = "NAME")]
    pub keyring: Option<String>,
    /// With --keyring: ask the keyring for a data key and seal the input locally
    /// with it, streaming (any size); the envelope carries the wrapped data key
    /// (fk1 mode 4), so only the data key request reaches the keyring.
    #[arg(long)]
    pub datakey: bool,
    /// Symmetric key file made by `fleetkey keygen`.
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Recipient: an `fk1r:` string, or a file holding one (or an identity file).
    #[arg(long, value_name = "STRING_OR_FILE")]
    pub recipient: Option<String>,
    /// AEAD for --recipient and --datakey envelopes (a key file fixes its own).
    #[arg(long, default_value = "aes-256-gcm", conflicts_with = "key")]
    pub algorithm: String,
    #[command(flatten)]
    pub bind: BindArgs,
    /// Input file (default: stdin).
    #[arg(short, long, value_name = "IN")]
    pub input: Option<PathBuf>,
    /// Output file (default: stdout).
    #[arg(short, long, value_name = "OUT")]
    pub output: Option<PathBuf>,
    /// Write `fk1:` text armor instead of binary (holds the envelope in memory).
    #[arg(long)]
    pub armor: bool,
    /// Segment size as a power of two, 10 (1 KiB) to 20 (1 MiB).
    #[arg(long, default_value_t = fleetkey_crypto::envelope::DEFAULT_SEGMENT_LOG2, value_name = "LOG2", hide = true)]
    pub segment_log2: u8,
    /// Flush OUT to disk before renaming it into place (survives power loss).
    #[arg(long)]
    pub sync: bool,
    /// Replace OUT if it exists.
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("with").required(true).args(["key", "identity", "keyring"])))]
pub struct UnsealArgs {
    /// Keyring on the server (FLEETKEY_ADDR/FLEETKEY_TOKEN) or in FLEETKEY_DATA_DIR
    /// (a keyring envelope, or a --datakey one: its data key is unwrapped by the
    /// keyring and the body opened locally, streaming).
    #[arg(long, value_name = "NAME")]
    pub keyring: Option<String>,
    /// Symmetric key file the envelope was sealed with.
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Identity file the envelope was sealed to.
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,
    #[command(flatten)]
    pub bind: BindArgs,
    /// Input file (default: stdin).
    #[arg(short, long, value_name = "IN")]
    pub input: Option<PathBuf>,
    /// Output file (default: stdout); written atomically.
    #[arg(short, long, value_name = "OUT")]
    pub output: Option<PathBuf>,
    /// Flush OUT to disk before renaming it into place (survives power loss).
    #[arg(long)]
    pub sync: bool,
    /// Replace OUT if it exists.
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Input file (default: stdin).
    #[arg(short, long, value_name = "IN")]
    pub input: Option<PathBuf>,
}

/// Where the local data lives.
#[derive(Args, Debug, Clone)]
pub struct DataDir {
    /// Data directory (store, sealed root key).
    #[arg(
        long,
        env = "FLEETKEY_DATA_DIR",
        default_value = "./fleetkey-data",
        value_name = "DIR"
    )]
    pub data_dir: PathBuf,
    /// Output: a table for people, or JSON (JSON lines for streams such as
    /// `devices list --all`). Times are RFC 3339 in both. Default: table, but
    /// json for what is a document rather than a record (keys sign, public-key,
    /// datakey, import-recipient).
    #[arg(long, value_enum, env = "FLEETKEY_FORMAT", value_name = "FORMAT")]
    pub format: Option<Format>,
    /// The same as --format json (kept for scripts written before --format).
    #[arg(long, hide = true)]
    pub json: bool,
}

impl DataDir {
    /// The output form asked for (`--json` is `--format json`), table if none.
    pub fn format(&self) -> Format {
        self.format_or(Format::Table)
    }

    /// The output form asked for, or `default`.
    pub fn format_or(&self, default: Format) -> Format {
        if self.json {
            Format::Json
        } else {
            self.format.unwrap_or(default)
        }
    }

    /// Whether JSON was asked for.
    pub fn is_json(&self) -> bool {
        self.format() == Format::Json
    }
}

/// How a command prints its result.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Aligned columns (one row per item, or FIELD VALUE rows for one item).
    #[default]
    Table,
    /// JSON: one document, or one line per item for streams.
    Json,
}

/// Rotation policy flags; durations take s, m, h or d suffixes (90d, 12h).
#[derive(Args, Debug, Clone, Default)]
pub struct PolicyArgs {
    /// Rotate when the primary version is this old (default 90d).
    #[arg(long, value_name = "DURATION")]
    pub rotation_period: Option<String>,
    /// Rotate after this many seals with one version (default 1048576).
    #[arg(long, value_name = "N")]
    pub max_uses: Option<u64>,
    /// Keep a replaced version decrypt-only this long (default 30d).
    #[arg(long, value_name = "DURATION")]
    pub overlap: Option<String>,
    /// Keep at most N versions able to decrypt.
    #[arg(long, value_name = "N")]
    pub keep_last: Option<u32>,
    /// Remove the keep-last limit.
    #[arg(long, conflicts_with = "keep_last")]
    pub no_keep_last: bool,
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Write the audit log as JSON lines, ending with a fresh signed checkpoint.
    Export {
        /// Output file (default: stdout).
        #[arg(short, long, value_name = "OUT")]
        output: Option<PathBuf>,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Write the service's composite public key (for `audit verify`).
    PublicKey {
        /// Output file (default: stdout).
        #[arg(short, long, value_name = "OUT")]
        output: Option<PathBuf>,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Verify an export offline; reports the first bad sequence number.
    Verify {
        /// The JSON-lines export.
        #[arg(long, value_name = "FILE")]
        export: PathBuf,
        /// The public key from `fleetkey audit public-key`.
        #[arg(long, value_name = "FILE")]
        public_key: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum CustodyCommand {
    /// Move the store to another backend (local, pkcs11, vault, aws-kms).
    Migrate {
        /// The backend to move to.
        #[arg(long, value_name = "BACKEND")]
        to: String,
        #[command(flatten)]
        dir: DataDir,
    },
    /// A new root in the same backend: local makes a fresh root key; the others
    /// move to the keys the FLEETKEY_TO_* settings name.
    Rotate {
        #[command(flatten)]
        dir: DataDir,
    },
    /// Split the key-encryption key file (FLEETKEY_ROOT_KEY_FILE, or the one
    /// zero-configuration mode made for the data directory) into Shamir shares:
    /// any THRESHOLD of them recover it, fewer say nothing about it.
    Split {
        /// Shares to make (2 to 255).
        #[arg(long, value_parser = clap::value_parser!(u8).range(2..))]
        shares: u8,
        /// Shares needed to recover (2 to SHARES).
        #[arg(long, value_parser = clap::value_parser!(u8).range(2..))]
        threshold: u8,
        /// Directory for the share files (one per holder; created, 0700).
        #[arg(long, value_name = "DIR")]
        out_dir: PathBuf,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Rebuild the key-encryption key file from THRESHOLD share files.
    Recover {
        /// A share file; repeat for each.
        #[arg(long = "share", required = true, value_name = "FILE")]
        shares: Vec<PathBuf>,
        /// Where to write the key file (refused if it exists; 0600).
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum BackupCommand {
    /// Write a backup of the data directory (online: the server may be running).
    Create {
        /// Where to write it (refused if it exists).
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
        /// Who can open it: fk1r:… or a file holding one; repeatable (1 to 16).
        #[arg(long = "recipient", required = true, value_name = "STRING_OR_FILE")]
        recipients: Vec<String>,
        /// The server's configuration file, kept in the backup.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Open a backup, check every file and the audit chain inside.
    Verify {
        /// The backup.
        file: PathBuf,
        /// An identity the backup is sealed to.
        #[arg(long, value_name = "FILE")]
        identity: PathBuf,
    },
    /// Restore a backup into a new (or empty) data directory.
    Restore {
        /// The backup.
        file: PathBuf,
        /// An identity the backup is sealed to.
        #[arg(long, value_name = "FILE")]
        identity: PathBuf,
        #[command(flatten)]
        dir: DataDir,
    },
}

#[derive(Subcommand, Debug)]
pub enum ComplianceCommand {
    /// A report for one framework, from the live service.
    Report {
        /// soc2, hipaa, pci-dss-4.0 or nist-800-53.
        #[arg(long, value_name = "FRAMEWORK")]
        framework: String,
        /// json, md or pdf.
        #[arg(long = "format", default_value = "md", value_name = "FORMAT")]
        report_format: String,
        /// Where to write it (default: standard output; a PDF needs -o).
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// The output of the last DR drill (`scripts/dr_drill.sh`, its rto_secs and
        /// rpo_secs lines); its modification time is the drill's date.
        #[arg(long, value_name = "FILE")]
        drill_report: Option<PathBuf>,
    },
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// TOML configuration file.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log format: auto (human on a terminal, JSON otherwise), human, json.
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<String>,
}

/// The device profiles the simulated jig makes.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceProfile {
    /// Noise sessions (`fleetkey-client`).
    Full,
    /// AES-CCM frames with per-boot keys from X25519 and a factory PSK.
    Constrained,
    /// AES-CCM frames with per-boot keys from a factory AES key (lab fleets only).
    ConstrainedStatic,
}

#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    /// Full-profile devices (Noise sessions).
    #[arg(long, default_value_t = 40)]
    pub full: usize,
    /// Constrained devices (AES-CCM frames over UDP).
    #[arg(long, default_value_t = 10)]
    pub constrained: usize,
    /// Telemetry messages (or frames) per device per phase.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub telemetry: u32,
    /// Devices working at the same time.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// With FLEETKEY_ADDR: the device listener (default: its host, port 8401).
    #[arg(long, env = "FLEETKEY_DEVICE_ADDR", value_name = "HOST:PORT")]
    pub device_addr: Option<String>,
    /// With FLEETKEY_ADDR: the UDP frame port (default: its host, port 8402).
    #[arg(long, env = "FLEETKEY_DEVICE_UDP_ADDR", value_name = "HOST:PORT")]
    pub udp_addr: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum TokensCommand {
    /// Create a token; prints the secret once.
    Create {
        /// Label.
        #[arg(long)]
        name: String,
        /// Scopes, repeatable: admin, keys:manage, seal:NAME, unseal:NAME, rewrap:NAME,
        /// audit:read, tokens:manage (prefix* wildcards allowed).
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        /// Lifetime (90d, 12h, …); default: until revoked.
        #[arg(long, value_name = "DURATION")]
        ttl: Option<String>,
        #[command(flatten)]
        dir: DataDir,
    },
    /// List tokens (never their secrets).
    List {
        #[command(flatten)]
        dir: DataDir,
    },
    /// Revoke a token by id (tok_…).
    Revoke {
        /// Token id.
        id: String,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Create an AWS access key pair that acts as a token on the AWS KMS door
    /// (docs/migrate-from-aws-kms.md); prints shell lines for `eval`, the
    /// secret once. Needs FLEETKEY_ADDR and FLEETKEY_TOKEN.
    #[command(name = "aws-credentials")]
    AwsCredentials {
        /// The token (name or id) the pair acts as, which FLEETKEY_TOKEN must
        /// cover with tokens:manage; default: the token in FLEETKEY_TOKEN.
        name: Option<String>,
        #[command(flatten)]
        dir: DataDir,
    },
}
