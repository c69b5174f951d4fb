"""The metrics are a product surface: names and labels are docs/interfaces.md's, series of what is
deleted disappear, and nothing a seller has many of (SKUs) ever becomes a label."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from invsync import metrics
from invsync.metrics import StoreResult


def _documented_metrics() -> dict[str, tuple[str, set[str]]]:
    """docs/interfaces.md's metrics table: name -> (type, label names)."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "interfaces.md").read_text()
    rows = re.findall(r"^\| `(invsync_\w+)` \| (\w+) \| ([\w, ]+) \|", text, re.M)
    return {name: (kind, {label.strip() for label in labels.split(",")}) for name, kind, labels in rows}


DOCUMENTED_METRICS = _documented_metrics()
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


@pytest.fixture(autouse=True)
def _clean_registry() -> Iterator[None]:
    """Each test starts from an empty registry, as a fresh operator process does."""
    yield
    for namespace, rule in list(metrics._rule_stores):
        metrics.forget_rule(namespace, rule)
    for namespace in list(metrics._namespace_warehouses):
        metrics.set_pool_allocation(namespace, {})
    metrics.PLATFORM_REQUESTS.clear()
    metrics.CHANGE_TO_PUSH.clear()


def exposition() -> str:
    return generate_latest(metrics.REGISTRY).decode()


def samples() -> list[tuple[str, dict[str, str], float]]:
    return [
        (s.name, s.labels, s.value)
        for family in text_string_to_metric_families(exposition())
        for s in family.samples
    ]


def series_of(rule: str) -> list[tuple[str, dict[str, str], float]]:
    return [s for s in samples() if s[1].get("rule") == rule]


def record(rule: str = "r1", stores: dict[str, StoreResult] | None = None, result: str = "success") -> None:
    metrics.record_sync(
        "shop",
        rule,
        result=result,  # type: ignore[arg-type]
        duration_seconds=0.3,
        stores=stores if stores is not None else {"tiktok-id": StoreResult(in_sync=5, drifted=2)},
        finished_at=1_700_000_000.0,
    )


def test_exposition_names_types_and_labels_are_the_spec_table() -> None:
    record(stores={"tiktok-id": StoreResult(in_sync=5, drifted=2, drift_units=7, pushed_ok=3)})
    metrics.set_rule_interval("shop", "r1", 300)
    metrics.set_rule_conditions("shop", "r1", {"Ready": "True"})
    metrics.set_pool_allocation("shop", {"jakarta-main": 1.2})
    metrics.PLATFORM_REQUESTS.labels("tiktok", "inventory_update", "200").inc()
    metrics.CHANGE_TO_PUSH.labels("tiktok").observe(0.4)

    families = {f.name: f for f in text_string_to_metric_families(exposition())}
    on_wire: dict[str, tuple[str, set[str]]] = {}
    for family in families.values():
        for sample in family.samples:
            labels = set(sample.labels) - {"le"}
            if family.type == "histogram":
                assert sample.name in {family.name + suffix for suffix in HISTOGRAM_SUFFIXES}
                on_wire[family.name] = (family.type, labels)
            else:
                on_wire[sample.name] = (family.type, labels)
    assert on_wire == DOCUMENTED_METRICS
    assert "_created" not in exposition()


def test_listing_states_are_all_exported_so_zero_reads_zero() -> None:
    record(stores={"tiktok-id": StoreResult(in_sync=5, drifted=2, unmatched=1)})
    states = {s[1]["state"]: s[2] for s in samples() if s[0] == "invsync_listings"}
    assert states == {"in_sync": 5, "drifted": 2, "failed": 0, "unmatched": 1, "held": 0, "conflicted": 0}


def test_pushes_accumulate_and_last_success_moves_only_on_success() -> None:
    record(stores={"s": StoreResult(pushed_ok=3, pushed_failed=1)})
    metrics.record_sync(
        "shop",
        "r1",
        result="failure",
        duration_seconds=1.0,
        stores={"s": StoreResult(pushed_ok=2, pushed_failed=4)},
        finished_at=1_700_000_900.0,
    )
    values = {(s[0], s[1].get("result")): s[2] for s in series_of("r1")}
    assert values[("invsync_pushes_total", "ok")] == 5
    assert values[("invsync_pushes_total", "failed")] == 5
    assert values[("invsync_sync_runs_total", "success")] == 1
    assert values[("invsync_sync_runs_total", "failure")] == 1
    assert values[("invsync_last_success_timestamp_seconds", None)] == 1_700_000_000.0
    assert values[("invsync_sync_duration_seconds_count", None)] == 2


def test_dry_run_counts_as_fresh() -> None:
    record(result="dry_run")
    last = [s[2] for s in series_of("r1") if s[0] == "invsync_last_success_timestamp_seconds"]
    assert last == [1_700_000_000.0]


def test_unknown_sync_result_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown sync result 'ok'"):
        record(result="ok")


def test_deleted_rule_loses_every_series_and_other_rules_keep_theirs() -> None:
    for rule in ("r1", "r2"):
        record(rule, {"a": StoreResult(in_sync=1), "b": StoreResult(drifted=1, pushed_failed=1)})
        metrics.set_rule_interval("shop", rule, 60)
        metrics.set_rule_conditions("shop", rule, {"Ready": "False", "Conflict": "True"})
    assert series_of("r1")

    metrics.forget_rule("shop", "r1")

    assert series_of("r1") == []
    kept = series_of("r2")
    assert {s[0] for s in kept} >= {
        "invsync_listings",
        "invsync_drift_units",
        "invsync_sync_runs_total",
        "invsync_sync_duration_seconds_count",
        "invsync_pushes_total",
        "invsync_last_success_timestamp_seconds",
        "invsync_rule_condition",
        "invsync_rule_interval_seconds",
    }


def test_store_dropped_from_a_rule_loses_its_series() -> None:
    record(stores={"a": StoreResult(in_sync=1), "b": StoreResult(drifted=3, pushed_ok=1)})
    record(stores={"a": StoreResult(in_sync=1)})
    assert {s[1].get("store") for s in series_of("r1")} == {"a", None}


def test_conditions_mirror_status_and_vanished_types_are_removed() -> None:
    metrics.set_rule_conditions("shop", "r1", {"Ready": "True", "Conflict": "True"})
    metrics.set_rule_conditions("shop", "r1", {"Ready": "False"})
    got = {(s[1]["condition"], s[1]["status"]): s[2] for s in series_of("r1")}
    assert got == {("Ready", "True"): 0, ("Ready", "False"): 1, ("Ready", "Unknown"): 0}


def test_pool_allocation_drops_stale_warehouses_per_namespace() -> None:
    metrics.set_pool_allocation("shop", {"jkt": 1.2, "sby": 0.5})
    metrics.set_pool_allocation("other", {"jkt": 0.9})
    metrics.set_pool_allocation("shop", {"jkt": 1.0})
    got = {(s[1]["namespace"], s[1]["warehouse"]): s[2] for s in samples() if s[0].endswith("ratio")}
    assert got == {("shop", "jkt"): 1.0, ("other", "jkt"): 0.9}


def test_cardinality_does_not_grow_with_runs_or_skus() -> None:
    """Series depend on rules, stores and fixed enums only: a thousand runs with ever-changing
    counts leave exactly the series of the first run, and no label can carry a SKU."""
    record(stores={"a": StoreResult(in_sync=1), "b": StoreResult(drifted=1)})
    first = {(s[0], tuple(sorted(s[1].items()))) for s in samples()}
    for n in range(1000):
        record(stores={"a": StoreResult(in_sync=n, pushed_ok=n), "b": StoreResult(drifted=n, drift_units=n)})
    assert {(s[0], tuple(sorted(s[1].items()))) for s in samples()} == first
    label_names = {name for _type, labels in DOCUMENTED_METRICS.values() for name in labels}
    assert not label_names & {"sku", "seller_sku", "sku_id", "product_id", "product"}
    states = {dict(labels)["state"] for name, labels in first if name == "invsync_listings"}
    assert states == set(metrics.LISTING_STATES)


async def test_metrics_handler_serves_text_and_openmetrics() -> None:
    record()
    app = web.Application()
    app.router.add_get("/metrics", metrics.metrics_handler)
    async with TestClient(TestServer(app)) as client:
        plain = await client.get("/metrics")
        assert plain.status == 200
        assert plain.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert 'invsync_listings{namespace="shop",rule="r1",state="drifted",store="tiktok-id"} 2.0' in (
            await plain.text()
        )
        om = await client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
        assert om.headers["Content-Type"].startswith("application/openmetrics-text")
        assert (await om.text()).rstrip().endswith("# EOF")
