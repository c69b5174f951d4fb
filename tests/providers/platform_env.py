"""A sandbox config with several pages of everything, and resources pointing the real clients at it."""

from __future__ import annotations

from typing import Any

from invsync.api import InventorySource, Store
from invsync.providers import RetryPolicy
from invsync.sandbox.server import Sandbox

APP_KEY, APP_SECRET = "app-key-6kc76c", "app-secret-9f3e1d7a"
TOKEN, REFRESH = "tts-access-4b1f0c", "tts-refresh-77aa01"
SHOPIFY_TOKEN, ERP_TOKEN, HOOK_SECRET = "shpat_0ddc0ffee", "erp-bearer-5e5e5e", "hook-secret-a1b2c3"
SECRETS = (APP_KEY, APP_SECRET, TOKEN, REFRESH, SHOPIFY_TOKEN, ERP_TOKEN, HOOK_SECRET)
FAST = RetryPolicy(attempts=4, base=0.01, cap=0.05, timeout=5)
PRODUCTS, SHOPIFY_ITEMS, ERP_ITEMS = 230, 520, 1100
LOC1, LOC2 = "gid://shopify/Location/11", "gid://shopify/Location/12"


def _products(n: int, multi_warehouse: bool = True) -> list[dict[str, Any]]:
    """Each SKU stocked in 7000 (the default warehouse) and, in a multi-warehouse shop, 7001."""
    return [
        {
            "id": f"p{i}",
            "skus": [
                {
                    "id": f"s{i}-{j}",
                    "seller_sku": f"SKU-{i}-{j}",
                    "inventory": [{"warehouse_id": "7000", "quantity": i % 7}]
                    + ([{"warehouse_id": "7001", "quantity": j}] if multi_warehouse else []),
                }
                for j in range(2)
            ],
        }
        for i in range(n)
    ]


def config() -> dict[str, Any]:
    warehouses = [
        {
            "id": "7000",
            "name": "Jakarta",
            "type": "SALES_WAREHOUSE",
            "effect_status": "ENABLED",
            "is_default": True,
        },
        {"id": "7001", "name": "Surabaya", "type": "SALES_WAREHOUSE", "effect_status": "ENABLED"},
        {"id": "7002", "name": "Returns", "type": "RETURN_WAREHOUSE", "effect_status": "DISABLED"},
    ]
    return {
        "tiktok": {
            "app_key": APP_KEY,
            "app_secret": APP_SECRET,
            "requestsPerSecond": 1000,
            "shops": [
                {
                    "cipher": "ROW_main",
                    "access_token": TOKEN,
                    "refresh_token": REFRESH,
                    "warehouses": warehouses,
                    "products": _products(PRODUCTS),
                },
                {
                    "cipher": "ROW_single",
                    "access_token": TOKEN,
                    "multiWarehouse": False,
                    "warehouses": warehouses,
                    "products": _products(3, multi_warehouse=False),
                },
            ],
        },
        "shopify": [
            {
                "shop": "main",
                "access_token": SHOPIFY_TOKEN,
                "throttle": {
                    "maximumAvailable": 2000,
                    "restoreRate": 20000,
                },  # fast; throttling has its own test
                "locations": [
                    {"id": LOC1, "name": "JKT", "active": True},
                    {"id": LOC2, "name": "SBY", "active": False},
                ],
                "items": [
                    {
                        "sku": f"SKU-{i}",
                        "tracked": i % 5 != 0,
                        "inventoryPolicy": "CONTINUE" if i % 3 == 0 else "DENY",
                        "levels": {LOC1: i} | ({LOC2: 1} if i % 2 else {}),
                    }
                    for i in range(SHOPIFY_ITEMS)
                ],
            }
        ],
        "erp": [
            {
                "name": "wms",
                "token": ERP_TOKEN,
                "items": [
                    {
                        "sku": f"E-{i}",
                        "location": "jkt",
                        "available": i,
                        "continueSelling": i == 7,
                        "enabled": i != 8,
                    }
                    for i in range(ERP_ITEMS)
                ],
            }
        ],
    }


def store(sb: Sandbox, cipher: str = "ROW_main", rps: float = 1000, burst: int = 100) -> Store:
    return Store.model_validate(
        {
            "apiVersion": "invsync.dev/v1alpha1",
            "kind": "Store",
            "metadata": {"name": f"tt-{cipher.lower()}", "namespace": "shop"},
            "spec": {
                "platform": "tiktok",
                "endpoint": sb.url,
                "shopCipher": cipher,
                "credentialsSecretRef": {"name": "tiktok-creds"},
                "rateLimit": {"requestsPerSecond": rps, "burst": burst},
            },
        }
    )


def tiktok_secret(**overrides: str) -> dict[str, str]:
    return {
        "app_key": APP_KEY,
        "app_secret": APP_SECRET,
        "access_token": TOKEN,
        "refresh_token": REFRESH,
    } | overrides


def source(sb: Sandbox, provider: str, name: str) -> InventorySource:
    endpoint = f"{sb.url}/shopify/{name}" if provider == "shopify" else f"{sb.url}/erp/{name}"
    return InventorySource.model_validate(
        {
            "apiVersion": "invsync.dev/v1alpha1",
            "kind": "InventorySource",
            "metadata": {"name": f"src-{name}", "namespace": "shop"},
            "spec": {"provider": provider, "endpoint": endpoint, "credentialsSecretRef": {"name": "c"}},
        }
    )
