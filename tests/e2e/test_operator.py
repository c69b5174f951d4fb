"""`invsync run` against the real kube-apiserver and the sandbox: the seed scenarios, webhooks,
hand edits, only-differing pushes and the quiet second sync (docs/rules.md, docs/status.md)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from operator_env import (
    AS,
    MW,
    Env,
    converged,
    env_fixture,
    example_manifests,
    examples_sandbox,
    ready,
    seed_manifests,
    summary,
    wait_for,
)

from invsync.testing.cluster import Kubectl

pytestmark = pytest.mark.e2e


@pytest.fixture
def examples_env(namespace: str, kubectl: Kubectl, kubeconfig: Path, tmp_path: Path) -> Iterator[Env]:
    yield from env_fixture(namespace, kubectl, kubeconfig, tmp_path, examples_sandbox)


MW_IDS = ("7068517275539637001", "7068517275539637002", "7068517275539637003")
ID_WH = "7100000000000000001"
EXPECTED_MW = {("EB-A", MW_IDS[0]): 45, ("EB-A", MW_IDS[1]): 0, ("EB-A", MW_IDS[2]): 0,
               ("EB-B", MW_IDS[0]): 18, ("EB-B", MW_IDS[1]): 9, ("EB-B", MW_IDS[2]): 0}  # fmt: skip
EXPECTED_ID = {"AS-PCT-1": 90, "AS-THR-5": 0, "AS-THR-6": 5, "AS-CS-1": 99999,
               "AS-ALL-1": 90, "AS-SPEC-1": 54, "AS-GHOST": 7}  # fmt: skip


def test_seed_scenarios_from_examples_reach_the_planned_quantities_and_report_ready(
    examples_env: Env,
) -> None:
    env = examples_env
    env.apply(example_manifests(env.sandbox.url))
    wait_for(
        lambda: env.quantities("ROW_mw") == EXPECTED_MW, what="45 in the multi-warehouse slot (EasyBoss)"
    )
    wait_for(
        lambda: {sku: q for (sku, _), q in env.quantities("ROW_id").items()} == EXPECTED_ID,
        what="90 / 0 / 5 / 99999 on the single-warehouse store (AfterShip)",
    )
    rules = ("easyboss-multi-warehouse", "aftership-all-locations", "aftership-specific-location")
    wait_for(lambda: all(ready(env, r) for r in rules), what="every rule Ready")

    counts = ("listings", "inSync", "drifted", "failed", "unmatched", "held", "conflicted")
    expected = {
        "easyboss-multi-warehouse": (6, 6, 0, 0, 0, 0, 0),
        "aftership-all-locations": (5, 5, 0, 0, 1, 0, 0),  # AS-GHOST is in no source: unmatched
        "aftership-specific-location": (1, 1, 0, 0, 0, 0, 0),
    }
    for rule, values in expected.items():
        assert tuple(summary(env, rule)[k] for k in counts) == values, (rule, summary(env, rule))
    # Only differing slots were pushed, one request per product: EB-A, EB-B, PCT, THR, CS, ALL, SPEC,
    # and for the three-channel seller (tests/e2e/test_three_channels.py) SEA-1/2/3 on TikTok, one
    # update_stock per Shopee item (3) and one Lazada update of up to 20 SKUs (1).
    assert env.writes() == 14
    assert env.status("SyncRule", "easyboss-multi-warehouse")["observedGeneration"] == 1

    store = env.status("Store", "tiktok-mw")
    assert {w["id"] for w in store["channelWarehouses"]} == set(MW_IDS)
    assert {c["type"]: c["status"] for c in store["conditions"]} == {
        "Ready": "True",
        "MultiWarehouse": "True",
    }
    source = env.status("InventorySource", "shopify-main")
    assert source["items"] > 0 and {x["id"] for x in source["locations"]} >= {"gid://shopify/Location/1"}
    assert env.status("Warehouse", "wh-1")["available"] == 140

    table = env.invsync("status")
    assert table.returncode == 0, table.stderr
    assert all(rule in table.stdout for rule in rules)

    # Shopify's own inventory_levels/update webhook (X-Shopify-Hmac-Sha256) moves the channel too.
    change = {"source": "main", "location": "gid://shopify/Location/1", "sku": "AS-PCT-1", "available": 50}
    assert env.admin("POST", "stock", change)["webhook"]["status"] == 202
    wait_for(
        lambda: env.quantities("ROW_id")[("AS-PCT-1", ID_WH)] == 45,
        what="90% of 50 = 45 via Shopify's webhook",
    )


def test_webhook_change_reaches_the_channel_and_a_hand_edit_is_corrected(env: Env) -> None:
    env.apply(seed_manifests(env.sandbox.url))
    wait_for(lambda: converged(env), what="the seed quantities")
    wait_for(lambda: ready(env, "easyboss"), what="easyboss Ready")

    # A stock change in the WMS: delivered by webhook, planned for that SKU only; interval is 1h.
    delivery = env.admin("POST", "stock", {"source": "wms", "location": "L1", "sku": "A", "available": 40})
    assert delivery["webhook"]["status"] == 202, delivery
    wait_for(lambda: env.quantities(MW)[("A", "7001")] == 18, what="40 x 90% x 50% = 18 on the channel")
    # Webhook arrival -> channel acknowledged, measured.
    wait_for(
        lambda: env.operator.metric("invsync_change_to_push_seconds_count", platform="tiktok") >= 1,
        what="invsync_change_to_push_seconds observed",
    )

    # A seller edits a listing by hand: the next sync (requested now) finds the drift and sets it back.
    env.admin("POST", "listing", {"shop": AS, "warehouse_id": "8001", "seller_sku": "HUNDRED", "quantity": 7})
    before = env.writes()
    done = env.invsync("sync", "aftership")
    assert done.returncode == 0, done.stderr
    requested = env.get("SyncRule", "aftership")["metadata"]["annotations"]["invsync.dev/requested-at"]
    wait_for(lambda: env.quantities(AS)[("HUNDRED", "8001")] == 90, what="the hand edit corrected")
    wait_for(
        lambda: env.status("SyncRule", "aftership").get("lastHandledRequestedAt") == requested,
        what="status.lastHandledRequestedAt echoing the request",
    )
    assert env.writes() == before + 1
    assert summary(env, "aftership")["pushed"] == 1  # the drifted slot, and nothing else, was pushed

    one = env.invsync("status", "aftership")
    assert one.returncode == 0 and "aftership" in one.stdout and "easyboss" not in one.stdout
    missing = env.invsync("sync", "no-such-rule")
    assert (
        missing.returncode == 2
        and "SyncRule" in missing.stderr
        and "no-such-rule not found" in missing.stderr
    )


def test_unchanged_world_makes_no_platform_write_and_no_status_write(env: Env) -> None:
    env.apply(seed_manifests(env.sandbox.url, interval="2s"))
    wait_for(lambda: converged(env), what="the seed quantities")
    # A sync after the pushing one reports pushed 0; from then on nothing changes.
    wait_for(lambda: summary(env, "aftership").get("pushed") == 0, what="a sync with nothing to push")
    version = env.get("SyncRule", "aftership")["metadata"]["resourceVersion"]
    writes = env.update_calls()
    runs = env.operator.metric("invsync_sync_runs_total", rule="aftership")
    wait_for(
        lambda: env.operator.metric("invsync_sync_runs_total", rule="aftership") >= runs + 2,
        what="two more interval syncs",
    )
    assert env.update_calls() == writes
    assert env.get("SyncRule", "aftership")["metadata"]["resourceVersion"] == version
    assert env.operator.metric("invsync_listings", rule="aftership", state="in_sync") == 5
    # Those syncs did re-read the live channel: a hand edit is set back by the interval alone.
    env.admin("POST", "listing", {"shop": AS, "warehouse_id": "8001", "seller_sku": "SIX", "quantity": 2})
    wait_for(
        lambda: env.quantities(AS)[("SIX", "8001")] == 5, what="the interval sync correcting a hand edit"
    )
    assert env.update_calls() == writes + 1
