"""'In sync' is what the platform confirmed: when the platform loses writes behind invsync's back,
the next webhook sync reads its SKUs live, sees the change and re-reads the whole rule well before
its interval; status never claims in sync from the stale read (docs/status.md, docs/rules.md)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from operator_env import Env, Operator, env_fixture, resource, secret, tiktok_store, wait_for

from invsync.testing.cluster import Kubectl

pytestmark = pytest.mark.e2e

SHOP = "ROW_lost"
CW = "9001"
SKUS = [f"SKU-{i:02d}" for i in range(25)]
STOCK = {sku: 10 + i for i, sku in enumerate(SKUS)}


def lost_writes_sandbox(op: Operator) -> dict[str, Any]:
    """One TikTok shop of 25 single-warehouse products, all at 0; a WMS with their stock and a webhook."""
    return {
        "tiktok": {
            "app_key": "app-key",
            "app_secret": "app-secret",
            "shops": [
                {
                    "cipher": SHOP,
                    "access_token": "token-lost",
                    "warehouses": [{"id": CW, "name": "Main", "is_default": True}],
                    "products": [
                        {
                            "id": f"p-{sku}",
                            "skus": [
                                {
                                    "id": f"s-{sku}",
                                    "seller_sku": sku,
                                    "inventory": [{"warehouse_id": CW, "quantity": 0}],
                                }
                            ],
                        }
                        for sku in SKUS
                    ],
                }
            ],
        },
        "erp": [
            {
                "name": "wms",
                "token": "wms-token",
                "items": [{"sku": sku, "location": "L1", "available": n} for sku, n in STOCK.items()],
                "webhook": {
                    "url": f"http://127.0.0.1:{op.webhook_port}/webhooks/{op.namespace}/wms",
                    "secret": "hook-secret-value",
                },
            }
        ],
    }


@pytest.fixture
def env(namespace: str, kubectl: Kubectl, kubeconfig: Path, tmp_path: Path) -> Iterator[Env]:
    yield from env_fixture(namespace, kubectl, kubeconfig, tmp_path, lost_writes_sandbox)


def manifests(url: str) -> list[dict[str, Any]]:
    return [
        secret("wms-creds", {"token": "wms-token"}),
        secret("wms-webhook", {"secret": "hook-secret-value"}),
        resource(
            "InventorySource",
            "wms",
            {
                "provider": "http",
                "endpoint": f"{url}/erp/wms",
                "credentialsSecretRef": {"name": "wms-creds"},
                "webhook": {"secretRef": {"name": "wms-webhook"}},
                "pollInterval": "1h",
            },
        ),
        resource("Warehouse", "w1", {"sourceRef": {"name": "wms"}, "locationId": "L1"}),
        *tiktok_store(url, "tiktok-lost", SHOP, "token-lost"),
        resource(
            "SyncRule",
            "lost",
            {"stores": {"names": ["tiktok-lost"]}, "warehouses": [{"name": "w1"}], "interval": "1h"},
        ),
    ]


def read_time(status: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(str(status["lastFullReadTime"]).replace("Z", "+00:00"))


def test_lost_writes_seen_by_a_webhook_sync_make_the_rule_reread_and_converge_before_its_interval(
    env: Env,
) -> None:
    env.apply(manifests(env.sandbox.url))
    expected = {(sku, CW): n for sku, n in STOCK.items()}
    wait_for(lambda: env.quantities(SHOP) == expected, what="25 slots at their stock")

    def synced() -> dict[str, Any] | None:
        status = env.status("SyncRule", "lost")
        ready = next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), {})
        return status if ready.get("reason") == "Synced" and status["summary"]["inSync"] == 25 else None

    before = wait_for(synced, what="25 of 25 in sync")
    assert before["acknowledgedSinceFullRead"] == 25
    assert "25 of 25 listings in sync (read " in next(
        c["message"] for c in before["conditions"] if c["type"] == "Ready"
    )
    time.sleep(1.1)  # lastFullReadTime has whole seconds: the re-read must be visibly later

    # The platform loses the writes (as a sandbox restarted with other data would): every slot at 1.
    lost_at = datetime.now(UTC).replace(microsecond=0)
    for sku in SKUS:
        env.admin("POST", "listing", {"shop": SHOP, "warehouse_id": CW, "seller_sku": sku, "quantity": 1})
    version = env.get("SyncRule", "lost")["metadata"]["resourceVersion"]

    # One webhook stock change, for one SKU; the rule's interval (and the source's poll) is an hour.
    delivery = env.admin(
        "POST", "stock", {"source": "wms", "location": "L1", "sku": "SKU-07", "available": 50}
    )
    assert delivery["webhook"]["status"] == 202, delivery
    expected[("SKU-07", CW)] = 50
    seen: list[dict[str, Any]] = []

    def converged() -> bool:
        got = env.get("SyncRule", "lost")
        if got["metadata"]["resourceVersion"] != version:
            seen.append(got["status"])
        return env.quantities(SHOP) == expected

    wait_for(converged, what="every slot back at its stock after one webhook")

    def confirmed() -> dict[str, Any] | None:
        status = synced()
        return status if status is not None and read_time(status) >= lost_at else None

    after = wait_for(confirmed, what="25 of 25 in sync from a read after the loss")
    seen.append(after)
    # No status written after the webhook claims in sync from the read before the loss.
    for status in seen:
        ready = next(c for c in status["conditions"] if c["type"] == "Ready")
        if ready["reason"] == "Synced":
            assert read_time(status) >= lost_at, status
    changed = [e for e in env.events() if e.get("reason") == "ChannelChanged"]
    assert changed and "live slots read for a webhook's SKUs differ" in changed[0]["message"]
    assert "changed behind invsync's back" in env.operator.log.read_text()
