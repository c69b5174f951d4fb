"""`invsync run` with a Shopify source large enough to be read by bulk operation (docs/platforms.md,
"Shopify bulk reads"): it converges from the JSONL file, and an operation that fails or a file that
arrives cut pushes nothing, says why on the rule, and is retried until the read is whole again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from operator_env import Env, Operator, env_fixture, ready, resource, secret, wait_for

from invsync.providers.shopify import BULK_THRESHOLD
from invsync.testing.cluster import Kubectl

pytestmark = pytest.mark.e2e

SHOP, CIPHER, LOCATION = "big", "ROW_listed", "gid://shopify/Location/1"
ITEMS = BULK_THRESHOLD + 500  # variants at one location: at the threshold, so every full read is bulk
LISTED = 30  # the channel lists the first 30 SKUs, one slot each


def bulk_world(op: Operator) -> dict[str, Any]:
    return {
        "tiktok": {
            "app_key": "k",
            "app_secret": "s",
            "shops": [
                {
                    "cipher": CIPHER,
                    "access_token": "t",
                    "warehouses": [{"id": "9001", "is_default": True}],
                    "generate": {"products": LISTED},
                }
            ],
        },
        "shopify": [
            {
                "shop": SHOP,
                "access_token": "shpat_big",
                "locations": [{"id": LOCATION, "name": "JKT"}],
                "generate": {"items": ITEMS, "available": 5},
            }
        ],
    }


@pytest.fixture
def bulk_env(namespace: str, kubectl: Kubectl, kubeconfig: Path, tmp_path: Path) -> Iterator[Env]:
    yield from env_fixture(namespace, kubectl, kubeconfig, tmp_path, bulk_world)


def _apply(env: Env) -> None:
    url = env.sandbox.url
    env.apply(
        [
            secret("tt", {"app_key": "k", "app_secret": "s", "access_token": "t"}),
            secret("shop", {"access_token": "shpat_big"}),
            resource(
                "InventorySource",
                SHOP,
                {
                    "provider": "shopify",
                    "endpoint": f"{url}/shopify/{SHOP}",
                    "credentialsSecretRef": {"name": "shop"},
                },
            ),
            resource("Warehouse", "jkt", {"sourceRef": {"name": SHOP}, "locationId": LOCATION}),
            resource(
                "Store",
                "listed",
                {
                    "platform": "tiktok",
                    "endpoint": url,
                    "shopCipher": CIPHER,
                    "credentialsSecretRef": {"name": "tt"},
                },
            ),
            resource("SyncRule", "bulk", {"stores": {"names": ["listed"]}, "warehouses": [{"name": "jkt"}]}),
        ]
    )


def _sku(n: int) -> str:
    return f"SKU-{n:07d}"


def _counts(env: Env) -> dict[str, int]:
    """Shopify requests by operation and code, and the level pages read."""
    counts = env.admin("GET", "requests")
    out = {
        f"{r['operation']} {r['code']}": r["count"] for r in counts["requests"] if r["platform"] == "shopify"
    }
    return out | {"pages": counts["readPages"].get("shopify", 0)}


@pytest.mark.parametrize(
    ("fault", "why"),
    [
        (
            {"platform": "shopify", "operation": "bulk_operation", "bulkError": "INTERNAL_SERVER_ERROR"},
            "ended FAILED",
        ),
        ({"platform": "shopify", "operation": "bulk_download", "truncate": True}, "incomplete result"),
    ],
)
def test_a_large_shopify_source_converges_by_bulk_read_and_a_broken_one_pushes_nothing(
    bulk_env: Env, fault: dict[str, Any], why: str
) -> None:
    env = bulk_env
    want = {(_sku(n), "9001"): 5 for n in range(LISTED)}
    _apply(env)
    wait_for(lambda: env.quantities(CIPHER) == want, what="every listed slot at the Shopify level")
    wait_for(lambda: ready(env, "bulk"), what="the rule Ready")
    counts = _counts(env)
    assert counts.get("bulk_download 200", 0) >= 1 and counts["pages"] == 0, counts  # no level paged

    env.admin("POST", "faults", fault)
    env.admin("POST", "stock", {"source": SHOP, "location": LOCATION, "sku": _sku(3), "available": 9})
    writes = env.writes()
    assert env.invsync("sync", "bulk").returncode == 0

    def says_why() -> dict[str, Any] | None:
        cond = env.condition("SyncRule", "bulk")
        return cond if cond and cond["reason"] == "SourceUnavailable" and why in cond["message"] else None

    cond = wait_for(says_why, what=f"Ready=False SourceUnavailable ({why}) on the rule")
    assert f"InventorySource {SHOP} could not be read" in cond["message"]
    assert env.writes() == writes and env.quantities(CIPHER)[(_sku(3), "9001")] == 5  # nothing pushed

    env.admin("DELETE", "faults")
    wait_for(
        lambda: env.quantities(CIPHER)[(_sku(3), "9001")] == 9,
        what="the new level pushed once reads are whole",
    )
    wait_for(lambda: ready(env, "bulk"), what="Ready again")
