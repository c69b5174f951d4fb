"""Shards discovered from the cluster (docs/operations.md, "Sharding"): three `invsync run --statefulset`
processes against the real API server, a StatefulSet object whose replica count `kubectl scale` changes
(no node: nothing runs its pods, the processes play them: one Pod object per process, its status
written as a kubelet would, its IP the loopback address and its webhook port the process's)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from operator_env import Env, Operator, env_fixture, resource, sandbox_config, seed_manifests, wait_for

from invsync.operator.runtime import stable_shard
from invsync.operator.sharding import LEASE_SECONDS, TICK
from invsync.testing.cluster import Kubectl

pytestmark = pytest.mark.e2e

STS = "invsync"
REPLICAS = 3  # processes; the StatefulSet's replicas go 2 -> 3 -> 1
HANDOVER = 12.0  # seconds a rule may be owned by nobody while it changes hands (two ticks and a sync start)


LABELS = {"app.kubernetes.io/name": "invsync"}


def statefulset(namespace: str, replicas: int) -> dict[str, Any]:
    labels = LABELS
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": STS, "namespace": namespace},
        "spec": {
            "serviceName": STS,
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "operator", "image": "invsync:test"}]},
            },
        },
    }


def pod(namespace: str, ordinal: int, op: Operator) -> dict[str, Any]:
    """The StatefulSet's pod `ordinal` as the API server holds it once it runs: its webhook port is the
    process's own (the processes share one address)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"{STS}-{ordinal}", "namespace": namespace, "labels": LABELS},
        "spec": {
            "automountServiceAccountToken": False,
            "containers": [
                {
                    "name": "operator",
                    "image": "invsync:test",
                    "ports": [{"name": "webhooks", "containerPort": op.webhook_port}],
                }
            ],
        },
    }


def replica_args(namespace: str, ordinal: int) -> tuple[str, ...]:
    return ("--statefulset", f"{namespace}/{STS}", "--replica", f"{STS}-{ordinal}")


@pytest.fixture
def env(namespace: str, kubectl: Kubectl, kubeconfig: Path, tmp_path: Path) -> Iterator[Env]:
    """The sandbox's webhooks reach replica 0 only."""
    kubectl("apply", "-f", "-", input=_yaml(statefulset(namespace, 2)), check=True)
    yield from env_fixture(
        namespace, kubectl, kubeconfig, tmp_path, sandbox_config, args=replica_args(namespace, 0)
    )


def _yaml(doc: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(doc)


@dataclass
class Watcher:
    """Polls every replica's /shard and records, per rule, every round where two replicas act on it
    and the longest stretch where none does."""

    replicas: list[Operator]
    rules: list[str]
    namespace: str
    doubles: list[tuple[str, list[int]]] = field(default_factory=list)
    longest_gap: dict[str, float] = field(default_factory=dict)
    owners: dict[str, list[int]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def views(self) -> list[dict[str, Any]]:
        return [
            httpx.get(f"http://127.0.0.1:{op.metrics_port}/shard", timeout=5).json() for op in self.replicas
        ]

    def run(self) -> None:
        unowned_since: dict[str, float] = {}
        previous: dict[str, list[int]] = {}
        while not self._stop.is_set():
            views = self.views()
            now = time.monotonic()
            owners = {
                rule: [i for i, v in enumerate(views) if f"{self.namespace}/{rule}" in v["rules"]]
                for rule in self.rules
            }
            for rule, found in owners.items():
                # Two rounds in a row: one round's reads are not one instant, and a handover between
                # two reads of one round would show the old and the new owner at once.
                if len(found) > 1 and len(previous.get(rule, [])) > 1:
                    self.doubles.append((rule, found))
                if found:
                    unowned_since.pop(rule, None)
                else:
                    since = unowned_since.setdefault(rule, now)
                    self.longest_gap[rule] = max(self.longest_gap.get(rule, 0.0), now - since)
            previous = self.owners = owners
            time.sleep(0.1)

    def settled(self, count: int) -> bool:
        """Every rule acted on by exactly the replica its hash names for `count` shards."""
        return all(
            found == [stable_shard(self.namespace, rule, count)] for rule, found in self.owners.items()
        )

    def stop(self) -> None:
        self._stop.set()


def test_kubectl_scale_reshards_with_never_two_owners_and_webhooks_reach_the_owner(
    env: Env, kubectl: Kubectl, tmp_path: Path
) -> None:
    ns = env.namespace
    others = [
        Operator(env.operator.kubeconfig, ns, tmp_path / f"replica{i}.log", args=replica_args(ns, i))
        for i in range(1, REPLICAS)
    ]
    replicas = [env.operator, *others]
    running = {"status": {"phase": "Running", "podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}]}}
    for i, op in enumerate(replicas):
        kubectl("apply", "-f", "-", input=_yaml(pod(ns, i, op)), check=True)
        kubectl("patch", "pod", f"{STS}-{i}", "-n", ns, "--subresource=status", "--type=merge",
                "-p", json.dumps(running), check=True)  # fmt: skip
    for op in others:
        op.start()
    # A rule that shard 1 of 3 owns reads the webhook source from the store no other rule uses; the
    # fillers name a store that does not exist: each still has a worker, on exactly one replica.
    relayed = next(n for n in (f"relay-{i}" for i in range(64)) if stable_shard(ns, n, 3) == 1)
    fillers = [f"filler-{i}" for i in range(9)]
    store = {"platform": "tiktok", "endpoint": env.sandbox.url, "shopCipher": "ROW_relay",
             "credentialsSecretRef": {"name": "tiktok-relay"}}  # fmt: skip
    relay_secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "tiktok-relay"},
        "stringData": {"app_key": "app-key", "app_secret": "app-secret", "access_token": "token-relay"},
    }
    env.apply([*seed_manifests(env.sandbox.url), relay_secret, resource("Store", "tiktok-relay", store)])
    env.apply(
        [resource("SyncRule", relayed, {"stores": {"names": ["tiktok-relay"]}, "warehouses": [{"name": "w1"}],
                                        "interval": "1h"})]
        + [resource("SyncRule", f, {"stores": {"names": ["nowhere"]}, "warehouses": [{"name": "w1"}],
                                    "interval": "1h"}) for f in fillers]
    )  # fmt: skip
    watcher = Watcher(replicas, ["easyboss", "aftership", relayed, *fillers], ns)
    thread = threading.Thread(target=watcher.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: watcher.settled(2), what="every rule on its shard of 2")
        assert watcher.views()[2]["rules"] == [], "replica 2 is past replicas=2: it owns nothing"
        wait_for(lambda: env.quantities("ROW_relay")[("A", "7201")] == 100, what="the relay rule synced")

        kubectl("scale", "statefulset", STS, "-n", ns, "--replicas=3", check=True)
        wait_for(lambda: watcher.settled(3), what="every rule on its shard of 3")
        peers = watcher.views()[0]["peers"]
        assert sorted(peers) == sorted(f"http://127.0.0.1:{op.webhook_port}" for op in others)
        # The WMS delivers to replica 0 only; the rule on replica 1 follows at once (interval 1h).
        env.admin("POST", "stock", {"source": "wms", "location": "L1", "sku": "A", "available": 30})
        wait_for(lambda: env.quantities("ROW_relay")[("A", "7201")] == 30, what="the relayed webhook applied")
        # A rule claimed through the shard coordinator posts its Events (kopf sets up kopf.event only
        # in the tasks it runs handlers in), and none of its syncs failed on any replica.
        pushed = lambda: [  # noqa: E731
            e["involvedObject"].get("name") for e in env.events() if e.get("reason") == "Pushed"
        ]
        wait_for(lambda: relayed in pushed(), what="the relay rule's Pushed Event")
        failed = [op.metric("invsync_sync_runs_total", rule=relayed, result="failure") for op in replicas]
        assert failed == [0.0] * REPLICAS

        kubectl("scale", "statefulset", STS, "-n", ns, "--replicas=1", check=True)
        wait_for(lambda: watcher.settled(1), what="every rule on replica 0")
        assert [v["shards"] for v in watcher.views()] == [1, 1, 1]

    finally:
        watcher.stop()
        thread.join(timeout=10)
        for op in others:
            op.stop()
    assert watcher.doubles == [], f"rules acted on by two replicas at once: {watcher.doubles[:5]}"
    slow = {rule: gap for rule, gap in watcher.longest_gap.items() if gap > HANDOVER}
    assert not slow, f"rules owned by no replica for longer than {HANDOVER}s: {slow}"


def test_a_killed_replica_keeps_its_rules_until_its_lease_expires(env: Env, tmp_path: Path) -> None:
    """A replica that could not let go (SIGKILL) may still be pushing as far as the others know: its
    rules move only once its Lease has gone unrenewed for the whole lease duration."""
    ns = env.namespace
    other = Operator(env.operator.kubeconfig, ns, tmp_path / "replica1.log", args=replica_args(ns, 1))
    other.start()
    try:
        rules = [f"filler-{i}" for i in range(8)]
        env.apply(
            [resource("SyncRule", r, {"stores": {"names": ["nowhere"]}, "warehouses": [{"name": "w1"}],
                                      "interval": "1h"}) for r in rules]
        )  # fmt: skip
        ones = {f"{ns}/{r}" for r in rules if stable_shard(ns, r, 2) == 1}
        assert ones, "the names split between the two shards"

        def shard_rules(op: Operator) -> set[str]:
            return set(httpx.get(f"http://127.0.0.1:{op.metrics_port}/shard", timeout=5).json()["rules"])

        wait_for(lambda: shard_rules(other) == ones, what="replica 1 acting on its rules")
        other.stop(sig=9)
        killed = time.monotonic()
        env.kubectl("scale", "statefulset", STS, "-n", ns, "--replicas=1", check=True)
        everything = {f"{ns}/{r}" for r in rules}
        wait_for(lambda: shard_rules(env.operator) == everything, what="replica 0 acting on every rule")
        waited = time.monotonic() - killed
    finally:
        other.stop()
    # The dead replica renewed at most one tick before it died; replica 0 counts 15 s from then.
    assert LEASE_SECONDS - TICK - 1 <= waited <= LEASE_SECONDS + HANDOVER, waited
