"""`invsync run` when things go wrong: platform 429 bursts and 5xx, the source down, SIGKILL mid-sync,
and references that the cluster cannot resolve (docs/rules.md, "How a sync runs" and "Held slots")."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from operator_env import (
    AS,
    MW,
    Env,
    Operator,
    converged,
    env_fixture,
    ready,
    resource,
    secret,
    seed_manifests,
    tiktok_store,
    wait_for,
)

from invsync.testing.cluster import Kubectl

pytestmark = pytest.mark.e2e


def codes(env: Env, platform: str) -> dict[int, int]:
    out: dict[int, int] = {}
    for row in env.admin("GET", "requests")["requests"]:
        if row["platform"] == platform:
            out[int(row["code"])] = out.get(int(row["code"]), 0) + row["count"]
    return out


def test_source_down_pushes_nothing_it_feeds_and_says_why(env: Env) -> None:
    env.apply(seed_manifests(env.sandbox.url))
    wait_for(lambda: converged(env), what="the seed quantities")
    env.admin("POST", "faults", {"platform": "http", "target": "wms", "status": 503})
    env.admin("POST", "listing", {"shop": MW, "warehouse_id": "7001", "seller_sku": "A", "quantity": 3})
    writes = env.writes()

    assert env.invsync("sync", "easyboss").returncode == 0

    def says_why() -> dict[str, Any] | None:
        cond = env.condition("SyncRule", "easyboss")
        return cond if cond and cond["reason"] == "SourceUnavailable" else None

    cond = wait_for(says_why, what="Ready=False SourceUnavailable on the rule")
    assert cond["status"] == "False" and "InventorySource wms could not be read" in cond["message"]
    source = env.condition("InventorySource", "wms")
    assert source is not None and source["status"] == "False"
    assert env.quantities(MW)[("A", "7001")] == 3 and env.writes() == writes  # nothing pushed
    assert ready(env, "aftership")  # the rule on the other source is untouched

    env.admin("DELETE", "faults")
    assert env.invsync("sync", "easyboss").returncode == 0
    wait_for(
        lambda: env.quantities(MW)[("A", "7001")] == 45, what="the slot restored once the source is back"
    )
    wait_for(lambda: ready(env, "easyboss"), what="Ready again")


BULK = 120  # products in the store killed mid-sync; 10 writes/s makes the sync last ~12 s


def bulk_sandbox(op: Operator) -> dict[str, Any]:
    return {
        "tiktok": {
            "app_key": "k",
            "app_secret": "s",
            "shops": [
                {
                    "cipher": "ROW_bulk",
                    "access_token": "t",
                    "warehouses": [{"id": "9001", "is_default": True}],
                    "products": [
                        {
                            "id": f"p{i}",
                            "skus": [
                                {
                                    "id": f"s{i}",
                                    "seller_sku": f"B-{i}",
                                    "inventory": [{"warehouse_id": "9001"}],
                                }
                            ],
                        }
                        for i in range(BULK)
                    ],
                }
            ],
        },
        "erp": [
            {
                "name": "bulk",
                "items": [{"sku": f"B-{i}", "location": "L", "available": i + 1} for i in range(BULK)],
            }
        ],
    }


@pytest.fixture
def bulk_env(namespace: str, kubectl: Kubectl, kubeconfig: Path, tmp_path: Path) -> Iterator[Env]:
    yield from env_fixture(namespace, kubectl, kubeconfig, tmp_path, bulk_sandbox)


def apply_bulk(env: Env, *, requests_per_second: float, burst: int) -> None:
    url = env.sandbox.url
    env.apply(
        [
            secret("tt", {"app_key": "k", "app_secret": "s", "access_token": "t"}),
            resource("InventorySource", "bulk", {"provider": "http", "endpoint": f"{url}/erp/bulk"}),
            resource("Warehouse", "loc", {"sourceRef": {"name": "bulk"}, "locationId": "L"}),
            resource(
                "Store",
                "bulk",
                {
                    "platform": "tiktok",
                    "endpoint": url,
                    "shopCipher": "ROW_bulk",
                    "credentialsSecretRef": {"name": "tt"},
                    "rateLimit": {"requestsPerSecond": requests_per_second, "burst": burst},
                },
            ),
            resource("SyncRule", "bulk", {"stores": {"names": ["bulk"]}, "warehouses": [{"name": "loc"}]}),
        ]
    )


BULK_WANT = {(f"B-{i}", "9001"): i + 1 for i in range(BULK)}


def test_429_bursts_and_5xx_still_converge_with_nothing_double_counted(bulk_env: Env) -> None:
    env = bulk_env
    env.admin(
        "POST",
        "faults",
        {
            "faults": [
                {"platform": "tiktok", "operation": "inventory_update", "burst429": 6, "retryAfter": 0.2},
                {"platform": "tiktok", "status": 503, "errorRate": 0.2},
            ]
        },
    )
    apply_bulk(env, requests_per_second=100, burst=10)
    wait_for(lambda: env.quantities("ROW_bulk") == BULK_WANT, what="every slot set despite 429s and 5xx")
    wait_for(lambda: ready(env, "bulk"), what="the rule Ready")
    seen = codes(env, "tiktok")
    assert seen.get(429, 0) >= 6 and seen.get(503, 0) >= 5, seen
    # Absolute writes: every product accepted exactly once, whatever was retried.
    assert env.writes() == BULK


def test_sigkill_mid_sync_and_restart_converges_to_the_same_state(bulk_env: Env) -> None:
    env = bulk_env
    apply_bulk(env, requests_per_second=10, burst=1)

    def progress() -> str | None:
        cond = env.condition("SyncRule", "bulk", "Reconciling")
        return cond["message"] if cond else None

    message = wait_for(progress, what="Reconciling=True with progress during the long sync")
    assert message.startswith("pushed ") and message.endswith(f"/{BULK}")
    wait_for(lambda: env.writes() >= 20, what="a sixth of the pushes done")
    env.operator.stop(signal.SIGKILL)
    partial = env.writes()
    assert partial < BULK

    env.operator.start()
    wait_for(
        lambda: env.quantities("ROW_bulk") == BULK_WANT, what="every slot set after the restart", timeout=90
    )
    wait_for(lambda: ready(env, "bulk"), what="Ready after the restart")
    # The restart re-read the live channel and pushed only what was still missing: one write per product.
    assert env.writes() == BULK
    assert env.condition("SyncRule", "bulk", "Reconciling") is None


def test_missing_and_wrong_references_are_named_while_the_rest_keeps_syncing(env: Env) -> None:
    url = env.sandbox.url
    env.apply(
        [
            *seed_manifests(url),
            secret(
                "wrong-creds",
                {"app_key": "app-key", "app_secret": "app-secret", "access_token": "wrong-token-value"},
            ),
            resource("Warehouse", "w-lost", {"sourceRef": {"name": "wms"}, "locationId": "L9"}),
            resource(
                "Store",
                "tiktok-wrong",
                {
                    "platform": "tiktok",
                    "endpoint": url,
                    "shopCipher": AS,
                    "credentialsSecretRef": {"name": "wrong-creds"},
                },
            ),
            resource(
                "Store",
                "tiktok-nosecret",
                {
                    "platform": "tiktok",
                    "endpoint": url,
                    "shopCipher": AS,
                    "credentialsSecretRef": {"name": "absent"},
                },
            ),
            # The multi-warehouse store, with its second channel warehouse fed by the unknown location.
            resource(
                "Store",
                "tiktok-mw",
                {
                    "platform": "tiktok",
                    "endpoint": url,
                    "shopCipher": MW,
                    "credentialsSecretRef": {"name": "tiktok-mw"},
                    "multiWarehouse": True,
                    "warehouses": [
                        {"channelWarehouseId": "7001", "warehouseRefs": ["w1"]},
                        {"channelWarehouseId": "7002", "warehouseRefs": ["w-lost"]},
                    ],
                },
            ),
            resource(
                "SyncRule",
                "easyboss",
                {
                    "stores": {"names": ["tiktok-mw", "ghost", "tiktok-nosecret", "tiktok-wrong"]},
                    "warehouses": [{"name": "w1", "ratio": 50}, {"name": "w-lost"}, {"name": "w-missing"}],
                    "executionRatio": 90,
                    "interval": "1h",
                },
            ),
        ]
    )
    wanted = [
        "Store ghost not found",
        "Warehouse w-missing not found",
        "Secret absent (credentials of Store tiktok-nosecret) not found",
        "Store tiktok-wrong: the platform refused the credentials in Secret wrong-creds",
        "Warehouse w-lost: location L9 not found in InventorySource wms",
    ]

    def named() -> str | None:
        cond = env.condition("SyncRule", "easyboss")
        message = cond["message"] if cond else ""
        return message if all(w in message for w in wanted) else None

    message = wait_for(named, what="the rule's Ready message naming every missing or wrong thing")
    assert env.condition("SyncRule", "easyboss")["status"] == "False", message  # type: ignore[index]
    # The rest keeps syncing: the slot fed by w1 gets 45; the one fed by the unknown location is untouched.
    wait_for(lambda: env.quantities(MW)[("A", "7001")] == 45, what="the healthy slot pushed")
    assert env.quantities(MW)[("A", "7002")] == 0
    assert ready(env, "aftership")

    reasons = {
        ("Store", "tiktok-nosecret"): "SecretNotFound",
        ("Store", "tiktok-wrong"): "AuthFailed",
        ("Warehouse", "w-lost"): "LocationNotFound",
    }
    for (kind, name), reason in reasons.items():
        cond = wait_for(lambda k=kind, n=name: env.condition(k, n), what=f"{kind} {name} Ready condition")
        assert (cond["status"], cond["reason"]) == ("False", reason), (kind, name, cond)
    events = [e for e in env.events() if e["involvedObject"]["name"] == "easyboss"]
    assert any("Store ghost not found" in e["message"] for e in events)
    assert not any("wrong-token-value" in e["message"] for e in events)  # never a credential
    log = env.operator.log.read_text()
    leaked = [
        v for v in ("wrong-token-value", "app-secret", "token-mw", "wms-token", "shpat-main") if v in log
    ]
    assert not leaked, f"credentials in the operator log: {leaked}"

    # Creating the missing Secret is a trigger: the store it names becomes Ready without waiting 1h.
    env.apply(
        [secret("absent", {"app_key": "app-key", "app_secret": "app-secret", "access_token": "token-as"})]
    )
    wait_for(
        lambda: (env.condition("Store", "tiktok-nosecret") or {}).get("status") == "True",
        what="the store Ready once its Secret exists",
    )


def test_objects_no_rule_uses_still_get_their_status(env: Env) -> None:
    url = env.sandbox.url
    shopify = f"{url}/shopify/main"
    env.apply(
        [
            secret("wrong-creds", {"app_key": "app-key", "app_secret": "app-secret", "access_token": "bad"}),
            secret("wms-creds", {"token": "wms-token"}),
            resource("Store", "lonely", {"platform": "tiktok", "endpoint": url, "shopCipher": AS,
                                         "credentialsSecretRef": {"name": "wrong-creds"}}),
            resource("InventorySource", "wms", {"provider": "http", "endpoint": f"{url}/erp/wms",
                                                "credentialsSecretRef": {"name": "wms-creds"}}),
            resource("Warehouse", "known", {"sourceRef": {"name": "wms"}, "locationId": "L1"}),
            resource("Warehouse", "unknown", {"sourceRef": {"name": "wms"}, "locationId": "L9"}),
            resource("Warehouse", "orphan", {"sourceRef": {"name": "nowhere"}, "locationId": "L1"}),
            secret("shopify-main", {"access_token": "shpat-main"}),
            resource("InventorySource", "shopify-main", {"provider": "shopify", "endpoint": shopify,
                                                         "credentialsSecretRef": {"name": "shopify-main"}}),
            resource("Warehouse", "closed", {"sourceRef": {"name": "shopify-main"},
                                             "locationId": "gid://shopify/Location/2"}),
        ]
    )  # fmt: skip
    expected = {
        ("Store", "lonely"): ("False", "AuthFailed"),
        ("InventorySource", "wms"): ("True", "Fetched"),
        ("Warehouse", "known"): ("True", "Available"),
        ("Warehouse", "unknown"): ("False", "LocationNotFound"),
        ("Warehouse", "orphan"): ("False", "SourceNotFound"),
        ("Warehouse", "closed"): ("False", "LocationInactive"),
    }
    for (kind, name), want in expected.items():
        cond = wait_for(lambda k=kind, n=name: env.condition(k, n), what=f"{kind} {name} Ready condition")
        assert (cond["status"], cond["reason"]) == want, (kind, name, cond)
    assert "InventorySource nowhere not found" in env.condition("Warehouse", "orphan")["message"]  # type: ignore[index]
    assert env.status("Warehouse", "known")["available"] == 100


def test_a_single_slot_mapping_naming_a_missing_warehouse_pushes_nothing_until_it_exists(env: Env) -> None:
    """multiWarehouse: false, one mapping [w1, gone]: the listing's one slot is fed by it whatever id
    the platform reports, so without gone no quantity is pushed (w1 alone would give 100)."""
    url = env.sandbox.url
    env.apply(
        [
            *seed_manifests(url),
            *tiktok_store(
                url,
                "single",
                "ROW_relay",
                "token-relay",
                multiWarehouse=False,
                warehouses=[{"channelWarehouseId": "not-the-platform-id", "warehouseRefs": ["w1", "gone"]}],
            ),
            resource("SyncRule", "single", {"stores": {"names": ["single"]}, "warehouses": [{"name": "w1"}]}),
        ]
    )

    def names_gone() -> bool:
        cond = env.condition("SyncRule", "single")
        return (
            cond is not None and cond["reason"] == "WarehouseNotFound" and "Warehouse gone" in cond["message"]
        )

    wait_for(names_gone, what="Ready=False naming Warehouse gone")
    wait_for(lambda: ready(env, "easyboss") and ready(env, "aftership"), what="the other rules keep syncing")
    assert env.quantities("ROW_relay") == {("A", "7201"): 0}  # nothing pushed from w1 alone
    assert env.status("SyncRule", "single")["summary"]["held"] == 1
    # gone appears (location L2, where A is disabled): the slot converges on w1's stock.
    env.apply([resource("Warehouse", "gone", {"sourceRef": {"name": "wms"}, "locationId": "L2"})])
    wait_for(lambda: env.quantities("ROW_relay") == {("A", "7201"): 100}, what="100 once gone exists")
    wait_for(lambda: ready(env, "single"), what="the rule Ready")


def test_a_restarted_operator_still_refuses_a_source_that_suddenly_reads_empty(env: Env) -> None:
    """The empty-read guard needs the last good read; a new process finds it on the InventorySource."""
    env.apply(seed_manifests(env.sandbox.url))
    wait_for(lambda: converged(env), what="the seed quantities")
    wait_for(
        lambda: (
            "invsync.dev/last-good-read"
            in (env.get("InventorySource", "wms")["metadata"].get("annotations") or {})
        ),
        what="the last good read kept on the InventorySource",
    )
    env.operator.stop()
    env.admin(
        "POST", "faults", {"platform": "http", "target": "wms", "operation": "inventory", "empty": True}
    )
    writes = env.writes()
    env.operator.start()

    def says_why() -> dict[str, Any] | None:
        cond = env.condition("SyncRule", "easyboss")
        return cond if cond and "returned no stock where the last read had" in cond["message"] else None

    wait_for(says_why, what="Ready=False: the empty read refused after the restart")
    assert env.quantities(MW)[("A", "7001")] == 45 and env.writes() == writes  # nothing zeroed
