"""Fault drills for a Shopee Store (issue 18): the operator against the Shopee fake and the real control
plane while things break, as tests/drills/test_fault_drills.py does for TikTok. Each drill ends with the
channel equal to the plan `invsync plan` computes offline from the same stock and listings; writes are
absolute, so a retry or a restart never double-counts."""

from __future__ import annotations

import base64
import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from drill_env import planned
from operator_env import Env, Operator, env_fixture, resource, secret, wait_for

from invsync.testing.cluster import Kubectl

pytestmark = pytest.mark.e2e
SHOP_ID, STORE = 4242, "drill-shopee"
ITEMS = 110  # two models each, 440 slots: more than one page of items (100 per page)
SKUS = [f"S-{i:03d}" for i in range(ITEMS * 2)]
PARTNER = {"partner_id": "2001", "partner_key": "drill-partner-key"}
Slot = tuple[str, str]  # seller SKU, location id


def shopee_sandbox(_: Operator, **shop: Any) -> dict[str, Any]:
    """One Shopee shop with locations IDZ and IDW fed by an ERP with two locations; every slot starts at 7."""
    items = [
        {
            "item_id": 10_000 + i,
            "models": [
                {
                    "model_id": 20_000 + SKUS.index(sku),
                    "model_sku": sku,
                    "seller_stock": [{"location_id": "IDZ", "stock": 7}, {"location_id": "IDW", "stock": 7}],
                }
                for sku in SKUS[2 * i : 2 * i + 2]
            ],
        }
        for i in range(ITEMS)
    ]
    rows = [
        {"sku": sku, "location": loc, "available": (i * k) % 37 + 1}
        for i, sku in enumerate(SKUS)
        for loc, k in (("L1", 7), ("L2", 5))
    ]
    return {
        "shopee": {
            "partner_id": int(PARTNER["partner_id"]),
            "partner_key": PARTNER["partner_key"],
            "shops": [
                {
                    "shop_id": SHOP_ID,
                    "access_token": "drill-shopee-token",
                    "refresh_token": "drill-shopee-refresh",
                    "locations": [{"location_id": "IDZ"}, {"location_id": "IDW"}],
                    "items": items,
                }
                | shop
            ],
        },
        "erp": [{"name": "erp", "token": "drill-erp-token", "items": rows}],
    }


def manifests(url: str, requests_per_second: float = 50) -> list[dict[str, Any]]:
    tokens = {"access_token": "drill-shopee-token", "refresh_token": "drill-shopee-refresh"}
    return [
        secret("drill-shopee", PARTNER | tokens),
        secret("drill-erp", {"token": "drill-erp-token"}),
        resource(
            "InventorySource",
            "erp",
            {"provider": "http", "endpoint": f"{url}/erp/erp", "credentialsSecretRef": {"name": "drill-erp"}},
        ),
        resource("Warehouse", "w1", {"sourceRef": {"name": "erp"}, "locationId": "L1"}),
        resource("Warehouse", "w2", {"sourceRef": {"name": "erp"}, "locationId": "L2"}),
        resource(
            "Store",
            STORE,
            {
                "platform": "shopee",
                "endpoint": f"{url}/shopee",
                "shopId": SHOP_ID,
                "credentialsSecretRef": {"name": "drill-shopee"},
                "multiWarehouse": True,
                "rateLimit": {"requestsPerSecond": requests_per_second, "burst": 10},
                "warehouses": [
                    {"channelWarehouseId": "IDZ", "warehouseRefs": ["w1"]},
                    {"channelWarehouseId": "IDW", "warehouseRefs": ["w2"]},
                ],
            },
        ),
        resource(
            "SyncRule",
            "drill",
            {
                "stores": {"names": [STORE]},
                "warehouses": [{"name": "w1", "ratio": 80}, {"name": "w2", "ratio": 60}],
                "executionRatio": 90,
                "interval": "1h",
            },
        ),
    ]


@pytest.fixture
def env(namespace: str, kubectl: Kubectl, kubeconfig: Path, tmp_path: Path) -> Iterator[Env]:
    yield from env_fixture(
        namespace, kubectl, kubeconfig, tmp_path, shopee_sandbox, args=("--platform-timeout", "3")
    )


def listings(env: Env) -> list[dict[str, Any]]:
    """The shop's seller_stock slots in `invsync plan --listings` form."""
    shop = env.admin("GET", "state")["shopee"][str(SHOP_ID)]
    return [
        {
            "store": STORE,
            "sku": model["model_sku"],
            "productId": str(item["item_id"]),
            "skuId": str(model["model_id"]),
            "channelWarehouseId": location,
            "quantity": quantity,
        }
        for item in shop["items"]
        for model in item["models"]
        for location, quantity in model["seller_stock"].items()
    ]


def live(env: Env) -> dict[Slot, int]:
    return {(x["sku"], x["channelWarehouseId"]): x["quantity"] for x in listings(env)}


def matches_plan(env: Env, docs: list[dict[str, Any]], workdir: Path, before: dict[Slot, int]) -> bool:
    now = live(env)
    plan = planned(env, docs, workdir, listings=listings(env))
    return set(plan) == set(now) and all(
        now[slot] == (before[slot] if want is None else want) for slot, want in plan.items()
    )


def items_to_push(plan: dict[Slot, int | None], before: dict[Slot, int]) -> int:
    """update_stock calls a clean sync makes: one per item with a slot to change (two models an item)."""
    return len(
        {SKUS.index(sku) // 2 for (sku, wh), want in plan.items() if want not in (None, before[(sku, wh)])}
    )


def codes(env: Env, operation: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for row in env.admin("GET", "requests")["requests"]:
        if row["platform"] == "shopee" and row["operation"] == operation:
            out[row["code"]] = out.get(row["code"], 0) + row["count"]
    return out


def converge(
    env: Env, docs: list[dict[str, Any]], tmp_path: Path, before: dict[Slot, int], what: str
) -> None:
    wait_for(lambda: matches_plan(env, docs, tmp_path / "plan", before), what=what, timeout=120)


def change_stock(env: Env, rng: random.Random, n: int) -> None:
    for sku in rng.sample(SKUS, n):
        env.admin("POST", "stock", {"source": "erp", "location": rng.choice(["L1", "L2"]), "sku": sku,
                                    "available": rng.randint(0, 60)})  # fmt: skip


def ready(env: Env) -> bool:
    cond = env.condition("SyncRule", "drill")
    return cond is not None and cond["status"] == "True"


def test_shopee_5xx_at_30_percent_then_a_429_storm(env: Env, tmp_path: Path) -> None:
    before = live(env)
    docs = manifests(env.sandbox.url)
    plan = planned(env, docs, tmp_path / "p0", listings=listings(env))
    env.admin("POST", "faults", {"platform": "*", "status": 503, "errorRate": 0.3})
    env.apply(docs)
    converge(env, docs, tmp_path, before, "the plan reached through 30% 5xx on Shopee and the source")
    assert codes(env, "update_stock").get("503", 0) >= 10 and codes(env, "model_list").get("503", 0) >= 10
    assert env.writes() == items_to_push(plan, before)  # each item accepted exactly once
    assert (
        env.operator.metric("invsync_platform_requests_total", platform="shopee", operation="update_stock")
        > 0
    )

    env.admin("DELETE", "faults")
    env.admin("DELETE", "requests")
    before = live(env)
    change_stock(env, random.Random(429), 60)
    plan = planned(env, docs, tmp_path / "p1", listings=listings(env))
    storm = {"platform": "shopee", "operation": "update_stock", "burst429": 30, "retryAfter": 0.3}
    env.admin("POST", "faults", storm)
    assert env.invsync("sync", "drill").returncode == 0
    converge(env, docs, tmp_path, before, "the plan reached through a storm of 30 429s")
    wait_for(lambda: ready(env), what="the rule Ready after the storm")
    assert codes(env, "update_stock").get("429", 0) >= 30
    assert env.writes() == items_to_push(plan, before)


def test_shopee_operator_sigkilled_ten_times_at_random_points(env: Env, tmp_path: Path) -> None:
    rng = random.Random(18)
    docs = manifests(env.sandbox.url, requests_per_second=40)
    before = live(env)
    env.apply(docs)
    for _ in range(10):
        time.sleep(rng.uniform(0.2, 3.0))  # a random point: reading, pushing, or writing status
        env.operator.stop(signal.SIGKILL)
        change_stock(env, rng, 5)
        env.operator.start()
        if rng.random() < 0.5:
            assert env.invsync("sync", "drill").returncode == 0
    converge(env, docs, tmp_path, before, "the plan after 10 SIGKILLs")
    wait_for(lambda: ready(env), what="the rule Ready")


def test_a_rotated_refresh_token_survives_sigkill_and_the_next_expiry(env: Env, tmp_path: Path) -> None:
    """Shopee refresh tokens work once (v2.public.refresh_access_token.json): the operator refreshes an
    expired token, writes the new pair to the Secret, is SIGKILLed; when the token expires again the new
    operator refreshes with the rotated token from the Secret (the original one is spent)."""
    docs = manifests(env.sandbox.url)
    before = live(env)
    env.admin("POST", "token", {"shop": str(SHOP_ID), "expired": True})
    env.apply(docs)
    converge(env, docs, tmp_path, before, "the plan after a first refresh")
    wait_for(lambda: codes(env, "token_refresh").get("200") == 1, what="one refresh")
    env.operator.stop(signal.SIGKILL)
    stored = base64.b64decode(env.get("Secret", "drill-shopee")["data"]["refresh_token"]).decode()
    assert stored == env.sandbox.state.shopee[SHOP_ID].refresh_token != "drill-shopee-refresh"
    env.admin("POST", "token", {"shop": str(SHOP_ID), "expired": True})  # four hours later
    synced = live(env)
    change_stock(env, random.Random(4), 20)
    env.operator.start()
    assert env.invsync("sync", "drill").returncode == 0
    converge(env, docs, tmp_path, synced, "the plan after a restart and a second refresh")
    wait_for(lambda: ready(env), what="the rule Ready")
    assert codes(env, "token_refresh") == {"200": 2}  # never refused: the Secret held the live pair
