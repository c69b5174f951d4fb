"""A small Lazada world for the contract tests: a multi-warehouse seller and a single-warehouse one, and
hand-signed LazOP calls (signed by the test, not by the client under test)."""

from __future__ import annotations

import time
from typing import Any

import httpx

from invsync.api import Store
from invsync.providers import lazada as lz
from invsync.sandbox.server import Sandbox

APP_KEY, APP_SECRET = "300117", "lz-secret-5c1e9a"
TOKEN, REFRESH = "lz-access-multi-71f0", "lz-refresh-multi-0b3c"
SINGLE_TOKEN = "lz-access-single-2d4e"
WH2 = "SG10RV7-WH-10002"


def world(skus: int = 0, **seller: Any) -> dict[str, Any]:
    """Seller m1 (warehouses dropshipping and WH2): item 9001 with K-1 (5 in dropshipping, none in WH2)
    and K-2 (3 in WH2 only), item 9002 with F-1 held by Lazada (FBL), item 9003 with `skus` SKUs M-n.
    Seller s1 (dropshipping only): item 8001 with S-1 (4)."""
    many = [
        {
            "SkuId": 9300 + n,
            "SellerSku": f"M-{n}",
            "multiWarehouseInventories": [{"warehouseCode": "dropshipping", "sellableQuantity": 1}],
        }
        for n in range(skus)
    ]
    return {
        "lazada": {
            "app_key": APP_KEY,
            "app_secret": APP_SECRET,
            "sellers": [
                {
                    "seller_id": "m1",
                    "access_token": TOKEN,
                    "refresh_token": REFRESH,
                    "requestsPerSecond": 5000,
                    "warehouses": ["dropshipping", WH2],
                    "products": [
                        {
                            "item_id": 9001,
                            "skus": [
                                {
                                    "SkuId": 9101,
                                    "SellerSku": "K-1",
                                    "multiWarehouseInventories": [
                                        {"warehouseCode": "dropshipping", "sellableQuantity": 5},
                                        {"warehouseCode": WH2, "sellableQuantity": 0},
                                    ],
                                },
                                {
                                    "SkuId": 9102,
                                    "SellerSku": "K-2",
                                    "multiWarehouseInventories": [
                                        {"warehouseCode": WH2, "sellableQuantity": 3}
                                    ],
                                },
                            ],
                        },
                        {
                            "item_id": 9002,
                            "skus": [{"SkuId": 9201, "SellerSku": "F-1", "fblSellableQuantity": 12}],
                        },
                        {"item_id": 9003, "skus": many},
                    ],
                }
                | seller,
                {
                    "seller_id": "s1",
                    "access_token": SINGLE_TOKEN,
                    "warehouses": ["dropshipping"],
                    "products": [
                        {
                            "item_id": 8001,
                            "skus": [
                                {
                                    "SkuId": 8101,
                                    "SellerSku": "S-1",
                                    "multiWarehouseInventories": [
                                        {"warehouseCode": "dropshipping", "sellableQuantity": 4}
                                    ],
                                }
                            ],
                        }
                    ],
                },
            ],
        }
    }


def endpoint(sb: Sandbox) -> str:
    return f"{sb.url}/lazada/rest"


def store(sb: Sandbox, name: str = "lz", namespace: str = "shop") -> Store:
    return Store.model_validate(
        {
            "apiVersion": "invsync.dev/v1alpha1",
            "kind": "Store",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "platform": "lazada",
                "endpoint": endpoint(sb),
                "credentialsSecretRef": {"name": "lazada-creds"},
                "multiWarehouse": True,
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


def call(
    sb: Sandbox,
    path: str,
    params: dict[str, str] | None = None,
    *,
    token: str | None = TOKEN,
    skew_ms: int = 0,
    post: bool = False,
) -> dict[str, Any]:
    """One LazOP call signed by hand; returns the envelope."""
    signed = {
        "app_key": APP_KEY,
        "timestamp": str(int(time.time() * 1000) + skew_ms),
        "sign_method": "sha256",
    }
    signed |= ({"access_token": token} if token else {}) | (params or {})
    signed["sign"] = lz.sign(APP_SECRET, path, signed)
    url = endpoint(sb) + path
    response = httpx.post(url, data=signed) if post else httpx.get(url, params=signed)
    envelope: dict[str, Any] = response.json()
    return envelope


def update(sb: Sandbox, skus: str, token: str = TOKEN) -> dict[str, Any]:
    """UpdateSellableQuantity with these <Sku> elements."""
    payload = f"<Request><Product><Skus>{skus}</Skus></Product></Request>"
    return call(sb, lz.UPDATE_PATH, {"payload": payload}, token=token, post=True)


def multi(sku_id: int, seller_sku: str, quantities: dict[str, int]) -> str:
    inventories = "".join(
        f"<MultiWarehouseInventory><WarehouseCode>{w}</WarehouseCode><SellableQuantity>{q}</SellableQuantity>"
        "</MultiWarehouseInventory>"
        for w, q in quantities.items()
    )
    return (
        f"<Sku><SkuId>{sku_id}</SkuId><SellerSku>{seller_sku}</SellerSku>"
        f"<MultiWarehouseInventories>{inventories}</MultiWarehouseInventories></Sku>"
    )


def single(sku_id: int, seller_sku: str, quantity: int) -> str:
    return (
        f"<Sku><SkuId>{sku_id}</SkuId><SellerSku>{seller_sku}</SellerSku>"
        f"<SellableQuantity>{quantity}</SellableQuantity></Sku>"
    )


def stock(sb: Sandbox, seller_sku: str, seller: str = "m1") -> dict[str, int]:
    return dict(sb.state.lazada.sellers[seller].by_seller_sku[seller_sku].stock)
