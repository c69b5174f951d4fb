"""Nonsense objects in a namespace with healthy rules (issue 14, "What it must show"): what the API
server refuses is refused at `kubectl apply` naming the field; what it accepts gets a condition naming
the field or the thing it lacks, nothing is pushed for what it affects, and the healthy rules keep
following stock changes to the quantities `invsync plan` computes (docs/operations.md, "What is
refused, and where")."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from drill_env import SHOP, SKUS, STORE, Slot, drill_manifests, drill_sandbox, planned
from operator_env import Env, Operator, env_fixture, resource, wait_for

from invsync.api import crdgen
from invsync.testing.cluster import REPO_ROOT, Kubectl

pytestmark = pytest.mark.e2e

REJECT = Path(__file__).resolve().parents[1] / "e2e" / "admission" / "reject"
DUP_SKU = "D-005"  # on two products of the dupsku shop; the erp has it at L1
SHOPS = {STORE: SHOP, "dupsku": "ROW_dupsku"}  # Stores whose every slot the healthy rules plan
HELD = {"twice": "ROW_twice", "ghost-map": "ROW_ghost"}  # shops only nonsense rules feed


def one_warehouse_shop(cipher: str, warehouse: str, products: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "cipher": cipher,
        "access_token": "drill-access-token",
        "warehouses": [{"id": warehouse, "is_default": True}],
        "products": [
            {"id": pid, "skus": [{"id": f"s-{pid}", "seller_sku": sku,
                                  "inventory": [{"warehouse_id": warehouse, "quantity": 3}]}]}
            for pid, sku in products
        ],
    }  # fmt: skip


def sandbox(op: Operator) -> dict[str, Any]:
    config = drill_sandbox(op)
    config["tiktok"]["shops"] += [
        one_warehouse_shop("ROW_dupsku", "9201", [("dup-1", DUP_SKU), ("dup-2", DUP_SKU), ("solo", "D-006")]),
        one_warehouse_shop("ROW_twice", "9301", [("t-1", "D-007")]),
        one_warehouse_shop("ROW_ghost", "9401", [("g-1", "D-008")]),
    ]
    return config


@pytest.fixture
def env(namespace: str, kubectl: Kubectl, kubeconfig: Path, tmp_path: Path) -> Iterator[Env]:
    yield from env_fixture(namespace, kubectl, kubeconfig, tmp_path, sandbox)


def store(name: str, url: str, cipher: str, secret_name: str = "drill-tt", **spec: Any) -> dict[str, Any]:
    body = {
        "platform": "tiktok",
        "endpoint": url,
        "shopCipher": cipher,
        "credentialsSecretRef": {"name": secret_name},
    }
    return resource("Store", name, {**body, **spec})


def rule(name: str, stores: Any, warehouses: list[dict[str, Any]]) -> dict[str, Any]:
    return resource("SyncRule", name, {"stores": stores, "warehouses": warehouses, "interval": "1h"})


def healthy(url: str) -> list[dict[str, Any]]:
    """The drill world, plus a Store that lists one seller SKU on two products (accepted, a policy)."""
    return [
        *drill_manifests(url, url),
        store("dupsku", url, "ROW_dupsku"),
        rule("dupsku", {"names": ["dupsku"]}, [{"name": "w1", "ratio": 20}]),  # w1: 80% drill, 20% here
    ]


def nonsense(url: str) -> list[dict[str, Any]]:
    """One object of each mistake the API server accepts."""
    return [
        # Two Warehouses on the same location of one source, both feeding the rule's own Store.
        resource("Warehouse", "dup-a", {"sourceRef": {"name": "erp"}, "locationId": "L1"}),
        resource("Warehouse", "dup-b", {"sourceRef": {"name": "erp"}, "locationId": "L1"}),
        store("twice", url, "ROW_twice"),
        rule("twice", {"names": ["twice"]}, [{"name": "dup-a"}, {"name": "dup-b"}]),
        # A label selector that matches nothing.
        rule("selects-nothing", {"selector": {"matchLabels": {"team": "nobody"}}}, [{"name": "w1"}]),
        # A Store mapping a Warehouse that does not exist, and the rule using it.
        store(
            "ghost-map",
            url,
            "ROW_ghost",
            multiWarehouse=False,
            warehouses=[{"channelWarehouseId": "9401", "warehouseRefs": ["no-such-warehouse"]}],
        ),
        rule("ghost", {"names": ["ghost-map"]}, [{"name": "w2"}]),
        # A rule naming a missing Store; a Store whose Secret does not exist.
        rule("no-store", {"names": ["missing-store"]}, [{"name": "w1"}]),
        store("no-secret", url, "ROW_ghost", secret_name="missing-secret"),
        # An InventorySource whose credentials Secret does not exist, with a Warehouse on it.
        resource(
            "InventorySource",
            "lost",
            {
                "provider": "http",
                "endpoint": f"{url}/erp/erp",
                "credentialsSecretRef": {"name": "lost-creds"},
            },
        ),
        resource("Warehouse", "on-lost", {"sourceRef": {"name": "lost"}, "locationId": "L1"}),
    ]


# (kind, name) -> what its Ready=False condition must say: the reason and the thing named
EXPECTED = {
    ("SyncRule", "twice"): ("DuplicateLocation", ["dup-a", "dup-b"]),
    ("SyncRule", "selects-nothing"): ("SelectorMatchesNothing", ["stores.selector"]),
    ("SyncRule", "ghost"): ("WarehouseNotFound", ["no-such-warehouse"]),
    ("SyncRule", "no-store"): ("StoreNotFound", ["missing-store"]),
    ("Store", "no-secret"): ("SecretNotFound", ["missing-secret"]),
    ("InventorySource", "lost"): ("SecretNotFound", ["lost-creds"]),
}
REFUSED = [  # each class admission refuses, from the admission corpus (its `# expect:` lines)
    "sr-interval-overflow", "sr-interval-digits-overflow", "sr-interval-zero", "sr-increase-settle-above-24h",
    "store-rate-tiny", "store-rate-zero", "isrc-poll-interval-overflow", "sr-stores-duplicate-name",
    "sr-warehouse-duplicate-name", "store-warehouse-ref-twice",
]  # fmt: skip


def plan(env: Env, docs: list[dict[str, Any]], workdir: Path) -> dict[Slot, int | None]:
    return planned(env, docs, workdir, stores=SHOPS)


def follows_plan(env: Env, docs: list[dict[str, Any]], workdir: Path) -> bool:
    want = plan(env, docs, workdir)
    live = {slot: q for cipher in SHOPS.values() for slot, q in env.quantities(cipher).items()}
    return all(want[slot] is None or live[slot] == want[slot] for slot in live) and set(live) == set(want)


def named_condition(env: Env, kind: str, name: str) -> bool:
    reason, fragments = EXPECTED[(kind, name)]
    cond = env.condition(kind, name)
    return (
        cond is not None
        and cond["status"] == "False"
        and cond["reason"] == reason
        and all(f in cond["message"] for f in fragments)
    )


def test_nonsense_objects_are_refused_or_named_and_healthy_rules_keep_syncing(
    env: Env, tmp_path: Path
) -> None:
    url = env.sandbox.url
    docs = healthy(url)
    env.apply(docs)
    wait_for(
        lambda: follows_plan(env, docs, tmp_path / "p0"), what="the healthy rules at the plan", timeout=120
    )
    held_before = {cipher: env.quantities(cipher) for cipher in HELD.values()}

    for stem in REFUSED:
        path = REJECT / f"{stem}.yaml"
        expected = [ln.removeprefix("# expect:").strip() for ln in path.read_text().splitlines()
                    if ln.startswith("# expect:")]  # fmt: skip
        done = env.kubectl("apply", "-n", env.namespace, "-f", str(path))
        assert done.returncode != 0, f"{stem} was admitted"
        assert expected and all(e in done.stderr for e in expected), (stem, done.stderr)

    env.apply(nonsense(url))
    for kind, name in EXPECTED:
        wait_for(lambda k=kind, n=name: named_condition(env, k, n), what=f"{kind} {name} names what is wrong")
    dup = env.condition("SyncRule", "dupsku", "OversellRisk")
    assert dup is not None and dup["reason"] == "DuplicateSku" and DUP_SKU in dup["message"]

    # The healthy rules follow stock changes, nonsense or not.
    rng = random.Random(14)
    for sku in [DUP_SKU, *rng.sample(SKUS, 20)]:
        env.admin("POST", "stock", {"source": "erp", "location": rng.choice(["L1", "L2"]), "sku": sku,
                                    "available": rng.randint(0, 60)})  # fmt: skip
    for name in ("drill", "dupsku"):
        assert env.invsync("sync", name).returncode == 0
    wait_for(
        lambda: follows_plan(env, docs, tmp_path / "p1"), what="the healthy rules follow stock", timeout=120
    )
    # Both listings of the duplicated seller SKU are managed: each shows the SKU's planned quantity.
    shop = env.admin("GET", "state")["tiktok"]["ROW_dupsku"]
    both = {p["id"]: p["skus"][0]["inventory"][0]["quantity"] for p in shop["products"] if p["id"] != "solo"}
    want = plan(env, docs, tmp_path / "p2")[(DUP_SKU, "9201")]
    assert want is not None and both == {"dup-1": want, "dup-2": want}

    # Nothing was pushed to what the nonsense objects feed; every nonsense condition still stands.
    assert {cipher: env.quantities(cipher) for cipher in HELD.values()} == held_before
    assert all(named_condition(env, kind, name) for kind, name in EXPECTED)
    assert (
        env.operator.metric(
            "invsync_sync_runs_total", namespace=env.namespace, rule="drill", result="failure"
        )
        == 0
    )


def test_an_object_admitted_before_a_bound_gets_invalid_spec_and_stops_nothing(
    env: Env, tmp_path: Path
) -> None:
    """An InventorySource stored while `pollInterval` had no upper bound (the bug: every rule of the
    namespace went ReconcileError): the session's CRD is loosened for it, then restored, as an upgrade
    over old objects goes (docs/operations.md, "Objects the operator cannot use")."""
    strict = REPO_ROOT / "crds" / "invsync.dev_inventorysources.yaml"
    loose = crdgen.crd("InventorySource")
    spec = loose["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    del spec["properties"]["pollInterval"]["x-kubernetes-validations"]
    url = env.sandbox.url
    docs = healthy(url)
    bad = [
        resource("InventorySource", "old", {"provider": "http", "endpoint": f"{url}/erp/erp",
                                            "credentialsSecretRef": {"name": "drill-erp"},
                                            "pollInterval": "99999h"}),
        resource("Warehouse", "on-old", {"sourceRef": {"name": "old"}, "locationId": "L1"}),
        store("twice", url, "ROW_twice"),
        rule("uses-old", {"names": ["twice"]}, [{"name": "on-old"}]),
    ]  # fmt: skip

    def admitted(kubectl_args: list[str], manifest: dict[str, Any] | list[dict[str, Any]]) -> bool:
        text = yaml.safe_dump_all(manifest if isinstance(manifest, list) else [manifest])
        return env.kubectl(*kubectl_args, "-f", "-", input=text).returncode == 0

    try:
        assert admitted(["apply"], loose)
        wait_for(lambda: admitted(["apply", "-n", env.namespace], bad[0]), what="the loose CRD in effect")
    finally:
        env.kubectl("apply", "-f", str(strict), check=True)
    probe = resource("InventorySource", "probe", {**bad[0]["spec"]})
    deadline = time.monotonic() + 60
    while admitted(["apply", "-n", env.namespace], probe):  # the bound takes effect again
        env.kubectl("delete", "-n", env.namespace, "inventorysource", "probe")
        assert time.monotonic() < deadline, "the restored bound never took effect"
        time.sleep(0.5)

    env.apply([*docs, *bad[1:]])
    held_before = env.quantities("ROW_twice")

    def invalid_spec() -> bool:
        cond = env.condition("InventorySource", "old")
        return (
            cond is not None
            and cond["reason"] == "InvalidSpec"
            and "spec.pollInterval" in cond["message"]
            and "720h" in cond["message"]
        )

    wait_for(invalid_spec, what="InvalidSpec naming spec.pollInterval on the old InventorySource")
    uses = wait_for(lambda: env.condition("SyncRule", "uses-old"), what="the rule using it has a status")
    assert (uses["status"], uses["reason"]) == ("False", "SourceNotFound")
    assert "InventorySource old" in uses["message"]  # seen as missing: the slots it feeds are held
    events = [e for e in env.events() if e["reason"] == "InvalidSpec"]
    assert [e["involvedObject"]["name"] for e in events] == ["old"] and events[0]["type"] == "Warning"

    rng = random.Random(2)
    for sku in rng.sample(SKUS, 10):
        env.admin(
            "POST", "stock", {"source": "erp", "location": "L1", "sku": sku, "available": rng.randint(0, 60)}
        )
    assert env.invsync("sync", "drill").returncode == 0
    wait_for(
        lambda: follows_plan(env, docs, tmp_path / "p1"), what="the healthy rules follow stock", timeout=120
    )
    assert env.quantities("ROW_twice") == held_before  # nothing pushed from the source it cannot use
    assert env.condition("SyncRule", "drill")["status"] == "True"  # type: ignore[index]
