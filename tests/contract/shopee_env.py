"""A small Shopee world for the contract tests: one partner, one shop with two locations, and calls signed
by hand (by the test, not by the client under test)."""

from __future__ import annotations

import time
from typing import Any

import httpx

from invsync.api import Store
from invsync.providers import RetryPolicy
from invsync.providers import shopee as sp
from invsync.sandbox.server import Sandbox

PARTNER_ID, PARTNER_KEY = 2001887, "ck-partner-key-6f1e"
SHOP_ID, TOKEN, REFRESH = 1001, "ck-shopee-token-51c2", "ck-shopee-refresh-9a9a"
FAST = RetryPolicy(attempts=3, base=0.01, cap=0.05, timeout=5)


def world(**shop: Any) -> dict[str, Any]:
    """Item 5001: models 7001 (K-1, stock at IDZ and IDW, 3 more in Shopee's own warehouse) and 7002 (K-2);
    item 5002 has no models (its own SKU K-3); item 5003 (K-4) is UNLIST; 5004 was deleted by the seller."""
    both = [{"location_id": "IDZ", "stock": 5}, {"location_id": "IDW", "stock": 8}]
    items = [
        {
            "item_id": 5001,
            "models": [
                {
                    "model_id": 7001,
                    "model_sku": "K-1",
                    "seller_stock": both,
                    "shopee_stock": [{"location_id": "IDFBS", "stock": 3}],
                },
                {"model_id": 7002, "model_sku": "K-2", "seller_stock": [{"location_id": "IDZ", "stock": 2}]},
            ],
        },
        {"item_id": 5002, "item_sku": "K-3", "seller_stock": [{"location_id": "IDZ", "stock": 4}]},
        {
            "item_id": 5003,
            "item_status": "UNLIST",
            "models": [
                {"model_id": 7004, "model_sku": "K-4", "seller_stock": [{"location_id": "IDZ", "stock": 1}]}
            ],
        },
        {
            "item_id": 5004,
            "item_status": "SELLER_DELETE",
            "models": [
                {"model_id": 7005, "model_sku": "K-5", "seller_stock": [{"location_id": "IDZ", "stock": 9}]}
            ],
        },
    ]
    return {
        "shopee": {
            "partner_id": PARTNER_ID,
            "partner_key": PARTNER_KEY,
            "requestsPerSecond": 5000,
            "shops": [
                {
                    "shop_id": SHOP_ID,
                    "access_token": TOKEN,
                    "refresh_token": REFRESH,
                    "locations": [
                        {"location_id": "IDZ", "warehouse_name": "Jakarta"},
                        {"location_id": "IDW", "warehouse_name": "Surabaya"},
                    ],
                    "items": items,
                }
                | shop
            ],
        }
    }


def store(sb: Sandbox, name: str = "sp", namespace: str = "shop") -> Store:
    return Store.model_validate(
        {
            "apiVersion": "invsync.dev/v1alpha1",
            "kind": "Store",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "platform": "shopee",
                "endpoint": f"{sb.url}/shopee",
                "shopId": SHOP_ID,
                "multiWarehouse": True,
                "credentialsSecretRef": {"name": "shopee-creds"},
                "rateLimit": {"requestsPerSecond": 1000, "burst": 100},
            },
        }
    )


def secret(**overrides: str) -> dict[str, str]:
    return {
        "partner_id": str(PARTNER_ID),
        "partner_key": PARTNER_KEY,
        "access_token": TOKEN,
        "refresh_token": REFRESH,
    } | overrides


def call(
    sb: Sandbox,
    method: str,
    path: str,
    body: Any = None,
    *,
    query: dict[str, Any] | None = None,
    skew: int = 0,
    token: str = TOKEN,
    key: str = PARTNER_KEY,
) -> httpx.Response:
    """One shop-level Shopee call signed by hand."""
    stamp = int(time.time()) + skew
    params = {
        "partner_id": str(PARTNER_ID),
        "timestamp": str(stamp),
        "access_token": token,
        "shop_id": str(SHOP_ID),
        "sign": sp.sign(key, PARTNER_ID, path, stamp, token, SHOP_ID),
    } | (query or {})
    return httpx.request(method, f"{sb.url}/shopee{path}", params=params, json=body)


def update(sb: Sandbox, item_id: int, stock_list: list[dict[str, Any]]) -> dict[str, Any]:
    envelope: dict[str, Any] = call(
        sb, "POST", sp.UPDATE_STOCK_PATH, {"item_id": item_id, "stock_list": stock_list}
    ).json()
    return envelope


def stock(sb: Sandbox, item_id: int, model_id: int) -> dict[str, int]:
    return dict(sb.state.shopee[SHOP_ID].items[item_id].models[model_id].seller_stock)
