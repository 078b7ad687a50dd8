"""What the sync and asyncio clients share: settings, request building, error
decoding, the retry rule, and the "plans" of the byte-friendly helpers (which
operation to call and how to turn its answer into Python values), so that the two
clients differ only in how they send and sleep."""

from __future__ import annotations

import base64
import json
import os
import random
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Iterable, Mapping, Optional, TypeVar, Union
from urllib.parse import quote, urlencode

from ._api import OPERATIONS
from .errors import FleetKeyError, error_for

T = TypeVar("T")

#: Bytes in: ``bytes``-like, or ``str`` (encoded as UTF-8).
Data = Union[bytes, bytearray, memoryview, str]
#: An encryption context (docs/formats.md, "Encryption context").
Context = Mapping[str, str]

USER_AGENT = "fleetkey-python/0.1.0"


def to_bytes(data: Data) -> bytes:
    return data.encode() if isinstance(data, str) else bytes(data)


def b64(data: Data) -> str:
    return base64.b64encode(to_bytes(data)).decode("ascii")


def unb64(text: Optional[str]) -> bytes:
    return base64.b64decode(text or "", validate=True)


def binding(aad: Optional[Data], context: Optional[Context]) -> dict[str, Any]:
    """The ``aad``/``context`` fields of a request (never both: the API refuses it)."""
    if aad is not None and context is not None:
        raise ValueError("pass aad or context, not both")
    if aad is not None:
        return {"aad": b64(aad)}
    if context is not None:
        return {"context": dict(context)}
    return {}


@dataclass(frozen=True)
class Settings:
    """How to reach the service. ``addr`` and ``token`` default to
    ``FLEETKEY_ADDR`` and ``FLEETKEY_TOKEN``; ``verify`` to ``FLEETKEY_CACERT`` (a CA
    file for a private TLS certificate) or the system's roots."""

    addr: str
    token: Optional[str] = field(repr=False)
    attempts: int = 3
    timeout: float = 30.0
    verify: Union[bool, str] = True

    @staticmethod
    def make(
        addr: Optional[str],
        token: Optional[str],
        attempts: int,
        timeout: float,
        verify: Union[bool, str, None],
    ) -> "Settings":
        addr = addr or os.environ.get("FLEETKEY_ADDR")
        if not addr:
            raise ValueError("no service address: pass addr or set FLEETKEY_ADDR")
        if not addr.startswith(("http://", "https://")):
            raise ValueError("addr must start with http:// or https://")
        token = token if token is not None else os.environ.get("FLEETKEY_TOKEN")
        if verify is None:
            verify = os.environ.get("FLEETKEY_CACERT") or True
        return Settings(addr.rstrip("/"), token or None, max(1, attempts), timeout, verify)

    def headers(self) -> dict[str, str]:
        h = {"accept": "application/json", "user-agent": USER_AGENT}
        if self.token:
            h["authorization"] = f"Bearer {self.token}"
        return h


@dataclass(frozen=True)
class Request:
    method: str
    url: str
    body: Optional[bytes]


def request(
    addr: str,
    operation: str,
    path: Optional[Mapping[str, Any]] = None,
    query: Optional[Mapping[str, Any]] = None,
    body: Optional[Mapping[str, Any]] = None,
) -> Request:
    """The HTTP request for an operation: its method, URL (path parameters
    percent-encoded, ``None`` query values left out) and JSON body."""
    try:
        method, template = OPERATIONS[operation]
    except KeyError:
        raise ValueError(f"unknown operation {operation!r} (see fleetkey.OPERATIONS)") from None
    params = dict(path or {})
    url = template
    for name in list(params):
        token = "{" + name + "}"
        if token not in url:
            raise ValueError(f"{operation}: no path parameter {name!r}")
        value = str(params.pop(name))
        if value in ("", ".", ".."):
            # Never a name the API gives out, and a dot segment would be resolved
            # away by URL normalisation, reaching another route.
            raise ValueError(f"{operation}: path parameter {name!r} must not be {value!r}")
        url = url.replace(token, quote(value, safe=""))
    if "{" in url:
        raise ValueError(f"{operation}: missing path parameter in {template}")
    pairs = [(k, _query_value(v)) for k, v in (query or {}).items() if v is not None]
    if pairs:
        url += "?" + urlencode(pairs)
    data = None if body is None else json.dumps(body, separators=(",", ":")).encode()
    return Request(method, addr + url, data)


def _query_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def decode_error(status: int, headers: Mapping[str, str], content: bytes) -> FleetKeyError:
    """The typed error of an error answer; a body that is not the API's error
    object still gives an error (code ``unknown``, judged by its status)."""
    retry_after: Optional[float] = None
    raw = headers.get("retry-after")
    if raw is not None:
        try:
            retry_after = max(0.0, min(float(raw), 60.0))
        except ValueError:
            retry_after = None
    code, message = "unknown", f"HTTP {status}"
    try:
        err = json.loads(content).get("error") or {}
        code = str(err.get("code") or code)
        message = str(err.get("message") or message)
    except (ValueError, AttributeError):
        pass
    return error_for(code, status, message, retry_after)


def decode_ok(status: int, content: bytes) -> Any:
    if status == 204 or not content:
        return None
    return json.loads(content)


def backoff(attempt: int) -> float:
    """Exponential backoff with jitter: 0.1 s, 0.2 s, 0.4 s … at most 2 s."""
    return min(2.0, 0.1 * 2.0 ** (attempt - 1)) * (0.5 + random.random() / 2)


def retry_delay(error: FleetKeyError, attempt: int, attempts: int) -> Optional[float]:
    """How long to wait before sending the same request again, or ``None`` not to:
    only errors docs/errors.md marks "yes, with backoff", honouring
    ``Retry-After``."""
    if error.retry != "backoff" or attempt >= attempts:
        return None
    return error.retry_after if error.retry_after is not None else backoff(attempt)


def unreachable_delay(method: str, attempt: int, attempts: int) -> Optional[float]:
    """When nothing answered: only reads are sent again (a write may have landed)."""
    if method != "GET" or attempt >= attempts:
        return None
    return backoff(attempt)


# --- the helpers' plans -----------------------------------------------------


@dataclass(frozen=True)
class Plan(Generic[T]):
    """One API call and how to read its answer."""

    operation: str
    path: Mapping[str, Any]
    body: Optional[Mapping[str, Any]]
    finish: Callable[[Any], T]
    query: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Sealed:
    """An fk1 envelope sealed by a keyring, and the key version that sealed it."""

    ciphertext: bytes
    key_version: int


@dataclass(frozen=True)
class DataKey:
    """A data key: ``plaintext`` (32 bytes; ``None`` when not asked for) and the
    same key sealed by the keyring (``ciphertext``), to keep beside the data."""

    plaintext: Optional[bytes] = field(repr=False)
    ciphertext: bytes
    key_version: int


def key_bytes(dk: DataKey) -> bytes:
    """The data key's plaintext (asked for by the envelope helpers)."""
    if dk.plaintext is None or len(dk.plaintext) != 32:
        raise ValueError("the service answered a data key without its 32-byte plaintext")
    return dk.plaintext


@dataclass(frozen=True)
class Signature:
    """A signature (or MAC tag) and the key version that made it."""

    signature: bytes
    key_version: int


@dataclass(frozen=True)
class PublicKey:
    """A signing keyring version's public key (raw bytes, or an ``fk1r:`` string)."""

    algorithm: str
    key_version: int
    public_key: bytes

    def verify(self, message: Data, signature: bytes) -> bool:
        """Checks a signature offline (no call to the service)."""
        from .envelope import verify_signature

        return verify_signature(self.algorithm, self.public_key, message, signature)


@dataclass(frozen=True)
class Item(Generic[T]):
    """One item of a batch: its value, or the error the service gave for it."""

    value: Optional[T] = None
    error: Optional[FleetKeyError] = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def unwrap(self) -> T:
        """The value, or raises the item's error."""
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]


def _items(r: Any, value: Callable[[Mapping[str, Any]], T]) -> list[Item[T]]:
    out: list[Item[T]] = []
    for i in r["results"]:
        e = i.get("error")
        if e:
            out.append(Item(error=error_for(e.get("code", "unknown"), 0, e.get("message", ""))))
        else:
            out.append(Item(value=value(i)))
    return out


def _sealed(r: Mapping[str, Any]) -> Sealed:
    return Sealed(unb64(r["ciphertext"]), int(r["key_version"]))


def seal(keyring: str, data: Data, aad: Optional[Data], context: Optional[Context]) -> Plan[Sealed]:
    return Plan("seal", {"name": keyring}, {"plaintext": b64(data), **binding(aad, context)}, _sealed)


def unseal(keyring: str, ciphertext: bytes, aad: Optional[Data], context: Optional[Context]) -> Plan[bytes]:
    body = {"ciphertext": b64(ciphertext), **binding(aad, context)}
    return Plan("unseal", {"name": keyring}, body, lambda r: unb64(r["plaintext"]))


def rewrap(keyring: str, ciphertext: bytes, aad: Optional[Data], context: Optional[Context]) -> Plan[Sealed]:
    return Plan("rewrap", {"name": keyring}, {"ciphertext": b64(ciphertext), **binding(aad, context)}, _sealed)


BatchEntry = Union[Data, Mapping[str, Any]]


def _entry(entry: BatchEntry, key: str) -> dict[str, Any]:
    """A batch entry: bytes, or ``{"data": …, "aad": …}`` / ``{"data": …, "context": …}``."""
    if isinstance(entry, Mapping):
        return {key: b64(entry["data"]), **binding(entry.get("aad"), entry.get("context"))}
    return {key: b64(entry)}


def seal_batch(keyring: str, entries: Iterable[BatchEntry]) -> Plan[list[Item[Sealed]]]:
    body = {"items": [_entry(e, "plaintext") for e in entries]}
    return Plan("seal_batch", {"name": keyring}, body, lambda r: _items(r, _sealed))


def unseal_batch(keyring: str, entries: Iterable[BatchEntry]) -> Plan[list[Item[bytes]]]:
    body = {"items": [_entry(e, "ciphertext") for e in entries]}
    return Plan("unseal_batch", {"name": keyring}, body, lambda r: _items(r, lambda i: unb64(i.get("plaintext"))))


def rewrap_batch(keyring: str, entries: Iterable[BatchEntry]) -> Plan[list[Item[Sealed]]]:
    body = {"items": [_entry(e, "ciphertext") for e in entries]}
    return Plan("rewrap_batch", {"name": keyring}, body, lambda r: _items(r, _sealed))


def data_key(keyring: str, aad: Optional[Data], context: Optional[Context], plaintext: bool) -> Plan[DataKey]:
    body = {**binding(aad, context), "return_plaintext": plaintext}

    def finish(r: Mapping[str, Any]) -> DataKey:
        pt = unb64(r["plaintext"]) if r.get("plaintext") else None
        return DataKey(pt, unb64(r["ciphertext"]), int(r["key_version"]))

    return Plan("datakey", {"name": keyring}, body, finish)


def _signature(r: Mapping[str, Any]) -> Signature:
    return Signature(unb64(r["signature"]), int(r["key_version"]))


def sign(keyring: str, message: Data) -> Plan[Signature]:
    return Plan("sign", {"name": keyring}, {"message": b64(message)}, _signature)


def sign_batch(keyring: str, messages: Iterable[Data]) -> Plan[list[Item[bytes]]]:
    body = {"items": [{"message": b64(m)} for m in messages]}
    return Plan("sign_batch", {"name": keyring}, body, lambda r: _items(r, lambda i: unb64(i.get("signature"))))


def verify(keyring: str, message: Data, signature: bytes) -> Plan[bool]:
    body = {"message": b64(message), "signature": b64(signature)}
    return Plan("verify", {"name": keyring}, body, lambda r: bool(r["valid"]))


def mac(keyring: str, message: Data) -> Plan[Signature]:
    return Plan("mac", {"name": keyring}, {"message": b64(message)}, _signature)


def verify_mac(keyring: str, message: Data, tag: bytes) -> Plan[bool]:
    body = {"message": b64(message), "signature": b64(tag)}
    return Plan("mac_verify", {"name": keyring}, body, lambda r: bool(r["valid"]))


def public_key(keyring: str, version: Optional[int]) -> Plan[PublicKey]:
    def finish(r: Mapping[str, Any]) -> PublicKey:
        return PublicKey(str(r["algorithm"]), int(r["key_version"]), unb64(r["public_key"]))

    return Plan("public_key", {"name": keyring}, None, finish, {"format": "raw", "version": version})


def recipient(keyring: str, version: Optional[int]) -> Plan[str]:
    return Plan(
        "public_key", {"name": keyring}, None, lambda r: str(r["public_key"]), {"format": "fk1r", "version": version}
    )


def random_bytes(n: int) -> Plan[bytes]:
    return Plan("random", {}, None, lambda r: unb64(r["random"]), {"bytes": n})


@dataclass(frozen=True)
class Pages:
    """A cursor-paged list: the operation, where its items are, and its filters."""

    operation: str
    items: str
    path: Mapping[str, Any]
    query: Mapping[str, Any]
    #: The cursor to start after (``None``: from the beginning).
    start: Any = None

    def page(self, after: Any) -> Plan[tuple[list[Any], Any]]:
        return Plan(
            self.operation,
            self.path,
            None,
            lambda r: (list(r[self.items]), r.get("next_after")),
            {**self.query, "after": after},
        )


def devices(fleet: str, filters: Mapping[str, Any]) -> Pages:
    return Pages("list_devices", "devices", {"fleet": fleet}, filters)


def fleets(limit: Optional[int]) -> Pages:
    return Pages("list_fleets", "fleets", {}, {"limit": limit})


def audit(after: Optional[int], limit: Optional[int]) -> Pages:
    return Pages("audit_page", "entries", {}, {"limit": limit}, after)
