"""fleetkey: the SDK for the fleetkey key service.

* :class:`FleetKey` (sync) and :class:`AsyncFleetKey` (asyncio): every API
  operation (``fk.api.<operationId>``) and byte-friendly methods for the common ones;
  envelope encryption with data keys sealed in process (``seal_local``,
  ``seal_file``).
* :mod:`fleetkey.envelope`: the fk1 formats without the service (seal to an X-Wing
  recipient, open with an identity, verify signatures offline).
* :mod:`fleetkey.errors`: one exception class per API error code (docs/errors.md).

``FLEETKEY_ADDR`` and ``FLEETKEY_TOKEN`` are honoured. See docs/sdk.md.
"""

from ._api import OPERATIONS, Api
from ._core import DataKey, Item, PublicKey, Sealed, Signature
from .aio import AsyncFleetKey
from .client import FleetKey
from .errors import *  # noqa: F401,F403 (one class per error code)
from .errors import ERROR_CODES, EnvelopeError, FleetKeyError, UnreachableError, error_for

__version__ = "0.1.0"

__all__ = [
    "OPERATIONS",
    "Api",
    "AsyncFleetKey",
    "DataKey",
    "ERROR_CODES",
    "EnvelopeError",
    "FleetKey",
    "FleetKeyError",
    "Item",
    "PublicKey",
    "Sealed",
    "Signature",
    "UnreachableError",
    "error_for",
]
