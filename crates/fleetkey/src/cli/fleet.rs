//! The fleet side of the command line: fleets and their config schemas, the
//! factory, devices and their configuration.

use super::{DataDir, DeviceProfile};
use clap::{Args, Subcommand};
use std::path::PathBuf;

/// Paging flags of every list.
#[derive(Args, Debug, Clone)]
pub struct PageArgs {
    /// At most this many per page (1–1000).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: u32,
    /// Start after this id or name (the cursor the previous page printed).
    #[arg(long, value_name = "CURSOR")]
    pub after: Option<String>,
    /// Every page, streamed (JSON lines with --format json).
    #[arg(long)]
    pub all: bool,
}

/// A device life-cycle state, for filters.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateArg {
    /// Registered at the factory.
    Manufactured,
    /// Onboarded, no session yet.
    Onboarded,
    /// In service.
    Active,
    /// Rotating its credential.
    Rotating,
    /// Refused until resumed.
    Suspended,
    /// Credentials revoked, wipe queued.
    Decommissioning,
    /// Gone.
    Decommissioned,
}

#[derive(Subcommand, Debug)]
pub enum FleetsCommand {
    /// List fleets (those the token holds a scope on).
    List {
        #[command(flatten)]
        page: PageArgs,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Create a fleet with a fresh credential-issuing key.
    Create {
        /// Fleet name.
        name: String,
        /// Lifetime of operational credentials (default 365d).
        #[arg(long, value_name = "DURATION")]
        credential_ttl: Option<String>,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Which device-session patterns the listener accepts (service-wide, or a fleet's).
    #[command(
        long_about = "Show or change which device-session patterns the listener \
accepts: ik (Noise IK), ik-hybrid (IKpsk2 + ML-KEM-768, post-quantum) and xx (first \
contact). The service-wide list bounds every fleet's; a fleet's list narrows it. \
Changes are audited and every instance applies them within a second; a device whose \
pattern is not allowed is refused with the reason pattern_not_allowed.

Examples:
  fleetkey fleets patterns                              # the service-wide list
  fleetkey fleets patterns --set ik,ik-hybrid           # disable xx everywhere, now
  fleetkey fleets patterns thermostats --set ik-hybrid  # this fleet requires the hybrid
  fleetkey fleets patterns thermostats --inherit        # back to the service's list"
    )]
    Patterns {
        /// Fleet (default: the service-wide list).
        fleet: Option<String>,
        /// The new list: ik, ik-hybrid, xx (comma-separated).
        #[arg(
            long,
            value_delimiter = ',',
            value_name = "PATTERNS",
            conflicts_with = "inherit"
        )]
        set: Vec<String>,
        /// Remove the list (a fleet follows the service's; the service allows all).
        #[arg(long)]
        inherit: bool,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Show a fleet and its issuing public key.
    Show {
        /// Fleet name.
        name: String,
        #[command(flatten)]
        dir: DataDir,
    },
    /// The fleet's device configuration schema.
    #[command(subcommand)]
    Schema(SchemaCommand),
    /// Rotate device credentials older than a period (or only on request).
    #[command(
        long_about = "Set how old an operational credential may get before the \
server asks the device to rotate it (the scheduler checks every minute), or turn it off.

Examples:
  fleetkey fleets rotation-policy thermostats --every 90d
  fleetkey fleets rotation-policy thermostats --off"
    )]
    RotationPolicy {
        /// Fleet name.
        name: String,
        /// Period, like 90d (1 hour to 10 years).
        #[arg(
            long,
            value_name = "DURATION",
            conflicts_with = "off",
            required_unless_present = "off"
        )]
        every: Option<String>,
        /// Rotate only on request.
        #[arg(long)]
        off: bool,
        #[command(flatten)]
        dir: DataDir,
    },
}

#[derive(Subcommand, Debug)]
pub enum SchemaCommand {
    /// Set the next schema version (a JSON Schema with a default for every field).
    #[command(
        long_about = "Set the next version of a fleet's configuration schema: a JSON \
Schema of \"type\": \"object\" whose every field has a \"default\". Declared properties are \
required and unknown ones refused. From version 2 on, --migration names a JSON array of \
steps that turn a config of the previous version into one of this version:
  {\"op\": \"rename\", \"from\": \"/interval_s\", \"to\": \"/period_s\"}
  {\"op\": \"remove\", \"path\": \"/legacy\"}
  {\"op\": \"set\", \"path\": \"/unit\", \"value\": \"celsius\"}
New fields take their defaults. Every stored config is migrated in a dry run first; if \
one would fail, nothing changes and the error names the device and the path.

Example:
  fleetkey fleets schema set thermostats --file schema.json --migration v2.json"
    )]
    Set {
        /// Fleet name.
        fleet: String,
        /// The JSON Schema file.
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
        /// The migration from the previous version (JSON array).
        #[arg(long, value_name = "FILE")]
        migration: Option<PathBuf>,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Show the newest schema and its defaults.
    Show {
        /// Fleet name.
        fleet: String,
        #[command(flatten)]
        dir: DataDir,
    },
}

#[derive(Subcommand, Debug)]
pub enum FactoryCommand {
    /// Simulate a factory jig: make device keys locally and register N devices.
    #[command(
        long_about = "Simulate a factory jig for demos and load tests: for each device, \
generate X25519 and Ed25519 key pairs locally (as a device would), register the public \
keys with the fleet, and receive a birth credential. Private keys are discarded.

With --profile constrained (or constrained-static), each device also gets a random \
32-byte factory secret (its PSK, or its AES key in static-key mode), sealed on the jig \
to the service's factory recipient (X-Wing, AAD bound to the hardware id) so that it \
never travels or rests in plaintext; the service opens it inside the registration.

Examples:
  fleetkey factory provision --fleet thermostats --count 1000
  fleetkey factory provision --fleet sensors --count 100 --profile constrained
  FLEETKEY_ADDR=http://127.0.0.1:8400 FLEETKEY_TOKEN=… fleetkey factory provision --fleet t --count 50000"
    )]
    Provision {
        /// Fleet.
        #[arg(long)]
        fleet: String,
        /// How many devices.
        #[arg(long, default_value_t = 1)]
        count: u64,
        /// Device profile: full (Noise sessions) or a constrained one (frames).
        #[arg(long, value_enum, default_value_t = DeviceProfile::Full)]
        profile: DeviceProfile,
        /// Model name.
        #[arg(long, default_value = "simulated")]
        model: String,
        /// Batch name (default: today's date and a random suffix).
        #[arg(long)]
        batch: Option<String>,
        /// Station name.
        #[arg(long, default_value = "sim-jig")]
        station: String,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Retire a decommissioned device's hardware id so the hardware can be provisioned again.
    Reset {
        /// Fleet.
        #[arg(long)]
        fleet: String,
        /// Device id.
        id: String,
        /// Recorded in the audit log.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        dir: DataDir,
    },
}

#[derive(Subcommand, Debug)]
pub enum DevicesCommand {
    /// List a fleet's devices, a page at a time or --all.
    #[command(long_about = "List a fleet's devices by id, a page at a time: the \
table ends with the cursor of the next page on standard error (pass it as --after), \
JSON carries it as next_after. --all streams every page (JSON lines with --format json).

Filters: --state, --profile, and when the service last heard from the device: \
--seen-before and --seen-after take an RFC 3339 time or a duration meaning that long \
ago (devices never heard from count as seen before any time).

Examples:
  fleetkey devices list --fleet thermostats
  fleetkey devices list --fleet thermostats --all --format json > devices.jsonl
  fleetkey devices list --fleet thermostats --state active --seen-before 24h")]
    List {
        /// Fleet.
        #[arg(long)]
        fleet: String,
        #[command(flatten)]
        page: PageArgs,
        /// Only devices in this state.
        #[arg(long, value_enum)]
        state: Option<StateArg>,
        /// Only devices of this profile.
        #[arg(long, value_enum)]
        profile: Option<DeviceProfile>,
        /// Only devices not heard from since then (RFC 3339, or a duration ago: 24h).
        #[arg(long, value_name = "TIME")]
        seen_before: Option<String>,
        /// Only devices heard from since then (RFC 3339, or a duration ago: 5m).
        #[arg(long, value_name = "TIME")]
        seen_after: Option<String>,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Suspend a device: its sessions and frames are refused until resumed.
    Suspend {
        /// Fleet.
        #[arg(long)]
        fleet: String,
        /// Device id.
        id: String,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Resume a suspended device (it becomes active).
    Resume {
        /// Fleet.
        #[arg(long)]
        fleet: String,
        /// Device id.
        id: String,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Show one device.
    Show {
        /// Fleet.
        #[arg(long)]
        fleet: String,
        /// Device id.
        id: String,
        #[command(flatten)]
        dir: DataDir,
    },
    /// A device's configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Ask a device to rotate its credential (queues a signed command); a
    /// constrained device is asked for a rekey (a new boot: fresh session keys).
    Rotate {
        /// Fleet.
        #[arg(long)]
        fleet: String,
        /// Device id.
        id: String,
        /// Recorded in the audit log.
        #[arg(long, default_value = "requested by operator")]
        reason: String,
        #[command(flatten)]
        dir: DataDir,
    },
    /// A device's commands (rotate, config updates, wipe) and their state.
    Commands {
        /// Fleet.
        #[arg(long)]
        fleet: String,
        /// Device id.
        id: String,
        /// Only pending and in-progress ones.
        #[arg(long)]
        open: bool,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Decommission a device: revoke its credentials now and queue a signed wipe.
    #[command(long_about = "Decommission a device: its credentials are revoked at \
once and a signed wipe command is queued; the device reaches decommissioned when its \
signed wipe receipt arrives.

A device that will never come back (lost, destroyed) can be finished with --complete: \
it becomes decommissioned without a receipt, the wipe command is cancelled, and the \
audit log records that the wipe was not confirmed by the device. Its hardware id can \
then be retired with `fleetkey factory reset`.

Examples:
  fleetkey devices decommission --fleet t dev_0123 --reason \"end of life\"
  fleetkey devices decommission --fleet t dev_0123 --complete --reason \"destroyed in transit\"")]
    Decommission {
        /// Fleet.
        #[arg(long)]
        fleet: String,
        /// Device id.
        id: String,
        /// Recorded in the audit log.
        #[arg(long)]
        reason: String,
        /// Finish without the device's wipe receipt (recorded as unconfirmed).
        #[arg(long)]
        complete: bool,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Make a one-time claim code for a device (shown once).
    ClaimCode {
        /// Fleet.
        #[arg(long)]
        fleet: String,
        /// Device id.
        id: String,
        /// Lifetime (1m to 365d).
        #[arg(long, default_value = "30d", value_name = "DURATION")]
        ttl: String,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Claim a device with its code, binding it to an account or site.
    Claim {
        /// The code (XXXX-XXXX-XXXX-XXXX; case and dashes do not matter).
        code: String,
        /// Account or site.
        #[arg(long = "by", value_name = "ACCOUNT")]
        claimed_by: String,
        #[command(flatten)]
        dir: DataDir,
    },
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Print a device's configuration (migrated to the newest schema for this read).
    Get {
        /// Fleet.
        #[arg(long)]
        fleet: String,
        /// Device id.
        id: String,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Change a device's configuration: KEY=VALUE pairs (dotted keys, JSON values
    /// or plain strings) or a whole config from --file.
    #[command(
        long_about = "Change a device's configuration. KEY=VALUE pairs change single \
fields (dotted keys reach nested objects; a value that parses as JSON is taken as JSON, \
anything else as a string); --file replaces the whole config. The result must satisfy the \
fleet's schema: otherwise nothing changes and the error names the failing path. The change \
is audited with its diff and queued for the device.

Examples:
  fleetkey devices config set --fleet t dev_0123 interval_s=300 server.host=ingest.example
  fleetkey devices config set --fleet t dev_0123 --file config.json --if-revision 4"
    )]
    Set {
        /// Fleet.
        #[arg(long)]
        fleet: String,
        /// Device id.
        id: String,
        /// KEY=VALUE changes.
        #[arg(
            value_name = "KEY=VALUE",
            conflicts_with = "file",
            required_unless_present = "file"
        )]
        changes: Vec<String>,
        /// The whole configuration (JSON).
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
        /// Refuse unless the stored revision is still this one.
        #[arg(long, value_name = "N")]
        if_revision: Option<i64>,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Reset a device's configuration to the schema defaults.
    Reset {
        /// Fleet.
        #[arg(long)]
        fleet: String,
        /// Device id.
        id: String,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Migrate every stored config of a fleet to the newest schema version.
    Migrate {
        /// Fleet.
        #[arg(long)]
        fleet: String,
        #[command(flatten)]
        dir: DataDir,
    },
}
