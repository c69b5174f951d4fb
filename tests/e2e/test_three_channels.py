"""One pool feeding three channels (issue 18): the examples' three-channel seller, run by `invsync
run` against the real kube-apiserver and the sandbox's TikTok, Shopee and Lazada fakes. A stock change
reaches all three; allocations adding up above 100% of the pool report OversellRisk (docs/rules.md,
"Pool allocation")."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from operator_env import Env, env_fixture, example_manifests, examples_sandbox, ready, wait_for

from invsync.testing.cluster import Kubectl

pytestmark = pytest.mark.e2e

RULE = "sea-one-pool-three-channels"
STORES = ("tiktok-sea", "shopee-sg", "lazada-sg")


@pytest.fixture
def examples_env(namespace: str, kubectl: Kubectl, kubeconfig: Path, tmp_path: Path) -> Iterator[Env]:
    yield from env_fixture(namespace, kubectl, kubeconfig, tmp_path, examples_sandbox)


def channels(env: Env) -> dict[tuple[str, str], int]:
    """(Store, seller SKU) -> the quantity each platform shows for the three-channel seller."""
    state = env.admin("GET", "state")
    shown = {
        ("tiktok-sea", sku["seller_sku"]): inv["quantity"]
        for product in state["tiktok"]["ROW_sea"]["products"]
        for sku in product["skus"]
        for inv in sku["inventory"]
    }
    shown |= {
        ("shopee-sg", model["model_sku"]): model["seller_stock"]["SGZ"]
        for item in state["shopee"]["1001"]["items"]
        for model in item["models"]
    }
    [seller] = state["lazada"].values()
    shown |= {
        ("lazada-sg", sku["SellerSku"]): sku["stock"]["dropshipping"]
        for product in seller["products"]
        for sku in product["skus"]
    }
    return shown


def everywhere(quantities: dict[str, int]) -> dict[tuple[str, str], int]:
    return {(store, sku): q for store in STORES for sku, q in quantities.items()}


def oversell(env: Env) -> dict[str, str] | None:
    return env.condition("SyncRule", RULE, "OversellRisk")


def test_one_pool_reaches_three_channels_and_over_allocation_is_reported(examples_env: Env) -> None:
    env = examples_env
    env.apply(example_manifests(env.sandbox.url))
    wait_for(
        lambda: channels(env) == everywhere({"SEA-1": 33, "SEA-2": 3, "SEA-3": 0}),
        what="a third of the pool on TikTok, Shopee and Lazada",
    )
    wait_for(lambda: ready(env, RULE), what=f"{RULE} Ready")
    assert oversell(env) is None  # 3 x 33% = 99%
    for store in STORES:
        cond = env.condition("Store", store)
        assert cond is not None and cond["status"] == "True", (store, cond)

    # The WMS sells 40 of SEA-1: its webhook moves all three channels.
    delivery = env.admin(
        "POST", "stock", {"source": "wms", "location": "sea1", "sku": "SEA-1", "available": 60}
    )
    assert delivery["webhook"]["status"] == 202, delivery
    wait_for(
        lambda: channels(env) == everywhere({"SEA-1": 19, "SEA-2": 3, "SEA-3": 0}),
        what="60 x 33% = 19 on every channel",
    )
    for platform in ("tiktok", "shopee", "lazada"):
        wait_for(
            lambda p=platform: env.operator.metric("invsync_change_to_push_seconds_count", platform=p) >= 1,
            what=f"invsync_change_to_push_seconds observed for {platform}",
        )

    # A change of the rule to 40% each: 120% of the pool is promised, a warning the rule still syncs by.
    patch = {"spec": {"warehouses": [{"name": "wh-sea", "ratio": 40}]}}
    env.kubectl(
        "patch", "syncrule", RULE, "-n", env.namespace, "--type=merge", "-p", json.dumps(patch), check=True
    )
    wait_for(
        lambda: (oversell(env) or {}).get("reason") == "PoolOverAllocated",
        what="OversellRisk PoolOverAllocated",
    )
    message = (oversell(env) or {}).get("message", "")
    assert "wh-sea at 1.20" in message, message
    wait_for(
        lambda: channels(env) == everywhere({"SEA-1": 24, "SEA-2": 4, "SEA-3": 0}),
        what="60 x 40% = 24 on every channel",
    )
