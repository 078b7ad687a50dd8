//! `fleetkey keys …`: keyrings, their life cycle and their aliases.

use super::{BindArgs, DataDir, PolicyArgs, PrehashArgs};
use clap::{Args, Subcommand};
use std::path::PathBuf;

/// A keyring's description and tags.
#[derive(Args, Debug, Clone, Default)]
pub struct DetailsArgs {
    /// Free text (at most 256 characters).
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,
    /// A tag KEY=VALUE (repeatable; at most 50).
    #[arg(long = "tag", value_name = "KEY=VALUE")]
    pub tags: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum AliasCommand {
    /// Create or re-point an alias.
    Set {
        /// The alias (`alias/NAME`).
        alias: String,
        /// The keyring it names (its own name).
        keyring: String,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Remove an alias (its keyring is untouched).
    Delete {
        /// The alias (`alias/NAME`).
        alias: String,
        #[command(flatten)]
        dir: DataDir,
    },
    /// List aliases.
    List {
        /// Only those of this keyring.
        #[arg(long, value_name = "NAME")]
        keyring: Option<String>,
        #[command(flatten)]
        dir: DataDir,
    },
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Create a keyring (version 1).
    Create {
        /// Keyring name; also the key id in its envelopes.
        name: String,
        /// aes-256-gcm, chacha20-poly1305, aes-256-gcm-siv (seal); ed25519,
        /// ml-dsa-65, ed25519+ml-dsa-65 (sign); hmac-sha256, hmac-sha512 (MAC);
        /// x-wing (others seal to its public recipient, the service unseals).
        #[arg(long, default_value = "aes-256-gcm")]
        algorithm: String,
        #[command(flatten)]
        policy: PolicyArgs,
        #[command(flatten)]
        details: DetailsArgs,
        /// Allow versions to be exported sealed to a recipient (`keys export`);
        /// fixed for the keyring's life.
        #[arg(long)]
        exportable: bool,
        /// Deterministic sealing for equality search (aes-256-gcm-siv only):
        /// equal plaintexts give equal envelopes; fixed for the keyring's life.
        #[arg(long)]
        convergent: bool,
        /// Keep every version's key in the HSM (FLEETKEY_CUSTODY=pkcs11), where
        /// each seal and unseal happens; aes-256-gcm only; fixed for the
        /// keyring's life.
        #[arg(long)]
        resident: bool,
        #[command(flatten)]
        dir: DataDir,
    },
    /// List keyrings.
    List {
        #[command(flatten)]
        dir: DataDir,
    },
    /// Show one keyring and its versions.
    Show {
        /// Keyring name or alias.
        name: String,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Rotate to a new primary version now.
    Rotate {
        /// Keyring name or alias.
        name: String,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Revoke one version in an emergency (unseal with it fails at once).
    Revoke {
        /// Keyring name or alias.
        name: String,
        /// The version to revoke.
        version: u32,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Change the rotation policy.
    Policy {
        /// Keyring name or alias.
        name: String,
        #[command(flatten)]
        policy: PolicyArgs,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Reseal envelopes (one armored envelope per input line) with the primary.
    Rewrap {
        /// Keyring name or alias.
        name: String,
        #[command(flatten)]
        bind: BindArgs,
        /// Input file (default: stdin).
        #[arg(short, long, value_name = "IN")]
        input: Option<PathBuf>,
        /// Output file (default: stdout).
        #[arg(short, long, value_name = "OUT")]
        output: Option<PathBuf>,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Seal data with a keyring (armored output).
    Seal {
        /// Keyring name or alias.
        name: String,
        #[command(flatten)]
        bind: BindArgs,
        /// Input file (default: stdin; at most 16 MiB).
        #[arg(short, long, value_name = "IN")]
        input: Option<PathBuf>,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Open a keyring envelope (binary or armored).
    Unseal {
        /// Keyring name or alias.
        name: String,
        #[command(flatten)]
        bind: BindArgs,
        /// Input file (default: stdin).
        #[arg(short, long, value_name = "IN")]
        input: Option<PathBuf>,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Sign the input (at most 16 MiB; any size with `--prehash`) with a signing
    /// keyring, or MAC it with a MAC keyring (`--mac`); prints JSON
    /// `{"signature", "key_version"}`.
    Sign {
        /// Keyring name or alias.
        name: String,
        /// Make a MAC tag (hmac-* keyrings) rather than a signature.
        #[arg(long)]
        mac: bool,
        #[command(flatten)]
        prehash: PrehashArgs,
        /// Input file (default: stdin).
        #[arg(short, long, value_name = "IN")]
        input: Option<PathBuf>,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Check a signature (or, with `--mac`, a MAC tag) of the input; exit 0 and
    /// `valid (version N)` when it verifies, exit 1 when it does not.
    Verify {
        /// Keyring name or alias.
        name: String,
        /// Base64 signature or tag.
        #[arg(long, value_name = "BASE64")]
        signature: String,
        /// Check with this version only (default: every version still usable).
        #[arg(long, value_name = "N")]
        key_version: Option<u32>,
        /// Check a MAC tag (hmac-* keyrings).
        #[arg(long)]
        mac: bool,
        #[command(flatten)]
        prehash: PrehashArgs,
        /// Input file (default: stdin).
        #[arg(short, long, value_name = "IN")]
        input: Option<PathBuf>,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Print a signing keyring's public key as JSON `{"algorithm", "key_version",
    /// "format", "public_key"}` (the file `fleetkey verify --public-key` reads).
    PublicKey {
        /// Keyring name or alias.
        name: String,
        /// Version (default: the primary).
        #[arg(long, value_name = "N")]
        key_version: Option<u32>,
        /// raw (base64), pem (ed25519, ml-dsa-65), jwk (ed25519) or fk1r (x-wing:
        /// the recipient `fleetkey seal --recipient` takes). (--format chooses
        /// the output: JSON unless --format table.)
        #[arg(long, default_value = "raw", value_name = "ENCODING")]
        key_format: String,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Make a 256-bit data key sealed under the keyring; prints JSON
    /// `{"ciphertext", "key_version", "plaintext"}` (base64, as the HTTP API answers).
    Datakey {
        /// Keyring name or alias.
        name: String,
        #[command(flatten)]
        bind: BindArgs,
        /// Print only the sealed key (KMS GenerateDataKeyWithoutPlaintext).
        #[arg(long)]
        no_plaintext: bool,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Disable a keyring: every cryptographic operation is refused until enabled.
    Disable {
        /// Keyring name or alias.
        name: String,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Enable a disabled keyring.
    Enable {
        /// Keyring name or alias.
        name: String,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Schedule the erasure of a keyring's key material after a waiting period
    /// (7 to 30 days; cancellable until then, refused for every use meanwhile).
    Delete {
        /// Keyring name or alias.
        name: String,
        /// Waiting period in days (7 to 30).
        #[arg(long, value_name = "DAYS", default_value_t = 30)]
        days: u32,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Cancel a scheduled deletion; the keyring comes back disabled.
    CancelDeletion {
        /// Keyring name or alias.
        name: String,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Change a keyring's description and tags.
    Describe {
        /// Keyring name or alias.
        name: String,
        #[command(flatten)]
        details: DetailsArgs,
        /// Remove every tag (before adding those given with --tag).
        #[arg(long)]
        clear_tags: bool,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Print the `fk1r:` recipient to seal key material to for `keys import`
    /// (one per UTC day, accepted until the end of the next), as JSON.
    ImportRecipient {
        /// Keyring name or alias.
        name: String,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Import key material (an fk1 recipient envelope of 32 bytes sealed to the
    /// import recipient with --aad "fleetkey import v1:NAME") as a new primary version.
    Import {
        /// Keyring name or alias.
        name: String,
        /// The envelope, armored or binary (default: stdin).
        #[arg(short, long, value_name = "IN")]
        input: Option<PathBuf>,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Export a version of an exportable keyring sealed to a recipient (armored
    /// fk1 envelope; open it with `fleetkey unseal --identity …
    /// --aad "fleetkey export v1:NAME/vN"`).
    Export {
        /// Keyring name or alias.
        name: String,
        /// The receiver's `fk1r:` recipient.
        #[arg(long, value_name = "RECIPIENT")]
        recipient: String,
        /// Version (default: the primary).
        #[arg(long, value_name = "N")]
        key_version: Option<u32>,
        /// Output file (default: stdout).
        #[arg(short, long, value_name = "OUT")]
        output: Option<PathBuf>,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Aliases: `alias/NAME` names a keyring wherever a keyring name is used.
    #[command(subcommand)]
    Alias(AliasCommand),
    /// Apply rotation and retention policies now (what the scheduler does).
    Tick {
        #[command(flatten)]
        dir: DataDir,
    },
}
