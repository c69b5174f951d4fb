"""The Prometheus metrics (docs/alerts.md, docs/operations.md). Label values are resource names, never SKUs.

The operator records through the functions below rather than the metric objects, so that every
series of a rule, store or warehouse that goes away is removed with it and the alert rules in
manifests/monitoring/ never see a ghost.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.exposition import choose_encoder

# `_created` series double the cardinality and no alert or dashboard reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped upstream

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
RULE_INTERVAL = Gauge(
    "invsync_rule_interval_seconds",
    "The rule's spec.interval: the stale-sync alert fires after three of them without a success.",
    ["namespace", "rule"],
    registry=REGISTRY,
)

ListingState = Literal["in_sync", "drifted", "failed", "unmatched", "held", "conflicted"]
SyncResult = Literal["success", "partial", "failure", "held", "dry_run"]
ConditionStatus = Literal["True", "False", "Unknown"]
LISTING_STATES: Final[tuple[ListingState, ...]] = (
    "in_sync",
    "drifted",
    "failed",
    "unmatched",
    "held",
    "conflicted",
)
SYNC_RESULTS: Final[tuple[SyncResult, ...]] = ("success", "partial", "failure", "held", "dry_run")
CONDITION_STATUSES: Final[tuple[ConditionStatus, ...]] = ("True", "False", "Unknown")
# A DryRun rule that plans without error is as fresh as an enforcing one that pushed.
_SUCCESSFUL: Final = frozenset({"success", "dry_run"})


@dataclass(frozen=True, slots=True)
class StoreResult:
    """One store's counts after one sync run of one rule (listing states, drift, pushes made)."""

    in_sync: int = 0
    drifted: int = 0
    failed: int = 0
    unmatched: int = 0
    held: int = 0
    conflicted: int = 0
    drift_units: int = 0  # sum of abs(desired - live) over the drifted slots
    pushed_ok: int = 0  # slot updates the channel acknowledged in this run
    pushed_failed: int = 0  # slot updates the channel refused or that ran out of retries


_PER_RULE: Final = (
    LISTINGS,
    DRIFT_UNITS,
    SYNC_RUNS,
    SYNC_DURATION,
    PUSHES,
    LAST_SUCCESS,
    RULE_CONDITION,
    RULE_INTERVAL,
)
# (namespace, rule) -> stores and condition types last recorded, to remove what disappears.
_rule_stores: dict[tuple[str, str], frozenset[str]] = {}
_rule_conditions: dict[tuple[str, str], frozenset[str]] = {}
_namespace_warehouses: dict[str, frozenset[str]] = {}


def record_sync(
    namespace: str,
    rule: str,
    *,
    result: SyncResult,
    duration_seconds: float,
    stores: Mapping[str, StoreResult],
    finished_at: float,
) -> None:
    """Record one finished sync run of a rule; stores missing from `stores` lose their series."""
    if result not in SYNC_RESULTS:
        raise ValueError(f"unknown sync result {result!r}: expected one of {', '.join(SYNC_RESULTS)}")
    SYNC_RUNS.labels(namespace, rule, result).inc()
    SYNC_DURATION.labels(namespace, rule).observe(duration_seconds)
    if result in _SUCCESSFUL:
        LAST_SUCCESS.labels(namespace, rule).set(finished_at)
    for store, counts in stores.items():
        for state in LISTING_STATES:
            LISTINGS.labels(namespace, rule, store, state).set(getattr(counts, state))
        DRIFT_UNITS.labels(namespace, rule, store).set(counts.drift_units)
        # Both results exist from the first run on, so rate() and ratios see a zero, not a gap.
        PUSHES.labels(namespace, rule, store, "ok").inc(counts.pushed_ok)
        PUSHES.labels(namespace, rule, store, "failed").inc(counts.pushed_failed)
    key = (namespace, rule)
    for gone in _rule_stores.get(key, frozenset()) - stores.keys():
        _forget_store(namespace, rule, gone)
    _rule_stores[key] = frozenset(stores)


def set_rule_interval(namespace: str, rule: str, seconds: float) -> None:
    """Export the rule's spec.interval, which the stale-sync alert compares the last success with."""
    RULE_INTERVAL.labels(namespace, rule).set(seconds)


def set_rule_conditions(namespace: str, rule: str, conditions: Mapping[str, ConditionStatus]) -> None:
    """Mirror the rule's status.conditions (type -> status), kube-state-metrics style: for each
    type, 1 on its status and 0 on the other two; types no longer present lose their series."""
    for condition, status in conditions.items():
        if status not in CONDITION_STATUSES:
            raise ValueError(f"condition {condition}: status {status!r} is not True, False or Unknown")
        for candidate in CONDITION_STATUSES:
            RULE_CONDITION.labels(namespace, rule, condition, candidate).set(int(candidate == status))
    key = (namespace, rule)
    for gone in _rule_conditions.get(key, frozenset()) - conditions.keys():
        RULE_CONDITION.remove_by_labels({"namespace": namespace, "rule": rule, "condition": gone})
    _rule_conditions[key] = frozenset(conditions)


def set_pool_allocation(namespace: str, ratios: Mapping[str, float]) -> None:
    """Set every warehouse's summed sync ratio (1.0 = 100%) in a namespace; warehouses missing from
    `ratios` lose their series."""
    for warehouse, ratio in ratios.items():
        POOL_ALLOCATION.labels(namespace, warehouse).set(ratio)
    for gone in _namespace_warehouses.get(namespace, frozenset()) - ratios.keys():
        POOL_ALLOCATION.remove(namespace, gone)
    _namespace_warehouses[namespace] = frozenset(ratios)


def forget_rule(namespace: str, rule: str) -> None:
    """Remove every series of a deleted rule."""
    labels = {"namespace": namespace, "rule": rule}
    for metric in _PER_RULE:
        metric.remove_by_labels(labels)
    _rule_stores.pop((namespace, rule), None)
    _rule_conditions.pop((namespace, rule), None)


def _forget_store(namespace: str, rule: str, store: str) -> None:
    labels = {"namespace": namespace, "rule": rule, "store": store}
    for metric in (LISTINGS, DRIFT_UNITS, PUSHES):
        metric.remove_by_labels(labels)


async def metrics_handler(request: web.Request) -> web.Response:
    """aiohttp handler for GET /metrics, in the exposition format the scraper asks for."""
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    return web.Response(body=encoder(REGISTRY), headers={"Content-Type": content_type})
