"""Every condition and Event reason the operator writes: one vocabulary for the conditions, the
Events, the retry logic (worker.py) and docs/conditions.md (a test checks the doc names each one)."""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class Reason(StrEnum):
    # Ready=True
    SYNCED = "Synced"
    DRY_RUN = "DryRun"
    SUSPENDED = "Suspended"
    CONNECTED = "Connected"
    AVAILABLE = "Available"
    FETCHED = "Fetched"
    # an object the API server admitted before a bound existed: Ready=False naming its fields
    INVALID_SPEC = "InvalidSpec"
    # what a rule refers to or selects
    STORE_NOT_FOUND = "StoreNotFound"
    WAREHOUSE_NOT_FOUND = "WarehouseNotFound"
    SOURCE_NOT_FOUND = "SourceNotFound"
    SELECTOR_MATCHES_NOTHING = "SelectorMatchesNothing"
    DUPLICATE_LOCATION = "DuplicateLocation"
    # credentials and reads
    SECRET_NOT_FOUND = "SecretNotFound"
    SECRET_ACCESS_DENIED = "SecretAccessDenied"  # the namespace did not grant invsync its Secrets
    INVALID_CREDENTIALS = "InvalidCredentials"
    AUTH_FAILED = "AuthFailed"
    SOURCE_UNAVAILABLE = "SourceUnavailable"
    STORE_UNAVAILABLE = "StoreUnavailable"
    LOCATION_NOT_FOUND = "LocationNotFound"
    LOCATION_INACTIVE = "LocationInactive"
    # pushes
    NOT_WHITELISTED = "NotWhitelisted"
    PUSH_FAILED = "PushFailed"
    PUSHED = "Pushed"
    PUSHING = "Pushing"
    SAFETY_HOLD = "SafetyHold"
    RECONCILE_ERROR = "ReconcileError"
    CHANNEL_CHANGED = "ChannelChanged"
    # warnings that leave the rule Ready
    OWNED_BY_OLDER_RULE = "OwnedByOlderRule"
    CONFLICT = "Conflict"
    POOL_OVER_ALLOCATED = "PoolOverAllocated"
    DUPLICATE_SKU = "DuplicateSku"
    NOT_WRITABLE = "NotWritable"
    # Store MultiWarehouse
    ENABLED = "Enabled"
    DISABLED = "Disabled"


# A sync that could not read or push for one of these passing reasons is retried with backoff: a
# platform outage must not leave the channel wrong for a whole `interval`.
TRANSIENT: Final = frozenset({Reason.SOURCE_UNAVAILABLE, Reason.STORE_UNAVAILABLE, Reason.PUSH_FAILED})
