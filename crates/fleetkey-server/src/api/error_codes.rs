//! Every stable error code the API answers with: its HTTP status, the gRPC status
//! it maps to, what it means, whether a client may retry, and what to do.
//! `docs/errors.md` is generated from this table ([`markdown`]) and a test keeps
//! the two equal; `ApiError::new` refuses (in debug builds) a code
//! that is not here or a status other than the code's.

/// Whether a client may send the same request again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Retry {
    /// Safe to retry the same request, with backoff (honour `Retry-After`).
    Backoff,
    /// Only after something changed (a fresh token, re-reading the resource, an
    /// operator's action); the same request as is gets the same answer.
    AfterChange,
    /// Never: the request itself is wrong or refused for good.
    Never,
}

impl Retry {
    fn as_doc(self) -> &'static str {
        match self {
            Retry::Backoff => "yes, with backoff",
            Retry::AfterChange => "after a change",
            Retry::Never => "no",
        }
    }
}

/// One error code.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct ErrorCode {
    /// The code in `{"error": {"code": …}}`.
    pub code: &'static str,
    /// Its HTTP status.
    pub http: u16,
    /// The gRPC status code it maps to (as in `google.rpc.Code`).
    pub grpc: &'static str,
    /// Whether to retry.
    pub retry: Retry,
    /// What it means.
    pub meaning: &'static str,
    /// What to do.
    pub action: &'static str,
}

const fn code(
    code: &'static str,
    http: u16,
    grpc: &'static str,
    retry: Retry,
    meaning: &'static str,
    action: &'static str,
) -> ErrorCode {
    ErrorCode {
        code,
        http,
        grpc,
        retry,
        meaning,
        action,
    }
}

use Retry::{AfterChange, Backoff, Never};

/// The codes, in the order `docs/errors.md` lists them.
pub const ERROR_CODES: &[ErrorCode] = &[
    code(
        "malformed",
        400,
        "INVALID_ARGUMENT",
        Never,
        "The request does not parse or breaks a documented bound: bad JSON, an unknown field, a value out of range, bad base64, a malformed envelope.",
        "Fix the request; the message names the field.",
    ),
    code(
        "unauthenticated",
        401,
        "UNAUTHENTICATED",
        AfterChange,
        "No token, an unknown, expired or revoked token; for devices, a credential, challenge or signature that does not verify.",
        "Send a valid token (`Authorization: Bearer …`); a device re-onboards or presents its current credential.",
    ),
    code(
        "forbidden",
        403,
        "PERMISSION_DENIED",
        Never,
        "The token is valid but its scopes do not cover this operation on this resource.",
        "Use a token with the scope the message names, or ask an operator for one.",
    ),
    code(
        "not_found",
        404,
        "NOT_FOUND",
        Never,
        "The keyring, token, fleet, device, command, alias or identity does not exist (or is outside what the token may see).",
        "Check the name or id.",
    ),
    code(
        "method_not_allowed",
        405,
        "UNIMPLEMENTED",
        Never,
        "The route exists but not with this HTTP method.",
        "Use the method the API reference gives for the route.",
    ),
    code(
        "conflict",
        409,
        "FAILED_PRECONDITION",
        AfterChange,
        "The resource's state forbids this now: it already exists, a revision moved on, an illegal life-cycle transition, a command in the wrong state.",
        "Re-read the resource and decide again; after a retried create, the first attempt may have succeeded.",
    ),
    code(
        "too_large",
        413,
        "RESOURCE_EXHAUSTED",
        Never,
        "The body or a field is larger than the documented limit.",
        "Split the data (batches, or the streaming format for large payloads).",
    ),
    code(
        "timeout",
        408,
        "DEADLINE_EXCEEDED",
        Backoff,
        "The request body did not arrive in time.",
        "Retry on a healthy connection.",
    ),
    code(
        "cannot_open",
        422,
        "INVALID_ARGUMENT",
        Never,
        "The envelope does not open: tampered, truncated, another key, or other associated data or context than it was sealed with.",
        "Open with the same keyring, AAD and context it was sealed with; a tampered envelope never opens.",
    ),
    code(
        "revoked",
        422,
        "FAILED_PRECONDITION",
        Never,
        "The envelope was sealed under a key version that has been revoked.",
        "Nothing opens it through the API any more; re-seal from the plaintext source if there is one.",
    ),
    code(
        "below_minimum",
        422,
        "FAILED_PRECONDITION",
        AfterChange,
        "The key version is below the keyring's minimum decryption version.",
        "Rewrap envelopes before raising the minimum; an operator may lower it again.",
    ),
    code(
        "unknown_version",
        422,
        "INVALID_ARGUMENT",
        Never,
        "The envelope names a key version the keyring does not have.",
        "Check that the envelope belongs to this keyring.",
    ),
    code(
        "wrong_key_type",
        422,
        "FAILED_PRECONDITION",
        Never,
        "The keyring's key type does not do this operation (sealing with a signing key, prehashed input for a key without it, …).",
        "Use a keyring of the right type.",
    ),
    code(
        "wrong_keyring",
        422,
        "INVALID_ARGUMENT",
        Never,
        "The envelope or signature belongs to another keyring.",
        "Send it to the keyring it names.",
    ),
    code(
        "keyring_disabled",
        409,
        "FAILED_PRECONDITION",
        AfterChange,
        "The keyring is disabled.",
        "An operator enables it again.",
    ),
    code(
        "keyring_pending_deletion",
        409,
        "FAILED_PRECONDITION",
        AfterChange,
        "The keyring is scheduled for deletion.",
        "An operator cancels the deletion before it is due.",
    ),
    code(
        "keyring_deleted",
        410,
        "NOT_FOUND",
        Never,
        "The keyring was deleted; its keys are gone.",
        "Nothing sealed under it opens again.",
    ),
    code(
        "not_exportable",
        422,
        "FAILED_PRECONDITION",
        Never,
        "The keyring's keys may not leave the service.",
        "Use the keyring through the API instead of exporting it.",
    ),
    code(
        "custody_unsupported",
        422,
        "UNIMPLEMENTED",
        Never,
        "The custody backend holding this key cannot do the operation.",
        "Use a keyring whose custody supports it (docs/operations.md, custody).",
    ),
    code(
        "import_refused",
        422,
        "INVALID_ARGUMENT",
        Never,
        "Imported key material is refused (wrong length, type or wrapping).",
        "Check the material and its wrapping against the import documentation.",
    ),
    code(
        "claim_refused",
        422,
        "INVALID_ARGUMENT",
        Never,
        "The claim code is unknown, used or expired.",
        "Ask for a new claim code.",
    ),
    code(
        "invalid_config",
        422,
        "INVALID_ARGUMENT",
        Never,
        "A device configuration does not validate against its fleet's schema (or does not fit a constrained device's frame).",
        "Fix the fields the message lists.",
    ),
    code(
        "invalid_schema",
        422,
        "INVALID_ARGUMENT",
        Never,
        "A configuration schema is not one the service accepts.",
        "Fix the schema (an object with a default for every field).",
    ),
    code(
        "key_refused",
        422,
        "INVALID_ARGUMENT",
        Never,
        "A device's public key is refused (low order, wrong length, already registered).",
        "Generate and register a proper key.",
    ),
    code(
        "migration_failed",
        422,
        "FAILED_PRECONDITION",
        AfterChange,
        "A stored configuration cannot be migrated to the new schema version.",
        "Fix the migration or the configuration; the report lists each device.",
    ),
    code(
        "rate_limited",
        429,
        "RESOURCE_EXHAUSTED",
        Backoff,
        "Too many requests from this token or source.",
        "Retry after the `Retry-After` seconds; spread the load.",
    ),
    code(
        "unavailable",
        503,
        "UNAVAILABLE",
        Backoff,
        "The service cannot complete this now (store, coordination or sink away; shutting down).",
        "Retry with backoff (`Retry-After`); an operator checks /readyz and the logs.",
    ),
    code(
        "custody_unavailable",
        503,
        "UNAVAILABLE",
        Backoff,
        "Custody (the HSM or KMS holding the root key) cannot be reached.",
        "Retry with backoff; an operator checks the custody backend.",
    ),
];

/// The entry of `code`.
pub fn find(code: &str) -> Option<&'static ErrorCode> {
    ERROR_CODES.iter().find(|c| c.code == code)
}

/// `docs/errors.md`, as generated from [`ERROR_CODES`].
pub fn markdown() -> String {
    let mut s = String::from(
        "# Error codes\n\n\
         <!-- Generated from crates/fleetkey-server/src/api/error_codes.rs; a test keeps them equal. -->\n\n\
         Every error answer of the HTTP API is `{\"error\": {\"code\": \"…\", \"message\": \"…\"}}`\n\
         with the status below. Clients branch on `code` (stable; a newer server may add codes:\n\
         treat an unknown one by its status) and show `message` (for people, may change).\n\
         503 answers carry `Retry-After`. The gRPC status is what the same error maps to.\n\n\
         Retry: **yes, with backoff** — the same request may succeed later (exponential backoff\n\
         with jitter, honouring `Retry-After`; a retried create may then answer `conflict`\n\
         because the first attempt succeeded); **after a change** — only once something\n\
         changed (a fresh token, the resource re-read, an operator's action); **no** — the same\n\
         request always gets the same answer.\n\n\
         | code | HTTP | gRPC | retry | meaning | what to do |\n|---|---|---|---|---|---|\n",
    );
    for c in ERROR_CODES {
        s.push_str(&format!(
            "| `{}` | {} | `{}` | {} | {} | {} |\n",
            c.code,
            c.http,
            c.grpc,
            c.retry.as_doc(),
            c.meaning,
            c.action
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docs_errors_md_is_generated_from_the_table() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/errors.md");
        let doc = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            doc == markdown(),
            "docs/errors.md is not what error_codes.rs generates; write this to it:\n{}",
            markdown()
        );
    }

    #[test]
    fn codes_are_unique_and_statuses_consistent() {
        let mut seen = std::collections::HashSet::new();
        for c in ERROR_CODES {
            assert!(seen.insert(c.code), "{} twice", c.code);
            assert!((400..600).contains(&c.http), "{}", c.code);
            if c.http == 503 || c.http == 429 {
                assert_eq!(c.retry, Retry::Backoff, "{}", c.code);
            }
        }
    }
}
