"""examples/sandbox.yaml, the manifests and the snapshots describe one world, so the operator running
against the sandbox converges to exactly what `invsync plan` prints for the snapshots."""

from __future__ import annotations

from examples_world import EXAMPLES, SANDBOX, example_secrets

from invsync.api.loader import load_and_validate
from invsync.engine import Listing, StockRecord
from invsync.sandbox.config import load_config
from invsync.snapshots import load_inventory, load_listings

CONFIG = load_config(EXAMPLES / "sandbox.yaml")
MANIFESTS = load_and_validate([str(EXAMPLES)])


def test_snapshots_hold_the_sandbox_stock() -> None:
    shopify = {s.name: s for s in MANIFESTS.sources if s.spec.provider == "shopify"}
    expected = set()
    for shop in CONFIG.shopify:
        [source] = [n for n, s in shopify.items() if s.spec.endpoint == f"{SANDBOX}/shopify/{shop.shop}"]
        for item in shop.items:
            continues = item.inventory_policy == "CONTINUE" or not item.tracked
            expected |= {
                StockRecord(source, loc, item.sku, n, continues, True) for loc, n in item.levels.items()
            }
    for erp in CONFIG.erp:
        expected |= {
            StockRecord(erp.name, i.location, i.sku, i.available, i.continue_selling, i.enabled)
            for i in erp.items
        }
    json_rows = load_inventory(str(EXAMPLES / "snapshots" / "inventory.json"))
    assert set(json_rows) == expected and len(json_rows) == len(expected)
    assert load_inventory(str(EXAMPLES / "snapshots" / "inventory.csv")) == json_rows


def _sandbox_listings() -> set[Listing]:
    """Every slot the sandbox config holds, per platform, named by the Store that points at it."""
    by_cipher = {s.spec.shop_cipher: s.name for s in MANIFESTS.stores if s.spec.platform == "tiktok"}
    by_shop = {s.spec.shop_id: s.name for s in MANIFESTS.stores if s.spec.platform == "shopee"}
    [lazada_store] = [s.name for s in MANIFESTS.stores if s.spec.platform == "lazada"]
    assert CONFIG.tiktok is not None and CONFIG.shopee is not None and CONFIG.lazada is not None
    [seller] = CONFIG.lazada.sellers
    return (
        {
            Listing(
                by_cipher[shop.cipher], sku.seller_sku, product.id, sku.id, inv.warehouse_id, inv.quantity
            )
            for shop in CONFIG.tiktok.shops
            for product in shop.products
            for sku in product.skus
            for inv in sku.inventory
        }
        | {
            Listing(
                by_shop[shop.shop_id], m.model_sku, str(item.item_id), str(m.model_id), s.location_id, s.stock
            )
            for shop in CONFIG.shopee.shops
            for item in shop.items
            for m in item.models
            for s in m.seller_stock
        }
        | {
            Listing(
                lazada_store,
                sku.seller_sku,
                str(p.item_id),
                str(sku.sku_id),
                i.warehouse_code,
                i.sellable_quantity,
            )
            for p in seller.products
            for sku in p.skus
            for i in sku.multi_warehouse_inventories
        }
    )


def test_snapshots_hold_the_sandbox_listings() -> None:
    expected = _sandbox_listings()
    json_rows = load_listings(str(EXAMPLES / "snapshots" / "listings.json"))
    assert set(json_rows) == expected and len(json_rows) == len(expected)
    assert load_listings(str(EXAMPLES / "snapshots" / "listings.csv")) == json_rows


def test_manifests_point_at_the_sandbox_with_its_credentials() -> None:
    secrets = example_secrets()
    assert CONFIG.tiktok is not None and CONFIG.shopee is not None and CONFIG.lazada is not None
    shops = {shop.cipher: shop for shop in CONFIG.tiktok.shops}
    shopee_shops = {shop.shop_id: shop for shop in CONFIG.shopee.shops}
    for st in MANIFESTS.stores:
        creds = secrets[st.spec.credentials_secret_ref.name]
        if st.spec.platform == "shopee":
            assert st.spec.shop_id is not None
            sp = shopee_shops[st.spec.shop_id]
            assert st.spec.endpoint == f"{SANDBOX}/shopee"
            assert (int(creds["partner_id"]), creds["partner_key"]) == (
                CONFIG.shopee.partner_id,
                CONFIG.shopee.partner_key,
            )
            assert (creds["access_token"], creds["refresh_token"]) == (sp.access_token, sp.refresh_token)
            continue
        if st.spec.platform == "lazada":
            [seller] = CONFIG.lazada.sellers
            assert st.spec.endpoint == f"{SANDBOX}/lazada/rest"
            assert (creds["app_key"], creds["app_secret"]) == (
                CONFIG.lazada.app_key,
                CONFIG.lazada.app_secret,
            )
            assert (creds["access_token"], creds["refresh_token"]) == (
                seller.access_token,
                seller.refresh_token,
            )
            continue
        shop = shops[st.spec.shop_cipher]
        assert st.spec.endpoint == SANDBOX
        assert (creds["app_key"], creds["app_secret"], creds["access_token"]) == (
            CONFIG.tiktok.app_key,
            CONFIG.tiktok.app_secret,
            shop.access_token,
        )
        assert {m.channel_warehouse_id for m in st.spec.warehouses} <= {w.id for w in shop.warehouses}
        assert st.spec.multi_warehouse == shop.multi_warehouse
    shopify = {s.shop: s for s in CONFIG.shopify}
    erp = {e.name: e for e in CONFIG.erp}
    for src in MANIFESTS.sources:
        assert src.spec.credentials_secret_ref is not None and src.spec.webhook is not None
        creds = secrets[src.spec.credentials_secret_ref.name]
        hook = secrets[src.spec.webhook.secret_ref.name]["secret"]
        if src.spec.provider == "shopify":
            shop = shopify[src.spec.endpoint.removeprefix(f"{SANDBOX}/shopify/")]
            assert creds["access_token"] == shop.access_token
            assert shop.webhook is not None and shop.webhook.secret == hook
            assert shop.webhook.url == f"http://127.0.0.1:8081/webhooks/invsync-demo/{src.name}"
        else:
            source = erp[src.spec.endpoint.removeprefix(f"{SANDBOX}/erp/")]
            assert creds["token"] == source.token
            hooks = source.webhook or CONFIG.webhooks
            assert hooks is not None and hooks.secret == hook
            assert hooks.url == f"http://127.0.0.1:8081/webhooks/invsync-demo/{src.name}"


def test_every_warehouse_names_a_sandbox_location() -> None:
    locations = {("shopify-main", loc.id) for shop in CONFIG.shopify for loc in shop.locations}
    locations |= {(e.name, i.location) for e in CONFIG.erp for i in e.items}
    assert {(w.spec.source_ref.name, w.spec.location_id) for w in MANIFESTS.warehouses} <= locations
