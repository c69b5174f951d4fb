"""`invsync run` over a rule's life: spec changes, DryRun, the safety hold, a store the platform does not
whitelist, oversell risk, deletion, and shards that agree on ownership (docs/rules.md, docs/conditions.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from operator_env import (
    AS,
    MW,
    Env,
    Operator,
    converged,
    ready,
    resource,
    secret,
    seed_manifests,
    summary,
    tiktok_store,
    wait_for,
)

from invsync.operator.runtime import stable_shard

pytestmark = pytest.mark.e2e


def patch(env: Env, kind: str, name: str, body: dict[str, Any]) -> None:
    env.kubectl(
        "patch", "-n", env.namespace, kind, name, "--type=merge", "-p", json.dumps(body), check=True
    )  # fmt: skip


def reason(env: Env, kind: str, name: str, type_: str = "Ready") -> str | None:
    cond = env.condition(kind, name, type_)
    return cond["reason"] if cond else None


def test_spec_change_resyncs_at_once_and_dry_run_pushes_nothing(env: Env) -> None:
    env.apply(seed_manifests(env.sandbox.url))
    wait_for(lambda: converged(env), what="the seed quantities")

    patch(env, "syncrule", "easyboss", {"spec": {"executionRatio": 80}})
    wait_for(
        lambda: env.quantities(MW)[("A", "7001")] == 40, what="100 x 80% x 50% = 40 after the spec change"
    )
    wait_for(
        lambda: env.status("SyncRule", "easyboss").get("observedGeneration") == 2, what="observedGeneration 2"
    )

    patch(env, "syncrule", "easyboss", {"spec": {"push": {"mode": "DryRun"}}})
    wait_for(lambda: reason(env, "syncrule", "easyboss") == "DryRun", what="Ready reason DryRun")
    writes = env.writes()
    env.admin("POST", "stock", {"source": "wms", "location": "L1", "sku": "A", "available": 10})
    wait_for(
        lambda: summary(env, "easyboss").get("drifted") == 1,
        what="the change planned and counted, not pushed",
    )
    assert env.writes() == writes and env.quantities(MW)[("A", "7001")] == 40
    cond = env.condition("SyncRule", "easyboss")
    assert cond is not None and cond["status"] == "True" and "1 of 3 listings would change" in cond["message"]

    # suspend: true pushes nothing either, whatever push.mode says.
    patch(env, "syncrule", "easyboss", {"spec": {"suspend": True, "push": {"mode": "Enforce"}}})
    wait_for(lambda: reason(env, "syncrule", "easyboss") == "Suspended", what="Ready reason Suspended")
    assert env.writes() == writes and env.quantities(MW)[("A", "7001")] == 40
    patch(env, "syncrule", "easyboss", {"spec": {"suspend": False}})
    wait_for(lambda: env.quantities(MW)[("A", "7001")] == 4, what="10 x 80% x 50% = 4 once resumed")


def test_mass_zeroing_is_held_until_the_hold_is_approved(env: Env) -> None:
    docs = seed_manifests(env.sandbox.url)
    for doc in docs:
        if doc["kind"] == "SyncRule" and doc["metadata"]["name"] == "aftership":
            doc["spec"]["safety"] = {"maxZeroFraction": 0.5, "minListings": 2}
    env.apply(docs)
    wait_for(lambda: converged(env), what="the seed quantities")
    for sku in ("HUNDRED", "SIX", "STEADY"):
        env.admin(
            "POST",
            "stock",
            {"source": "main", "location": "gid://shopify/Location/1", "sku": sku, "available": 0},
        )
    writes = env.writes()
    assert env.invsync("sync", "aftership").returncode == 0

    hold = wait_for(lambda: env.status("SyncRule", "aftership").get("hold"), what="status.hold")
    assert (hold["zeroing"], hold["of"]) == (3, 4)
    stalled = env.condition("SyncRule", "aftership", "Stalled")
    assert stalled is not None and stalled["reason"] == "SafetyHold" and hold["id"] in stalled["message"]
    assert reason(env, "syncrule", "aftership") == "SafetyHold"
    assert env.writes() == writes and env.quantities(AS)[("HUNDRED", "8001")] == 90
    assert any(e["reason"] == "SafetyHold" for e in env.events())

    patch(
        env, "syncrule", "aftership", {"metadata": {"annotations": {"invsync.dev/approve-hold": hold["id"]}}}
    )
    wait_for(lambda: env.quantities(AS)[("HUNDRED", "8001")] == 0, what="the approved plan pushed")
    wait_for(lambda: "hold" not in env.status("SyncRule", "aftership"), what="status.hold cleared")
    assert env.condition("SyncRule", "aftership", "Stalled") is None


def test_store_not_whitelisted_is_said_plainly_and_oversell_risk_only_warns(env: Env) -> None:
    url = env.sandbox.url
    env.apply(
        [
            *seed_manifests(url),
            *tiktok_store(
                url,
                "tiktok-nowl",
                "ROW_nowl",
                "token-nowl",
                multiWarehouse=True,
                warehouses=[
                    {"channelWarehouseId": "7101", "warehouseRefs": ["w1"]},
                    {"channelWarehouseId": "7102", "warehouseRefs": ["w1"]},
                ],
            ),
            resource(
                "SyncRule",
                "nowl",
                {"stores": {"names": ["tiktok-nowl"]}, "warehouses": [{"name": "w1", "ratio": 40}]},
            ),
        ]
    )
    wait_for(
        lambda: reason(env, "store", "tiktok-nowl", "MultiWarehouse") == "NotWhitelisted",
        what="Store MultiWarehouse=False NotWhitelisted",
    )
    cond = env.condition("Store", "tiktok-nowl", "MultiWarehouse")
    assert cond is not None and cond["status"] == "False"
    assert "not whitelisted for multi-warehouse inventory" in cond["message"]
    wait_for(lambda: reason(env, "syncrule", "nowl") == "NotWhitelisted", what="the rule naming the refusal")

    # w1 feeds easyboss at 50% and nowl at 40% x 2 channel warehouses: 1.3 of the pool is promised.
    wait_for(lambda: env.condition("SyncRule", "easyboss", "OversellRisk"), what="OversellRisk on easyboss")
    risk = env.condition("SyncRule", "easyboss", "OversellRisk")
    assert risk is not None and "w1 at 1.30" in risk["message"]
    assert ready(env, "easyboss") and converged(env)
    wait_for(
        lambda: env.operator.metric("invsync_pool_allocation_ratio", warehouse="w1") == pytest.approx(1.3),
        what="invsync_pool_allocation_ratio{warehouse=w1} 1.3",
    )


def test_deleting_a_rule_is_never_blocked_and_forgets_its_metrics(env: Env) -> None:
    env.apply(seed_manifests(env.sandbox.url))
    wait_for(lambda: converged(env), what="the seed quantities")
    assert env.get("SyncRule", "aftership")["metadata"].get("finalizers") is None
    wait_for(lambda: env.operator.metric("invsync_listings", rule="aftership") > 0, what="the rule's series")
    env.kubectl(
        "delete", "-n", env.namespace, "syncrule", "aftership", "--wait=true", "--timeout=20s", check=True
    )
    wait_for(
        lambda: "aftership" not in _metrics_text(env.operator),
        what="every series of the deleted rule removed",
    )
    assert env.operator.metric("invsync_listings", rule="easyboss") > 0


def _metrics_text(op: Operator) -> str:
    return httpx.get(f"http://127.0.0.1:{op.metrics_port}/metrics", timeout=5).text


def test_shards_split_the_rules_agree_on_ownership_and_relay_webhooks(env: Env, tmp_path: Path) -> None:
    # The fixture's operator (the sandbox's webhook target) becomes shard 0 of 2; a second process
    # takes shard 1. Each is told both webhook URLs, so deliveries reach the other shard's rules.
    other = Operator(env.operator.kubeconfig, env.namespace, tmp_path / "shard1.log")
    peers = ",".join(f"http://127.0.0.1:{op.webhook_port}" for op in (env.operator, other))
    env.operator.stop()
    env.operator.args = ("--shard", "0/2", "--peers", peers)
    env.operator.start()
    other.args = ("--shard", "1/2", "--peers", peers)
    other.start()
    try:
        # A younger rule selecting the store `aftership` owns (the tie-break is creationTimestamp, then
        # name, so `copycat` is younger either way), and a rule on shard 1 reading the webhook source.
        copy = {"stores": {"names": ["tiktok-as"]}, "warehouses": [{"name": "shop-jkt"}], "interval": "1h"}
        home = stable_shard(env.namespace, "copycat", 2)
        relayed = next(n for n in (f"relay-{i}" for i in range(64)) if stable_shard(env.namespace, n, 2) == 1)
        store = {"platform": "tiktok", "endpoint": env.sandbox.url, "shopCipher": "ROW_relay",
                 "credentialsSecretRef": {"name": "tiktok-relay"}}  # fmt: skip
        creds = {"app_key": "app-key", "app_secret": "app-secret", "access_token": "token-relay"}
        relay_spec = {"stores": {"names": ["tiktok-relay"]}, "warehouses": [{"name": "w1"}], "interval": "1h"}
        env.apply([*seed_manifests(env.sandbox.url), resource("SyncRule", "copycat", copy)])
        env.apply([secret("tiktok-relay", creds), resource("Store", "tiktok-relay", store)])
        env.apply([resource("SyncRule", relayed, relay_spec)])
        wait_for(lambda: converged(env), what="the seed quantities with two shards")
        wait_for(lambda: env.quantities("ROW_relay")[("A", "7201")] == 100, what="the shard-1 rule synced")
        rules = ("easyboss", "aftership", "copycat", relayed)
        wait_for(lambda: all(env.condition("SyncRule", r) for r in rules), what="every rule reported")

        def counted() -> dict[str, tuple[float, float]] | None:
            found = {
                r: (
                    env.operator.metric("invsync_sync_runs_total", rule=r),
                    other.metric("invsync_sync_runs_total", rule=r),
                )
                for r in rules
            }
            return found if all(sum(pair) > 0 for pair in found.values()) else None

        runs = wait_for(counted, what="every rule's sync counted by a shard")
        for rule, (mine, theirs) in runs.items():
            assert (mine > 0) != (theirs > 0), f"{rule} synced by exactly one shard: {runs}"
        assert runs["copycat"][home] > 0 and runs[relayed][1] > 0
        conflict = env.condition("SyncRule", "copycat", "Conflict")
        assert conflict is not None and "owned by SyncRule aftership" in conflict["message"]
        assert env.condition("SyncRule", "aftership", "Conflict") is None
        assert summary(env, "copycat")["conflicted"] == 5 and summary(env, "copycat")["pushed"] == 0

        # The WMS delivers to shard 0 only; the rule on shard 1 follows at once all the same (interval 1h).
        env.admin("POST", "stock", {"source": "wms", "location": "L1", "sku": "A", "available": 30})
        wait_for(lambda: env.quantities("ROW_relay")[("A", "7201")] == 30, what="the relayed webhook applied")
        wait_for(
            lambda: env.quantities(MW)[("A", "7001")] == 13, what="30 x 90% x 50% = 13 on the other store"
        )
    finally:
        other.stop()


def test_hand_edit_is_counted_as_drift_first_then_corrected(env: Env) -> None:
    env.apply(seed_manifests(env.sandbox.url))
    wait_for(lambda: converged(env), what="the seed quantities")
    patch(env, "syncrule", "aftership", {"spec": {"push": {"mode": "DryRun"}}})
    wait_for(lambda: reason(env, "syncrule", "aftership") == "DryRun", what="Ready reason DryRun")

    env.admin(
        "POST", "listing", {"shop": AS, "warehouse_id": "8001", "seller_sku": "HUNDRED", "quantity": 70}
    )
    assert env.invsync("sync", "aftership").returncode == 0
    wait_for(lambda: summary(env, "aftership").get("drifted") == 1, what="the hand edit counted as drift")
    wait_for(
        lambda: env.operator.metric("invsync_listings", rule="aftership", state="drifted") == 1,
        what="invsync_listings{state=drifted} 1",
    )
    assert env.operator.metric("invsync_drift_units", rule="aftership") == 20
    assert env.quantities(AS)[("HUNDRED", "8001")] == 70

    patch(env, "syncrule", "aftership", {"spec": {"push": {"mode": "Enforce"}}})
    wait_for(lambda: env.quantities(AS)[("HUNDRED", "8001")] == 90, what="the drift corrected")
    wait_for(lambda: summary(env, "aftership").get("drifted") == 0, what="drifted back to 0")
    wait_for(lambda: env.operator.metric("invsync_drift_units", rule="aftership") == 0, what="no drift units")


def test_increases_wait_for_increase_settle_and_decreases_do_not(env: Env) -> None:
    env.apply(seed_manifests(env.sandbox.url))
    wait_for(lambda: converged(env), what="the seed quantities")
    patch(env, "syncrule", "easyboss", {"spec": {"push": {"increaseSettle": "8s"}}})
    wait_for(
        lambda: env.status("SyncRule", "easyboss").get("observedGeneration") == 2, what="the new spec seen"
    )

    env.admin("POST", "stock", {"source": "wms", "location": "L1", "sku": "A", "available": 200})
    wait_for(
        lambda: summary(env, "easyboss").get("drifted") == 1, what="the increase planned, not yet pushed"
    )
    assert env.quantities(MW)[("A", "7001")] == 45
    # Pushed by the operator's own requeue once the source has shown 200 for 8 s: no other trigger.
    wait_for(lambda: env.quantities(MW)[("A", "7001")] == 90, what="the settled increase pushed")

    env.admin("POST", "stock", {"source": "wms", "location": "L1", "sku": "A", "available": 10})
    # A decrease does not settle: it is there well before 8 s.
    wait_for(lambda: env.quantities(MW)[("A", "7001")] == 4, what="a decrease pushed at once", timeout=5)
