"""A small world for the contract tests: one TikTok app and shop with three warehouses, one Shopify
shop, and hand-signed TikTok calls (signed by the test, not by the client under test)."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from invsync.api import InventorySource, Store
from invsync.providers import RetryPolicy
from invsync.providers import tiktok as tt
from invsync.sandbox.server import Sandbox

APP_KEY, APP_SECRET, TOKEN, REFRESH = "ck-app-3d1f", "ck-secret-88e0a1", "ck-token-51c2", "ck-refresh-9a9a"
SHOPIFY_TOKEN = "shpat_c0ntract"
FAST = RetryPolicy(attempts=3, base=0.01, cap=0.05, timeout=5)
LOC = "gid://shopify/Location/1"


def world(**shop: Any) -> dict[str, Any]:
    """Product p1: SKU s1 in warehouses 7000 (default) and 7001, SKU s2 in 7000; p2 (DEACTIVATED by
    the seller) with SKU s3 in 7000; warehouse 7002 is a disabled sales warehouse."""
    warehouses = [
        {"id": "7000", "name": "Jakarta", "is_default": True},
        {"id": "7001", "name": "Surabaya"},
        {"id": "7002", "name": "Medan", "effect_status": "DISABLED"},
    ]
    products = [
        {
            "id": "p1",
            "skus": [
                {
                    "id": "s1",
                    "seller_sku": "A-1",
                    "inventory": [
                        {"warehouse_id": "7000", "quantity": 5},
                        {"warehouse_id": "7001", "quantity": 8},
                    ],
                },
                {"id": "s2", "seller_sku": "A-2", "inventory": [{"warehouse_id": "7000", "quantity": 2}]},
            ],
        },
        {
            "id": "p2",
            "status": "SELLER_DEACTIVATED",
            "skus": [
                {"id": "s3", "seller_sku": "B-1", "inventory": [{"warehouse_id": "7000", "quantity": 4}]}
            ],
        },
    ]
    return {
        "tiktok": {
            "app_key": APP_KEY,
            "app_secret": APP_SECRET,
            "requestsPerSecond": 5000,
            "shops": [
                {
                    "cipher": "ROW_c",
                    "access_token": TOKEN,
                    "refresh_token": REFRESH,
                    "warehouses": warehouses,
                    "products": products,
                }
                | shop
            ],
        },
        "shopify": [
            {
                "shop": "main",
                "access_token": SHOPIFY_TOKEN,
                "throttle": {"maximumAvailable": 2000, "restoreRate": 100_000},
                "locations": [{"id": LOC, "name": "JKT"}],
                "items": [{"sku": "A-1", "levels": {LOC: 3}}],
            }
        ],
    }


def store(sb: Sandbox) -> Store:
    return Store.model_validate(
        {
            "apiVersion": "invsync.dev/v1alpha1",
            "kind": "Store",
            "metadata": {"name": "tt", "namespace": "shop"},
            "spec": {
                "platform": "tiktok",
                "endpoint": sb.url,
                "shopCipher": "ROW_c",
                "credentialsSecretRef": {"name": "tiktok-creds"},
                "rateLimit": {"requestsPerSecond": 1000, "burst": 100},
            },
        }
    )


def secret(**overrides: str) -> dict[str, str]:
    return {
        "app_key": APP_KEY,
        "app_secret": APP_SECRET,
        "access_token": TOKEN,
        "refresh_token": REFRESH,
    } | overrides


def shopify_source(sb: Sandbox, **spec: str) -> InventorySource:
    return InventorySource.model_validate(
        {
            "apiVersion": "invsync.dev/v1alpha1",
            "kind": "InventorySource",
            "metadata": {"name": "shop", "namespace": "shop"},
            "spec": {
                "provider": "shopify",
                "endpoint": f"{sb.url}/shopify/main",
                "credentialsSecretRef": {"name": "c"},
            }
            | spec,
        }
    )


def call(
    sb: Sandbox,
    method: str,
    path: str,
    body: Any = None,
    *,
    query: dict[str, str] | None = None,
    skew: int = 0,
) -> dict[str, Any]:
    """One TikTok call signed by hand; returns the envelope."""
    params = {"app_key": APP_KEY, "shop_cipher": "ROW_c", "timestamp": str(int(time.time()) + skew)} | (
        query or {}
    )
    raw = json.dumps(body).encode() if body is not None else b""
    params["sign"] = tt.sign(APP_SECRET, path, params, raw)
    response = httpx.request(
        method,
        sb.url + path,
        params=params,
        content=raw or None,
        headers={"x-tts-access-token": TOKEN, "content-type": "application/json"},
    )
    envelope: dict[str, Any] = response.json()
    return envelope


def update(sb: Sandbox, product: str, skus: list[dict[str, Any]]) -> dict[str, Any]:
    return call(sb, "POST", tt.UPDATE_PATH.format(product_id=product), {"skus": skus})


def inventory(sb: Sandbox, sku: str) -> dict[str, int]:
    return dict(sb.state.tiktok["ROW_c"].skus[sku].inventory)
