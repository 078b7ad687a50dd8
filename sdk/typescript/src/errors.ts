// Typed errors mapped from the API's error codes (docs/errors.md). A test checks
// this table against docs/errors.md, so the two cannot drift.

/** Whether a client may send the same request again (docs/errors.md, "retry"). */
export type Retry = "backoff" | "after_change" | "never";

/** Every error code the API answers with, and its retry advice. */
export const ERROR_CODES = {
  malformed: "never",
  unauthenticated: "after_change",
  forbidden: "never",
  not_found: "never",
  method_not_allowed: "never",
  conflict: "after_change",
  too_large: "never",
  timeout: "backoff",
  cannot_open: "never",
  revoked: "never",
  below_minimum: "after_change",
  unknown_version: "never",
  wrong_key_type: "never",
  wrong_keyring: "never",
  keyring_disabled: "after_change",
  keyring_pending_deletion: "after_change",
  keyring_deleted: "never",
  not_exportable: "never",
  custody_unsupported: "never",
  import_refused: "never",
  claim_refused: "never",
  invalid_config: "never",
  invalid_schema: "never",
  key_refused: "never",
  migration_failed: "after_change",
  rate_limited: "backoff",
  unavailable: "backoff",
  custody_unavailable: "backoff",
} as const satisfies Record<string, Retry>;

/** A code the API documents; `unknown` for one a newer server added. */
export type ErrorCode = keyof typeof ERROR_CODES | "unknown";

/** An error answer of the API: its code, HTTP status and message. */
export class FleetKeyError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  /** Seconds the server asked to wait (`Retry-After`), when it did. */
  readonly retryAfter: number | undefined;

  constructor(code: string, status: number, message: string, retryAfter?: number) {
    super(`${code}: ${message}`);
    this.name = "FleetKeyError";
    this.code = code in ERROR_CODES ? (code as ErrorCode) : "unknown";
    this.status = status;
    this.retryAfter = retryAfter;
  }

  /** The retry advice for this error (an unknown code: by its status). */
  get retry(): Retry {
    if (this.code !== "unknown") return ERROR_CODES[this.code];
    return this.status === 429 || this.status >= 500 ? "backoff" : "never";
  }
}

/** The service could not be reached at all (no HTTP answer). */
export class ConnectionError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "ConnectionError";
  }
}

/** A local refusal: the envelope does not open or is not one this SDK can open. */
export class EnvelopeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "EnvelopeError";
  }
}
