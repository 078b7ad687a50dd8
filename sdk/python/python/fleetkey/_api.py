# Generated from sdk/typescript/openapi.json by sdk/python/gen_operations.py; do not edit.
"""Every operation of the fleetkey API by its operationId, JSON in and out."""

from __future__ import annotations

from typing import Any, Callable, Generic, Mapping, Optional, TypeVar

R = TypeVar("R")

#: operationId -> (HTTP method, path template)
OPERATIONS: dict[str, tuple[str, str]] = {
    "audit_checkpoint": ("GET", "/v1/audit/checkpoint"),
    "audit_page": ("GET", "/v1/audit"),
    "audit_public_key": ("GET", "/v1/audit/public-key"),
    "audit_verify": ("GET", "/v1/audit/verify"),
    "cancel_deletion": ("POST", "/v1/keyrings/{name}/cancel-deletion"),
    "claim_device": ("POST", "/v1/claims"),
    "confirm_rotation": ("POST", "/v1/devices/rotation/confirm"),
    "create_aws_access_key": ("POST", "/v1/tokens/aws-access-keys"),
    "create_claim_code": ("POST", "/v1/fleets/{fleet}/devices/{id}/claim-codes"),
    "create_fleet": ("POST", "/v1/fleets"),
    "create_keyring": ("POST", "/v1/keyrings"),
    "create_token": ("POST", "/v1/tokens"),
    "datakey": ("POST", "/v1/keyrings/{name}/datakey"),
    "datakey_batch": ("POST", "/v1/keyrings/{name}/datakey/batch"),
    "decommission_device": ("POST", "/v1/fleets/{fleet}/devices/{id}/decommission"),
    "delete_alias": ("DELETE", "/v1/aliases/{alias}"),
    "device_history": ("GET", "/v1/fleets/{fleet}/devices/{id}/history"),
    "directory_key": ("GET", "/v1/directory"),
    "directory_record": ("GET", "/v1/directory/{identity}"),
    "disable": ("POST", "/v1/keyrings/{name}/disable"),
    "enable": ("POST", "/v1/keyrings/{name}/enable"),
    "evidence": ("GET", "/v1/compliance/evidence"),
    "export": ("POST", "/v1/keyrings/{name}/export"),
    "factory_device": ("POST", "/v1/factory/devices"),
    "factory_recipient": ("GET", "/v1/factory/recipient"),
    "factory_reset": ("POST", "/v1/factory/reset"),
    "fleet_patterns": ("GET", "/v1/fleets/{fleet}/session-patterns"),
    "fleet_summary": ("GET", "/v1/fleets/{fleet}/summary"),
    "get_config": ("GET", "/v1/fleets/{fleet}/devices/{id}/config"),
    "import": ("POST", "/v1/keyrings/{name}/import"),
    "import_recipient": ("GET", "/v1/keyrings/{name}/import-recipient"),
    "ingest": ("POST", "/v1/ingest"),
    "list_aliases": ("GET", "/v1/aliases"),
    "list_commands": ("GET", "/v1/fleets/{fleet}/devices/{id}/commands"),
    "list_devices": ("GET", "/v1/fleets/{fleet}/devices"),
    "list_fleets": ("GET", "/v1/fleets"),
    "list_keyrings": ("GET", "/v1/keyrings"),
    "list_tokens": ("GET", "/v1/tokens"),
    "mac": ("POST", "/v1/keyrings/{name}/mac"),
    "mac_batch": ("POST", "/v1/keyrings/{name}/mac/batch"),
    "mac_verify": ("POST", "/v1/keyrings/{name}/mac/verify"),
    "mac_verify_batch": ("POST", "/v1/keyrings/{name}/mac/verify/batch"),
    "migrate_configs": ("POST", "/v1/fleets/{fleet}/config/migrate"),
    "onboarding_challenge": ("POST", "/v1/onboarding/challenge"),
    "onboarding_complete": ("POST", "/v1/onboarding/complete"),
    "patch_config": ("PATCH", "/v1/fleets/{fleet}/devices/{id}/config"),
    "poll_commands": ("POST", "/v1/devices/commands"),
    "propose_rotation": ("POST", "/v1/devices/rotation"),
    "public_key": ("GET", "/v1/keyrings/{name}/public-key"),
    "put_alias": ("PUT", "/v1/aliases/{alias}"),
    "put_config": ("PUT", "/v1/fleets/{fleet}/devices/{id}/config"),
    "random": ("GET", "/v1/random"),
    "reset_config": ("POST", "/v1/fleets/{fleet}/devices/{id}/config/reset"),
    "revoke_token": ("POST", "/v1/tokens/{id}/revoke"),
    "revoke_version": ("POST", "/v1/keyrings/{name}/versions/{version}/revoke"),
    "rewrap": ("POST", "/v1/keyrings/{name}/rewrap"),
    "rewrap_batch": ("POST", "/v1/keyrings/{name}/rewrap/batch"),
    "rotate_device": ("POST", "/v1/fleets/{fleet}/devices/{id}/rotate"),
    "rotate_keyring": ("POST", "/v1/keyrings/{name}/rotate"),
    "schedule_deletion": ("POST", "/v1/keyrings/{name}/schedule-deletion"),
    "seal": ("POST", "/v1/keyrings/{name}/seal"),
    "seal_batch": ("POST", "/v1/keyrings/{name}/seal/batch"),
    "service_patterns": ("GET", "/v1/session-patterns"),
    "set_details": ("PATCH", "/v1/keyrings/{name}"),
    "set_device_state": ("POST", "/v1/fleets/{fleet}/devices/{id}/state"),
    "set_fleet_patterns": ("PUT", "/v1/fleets/{fleet}/session-patterns"),
    "set_policy": ("PUT", "/v1/keyrings/{name}/policy"),
    "set_rotation_policy": ("PUT", "/v1/fleets/{fleet}/rotation-policy"),
    "set_schema": ("PUT", "/v1/fleets/{fleet}/schema"),
    "set_service_patterns": ("PUT", "/v1/session-patterns"),
    "set_static_key": ("PUT", "/v1/fleets/{fleet}/static-key"),
    "show_device": ("GET", "/v1/fleets/{fleet}/devices/{id}"),
    "show_fleet": ("GET", "/v1/fleets/{fleet}"),
    "show_keyring": ("GET", "/v1/keyrings/{name}"),
    "show_schema": ("GET", "/v1/fleets/{fleet}/schema"),
    "sign": ("POST", "/v1/keyrings/{name}/sign"),
    "sign_batch": ("POST", "/v1/keyrings/{name}/sign/batch"),
    "unseal": ("POST", "/v1/keyrings/{name}/unseal"),
    "unseal_batch": ("POST", "/v1/keyrings/{name}/unseal/batch"),
    "verify": ("POST", "/v1/keyrings/{name}/verify"),
    "verify_batch": ("POST", "/v1/keyrings/{name}/verify/batch"),
    "wipe_receipt": ("POST", "/v1/onboarding/wipe-receipt"),
}

Dispatch = Callable[[str, Mapping[str, Any], Mapping[str, Any], Optional[Mapping[str, Any]]], R]


class Api(Generic[R]):
    """Every operation of ``/v1/openapi.json``, named by its operationId.

    Path parameters are positional, query parameters keywords (``None`` leaves one
    out), a JSON body is ``body``. Answers are the decoded JSON (``None`` for 204).
    On :class:`fleetkey.FleetKey` a call returns the answer; on
    :class:`fleetkey.AsyncFleetKey` it returns an awaitable.
    """

    def __init__(self, dispatch: Dispatch[R]) -> None:
        self._dispatch = dispatch

    def audit_checkpoint(self, *, covering: int | None = None) -> R:
        """Sign the audit head now and return the checkpoint (or, with `covering`, return a stored one).

        ``GET /v1/audit/checkpoint``
        """
        return self._dispatch("audit_checkpoint", {}, {"covering": covering}, None)

    def audit_page(self, *, after: int | None = None, limit: int | None = None) -> R:
        """A page of the audit log.

        ``GET /v1/audit``
        """
        return self._dispatch("audit_page", {}, {"after": after, "limit": limit}, None)

    def audit_public_key(self) -> R:
        """The public key that verifies audit checkpoints (for `fleetkey audit verify`).

        ``GET /v1/audit/public-key``
        """
        return self._dispatch("audit_public_key", {}, {}, None)

    def audit_verify(self, *, full: bool | None = None) -> R:
        """The stored audit chain verified in place: every entry's hash chain (on from the last call; from genesis with `full=true`; at most 200,000 entries per call) and the newest checkpoint's signature and head.

        ``GET /v1/audit/verify``
        """
        return self._dispatch("audit_verify", {}, {"full": full}, None)

    def cancel_deletion(self, name: str) -> R:
        """Cancel a scheduled deletion; the keyring comes back disabled.

        ``POST /v1/keyrings/{name}/cancel-deletion``
        """
        return self._dispatch("cancel_deletion", {"name": name}, {}, None)

    def claim_device(self, *, body: Mapping[str, Any]) -> R:
        """Claim a device: binds it to an account or site; each code works once.

        ``POST /v1/claims``
        """
        return self._dispatch("claim_device", {}, {}, body)

    def confirm_rotation(self, *, body: Mapping[str, Any]) -> R:
        """A device confirms its rotation with the new key; the old credential is revoked.

        ``POST /v1/devices/rotation/confirm``
        """
        return self._dispatch("confirm_rotation", {}, {}, body)

    def create_aws_access_key(self, *, body: Mapping[str, Any]) -> R:
        """Create an AWS access key pair bound to a token (the secret is in the response only).

        ``POST /v1/tokens/aws-access-keys``
        """
        return self._dispatch("create_aws_access_key", {}, {}, body)

    def create_claim_code(self, fleet: str, id: str, *, body: Mapping[str, Any]) -> R:
        """Create a one-time claim code for a device.

        ``POST /v1/fleets/{fleet}/devices/{id}/claim-codes``
        """
        return self._dispatch("create_claim_code", {"fleet": fleet, "id": id}, {}, body)

    def create_fleet(self, *, body: Mapping[str, Any]) -> R:
        """Create a fleet with a fresh issuing key.

        ``POST /v1/fleets``
        """
        return self._dispatch("create_fleet", {}, {}, body)

    def create_keyring(self, *, body: Mapping[str, Any]) -> R:
        """Create a keyring.

        ``POST /v1/keyrings``
        """
        return self._dispatch("create_keyring", {}, {}, body)

    def create_token(self, *, body: Mapping[str, Any]) -> R:
        """Create a token (the secret is in the response only).

        ``POST /v1/tokens``
        """
        return self._dispatch("create_token", {}, {}, body)

    def datakey(self, name: str, *, body: Mapping[str, Any]) -> R:
        """Make a fresh 256-bit data key, sealed under the keyring's primary version.

        ``POST /v1/keyrings/{name}/datakey``
        """
        return self._dispatch("datakey", {"name": name}, {}, body)

    def datakey_batch(self, name: str, *, body: Mapping[str, Any]) -> R:
        """Make many data keys; each item has its own result.

        ``POST /v1/keyrings/{name}/datakey/batch``
        """
        return self._dispatch("datakey_batch", {"name": name}, {}, body)

    def decommission_device(self, fleet: str, id: str, *, body: Mapping[str, Any]) -> R:
        """Decommission a device: audit entry and revocation of all its credentials at once.

        ``POST /v1/fleets/{fleet}/devices/{id}/decommission``
        """
        return self._dispatch("decommission_device", {"fleet": fleet, "id": id}, {}, body)

    def delete_alias(self, alias: str) -> R:
        """Remove `alias/{alias}` (its keyring is untouched).

        ``DELETE /v1/aliases/{alias}``
        """
        return self._dispatch("delete_alias", {"alias": alias}, {}, None)

    def device_history(self, fleet: str, id: str, *, limit: int | None = None, before: int | None = None) -> R:
        """A device's history: audit entries, sessions, latest telemetry.

        ``GET /v1/fleets/{fleet}/devices/{id}/history``
        """
        return self._dispatch("device_history", {"fleet": fleet, "id": id}, {"limit": limit, "before": before}, None)

    def directory_key(self) -> R:
        """The key that signs every directory record (no token).

        ``GET /v1/directory``
        """
        return self._dispatch("directory_key", {}, {}, None)

    def directory_record(self, identity: str) -> R:
        """An identity's newest signed key record (no token: records are public and signed).

        ``GET /v1/directory/{identity}``
        """
        return self._dispatch("directory_record", {"identity": identity}, {}, None)

    def disable(self, name: str) -> R:
        """Disable a keyring: every cryptographic operation is refused until it is enabled.

        ``POST /v1/keyrings/{name}/disable``
        """
        return self._dispatch("disable", {"name": name}, {}, None)

    def enable(self, name: str) -> R:
        """Enable a disabled keyring.

        ``POST /v1/keyrings/{name}/enable``
        """
        return self._dispatch("enable", {"name": name}, {}, None)

    def evidence(self) -> R:
        """Evidence for compliance reports: TLS, custody, keyring rotation, the audit chain, tokens (counted), backups, rate limits, refused authentications.

        ``GET /v1/compliance/evidence``
        """
        return self._dispatch("evidence", {}, {}, None)

    def export(self, name: str, *, body: Mapping[str, Any]) -> R:
        """Export a version sealed to a recipient (exportable keyrings only).

        ``POST /v1/keyrings/{name}/export``
        """
        return self._dispatch("export", {"name": name}, {}, body)

    def factory_device(self, *, body: Mapping[str, Any]) -> R:
        """Register a device from the factory and issue its birth credential. Retrying with the same hardware id and keys returns the registration (200).

        ``POST /v1/factory/devices``
        """
        return self._dispatch("factory_device", {}, {}, body)

    def factory_recipient(self) -> R:
        """The recipient jigs seal constrained devices' factory secrets to.

        ``GET /v1/factory/recipient``
        """
        return self._dispatch("factory_recipient", {}, {}, None)

    def factory_reset(self, *, body: Mapping[str, Any]) -> R:
        """Retire a decommissioned device's hardware id so the hardware can be provisioned again.

        ``POST /v1/factory/reset``
        """
        return self._dispatch("factory_reset", {}, {}, body)

    def fleet_patterns(self, fleet: str) -> R:
        """A fleet's list and what its devices may use now.

        ``GET /v1/fleets/{fleet}/session-patterns``
        """
        return self._dispatch("fleet_patterns", {"fleet": fleet}, {}, None)

    def fleet_summary(self, fleet: str) -> R:
        """A fleet at a glance (the console's overview): devices by state and profile, connected now, last heard from.

        ``GET /v1/fleets/{fleet}/summary``
        """
        return self._dispatch("fleet_summary", {"fleet": fleet}, {}, None)

    def get_config(self, fleet: str, id: str) -> R:
        """A device's configuration (migrated to the newest schema for this read).

        ``GET /v1/fleets/{fleet}/devices/{id}/config``
        """
        return self._dispatch("get_config", {"fleet": fleet, "id": id}, {}, None)

    def import_(self, name: str, *, body: Mapping[str, Any]) -> R:
        """Import key material as a new primary version.

        ``POST /v1/keyrings/{name}/import``
        """
        return self._dispatch("import", {"name": name}, {}, body)

    def import_recipient(self, name: str) -> R:
        """Today's import recipient.

        ``GET /v1/keyrings/{name}/import-recipient``
        """
        return self._dispatch("import_recipient", {"name": name}, {}, None)

    def ingest(self, *, body: Mapping[str, Any]) -> R:
        """Verify constrained devices' frames forwarded by a gateway. Each frame is judged on its own; a device outside the token's `ingest:<fleet>` scopes is refused as `unknown_device`, the same answer as for an id that does not exist.

        ``POST /v1/ingest``
        """
        return self._dispatch("ingest", {}, {}, body)

    def list_aliases(self, *, keyring: str | None = None) -> R:
        """List aliases.

        ``GET /v1/aliases``
        """
        return self._dispatch("list_aliases", {}, {"keyring": keyring}, None)

    def list_commands(self, fleet: str, id: str, *, open: bool | None = None) -> R:
        """A device's commands.

        ``GET /v1/fleets/{fleet}/devices/{id}/commands``
        """
        return self._dispatch("list_commands", {"fleet": fleet, "id": id}, {"open": open}, None)

    def list_devices(self, fleet: str, *, after: str | None = None, limit: int | None = None, state: str | None = None, profile: str | None = None, seen_before: int | None = None, seen_after: int | None = None) -> R:
        """A page of a fleet's devices.

        ``GET /v1/fleets/{fleet}/devices``
        """
        return self._dispatch("list_devices", {"fleet": fleet}, {"after": after, "limit": limit, "state": state, "profile": profile, "seen_before": seen_before, "seen_after": seen_after}, None)

    def list_fleets(self, *, after: str | None = None, limit: int | None = None) -> R:
        """The fleets this token holds a scope on, a page at a time by name.

        ``GET /v1/fleets``
        """
        return self._dispatch("list_fleets", {}, {"after": after, "limit": limit}, None)

    def list_keyrings(self) -> R:
        """List keyrings.

        ``GET /v1/keyrings``
        """
        return self._dispatch("list_keyrings", {}, {}, None)

    def list_tokens(self) -> R:
        """List tokens (never their secrets).

        ``GET /v1/tokens``
        """
        return self._dispatch("list_tokens", {}, {}, None)

    def mac(self, name: str, *, body: Mapping[str, Any]) -> R:
        """The MAC tag of a message with the primary version of a MAC keyring.

        ``POST /v1/keyrings/{name}/mac``
        """
        return self._dispatch("mac", {"name": name}, {}, body)

    def mac_batch(self, name: str, *, body: Mapping[str, Any]) -> R:
        """MAC tags of many messages; each item has its own result.

        ``POST /v1/keyrings/{name}/mac/batch``
        """
        return self._dispatch("mac_batch", {"name": name}, {}, body)

    def mac_verify(self, name: str, *, body: Mapping[str, Any]) -> R:
        """Check a MAC tag (in constant time).

        ``POST /v1/keyrings/{name}/mac/verify``
        """
        return self._dispatch("mac_verify", {"name": name}, {}, body)

    def mac_verify_batch(self, name: str, *, body: Mapping[str, Any]) -> R:
        """Check many MAC tags; each item has its own result.

        ``POST /v1/keyrings/{name}/mac/verify/batch``
        """
        return self._dispatch("mac_verify_batch", {"name": name}, {}, body)

    def migrate_configs(self, fleet: str) -> R:
        """Migrate every stored config of a fleet to the newest schema version.

        ``POST /v1/fleets/{fleet}/config/migrate``
        """
        return self._dispatch("migrate_configs", {"fleet": fleet}, {}, None)

    def onboarding_challenge(self, *, body: Mapping[str, Any]) -> R:
        """Get a single-use onboarding challenge for a manufactured device.

        ``POST /v1/onboarding/challenge``
        """
        return self._dispatch("onboarding_challenge", {}, {}, body)

    def onboarding_complete(self, *, body: Mapping[str, Any]) -> R:
        """Complete onboarding: birth credential plus proof of possession.

        ``POST /v1/onboarding/complete``
        """
        return self._dispatch("onboarding_complete", {}, {}, body)

    def patch_config(self, fleet: str, id: str, *, body: Mapping[str, Any]) -> R:
        """Change part of a device's configuration with a merge patch.

        ``PATCH /v1/fleets/{fleet}/devices/{id}/config``
        """
        return self._dispatch("patch_config", {"fleet": fleet, "id": id}, {}, body)

    def poll_commands(self, *, body: Mapping[str, Any]) -> R:
        """A device fetches its open commands (signed poll; no token).

        ``POST /v1/devices/commands``
        """
        return self._dispatch("poll_commands", {}, {}, body)

    def propose_rotation(self, *, body: Mapping[str, Any]) -> R:
        """A device proposes new keys for a rotation (signed with its current key).

        ``POST /v1/devices/rotation``
        """
        return self._dispatch("propose_rotation", {}, {}, body)

    def public_key(self, name: str, *, version: int | None = None, format: str | None = None) -> R:
        """The public key of a signing keyring's version, for verifying offline.

        ``GET /v1/keyrings/{name}/public-key``
        """
        return self._dispatch("public_key", {"name": name}, {"version": version, "format": format}, None)

    def put_alias(self, alias: str, *, body: Mapping[str, Any]) -> R:
        """Create or re-point `alias/{alias}`.

        ``PUT /v1/aliases/{alias}``
        """
        return self._dispatch("put_alias", {"alias": alias}, {}, body)

    def put_config(self, fleet: str, id: str, *, body: Mapping[str, Any]) -> R:
        """Replace a device's configuration (validated; queued for the device).

        ``PUT /v1/fleets/{fleet}/devices/{id}/config``
        """
        return self._dispatch("put_config", {"fleet": fleet, "id": id}, {}, body)

    def random(self, *, bytes: int | None = None) -> R:
        """Random bytes from the service's system generator (for keys, salts, tokens made elsewhere).

        ``GET /v1/random``
        """
        return self._dispatch("random", {}, {"bytes": bytes}, None)

    def reset_config(self, fleet: str, id: str) -> R:
        """Reset a device's configuration to the schema defaults.

        ``POST /v1/fleets/{fleet}/devices/{id}/config/reset``
        """
        return self._dispatch("reset_config", {"fleet": fleet, "id": id}, {}, None)

    def revoke_token(self, id: str) -> R:
        """Revoke a token.

        ``POST /v1/tokens/{id}/revoke``
        """
        return self._dispatch("revoke_token", {"id": id}, {}, None)

    def revoke_version(self, name: str, version: int) -> R:
        """Revoke one version in an emergency.

        ``POST /v1/keyrings/{name}/versions/{version}/revoke``
        """
        return self._dispatch("revoke_version", {"name": name, "version": version}, {}, None)

    def rewrap(self, name: str, *, body: Mapping[str, Any]) -> R:
        """Reseal with the primary version; the plaintext never leaves the service.

        ``POST /v1/keyrings/{name}/rewrap``
        """
        return self._dispatch("rewrap", {"name": name}, {}, body)

    def rewrap_batch(self, name: str, *, body: Mapping[str, Any]) -> R:
        """Rewrap many envelopes; each has its own result.

        ``POST /v1/keyrings/{name}/rewrap/batch``
        """
        return self._dispatch("rewrap_batch", {"name": name}, {}, body)

    def rotate_device(self, fleet: str, id: str, *, body: Mapping[str, Any]) -> R:
        """Ask a device to rotate its credential (queues a signed command).

        ``POST /v1/fleets/{fleet}/devices/{id}/rotate``
        """
        return self._dispatch("rotate_device", {"fleet": fleet, "id": id}, {}, body)

    def rotate_keyring(self, name: str) -> R:
        """Rotate to a new primary version now.

        ``POST /v1/keyrings/{name}/rotate``
        """
        return self._dispatch("rotate_keyring", {"name": name}, {}, None)

    def schedule_deletion(self, name: str, *, body: Mapping[str, Any]) -> R:
        """Schedule the erasure of the keyring's key material after a waiting period.

        ``POST /v1/keyrings/{name}/schedule-deletion``
        """
        return self._dispatch("schedule_deletion", {"name": name}, {}, body)

    def seal(self, name: str, *, body: Mapping[str, Any]) -> R:
        """Seal with the keyring's primary version.

        ``POST /v1/keyrings/{name}/seal``
        """
        return self._dispatch("seal", {"name": name}, {}, body)

    def seal_batch(self, name: str, *, body: Mapping[str, Any]) -> R:
        """Seal many items; each has its own result.

        ``POST /v1/keyrings/{name}/seal/batch``
        """
        return self._dispatch("seal_batch", {"name": name}, {}, body)

    def service_patterns(self) -> R:
        """The service-wide list: it bounds every fleet's.

        ``GET /v1/session-patterns``
        """
        return self._dispatch("service_patterns", {}, {}, None)

    def set_details(self, name: str, *, body: Mapping[str, Any]) -> R:
        """Change the description and tags.

        ``PATCH /v1/keyrings/{name}``
        """
        return self._dispatch("set_details", {"name": name}, {}, body)

    def set_device_state(self, fleet: str, id: str, *, body: Mapping[str, Any]) -> R:
        """Activate, suspend or resume a device (the life-cycle table applies).

        ``POST /v1/fleets/{fleet}/devices/{id}/state``
        """
        return self._dispatch("set_device_state", {"fleet": fleet, "id": id}, {}, body)

    def set_fleet_patterns(self, fleet: str, *, body: Mapping[str, Any]) -> R:
        """Set a fleet's list, such as `["ik-hybrid"]` to require the post-quantum hybrid (audited; every instance applies it within a second).

        ``PUT /v1/fleets/{fleet}/session-patterns``
        """
        return self._dispatch("set_fleet_patterns", {"fleet": fleet}, {}, body)

    def set_policy(self, name: str, *, body: Mapping[str, Any]) -> R:
        """Change the rotation policy (omitted fields keep their value).

        ``PUT /v1/keyrings/{name}/policy``
        """
        return self._dispatch("set_policy", {"name": name}, {}, body)

    def set_rotation_policy(self, fleet: str, *, body: Mapping[str, Any]) -> R:
        """Set or clear a fleet's credential rotation period.

        ``PUT /v1/fleets/{fleet}/rotation-policy``
        """
        return self._dispatch("set_rotation_policy", {"fleet": fleet}, {}, body)

    def set_schema(self, fleet: str, *, body: Mapping[str, Any]) -> R:
        """Set the next configuration schema version of a fleet (every stored config is dry-run through the migration first).

        ``PUT /v1/fleets/{fleet}/schema``
        """
        return self._dispatch("set_schema", {"fleet": fleet}, {}, body)

    def set_service_patterns(self, *, body: Mapping[str, Any]) -> R:
        """Set the service-wide list (audited; every instance applies it within a second).

        ``PUT /v1/session-patterns``
        """
        return self._dispatch("set_service_patterns", {}, {}, body)

    def set_static_key(self, fleet: str, *, body: Mapping[str, Any]) -> R:
        """Allow or refuse static-key (lab) devices in a fleet (audited).

        ``PUT /v1/fleets/{fleet}/static-key``
        """
        return self._dispatch("set_static_key", {"fleet": fleet}, {}, body)

    def show_device(self, fleet: str, id: str) -> R:
        """One device of the fleet (another fleet's device is "not found").

        ``GET /v1/fleets/{fleet}/devices/{id}``
        """
        return self._dispatch("show_device", {"fleet": fleet, "id": id}, {}, None)

    def show_fleet(self, fleet: str) -> R:
        """A fleet's public information (issuing public key for verifying credentials).

        ``GET /v1/fleets/{fleet}``
        """
        return self._dispatch("show_fleet", {"fleet": fleet}, {}, None)

    def show_keyring(self, name: str) -> R:
        """Show a keyring and its versions.

        ``GET /v1/keyrings/{name}``
        """
        return self._dispatch("show_keyring", {"name": name}, {}, None)

    def show_schema(self, fleet: str) -> R:
        """A fleet's newest configuration schema and its defaults.

        ``GET /v1/fleets/{fleet}/schema``
        """
        return self._dispatch("show_schema", {"fleet": fleet}, {}, None)

    def sign(self, name: str, *, body: Mapping[str, Any]) -> R:
        """Sign a message with the primary version of a signing keyring.

        ``POST /v1/keyrings/{name}/sign``
        """
        return self._dispatch("sign", {"name": name}, {}, body)

    def sign_batch(self, name: str, *, body: Mapping[str, Any]) -> R:
        """Sign many messages; each item has its own result.

        ``POST /v1/keyrings/{name}/sign/batch``
        """
        return self._dispatch("sign_batch", {"name": name}, {}, body)

    def unseal(self, name: str, *, body: Mapping[str, Any]) -> R:
        """Open an envelope sealed by this keyring.

        ``POST /v1/keyrings/{name}/unseal``
        """
        return self._dispatch("unseal", {"name": name}, {}, body)

    def unseal_batch(self, name: str, *, body: Mapping[str, Any]) -> R:
        """Open many envelopes; each has its own result.

        ``POST /v1/keyrings/{name}/unseal/batch``
        """
        return self._dispatch("unseal_batch", {"name": name}, {}, body)

    def verify(self, name: str, *, body: Mapping[str, Any]) -> R:
        """Verify a signature made by a signing keyring.

        ``POST /v1/keyrings/{name}/verify``
        """
        return self._dispatch("verify", {"name": name}, {}, body)

    def verify_batch(self, name: str, *, body: Mapping[str, Any]) -> R:
        """Verify many signatures; each item has its own result.

        ``POST /v1/keyrings/{name}/verify/batch``
        """
        return self._dispatch("verify_batch", {"name": name}, {}, body)

    def wipe_receipt(self, *, body: Mapping[str, Any]) -> R:
        """A device reports its wipe with a signed receipt; decommissioning ends.

        ``POST /v1/onboarding/wipe-receipt``
        """
        return self._dispatch("wipe_receipt", {}, {}, body)
