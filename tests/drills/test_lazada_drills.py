"""Fault drills for a Lazada Store (issue 18): 5xx, Lazada's rate limit (901 in the envelope) and the
operator SIGKILLed mid-push. Each ends with the seller's sellable stock equal to the plan `invsync plan`
computes offline from the same stock and listings; writes are absolute, so retries and restarts never
double-count."""

from __future__ import annotations

import base64
import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from drill_env import Slot, planned
from operator_env import Env, Operator, env_fixture, resource, secret, wait_for

from invsync.testing.cluster import Kubectl

pytestmark = pytest.mark.e2e
SELLER, STORE, WH2 = "drill-seller", "lazada-drill", "LZ-WH-2"
PRODUCTS = 60  # two SKUs each, 240 slots: more than one page of products (50 per page)
SKUS = [f"L-{i:03d}" for i in range(PRODUCTS * 2)]
APP = {"app_key": "300200", "app_secret": "drill-lazada-secret"}


def lazada_sandbox(op: Operator) -> dict[str, Any]:
    """One multi-warehouse Lazada seller fed by an ERP with two locations; every slot starts at 7."""
    products = [
        {
            "item_id": 50_000 + i,
            "skus": [
                {
                    "SkuId": 60_000 + SKUS.index(sku),
                    "SellerSku": sku,
                    "multiWarehouseInventories": [
                        {"warehouseCode": "dropshipping", "sellableQuantity": 7},
                        {"warehouseCode": WH2, "sellableQuantity": 7},
                    ],
                }
                for sku in SKUS[2 * i : 2 * i + 2]
            ],
        }
        for i in range(PRODUCTS)
    ]
    rows = [
        {"sku": sku, "location": loc, "available": (i * k) % 37 + 1}
        for i, sku in enumerate(SKUS)
        for loc, k in (("L1", 7), ("L2", 5))
    ]
    seller = {
        "seller_id": SELLER,
        "access_token": "drill-lz-access",
        "refresh_token": "drill-lz-refresh",
        "warehouses": ["dropshipping", WH2],
        "requestsPerSecond": 50,  # Lazada's inventory API limit per seller
        "products": products,
    }
    return {
        "lazada": APP | {"sellers": [seller]},
        "erp": [{"name": "erp", "token": "drill-erp-token", "items": rows}],
    }


def lazada_manifests(
    source_url: str, channel_url: str, requests_per_second: float = 50
) -> list[dict[str, Any]]:
    return [
        secret(
            "drill-lz",
            APP | {"access_token": "drill-lz-access", "refresh_token": "drill-lz-refresh"},
        ),
        secret("drill-erp", {"token": "drill-erp-token"}),
        resource(
            "InventorySource",
            "erp",
            {
                "provider": "http",
                "endpoint": f"{source_url}/erp/erp",
                "credentialsSecretRef": {"name": "drill-erp"},
            },
        ),
        resource("Warehouse", "w1", {"sourceRef": {"name": "erp"}, "locationId": "L1"}),
        resource("Warehouse", "w2", {"sourceRef": {"name": "erp"}, "locationId": "L2"}),
        resource(
            "Store",
            STORE,
            {
                "platform": "lazada",
                "endpoint": f"{channel_url}/lazada/rest",
                "credentialsSecretRef": {"name": "drill-lz"},
                "multiWarehouse": True,
                "rateLimit": {"requestsPerSecond": requests_per_second, "burst": 10},
                "warehouses": [
                    {"channelWarehouseId": "dropshipping", "warehouseRefs": ["w1"]},
                    {"channelWarehouseId": WH2, "warehouseRefs": ["w2"]},
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
        namespace, kubectl, kubeconfig, tmp_path, lazada_sandbox, args=("--platform-timeout", "3")
    )


def rows(env: Env) -> list[dict[str, Any]]:
    """The seller's slots as `invsync plan --listings` takes them (every warehouse, empty ones too)."""
    seller = env.admin("GET", "state")["lazada"][SELLER]
    return [
        {
            "store": STORE,
            "sku": sku["SellerSku"],
            "productId": str(product["item_id"]),
            "skuId": str(sku["SkuId"]),
            "channelWarehouseId": code,
            "quantity": quantity,
        }
        for product in seller["products"]
        for sku in product["skus"]
        for code, quantity in sku["stock"].items()
    ]


def live(env: Env) -> dict[Slot, int]:
    return {(r["sku"], r["channelWarehouseId"]): r["quantity"] for r in rows(env)}


def matches_plan(env: Env, docs: list[dict[str, Any]], workdir: Path, before: dict[Slot, int]) -> bool:
    now = live(env)
    plan = planned(env, docs, workdir, listings=rows(env))
    return set(plan) == set(now) and all(
        now[slot] == (before[slot] if want is None else want) for slot, want in plan.items()
    )


def skus_to_push(plan: dict[Slot, int | None], before: dict[Slot, int]) -> int:
    """SKUs a clean sync writes: those with a slot to change."""
    return len({sku for (sku, wh), want in plan.items() if want is not None and want != before[(sku, wh)]})


def skus_written(env: Env) -> int:
    """SKUs in the UpdateSellableQuantity requests Lazada accepted (several products share one)."""
    log = env.admin("GET", "lazada/log")["requests"]
    return sum(r["skus"] for r in log if r["operation"] == "stock_update" and r["code"] == "0")


def converge(
    env: Env, docs: list[dict[str, Any]], tmp_path: Path, before: dict[Slot, int], what: str
) -> None:
    wait_for(lambda: matches_plan(env, docs, tmp_path / "plan", before), what=what, timeout=120)


def codes(env: Env, operation: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for row in env.admin("GET", "lazada/log")["requests"]:
        if row["operation"] == operation:
            out[row["code"]] = out.get(row["code"], 0) + 1
    return out


def change_stock(env: Env, rng: random.Random, n: int) -> None:
    for sku in rng.sample(SKUS, n):
        env.admin("POST", "stock", {"source": "erp", "location": rng.choice(["L1", "L2"]), "sku": sku,
                                    "available": rng.randint(0, 60)})  # fmt: skip


def ready(env: Env) -> bool:
    cond = env.condition("SyncRule", "drill")
    return cond is not None and cond["status"] == "True"


def test_lazada_5xx_at_50_percent_then_a_storm_of_901(env: Env, tmp_path: Path) -> None:
    before = live(env)
    docs = lazada_manifests(env.sandbox.url, env.sandbox.url)
    plan = planned(env, docs, tmp_path / "p0", listings=rows(env))
    half = {"platform": "lazada", "status": 503, "errorRate": 0.5}
    env.admin("POST", "faults", {"faults": [half, {"platform": "http", "status": 503, "errorRate": 0.3}]})
    env.apply(docs)
    converge(env, docs, tmp_path, before, "the plan reached through 50% 5xx on Lazada, 30% on the source")
    injected = sum(
        c.get("6", 0) for c in (codes(env, op) for op in ("warehouses", "products_get", "stock_update"))
    )
    assert injected >= 3  # the injected 503s, answered in Lazada's envelope
    assert skus_written(env) == skus_to_push(plan, before)  # each SKU accepted exactly once

    env.admin("DELETE", "faults")
    env.admin("DELETE", "requests")
    before = live(env)
    change_stock(env, random.Random(901), 40)
    plan = planned(env, docs, tmp_path / "p1", listings=rows(env))
    storm = {"platform": "lazada", "operation": "stock_update", "status": 200, "code": 901, "count": 30}
    env.admin("POST", "faults", {"faults": [storm]})
    assert env.invsync("sync", "drill").returncode == 0
    converge(env, docs, tmp_path, before, "the plan reached through 30 answers of 901")
    wait_for(lambda: ready(env), what="the rule Ready after the storm")
    assert codes(env, "stock_update").get("901", 0) >= 30
    assert skus_written(env) == skus_to_push(plan, before)


def test_lazada_seller_limit_below_the_stores_rate(env: Env, tmp_path: Path) -> None:
    """Half of every Lazada answer is 901 (a seller over its 50 calls a second, from reads to writes):
    each is retried in the next second and the plan is reached."""
    seller_limit = {"platform": "lazada", "operation": "*", "status": 200, "code": 901, "errorRate": 0.5}
    env.admin("POST", "faults", {"faults": [seller_limit]})
    before = live(env)
    docs = lazada_manifests(env.sandbox.url, env.sandbox.url)
    env.apply(docs)
    converge(env, docs, tmp_path, before, "the plan reached while half of the calls answer 901")
    assert codes(env, "stock_update").get("901", 0) >= 5


def test_lazada_operator_sigkilled_ten_times_mid_push(env: Env, tmp_path: Path) -> None:
    rng = random.Random(18)
    docs = lazada_manifests(env.sandbox.url, env.sandbox.url, requests_per_second=20)
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


def test_lazada_rotated_tokens_survive_a_sigkill(env: Env, tmp_path: Path) -> None:
    """Lazada's refresh token is single-use (docs/platforms.md, "refresh tokens rotate"): the operator
    stores the new pair in the Store's Secret before using it, so after a SIGKILL it refreshes again
    with the stored refresh token instead of locking the seller out with a spent one."""
    env.admin("POST", "lazada/seller", {"seller": SELLER, "expired": True})
    docs = lazada_manifests(env.sandbox.url, env.sandbox.url)
    before = live(env)
    env.apply(docs)
    converge(env, docs, tmp_path, before, "the plan reached after a refresh")
    env.operator.stop(signal.SIGKILL)
    env.admin("POST", "lazada/seller", {"seller": SELLER, "expired": True})
    change_stock(env, random.Random(2), 10)
    before = live(env)
    env.operator.start()
    assert env.invsync("sync", "drill").returncode == 0
    converge(env, docs, tmp_path, before, "the plan reached by the restarted operator")
    wait_for(lambda: ready(env), what="the rule Ready")
    refreshes = [
        r["code"] for r in env.admin("GET", "lazada/log")["requests"] if r["operation"] == "token_refresh"
    ]
    assert refreshes == ["0", "0"]  # one refresh per process, the second with the stored refresh token
    stored = {k: base64.b64decode(v).decode() for k, v in env.get("secret", "drill-lz")["data"].items()}
    seller = env.sandbox.state.lazada.sellers[SELLER]
    assert (stored["access_token"], stored["refresh_token"]) == (seller.access_token, seller.refresh_token)
