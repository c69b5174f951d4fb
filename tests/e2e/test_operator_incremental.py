"""`invsync run` against the real kube-apiserver: webhook syncs re-plan only their SKUs and update the
rule's counts incrementally, and after many random changes those counts are exactly what a full
sync's full plan reports (docs/status.md; docs/rules.md, "How a sync runs")."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from operator_env import Env, Operator, env_fixture, resource, secret, summary, wait_for

from invsync.operator.worker import STATUS_MIN_GAP
from invsync.testing.cluster import Kubectl

pytestmark = pytest.mark.e2e

MW, ONE = "ROW_inc_multi", "ROW_inc_one"
SKUS = [f"K{i:02d}" for i in range(30)]
UNKNOWN = [f"U{i}" for i in range(4)]  # listed, in no source: unmatched
DRAFTS = ["K28", "K29"]  # on a product TikTok takes no inventory update for (DRAFT): not writable


def _product(sku: str, warehouses: list[str], status: str = "ACTIVATE") -> dict[str, Any]:
    inventory = [{"warehouse_id": w, "quantity": 0} for w in warehouses]
    return {
        "id": f"p-{sku}",
        "status": status,
        "skus": [{"id": f"s-{sku}", "seller_sku": sku, "inventory": inventory}],
    }


def _sandbox(op: Operator) -> dict[str, Any]:
    rnd = random.Random(15)
    webhook = f"http://127.0.0.1:{op.webhook_port}/webhooks/{op.namespace}/wms"
    items = [{"sku": k, "location": "L1", "available": rnd.randint(0, 40)} for k in SKUS]
    items += [{"sku": k, "location": "L2", "available": rnd.randint(0, 40)} for k in SKUS[::2]]
    mw = ["7001", "7002", "7003"]
    return {
        "tiktok": {
            "app_key": "app-key",
            "app_secret": "app-secret",
            "shops": [
                {
                    "cipher": MW,
                    "access_token": "token-mw",
                    "warehouses": [{"id": w, "name": w, "is_default": w == "7001"} for w in mw],
                    "products": [_product(k, mw, "DRAFT" if k in DRAFTS else "ACTIVATE") for k in SKUS]
                    + [_product(k, mw) for k in UNKNOWN],
                },
                {
                    "cipher": ONE,
                    "access_token": "token-one",
                    "warehouses": [{"id": "8001", "name": "Main", "is_default": True}],
                    "products": [_product(k, ["8001"]) for k in SKUS[:20] + UNKNOWN[:2]],
                },
            ],
        },
        "erp": [
            {
                "name": "wms",
                "token": "wms-token",
                "items": items,
                "webhook": {"url": webhook, "secret": "hook"},
            }
        ],
    }


def _manifests(url: str) -> list[dict[str, Any]]:
    tiktok = {"platform": "tiktok", "endpoint": url}
    return [
        secret("tiktok-mw", {"app_key": "app-key", "app_secret": "app-secret", "access_token": "token-mw"}),
        secret("tiktok-one", {"app_key": "app-key", "app_secret": "app-secret", "access_token": "token-one"}),
        secret("wms-creds", {"token": "wms-token"}),
        secret("wms-webhook", {"secret": "hook"}),
        resource(
            "InventorySource",
            "wms",
            {
                "provider": "http",
                "endpoint": f"{url}/erp/wms",
                "credentialsSecretRef": {"name": "wms-creds"},
                "webhook": {"secretRef": {"name": "wms-webhook"}},
            },
        ),
        resource("Warehouse", "w1", {"sourceRef": {"name": "wms"}, "locationId": "L1"}),
        resource("Warehouse", "w2", {"sourceRef": {"name": "wms"}, "locationId": "L2"}),
        resource(
            "Store",
            "mw",
            {
                **tiktok,
                "shopCipher": MW,
                "credentialsSecretRef": {"name": "tiktok-mw"},
                "multiWarehouse": True,
                "warehouses": [
                    {"channelWarehouseId": "7001", "warehouseRefs": ["w1"]},
                    {"channelWarehouseId": "7002", "warehouseRefs": ["w1", "w2"]},
                    {"channelWarehouseId": "7003", "warehouseRefs": ["w-gone"]},  # missing: held
                ],
            },
        ),
        resource(
            "Store", "one", {**tiktok, "shopCipher": ONE, "credentialsSecretRef": {"name": "tiktok-one"}}
        ),
        resource(
            "SyncRule",
            "inc",
            {
                "stores": {"names": ["mw", "one"]},
                "warehouses": [{"name": "w1", "ratio": 80}, {"name": "w2", "ratio": 50}],
                "executionRatio": 90,
                "outOfStockThreshold": 2,
                "lowStock": {"threshold": 6, "preferredStore": "one"},
                "interval": "1h",
            },
        ),
    ]


@pytest.fixture
def inc_env(namespace: str, kubectl: Kubectl, kubeconfig: Path, tmp_path: Path) -> Iterator[Env]:
    yield from env_fixture(namespace, kubectl, kubeconfig, tmp_path, _sandbox)


def _counts(env: Env) -> tuple[dict[str, int], list[dict[str, int]]]:
    """The rule's counts without what a sync pushed (that is per sync, not per plan)."""
    status = env.status("SyncRule", "inc")
    total = {k: v for k, v in status["summary"].items() if k not in ("pushed", "failed")}
    stores = [{k: v for k, v in s.items() if k not in ("pushed", "failed")} for s in status["stores"]]
    return total, stores


def _quiet(env: Env) -> Callable[[], bool]:
    """True once no sync has ended and no platform request was sent for longer than a webhook sync's
    status may wait (worker.STATUS_MIN_GAP): a sync still pushing at the Store's rate limit ends no
    run for seconds, but sends requests all along."""
    last: tuple[float, float] | None = None
    since = 0.0

    def check() -> bool:
        nonlocal last, since
        activity = (
            env.operator.metric("invsync_sync_runs_total"),
            env.operator.metric("invsync_platform_requests_total"),
        )
        if activity != last:
            last, since = activity, time.monotonic()
        return time.monotonic() - since >= STATUS_MIN_GAP + 1.0

    return check


def _pushed_events(env: Env) -> list[dict[str, Any]]:
    return [
        e for e in env.events() if e.get("reason") == "Pushed" and e["involvedObject"].get("name") == "inc"
    ]


def test_webhook_counts_equal_a_full_plans_after_many_random_changes(inc_env: Env) -> None:
    env = inc_env
    env.apply(_manifests(env.sandbox.url))
    wait_for(lambda: summary(env, "inc").get("listings", 0) > 0, what="the first full sync", timeout=60)
    first_read = env.status("SyncRule", "inc")["lastFullReadTime"]
    full_sync_events = len(_pushed_events(env))  # the first full sync's (posted, or about to be)
    syncs_before = env.operator.metric("invsync_sync_runs_total")
    calls = lambda: env.operator.metric("invsync_change_to_push_seconds_count", platform="tiktok")  # noqa: E731
    rnd = random.Random(1515)
    for _ in range(80):
        sku = rnd.choice(SKUS)
        location = "L2" if SKUS.index(sku) % 2 == 0 and rnd.random() < 0.4 else "L1"
        available = rnd.choice([0, 1, 3, 5, 7, rnd.randint(0, 60)])
        change = {"source": "wms", "location": location, "sku": sku, "available": available}
        assert env.admin("POST", "stock", change)["webhook"]["status"] == 202
    # Every webhook sync done: nothing left differs from the plan, and no sync runs for a while.
    wait_for(lambda: summary(env, "inc").get("drifted") == 0, what="every webhook change pushed", timeout=60)
    wait_for(_quiet(env), what="no more webhook syncs", timeout=60)
    incremental = _counts(env)
    assert incremental[0]["drifted"] == 0, "the last webhook sync left slots differing"
    status = env.status("SyncRule", "inc")
    assert status["lastFullReadTime"] == first_read, "a full sync ran: the counts were not incremental"
    assert status["acknowledgedSinceFullRead"] > 0 and calls() > 0
    assert incremental[0]["held"] > 0 and incremental[0]["unmatched"] > 0
    # The webhook syncs' Pushed Events are summed (one per worker.STATUS_MIN_GAP, or when a condition
    # changes), not one per sync; with the full read's own, they account for every update
    # acknowledged since it.
    events = _pushed_events(env)
    webhook_syncs = env.operator.metric("invsync_sync_runs_total") - syncs_before
    assert len(events) - full_sync_events < webhook_syncs, (len(events), webhook_syncs)
    standing = [
        (e["reason"], e["message"])
        for e in env.events()
        if e.get("type") == "Warning" and e["involvedObject"].get("name") == "inc"
    ]
    assert standing and len(standing) == len(set(standing)), standing  # each once, not once per sync
    set_by_events = lambda: sum(int(e["message"].split()[1]) for e in _pushed_events(env))  # noqa: E731
    wait_for(
        lambda: set_by_events() == status["acknowledgedSinceFullRead"],
        what="Pushed Events adding up to the updates acknowledged",
        timeout=10,
    )

    done = env.invsync("sync", "inc")  # a full read and a full plan
    assert done.returncode == 0, done.stderr
    wait_for(
        lambda: env.status("SyncRule", "inc")["lastFullReadTime"] != first_read,
        what="the full sync",
        timeout=60,
    )
    full = env.status("SyncRule", "inc")
    assert full["summary"]["pushed"] == 0  # the webhook syncs had left nothing behind
    assert _counts(env) == incremental
