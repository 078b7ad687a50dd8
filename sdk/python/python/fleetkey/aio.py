"""The asyncio client (``fleetkey.AsyncFleetKey``): the methods of
``fleetkey.FleetKey``, awaited. Sealing and opening files runs in a worker thread
(the native code releases the GIL), so the event loop keeps running.

Generated from client.py by sdk/python/gen_aio.py; do not edit."""

from __future__ import annotations

import os
import asyncio
from typing import Any, AsyncIterator, Mapping, Optional, TypeVar, Union

import httpx

from . import _core, _native
from ._api import Api
from ._core import BatchEntry, Context, Data, DataKey, Item, Plan, PublicKey, Sealed, Settings, Signature
from .client import _wrapped
from .envelope import aad_of
from .errors import FleetKeyError, UnreachableError

T = TypeVar("T")
PathLike = Union[str, "os.PathLike[str]"]


class AsyncFleetKey:
    """The fleetkey REST API, for asyncio.

    ``addr`` and ``token`` default to ``FLEETKEY_ADDR`` and ``FLEETKEY_TOKEN``.
    Errors raise the typed subclasses of :class:`fleetkey.FleetKeyError`. Requests
    are retried only where docs/errors.md says retrying is safe (``backoff``
    errors, up to ``attempts`` sends, honouring ``Retry-After``; a read that got no
    answer at all). The token never appears in ``repr``, errors or logs.

    ``fk.api.<operationId>(…)`` reaches every operation (JSON in and out); the
    methods here are the common ones with bytes in and out.
    """

    def __init__(
        self,
        addr: Optional[str] = None,
        token: Optional[str] = None,
        *,
        attempts: int = 3,
        timeout: float = 30.0,
        verify: Union[bool, str, None] = None,
        http: Optional[httpx.AsyncClient] = None,
    ) -> None:
        self._settings = Settings.make(addr, token, attempts, timeout, verify)
        self._http = http or httpx.AsyncClient(timeout=timeout, verify=self._settings.verify)
        self._own_http = http is None
        #: Every operation of the API by its operationId (each returns an awaitable).
        self.api: Api[Any] = Api(self._dispatch)

    @property
    def addr(self) -> str:
        return self._settings.addr

    def __repr__(self) -> str:
        return f"AsyncFleetKey({self._settings.addr!r})"

    async def __aenter__(self) -> "AsyncFleetKey":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Closes the connections (only those the client opened itself)."""
        if self._own_http:
            await self._http.aclose()

    # --- transport --------------------------------------------------------

    async def call(
        self,
        operation: str,
        path: Optional[Mapping[str, Any]] = None,
        query: Optional[Mapping[str, Any]] = None,
        body: Optional[Mapping[str, Any]] = None,
    ) -> Any:
        """Any operation by its operationId, e.g.
        ``call("list_devices", {"fleet": "f"}, {"state": "active"})``."""
        return await self._dispatch(operation, path or {}, query or {}, body)

    async def _dispatch(
        self,
        operation: str,
        path: Mapping[str, Any],
        query: Mapping[str, Any],
        body: Optional[Mapping[str, Any]],
    ) -> Any:
        s = self._settings
        req = _core.request(s.addr, operation, path, query, body)
        headers = s.headers()
        if req.body is not None:
            headers["content-type"] = "application/json"
        attempt = 0
        while True:
            attempt += 1
            try:
                r = await self._http.request(req.method, req.url, content=req.body, headers=headers)
            except httpx.TransportError as e:
                delay = _core.unreachable_delay(req.method, attempt, s.attempts)
                if delay is None:
                    raise UnreachableError(f"{req.method} {req.url}: {type(e).__name__}: {e}") from None
                await asyncio.sleep(delay)
                continue
            if r.is_success:
                return _core.decode_ok(r.status_code, r.content)
            error = _core.decode_error(r.status_code, r.headers, r.content)
            delay = _core.retry_delay(error, attempt, s.attempts)
            if delay is None:
                raise error
            await asyncio.sleep(delay)

    async def _run(self, plan: Plan[T]) -> T:
        return plan.finish(await self._dispatch(plan.operation, plan.path, plan.query, plan.body))

    async def _pages(self, pages: _core.Pages) -> AsyncIterator[Any]:
        after = pages.start
        while True:
            items, after = await self._run(pages.page(after))
            for item in items:
                yield item
            if after is None:
                return

    # --- keyrings ---------------------------------------------------------

    async def seal(self, keyring: str, data: Data, *, aad: Optional[Data] = None, context: Optional[Context] = None) -> Sealed:
        """Seals ``data`` with the keyring's primary version (an fk1 envelope)."""
        return await self._run(_core.seal(keyring, data, aad, context))

    async def unseal(
        self, keyring: str, ciphertext: bytes, *, aad: Optional[Data] = None, context: Optional[Context] = None
    ) -> bytes:
        """Opens an envelope the keyring sealed (with the same aad or context)."""
        return await self._run(_core.unseal(keyring, ciphertext, aad, context))

    async def rewrap(
        self, keyring: str, ciphertext: bytes, *, aad: Optional[Data] = None, context: Optional[Context] = None
    ) -> Sealed:
        """Reseals under the primary version without the plaintext leaving the service."""
        return await self._run(_core.rewrap(keyring, ciphertext, aad, context))

    async def seal_batch(self, keyring: str, entries: list[BatchEntry]) -> list[Item[Sealed]]:
        """Seals many items in one request; each answers on its own. An entry is
        bytes or ``{"data": …, "aad"|"context": …}``."""
        return await self._run(_core.seal_batch(keyring, entries))

    async def unseal_batch(self, keyring: str, entries: list[BatchEntry]) -> list[Item[bytes]]:
        """Opens many envelopes in one request; each answers on its own."""
        return await self._run(_core.unseal_batch(keyring, entries))

    async def rewrap_batch(self, keyring: str, entries: list[BatchEntry]) -> list[Item[Sealed]]:
        """Rewraps many envelopes in one request; each answers on its own."""
        return await self._run(_core.rewrap_batch(keyring, entries))

    async def data_key(
        self,
        keyring: str,
        *,
        aad: Optional[Data] = None,
        context: Optional[Context] = None,
        plaintext: bool = True,
    ) -> DataKey:
        """A fresh 32-byte data key and the same key sealed by the keyring."""
        return await self._run(_core.data_key(keyring, aad, context, plaintext))

    async def sign(self, keyring: str, message: Data) -> Signature:
        """Signs ``message`` with a signing keyring."""
        return await self._run(_core.sign(keyring, message))

    async def sign_batch(self, keyring: str, messages: list[Data]) -> list[Item[bytes]]:
        """Signs many messages in one request."""
        return await self._run(_core.sign_batch(keyring, messages))

    async def verify(self, keyring: str, message: Data, signature: bytes) -> bool:
        """Whether ``signature`` over ``message`` verifies under the keyring."""
        return await self._run(_core.verify(keyring, message, signature))

    async def mac(self, keyring: str, message: Data) -> Signature:
        """The MAC tag of ``message`` under an HMAC keyring."""
        return await self._run(_core.mac(keyring, message))

    async def verify_mac(self, keyring: str, message: Data, tag: bytes) -> bool:
        """Whether a MAC tag verifies (checked in constant time by the service)."""
        return await self._run(_core.verify_mac(keyring, message, tag))

    async def public_key(self, keyring: str, version: Optional[int] = None) -> PublicKey:
        """A signing keyring's public key (the primary version unless given), for
        verifying offline with :meth:`PublicKey.verify`."""
        return await self._run(_core.public_key(keyring, version))

    async def recipient(self, keyring: str, version: Optional[int] = None) -> str:
        """An ``x-wing`` keyring's ``fk1r:`` recipient string, to seal to with
        :func:`fleetkey.envelope.seal_to`."""
        return await self._run(_core.recipient(keyring, version))

    async def random(self, n: int) -> bytes:
        """``n`` random bytes from the service."""
        return await self._run(_core.random_bytes(n))

    # --- envelopes under a data key (mode 4), sealed in process -----------

    async def seal_local(
        self,
        keyring: str,
        data: Data,
        *,
        aad: Optional[Data] = None,
        context: Optional[Context] = None,
        algorithm: str = "aes-256-gcm",
    ) -> bytes:
        """Envelope encryption: asks the keyring for a data key, seals ``data`` here
        under it, and puts the sealed data key in the envelope's header. The data
        never leaves this process."""
        dk = await self.data_key(keyring, aad=aad, context=context)
        return _native.seal_wrapped(_core.key_bytes(dk), dk.ciphertext, _core.to_bytes(data), aad_of(aad, context), algorithm)

    async def open_local(
        self,
        envelope: bytes,
        *,
        keyring: Optional[str] = None,
        aad: Optional[Data] = None,
        context: Optional[Context] = None,
    ) -> bytes:
        """Opens a :meth:`seal_local` envelope: the keyring (by default the one its
        header names) unseals the data key, the body opens here."""
        header = _native.parse_header(bytes(envelope))
        key = await self.unseal(keyring or header.key_id, _wrapped(header), aad=aad, context=context)
        return _native.open_wrapped(bytes(envelope), key, aad_of(aad, context))

    async def seal_file(
        self,
        keyring: str,
        src: PathLike,
        dst: PathLike,
        *,
        aad: Optional[Data] = None,
        context: Optional[Context] = None,
        algorithm: str = "aes-256-gcm",
    ) -> int:
        """:meth:`seal_local` from file to file in constant memory; ``dst`` appears
        only when complete. Returns the plaintext length."""
        dk = await self.data_key(keyring, aad=aad, context=context)
        a = aad_of(aad, context)
        return await asyncio.to_thread(_native.seal_wrapped_file, _core.key_bytes(dk), dk.ciphertext, os.fspath(src), os.fspath(dst), a, algorithm)

    async def open_file(
        self,
        src: PathLike,
        dst: PathLike,
        *,
        keyring: Optional[str] = None,
        aad: Optional[Data] = None,
        context: Optional[Context] = None,
    ) -> int:
        """Opens a :meth:`seal_file` envelope from file to file; ``dst`` appears only
        when every segment verified. Returns the plaintext length."""
        header = await asyncio.to_thread(_native.read_header_file, os.fspath(src))
        key = await self.unseal(keyring or header.key_id, _wrapped(header), aad=aad, context=context)
        return await asyncio.to_thread(_native.open_wrapped_file, os.fspath(src), os.fspath(dst), key, aad_of(aad, context))

    # --- fleets, devices, audit --------------------------------------------

    def devices(self, fleet: str, **filters: Any) -> AsyncIterator[dict[str, Any]]:
        """Every device of a fleet matching the filters of ``list_devices``
        (``state``, ``profile``, ``seen_before``, ``seen_after``, ``limit`` per
        page), page by page."""
        return self._pages(_core.devices(fleet, filters))

    def fleets(self, *, limit: Optional[int] = None) -> AsyncIterator[dict[str, Any]]:
        """Every fleet the token holds a scope on."""
        return self._pages(_core.fleets(limit))

    def audit(self, *, after: Optional[int] = None, limit: Optional[int] = None) -> AsyncIterator[dict[str, Any]]:
        """The audit log's entries after sequence ``after``, oldest first."""
        return self._pages(_core.audit(after, limit))


__all__ = ["AsyncFleetKey", "FleetKeyError"]
