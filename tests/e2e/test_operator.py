"""`invsync run` against the real kube-apiserver and the sandbox: the seed scenarios, webhooks,
hand edits, only-differing pushes and the quiet second sync (SPEC sections 2-4)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from operator_env import Env, Operator, env_fixture, wait_for

from invsync.testing.cluster import REPO_ROOT, Kubectl

pytestmark = pytest.mark.e2e

MW, AS = "ROW_multi", "ROW_after"
EXAMPLES = REPO_ROOT / "examples"


SANDBOX = """
tiktok:
  app_key: app-key
  app_secret: app-secret
  shops:
    - cipher: ROW_multi          # EasyBoss: one product, three channel warehouses
      access_token: token-mw
      warehouses:
        - {id: "7001", name: W1, is_default: true}
        - {id: "7002", name: W2}
        - {id: "7003", name: W3}
      products:
        - id: p-A
          skus:
            - id: s-A
              seller_sku: A
              inventory:
                - {warehouse_id: "7001", quantity: 0}
                - {warehouse_id: "7002", quantity: 0}
                - {warehouse_id: "7003", quantity: 0}
    - cipher: ROW_after          # AfterShip: one warehouse, STEADY already in sync
      access_token: token-as
      warehouses: [{id: "8001", name: Main, is_default: true}]
      products: []               # filled from AFTERSHIP_LIVE
shopify:
  - shop: main
    access_token: shpat-main
    locations: [{id: "gid://shopify/Location/1", name: JKT, active: true}]
    items:
      - {sku: HUNDRED, levels: {"gid://shopify/Location/1": 100}}
      - {sku: FIVE, levels: {"gid://shopify/Location/1": 5}}
      - {sku: SIX, levels: {"gid://shopify/Location/1": 6}}
      - {sku: BACKORDER, inventoryPolicy: CONTINUE, levels: {"gid://shopify/Location/1": 0}}
      - {sku: STEADY, levels: {"gid://shopify/Location/1": 10}}
erp:
  - name: wms
    token: wms-token
    items:
      - {sku: A, location: L1, available: 100}
      - {sku: A, location: L2, available: 0, enabled: false}
      - {sku: A, location: L3, available: 0, enabled: false}
    webhook: {url: "%(webhook)s", secret: hook-secret-value}
"""

MANIFESTS = """
apiVersion: v1
kind: Secret
metadata: {name: tiktok-mw}
stringData: {app_key: app-key, app_secret: app-secret, access_token: token-mw}
---
apiVersion: v1
kind: Secret
metadata: {name: tiktok-as}
stringData: {app_key: app-key, app_secret: app-secret, access_token: token-as}
---
apiVersion: v1
kind: Secret
metadata: {name: shopify-main}
stringData: {access_token: shpat-main}
---
apiVersion: v1
kind: Secret
metadata: {name: wms-creds}
stringData: {token: wms-token}
---
apiVersion: v1
kind: Secret
metadata: {name: wms-webhook}
stringData: {secret: hook-secret-value}
---
apiVersion: invsync.dev/v1alpha1
kind: InventorySource
metadata: {name: wms}
spec:
  provider: http
  endpoint: %(url)s/erp/wms
  credentialsSecretRef: {name: wms-creds}
  webhook: {secretRef: {name: wms-webhook}}
---
apiVersion: invsync.dev/v1alpha1
kind: InventorySource
metadata: {name: shopify-main}
spec: {provider: shopify, endpoint: "%(url)s/shopify/main", credentialsSecretRef: {name: shopify-main}}
---
apiVersion: invsync.dev/v1alpha1
kind: Warehouse
metadata: {name: w1}
spec: {sourceRef: {name: wms}, locationId: L1}
---
apiVersion: invsync.dev/v1alpha1
kind: Warehouse
metadata: {name: w2}
spec: {sourceRef: {name: wms}, locationId: L2}
---
apiVersion: invsync.dev/v1alpha1
kind: Warehouse
metadata: {name: w3}
spec: {sourceRef: {name: wms}, locationId: L3}
---
apiVersion: invsync.dev/v1alpha1
kind: Warehouse
metadata: {name: shop-jkt}
spec: {sourceRef: {name: shopify-main}, locationId: "gid://shopify/Location/1"}
---
apiVersion: invsync.dev/v1alpha1
kind: Store
metadata: {name: tiktok-mw}
spec:
  platform: tiktok
  endpoint: %(url)s
  shopCipher: ROW_multi
  credentialsSecretRef: {name: tiktok-mw}
  multiWarehouse: true
  warehouses:
    - {channelWarehouseId: "7001", warehouseRefs: [w1]}
    - {channelWarehouseId: "7002", warehouseRefs: [w2]}
    - {channelWarehouseId: "7003", warehouseRefs: [w3]}
---
apiVersion: invsync.dev/v1alpha1
kind: Store
metadata: {name: tiktok-as}
spec: {platform: tiktok, endpoint: "%(url)s", shopCipher: ROW_after, credentialsSecretRef: {name: tiktok-as}}
---
apiVersion: invsync.dev/v1alpha1
kind: SyncRule
metadata: {name: easyboss}
spec:
  stores: {names: [tiktok-mw]}
  warehouses: [{name: w1, ratio: 50}, {name: w2, ratio: 50}, {name: w3, ratio: 50}]
  executionRatio: 90
  interval: %(interval)s
---
apiVersion: invsync.dev/v1alpha1
kind: SyncRule
metadata: {name: aftership}
spec:
  stores: {names: [tiktok-as]}
  warehouses: [{name: shop-jkt, ratio: 90}]
  outOfStockThreshold: 5
  interval: %(interval)s
"""


AFTERSHIP_LIVE = {"HUNDRED": 0, "FIVE": 3, "SIX": 0, "BACKORDER": 0, "STEADY": 9}


def sandbox_config(op: Operator) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(
        SANDBOX % {"webhook": f"http://127.0.0.1:{op.webhook_port}/webhooks/{op.namespace}/wms"}
    )
    config["tiktok"]["shops"][1]["products"] = [
        {"id": f"p-{sku}", "skus": [{"id": f"s-{sku}", "seller_sku": sku, "inventory": [slot]}]}
        for sku, q in AFTERSHIP_LIVE.items()
        for slot in [{"warehouse_id": "8001", "quantity": q}]
    ]
    return config


def seed_manifests(url: str, interval: str = "1h") -> list[dict[str, Any]]:
    return list(yaml.safe_load_all(MANIFESTS % {"url": url, "interval": interval}))


@pytest.fixture
def env(namespace: str, kubectl: Kubectl, kubeconfig: Path, tmp_path: Path) -> Iterator[Env]:
    yield from env_fixture(namespace, kubectl, kubeconfig, tmp_path, sandbox_config)


def summary(env: Env, rule: str) -> dict[str, int]:
    result: dict[str, int] = env.status("SyncRule", rule).get("summary") or {}
    return result


def converged(env: Env) -> bool:
    mw, after = env.quantities(MW), env.quantities(AS)
    return (
        mw == {("A", "7001"): 45, ("A", "7002"): 0, ("A", "7003"): 0}
        and after
        == {("HUNDRED", "8001"): 90, ("FIVE", "8001"): 0, ("SIX", "8001"): 5, ("BACKORDER", "8001"): 99999,
            ("STEADY", "8001"): 9}
    )  # fmt: skip


def ready(env: Env, rule: str) -> bool:
    cond = env.condition("SyncRule", rule)
    return cond is not None and cond["status"] == "True"


def examples_sandbox(op: Operator) -> dict[str, Any]:
    """examples/sandbox.yaml, its webhooks aimed at this test's operator and namespace."""
    text = (EXAMPLES / "sandbox.yaml").read_text()
    text = text.replace(
        "http://127.0.0.1:8081/webhooks/invsync-demo/",
        f"http://127.0.0.1:{op.webhook_port}/webhooks/{op.namespace}/",
    )
    config: dict[str, Any] = yaml.safe_load(text)
    return config


@pytest.fixture
def examples_env(namespace: str, kubectl: Kubectl, kubeconfig: Path, tmp_path: Path) -> Iterator[Env]:
    yield from env_fixture(namespace, kubectl, kubeconfig, tmp_path, examples_sandbox)


def example_manifests(url: str) -> list[dict[str, Any]]:
    """Every Kubernetes object of examples/, endpoints aimed at this test's sandbox."""
    docs = []
    for path in sorted(EXAMPLES.glob("[0-9]*.yaml")):
        text = path.read_text().replace("http://127.0.0.1:18090", url)
        docs += [d for d in yaml.safe_load_all(text) if isinstance(d, dict) and "kind" in d]
    return docs


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
    # Only differing slots were pushed, one request per product: EB-A, EB-B, PCT, THR, CS, ALL, SPEC.
    assert env.writes() == 7
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


def test_webhook_change_reaches_the_channel_and_a_hand_edit_is_corrected(env: Env) -> None:
    env.apply(seed_manifests(env.sandbox.url))
    wait_for(lambda: converged(env), what="the seed quantities")
    wait_for(lambda: ready(env, "easyboss"), what="easyboss Ready")

    # A stock change in the WMS: delivered by webhook, planned for that SKU only; interval is 1h.
    delivery = env.admin("POST", "stock", {"source": "wms", "location": "L1", "sku": "A", "available": 40})
    assert delivery["webhook"]["status"] == 202, delivery
    wait_for(lambda: env.quantities(MW)[("A", "7001")] == 18, what="40 x 90% x 50% = 18 on the channel")

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
