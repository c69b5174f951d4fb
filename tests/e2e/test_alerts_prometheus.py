"""A real Prometheus scrapes a real `invsync run`, which syncs the sandbox against the real API
server with the ServiceAccount token of manifests/ (so its RBAC is the one enforced). When the
sandbox refuses one store's pushes, InvsyncDriftPersists becomes active in Prometheus's own
/api/v1/alerts for that store only, and resolves once the fault is removed; when the operator
stops, InvsyncOperatorAbsent fires. The rule file is the shipped one with every `for:` shortened
to a few seconds; the expressions are untouched."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from operator_env import Env, Operator, env_fixture, free_port, resource, secret, wait_for

from invsync.testing.cluster import REPO_ROOT, ControlPlane, Kubectl

pytestmark = pytest.mark.e2e

RULES = REPO_ROOT / "manifests" / "monitoring" / "invsync.rules.yaml"
SHORT_FOR = "3s"
STORES = ("tt-a", "tt-b")


def sandbox_config(_: Operator) -> dict[str, Any]:
    """Two single-warehouse TikTok shops selling A-1 (none listed yet), an ERP holding 10."""
    shops = [
        {
            "cipher": f"ROW_{store}",
            "access_token": f"token-{store}",
            "warehouses": [{"id": "7000", "name": "Jakarta", "is_default": True}],
            "products": [
                {
                    "id": f"p-{store}",
                    "skus": [
                        {"id": f"s-{store}", "seller_sku": "A-1", "inventory": [{"warehouse_id": "7000"}]}
                    ],
                }
            ],
        }
        for store in STORES
    ]
    return {
        "tiktok": {"app_key": "app-key", "app_secret": "app-secret", "shops": shops},
        "erp": [
            {
                "name": "wms",
                "token": "wms-token",
                "items": [{"sku": "A-1", "location": "jkt", "available": 10}],
            }
        ],
    }


def manifests(sandbox_url: str) -> list[dict[str, Any]]:
    docs = [
        secret("wms-creds", {"token": "wms-token"}),
        resource(
            "InventorySource",
            "wms",
            {
                "provider": "http",
                "endpoint": f"{sandbox_url}/erp/wms",
                "credentialsSecretRef": {"name": "wms-creds"},
            },
        ),
        resource("Warehouse", "jkt", {"sourceRef": {"name": "wms"}, "locationId": "jkt"}),
        resource(
            "SyncRule",
            "id-stores",
            {"stores": {"names": list(STORES)}, "warehouses": [{"name": "jkt"}], "interval": "2s"},
        ),
    ]
    for store in STORES:
        creds = {"app_key": "app-key", "app_secret": "app-secret", "access_token": f"token-{store}"}
        docs.append(secret(f"{store}-creds", creds))
        spec = {
            "platform": "tiktok",
            "endpoint": sandbox_url,
            "shopCipher": f"ROW_{store}",
            "credentialsSecretRef": {"name": f"{store}-creds"},
            "multiWarehouse": False,
            "warehouses": [{"channelWarehouseId": "7000", "warehouseRefs": ["jkt"]}],
        }
        docs.append(resource("Store", store, spec))
    return docs


@pytest.fixture
def env(cluster: ControlPlane, namespace: str, kubectl: Kubectl, tmp_path: Path) -> Iterator[Env]:
    """The operator authenticated as manifests/' ServiceAccount, not as the admin, in a namespace that
    granted it its Secrets (manifests/tenant/, docs/security.md "Granting access")."""
    kubectl("apply", "-k", str(REPO_ROOT / "manifests" / "core"), check=True)
    kubectl("apply", "-k", str(REPO_ROOT / "manifests" / "tenant"), "-n", namespace, check=True)
    as_operator = cluster.write_service_account_kubeconfig(
        "invsync-system", "invsync", tmp_path / "sa.kubeconfig"
    )
    yield from env_fixture(namespace, kubectl, as_operator, tmp_path, sandbox_config)


@pytest.fixture
def prometheus(env: Env, tmp_path: Path) -> Iterator[str]:
    """The system's Prometheus scraping the operator every second (job "invsync", as the
    ServiceMonitor names it), evaluating the shipped rules with short `for:`; yields its URL."""
    binary = shutil.which("prometheus")
    assert binary, "prometheus is not installed: run `make prometheus`"
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule["for"] = SHORT_FOR
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules))
    target = f"127.0.0.1:{env.operator.metrics_port}"
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(tmp_path / "rules.yaml")],
        "scrape_configs": [{"job_name": "invsync", "static_configs": [{"targets": [target]}]}],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    url = f"http://127.0.0.1:{free_port()}"
    log = tmp_path / "prometheus.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address={url.removeprefix('http://')}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: _ready(url), what=f"Prometheus ready (log: {log})")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/-/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _query(url: str, promql: str) -> list[dict[str, Any]]:
    body = httpx.get(f"{url}/api/v1/query", params={"query": promql}, timeout=5).json()
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def _alerts(url: str, name: str, state: str | None = None) -> list[dict[str, Any]]:
    body = httpx.get(f"{url}/api/v1/alerts", timeout=5).json()
    assert body["status"] == "success", body
    return [
        a
        for a in body["data"]["alerts"]
        if a["labels"]["alertname"] == name and (state is None or a["state"] == state)
    ]


def test_drift_alert_fires_for_the_refused_store_and_resolves(env: Env, prometheus: str) -> None:
    ns = env.namespace

    def in_sync(store: str) -> bool:
        return bool(
            _query(prometheus, f'invsync_listings{{namespace="{ns}",store="{store}",state="in_sync"}} == 1')
        )

    env.apply(manifests(env.sandbox.url))
    for store in STORES:
        wait_for(lambda s=store: in_sync(s), what=f"{store} in sync, as Prometheus scraped it")  # type: ignore[misc]
    assert env.quantities("ROW_tt-a") == env.quantities("ROW_tt-b") == {("A-1", "7000"): 10}
    assert _query(prometheus, 'up{job="invsync"} == 1')
    assert _alerts(prometheus, "InvsyncDriftPersists") == []

    # The channel refuses store b's inventory updates, then the warehouse's stock drops to 7.
    env.admin(
        "POST",
        "faults",
        {"platform": "tiktok", "operation": "inventory_update", "target": "ROW_tt-b", "status": 400},
    )
    env.admin("POST", "stock", {"source": "wms", "location": "jkt", "sku": "A-1", "available": 7})

    firing = wait_for(
        lambda: _alerts(prometheus, "InvsyncDriftPersists", "firing"), what="InvsyncDriftPersists firing"
    )
    assert [(a["labels"]["namespace"], a["labels"]["rule"], a["labels"]["store"]) for a in firing] == [
        (ns, "id-stores", "tt-b")
    ]
    assert firing[0]["labels"]["severity"] == "critical"
    assert firing[0]["annotations"]["summary"] == "Store tt-b shows the wrong stock (drifted listings: 1)"
    assert firing[0]["annotations"]["runbook_url"].endswith("docs/alerts.md#invsyncdriftpersists")
    assert env.quantities("ROW_tt-a") == {("A-1", "7000"): 7}
    assert env.quantities("ROW_tt-b") == {("A-1", "7000"): 10}
    # The refused pushes are what Prometheus sees failing, for store b only.
    failing = wait_for(
        lambda: _alerts(prometheus, "InvsyncPushesFailing", "firing"), what="InvsyncPushesFailing"
    )
    assert [a["labels"]["store"] for a in failing] == ["tt-b"]

    # The platform accepts store b's updates again: the next sync pushes 7 and the alert resolves.
    env.admin("DELETE", "faults")
    wait_for(lambda: in_sync("tt-b"), what="tt-b back in sync")
    wait_for(lambda: not _alerts(prometheus, "InvsyncDriftPersists"), what="InvsyncDriftPersists resolved")
    assert env.quantities("ROW_tt-b") == {("A-1", "7000"): 7}

    # The operator goes away: nothing answers the scrape and InvsyncOperatorAbsent fires.
    assert _alerts(prometheus, "InvsyncOperatorAbsent") == []
    env.operator.stop()
    absent = wait_for(
        lambda: _alerts(prometheus, "InvsyncOperatorAbsent", "firing"), what="InvsyncOperatorAbsent"
    )
    assert absent[0]["labels"]["severity"] == "critical"
