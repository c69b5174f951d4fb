"""The Prometheus metrics of SPEC section 5. Label values are resource names, never SKUs."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

LISTINGS = Gauge(
    "invsync_listings",
    "Listing slots managed by a rule, by state after the last sync.",
    ["namespace", "rule", "store", "state"],
    registry=REGISTRY,
)
DRIFT_UNITS = Gauge(
    "invsync_drift_units",
    "Sum of abs(desired - live) over a store's slots after the last sync.",
    ["namespace", "rule", "store"],
    registry=REGISTRY,
)
SYNC_RUNS = Counter(
    "invsync_sync_runs",
    "Sync runs by result (success, partial, failure, held, dry_run).",
    ["namespace", "rule", "result"],
    registry=REGISTRY,
)
SYNC_DURATION = Histogram(
    "invsync_sync_duration_seconds",
    "Wall time of one sync run.",
    ["namespace", "rule"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
    registry=REGISTRY,
)
PUSHES = Counter(
    "invsync_pushes",
    "Slot updates pushed to a channel, by result (ok, failed).",
    ["namespace", "rule", "store", "result"],
    registry=REGISTRY,
)
PLATFORM_REQUESTS = Counter(
    "invsync_platform_requests",
    "HTTP requests to platforms, by platform, operation and status code (or error kind).",
    ["platform", "operation", "code"],
    registry=REGISTRY,
)
LAST_SUCCESS = Gauge(
    "invsync_last_success_timestamp_seconds",
    "Unix time of the rule's last successful sync.",
    ["namespace", "rule"],
    registry=REGISTRY,
)
CHANGE_TO_PUSH = Histogram(
    "invsync_change_to_push_seconds",
    "From a source webhook's arrival to the channel acknowledging the new quantity.",
    ["platform"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    registry=REGISTRY,
)
POOL_ALLOCATION = Gauge(
    "invsync_pool_allocation_ratio",
    "Sum of the sync ratios that draw on one warehouse across stores; above 1 risks overselling.",
    ["namespace", "warehouse"],
    registry=REGISTRY,
)
RULE_CONDITION = Gauge(
    "invsync_rule_condition",
    "1 for the status of each condition a rule has.",
    ["namespace", "rule", "condition", "status"],
    registry=REGISTRY,
)
