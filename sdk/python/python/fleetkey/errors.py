"""Typed errors mapped from the API's error codes (docs/errors.md).

Every error answer of the API raises a subclass of :class:`FleetKeyError` named
after its code (``cannot_open`` raises :class:`CannotOpenError`), so callers catch
exactly what they handle. A code a newer server added raises :class:`FleetKeyError`
itself with ``code == "unknown"``. The SDK's tests check this table against
docs/errors.md, so the two cannot drift.
"""

from __future__ import annotations

from typing import Literal, Optional

from ._native import EnvelopeError

Retry = Literal["backoff", "after_change", "never"]

__all__ = ["Retry", "FleetKeyError", "UnreachableError", "EnvelopeError", "ERROR_CODES", "error_for"]


class FleetKeyError(Exception):
    """An error answer of the API: its code, HTTP status and message.

    ``retry`` is the advice of docs/errors.md: ``"backoff"`` (the same request may
    succeed later; the client already retried it), ``"after_change"`` (only once
    something changed: a fresh token, the resource re-read) or ``"never"``.
    """

    code: str = "unknown"
    retry_advice: Retry = "never"

    def __init__(self, code: str, status: int, message: str, retry_after: Optional[float] = None) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.message = message
        #: Seconds the server asked to wait (``Retry-After``), when it did.
        self.retry_after = retry_after
        #: The code as the server sent it (differs from ``code`` only when unknown).
        self.raw_code = code

    @property
    def retry(self) -> Retry:
        """The retry advice (for an unknown code: by its HTTP status)."""
        if self.code != "unknown":
            return self.retry_advice
        return "backoff" if self.status == 429 or self.status >= 500 else "never"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, status={self.status}, message={self.message!r})"


class UnreachableError(Exception):
    """The service could not be reached at all (no HTTP answer): refused, reset,
    timed out. The client retried it only for reads (a write may have landed)."""

class MalformedError(FleetKeyError):
    """``malformed`` (docs/errors.md)."""

    code = "malformed"
    retry_advice: Retry = "never"

class UnauthenticatedError(FleetKeyError):
    """``unauthenticated`` (docs/errors.md)."""

    code = "unauthenticated"
    retry_advice: Retry = "after_change"

class ForbiddenError(FleetKeyError):
    """``forbidden`` (docs/errors.md)."""

    code = "forbidden"
    retry_advice: Retry = "never"

class NotFoundError(FleetKeyError):
    """``not_found`` (docs/errors.md)."""

    code = "not_found"
    retry_advice: Retry = "never"

class MethodNotAllowedError(FleetKeyError):
    """``method_not_allowed`` (docs/errors.md)."""

    code = "method_not_allowed"
    retry_advice: Retry = "never"

class ConflictError(FleetKeyError):
    """``conflict`` (docs/errors.md)."""

    code = "conflict"
    retry_advice: Retry = "after_change"

class TooLargeError(FleetKeyError):
    """``too_large`` (docs/errors.md)."""

    code = "too_large"
    retry_advice: Retry = "never"

class RequestTimeoutError(FleetKeyError):
    """``timeout`` (docs/errors.md)."""

    code = "timeout"
    retry_advice: Retry = "backoff"

class CannotOpenError(FleetKeyError):
    """``cannot_open`` (docs/errors.md)."""

    code = "cannot_open"
    retry_advice: Retry = "never"

class RevokedError(FleetKeyError):
    """``revoked`` (docs/errors.md)."""

    code = "revoked"
    retry_advice: Retry = "never"

class BelowMinimumError(FleetKeyError):
    """``below_minimum`` (docs/errors.md)."""

    code = "below_minimum"
    retry_advice: Retry = "after_change"

class UnknownVersionError(FleetKeyError):
    """``unknown_version`` (docs/errors.md)."""

    code = "unknown_version"
    retry_advice: Retry = "never"

class WrongKeyTypeError(FleetKeyError):
    """``wrong_key_type`` (docs/errors.md)."""

    code = "wrong_key_type"
    retry_advice: Retry = "never"

class WrongKeyringError(FleetKeyError):
    """``wrong_keyring`` (docs/errors.md)."""

    code = "wrong_keyring"
    retry_advice: Retry = "never"

class KeyringDisabledError(FleetKeyError):
    """``keyring_disabled`` (docs/errors.md)."""

    code = "keyring_disabled"
    retry_advice: Retry = "after_change"

class KeyringPendingDeletionError(FleetKeyError):
    """``keyring_pending_deletion`` (docs/errors.md)."""

    code = "keyring_pending_deletion"
    retry_advice: Retry = "after_change"

class KeyringDeletedError(FleetKeyError):
    """``keyring_deleted`` (docs/errors.md)."""

    code = "keyring_deleted"
    retry_advice: Retry = "never"

class NotExportableError(FleetKeyError):
    """``not_exportable`` (docs/errors.md)."""

    code = "not_exportable"
    retry_advice: Retry = "never"

class CustodyUnsupportedError(FleetKeyError):
    """``custody_unsupported`` (docs/errors.md)."""

    code = "custody_unsupported"
    retry_advice: Retry = "never"

class ImportRefusedError(FleetKeyError):
    """``import_refused`` (docs/errors.md)."""

    code = "import_refused"
    retry_advice: Retry = "never"

class ClaimRefusedError(FleetKeyError):
    """``claim_refused`` (docs/errors.md)."""

    code = "claim_refused"
    retry_advice: Retry = "never"

class InvalidConfigError(FleetKeyError):
    """``invalid_config`` (docs/errors.md)."""

    code = "invalid_config"
    retry_advice: Retry = "never"

class InvalidSchemaError(FleetKeyError):
    """``invalid_schema`` (docs/errors.md)."""

    code = "invalid_schema"
    retry_advice: Retry = "never"

class KeyRefusedError(FleetKeyError):
    """``key_refused`` (docs/errors.md)."""

    code = "key_refused"
    retry_advice: Retry = "never"

class MigrationFailedError(FleetKeyError):
    """``migration_failed`` (docs/errors.md)."""

    code = "migration_failed"
    retry_advice: Retry = "after_change"

class RateLimitedError(FleetKeyError):
    """``rate_limited`` (docs/errors.md)."""

    code = "rate_limited"
    retry_advice: Retry = "backoff"

class UnavailableError(FleetKeyError):
    """``unavailable`` (docs/errors.md)."""

    code = "unavailable"
    retry_advice: Retry = "backoff"

class CustodyUnavailableError(FleetKeyError):
    """``custody_unavailable`` (docs/errors.md)."""

    code = "custody_unavailable"
    retry_advice: Retry = "backoff"


#: Every code the API documents, and its retry advice.
ERROR_CODES: dict[str, Retry] = {cls.code: cls.retry_advice for cls in FleetKeyError.__subclasses__()}

__all__ += [cls.__name__ for cls in FleetKeyError.__subclasses__()]

_CLASSES: dict[str, type[FleetKeyError]] = {cls.code: cls for cls in FleetKeyError.__subclasses__()}


def error_for(code: str, status: int, message: str, retry_after: Optional[float] = None) -> FleetKeyError:
    """The typed error for an answer's code (``FleetKeyError`` for an unknown one)."""
    return _CLASSES.get(code, FleetKeyError)(code, status, message, retry_after)
