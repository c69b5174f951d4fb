"""Fault drills (issue 9): the operator against the sandbox and the real control plane while things
break. Each drill ends with the channel equal to the plan `invsync plan` computes offline from the
same stock and listings, and with no slot written more often than the faults explain: writes are
absolute, so a retry or a restart never double-counts, and bad data never zeroes a slot."""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from drill_env import (
    SKUS,
    Slot,
    TcpRelay,
    drill_manifests,
    drill_sandbox,
    live,
    matches_plan,
    planned,
    products_to_push,
)
from operator_env import Env, Operator, env_fixture, wait_for

from invsync.operator.runtime import stable_shard
from invsync.testing.cluster import ControlPlane, Kubectl

pytestmark = pytest.mark.e2e
TIMEOUT = "3"  # --platform-timeout: a latency spike of 4.5 s is past it


@pytest.fixture
def env(namespace: str, kubectl: Kubectl, kubeconfig: Path, tmp_path: Path) -> Iterator[Env]:
    yield from env_fixture(
        namespace, kubectl, kubeconfig, tmp_path, drill_sandbox, args=("--platform-timeout", TIMEOUT)
    )


def faults(env: Env, *specs: dict[str, Any]) -> None:
    env.admin("POST", "faults", {"faults": list(specs)})


def codes(env: Env, operation: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for row in env.admin("GET", "requests")["requests"]:
        if row["platform"] in ("tiktok", "http") and row["operation"] == operation:
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


def ready(env: Env, rule: str) -> bool:
    cond = env.condition("SyncRule", rule)
    return cond is not None and cond["status"] == "True"


def test_platform_5xx_at_30_percent_then_a_429_storm(env: Env, tmp_path: Path) -> None:
    before = live(env)
    docs = drill_manifests(env.sandbox.url, env.sandbox.url)
    plan = planned(env, docs, tmp_path / "p0")
    faults(env, {"platform": "*", "status": 503, "errorRate": 0.3})
    env.apply(docs)
    converge(env, docs, tmp_path, before, "the plan reached through 30% 5xx on the platform and the source")
    assert codes(env, "inventory_update").get("503", 0) >= 10
    assert env.writes() == products_to_push(plan, before)  # each product accepted exactly once

    env.admin("DELETE", "faults")
    env.admin("DELETE", "requests")
    before = live(env)
    change_stock(env, random.Random(429), 60)
    plan = planned(env, docs, tmp_path / "p1")
    faults(env, {"platform": "tiktok", "operation": "inventory_update", "burst429": 30, "retryAfter": 0.3})
    assert env.invsync("sync", "drill").returncode == 0
    converge(env, docs, tmp_path, before, "the plan reached through a storm of 30 429s")
    wait_for(lambda: ready(env, "drill"), what="the rule Ready after the storm")
    assert codes(env, "inventory_update").get("429", 0) >= 30
    assert env.writes() == products_to_push(plan, before)


def test_latency_past_the_client_timeout_and_partial_pages(env: Env, tmp_path: Path) -> None:
    before = live(env)
    docs = drill_manifests(env.sandbox.url, env.sandbox.url)
    plan = planned(env, docs, tmp_path / "p0")
    # The second page of products fails 8 times: the first read gives up (6 attempts) and pushes
    # nothing from half a listing; then 4.5 s of latency on 3 writes, past the 3 s client timeout.
    faults(
        env,
        {
            "platform": "tiktok",
            "operation": "products_search",
            "partialPages": True,
            "status": 500,
            "count": 8,
        },
        {"platform": "tiktok", "operation": "inventory_update", "latency": 4.5, "count": 3},
    )
    env.apply(docs)
    converge(env, docs, tmp_path, before, "the plan reached through partial pages and slow writes")
    wait_for(lambda: ready(env, "drill"), what="the rule Ready")
    assert codes(env, "products_search").get("500", 0) == 8
    timeouts = env.operator.metric(
        "invsync_platform_requests_total", platform="tiktok", operation="inventory_update", code="timeout"
    )
    assert timeouts >= 3  # more only if the shared machine stalled a request that long
    # A timed-out write may still land (the platform finished it late); the retry sets the same
    # absolute value, so at most one extra write per timeout and no quantity counted twice.
    assert products_to_push(plan, before) <= env.writes() <= products_to_push(plan, before) + timeouts


def test_a_source_that_answers_an_empty_list_zeroes_nothing(env: Env, tmp_path: Path) -> None:
    docs = drill_manifests(env.sandbox.url, env.sandbox.url)
    before = live(env)
    env.apply(docs)
    converge(env, docs, tmp_path, before, "the first plan")
    synced = live(env)
    writes = env.writes()

    def says_why() -> dict[str, Any] | None:
        cond = env.condition("SyncRule", "drill")
        return cond if cond and cond["reason"] == "SourceUnavailable" else None

    # One location answering empty once (it would zero every slot it feeds), then the whole source.
    for fault in ({"count": 1}, {}):
        faults(env, {"platform": "http", "target": "erp", "operation": "inventory", "empty": True, **fault})
        assert env.invsync("sync", "drill").returncode == 0
        cond = wait_for(says_why, what=f"Ready=False SourceUnavailable after the empty read {fault}")
        assert cond is not None and "returned no stock" in cond["message"]
        assert live(env) == synced and env.writes() == writes  # nothing zeroed, nothing pushed
        env.admin("DELETE", "faults")
        assert env.invsync("sync", "drill").returncode == 0
        wait_for(lambda: ready(env, "drill"), what="Ready once the source answers again")

    change_stock(env, random.Random(1), 10)
    assert env.invsync("sync", "drill").returncode == 0
    converge(env, docs, tmp_path, synced, "the plan once the source has data again")
    wait_for(lambda: ready(env, "drill"), what="Ready again")


def test_kube_apiserver_restarted_mid_sync(env: Env, cluster: ControlPlane, tmp_path: Path) -> None:
    docs = drill_manifests(env.sandbox.url, env.sandbox.url, requests_per_second=20)
    before = live(env)
    env.apply(docs)
    wait_for(lambda: env.writes() >= 10, what="the first pushes")
    try:
        cluster.stop_apiserver()
        change_stock(env, random.Random(6443), 20)  # the platform side moves on while the API is gone
    finally:
        cluster.start_apiserver()
    converge(env, docs, tmp_path, before, "the plan after the API server came back")
    assert env.operator.proc is not None and env.operator.proc.poll() is None, env.operator.tail()
    # The operator's watches are back: a spec change made after the restart reaches the channel.
    docs[-1]["spec"]["executionRatio"] = 50
    env.apply(docs)
    converge(env, docs, tmp_path, before, "the plan of the spec changed after the restart")
    wait_for(lambda: ready(env, "drill"), what="the rule Ready (its status written again)")


def test_operator_sigkilled_ten_times_at_random_points(env: Env, tmp_path: Path) -> None:
    rng = random.Random(10)
    docs = drill_manifests(env.sandbox.url, env.sandbox.url, requests_per_second=40)
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
    wait_for(lambda: ready(env, "drill"), what="the rule Ready")


def test_two_shards_at_once_handle_every_rule_exactly_once(env: Env, tmp_path: Path) -> None:
    # Six rules split the SKUs; names are picked so that each shard owns three.
    names = [n for n in (f"part-{i}" for i in range(64)) if stable_shard(env.namespace, n, 2) == 0][:3]
    names += [n for n in (f"part-{i}" for i in range(64)) if stable_shard(env.namespace, n, 2) == 1][:3]
    env.operator.stop()
    env.operator.args = ("--shard", "0/2")
    env.operator.start()
    other = Operator(env.operator.kubeconfig, env.namespace, tmp_path / "shard1.log", args=("--shard", "1/2"))
    other.start()
    try:
        docs = drill_manifests(env.sandbox.url, env.sandbox.url, rules=names)
        before = live(env)
        plan = planned(env, docs, tmp_path / "p0")
        env.apply(docs)
        converge(env, docs, tmp_path, before, "the plan with two shards")
        wait_for(lambda: all(ready(env, n) for n in names), what="every rule Ready")
        for i, name in enumerate(names):
            mine = env.operator.metric("invsync_sync_runs_total", rule=name)
            theirs = other.metric("invsync_sync_runs_total", rule=name)
            assert (mine > 0, theirs > 0) == ((True, False) if i < 3 else (False, True)), (name, mine, theirs)
        # Every product was written once per rule owning some of its SKUs: no shard redid or undid
        # the other's work.
        assert env.writes() == products_to_push(plan, before, rules=len(names))
        writes = env.writes()
        for name in names:
            assert env.invsync("sync", name).returncode == 0
        wait_for(
            lambda: all((env.status("SyncRule", n).get("lastHandledRequestedAt") or "") != "" for n in names),
            what="every rule handled its sync request",
        )
        assert env.writes() == writes  # in sync: the second round writes nothing
        assert other.proc is not None and other.proc.poll() is None
    finally:
        other.stop()


def test_network_split_between_operator_and_platform_healed_later(env: Env, tmp_path: Path) -> None:
    port = int(env.sandbox.url.rsplit(":", 1)[1])
    with TcpRelay(port) as relay:
        docs = drill_manifests(env.sandbox.url, relay.url, requests_per_second=20)
        before = live(env)
        env.apply(docs)
        converge(env, docs, tmp_path, before, "the plan through the relay")
        wait_for(lambda: ready(env, "drill"), what="the rule Ready")

        synced = live(env)
        change_stock(env, random.Random(7), 80)
        assert env.invsync("sync", "drill").returncode == 0
        wait_for(lambda: live(env) != synced, what="a first push after the stock change")
        relay.cut()
        cut_at = env.writes()
        time.sleep(7)  # 3 s timeouts and retries
        # At most the writes in flight when the link dropped (push concurrency: the burst, 10).
        assert env.writes() <= cut_at + 10
        lost = env.operator.metric("invsync_platform_requests_total", platform="tiktok", code="timeout")
        lost += env.operator.metric(
            "invsync_platform_requests_total", platform="tiktok", code="connection_error"
        )
        assert lost >= 1
        relay.heal()
        converge(env, docs, tmp_path, synced, "the plan once the split healed")
        wait_for(lambda: ready(env, "drill"), what="the rule Ready after the split")
