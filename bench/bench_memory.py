"""Memory a rule keeps per listing between syncs: its last full read (ReadState: slots, stock, the SKU
index) and its plan's tally, built from decoded pages the way a full sync builds them.

TikTok products-search pages and ERP pages are generated as the sandbox serves them, decoded with
the clients' decoders and turned into Listings and StockRecords by the clients' own code; the bytes
are tracemalloc's count of what stays allocated once the pages are gone. Also the process RSS after
each size (the interpreter and the libraries included). Target: <= 400 bytes per listing held.
Usage: .venv/bin/python bench/bench_memory.py [--listings 100000 1000000] [--shop-size 10000]
"""

from __future__ import annotations

import argparse
import gc
import resource
import tracemalloc
from pathlib import Path

import orjson

from bench_read import objects
from invsync.engine import compute_plan
from invsync.engine.records import Listing, StockRecord
from invsync.engine.tally import RuleTally
from invsync.operator.state import ReadState
from invsync.providers.http_source import _plain_page
from invsync.providers.tiktok import _ENVELOPE, _SEARCH_PAGE, TikTokChannel
from report import emit, log, machine, table

PAGE = 100


def _page(shop: int, start: int, count: int) -> bytes:
    """One products-search page as the sandbox's generated shop serves it (docs/platforms.md)."""
    products = [
        {
            "id": f"17{shop:04d}{p:013d}",
            "status": "ACTIVATE",
            "skus": [
                {
                    "id": f"18{shop:04d}{p:013d}",
                    "seller_sku": f"SKU-{p:07d}",
                    "inventory": [{"warehouse_id": "7000", "quantity": 7}],
                }
            ],
        }
        for p in range(start, start + count)
    ]
    return orjson.dumps({"code": 0, "data": {"products": products, "next_page_token": "x"}})


def _erp_page(start: int, count: int) -> bytes:
    items = [{"sku": f"SKU-{i:07d}", "location": "L1", "available": 7} for i in range(start, start + count)]
    return orjson.dumps({"items": items, "nextCursor": "x"})


def read_state(shops: int, products: int) -> ReadState:
    """What read_world keeps for `shops` shops listing the same `products` SKUs, from decoded pages."""
    stores, *_ = objects("http://127.0.0.1:1", shops)
    listings: list[Listing] = []
    for s, store in enumerate(stores):
        channel = TikTokChannel.__new__(TikTokChannel)
        channel.store = store.name
        for start in range(0, products, PAGE):
            envelope = _ENVELOPE.decode(_page(s, start, min(PAGE, products - start)))
            page = _SEARCH_PAGE.decode(envelope.data)
            assert page is not None
            for product in page.products:
                listings += channel._slots(product)
    stock: list[StockRecord] = []
    for start in range(0, products, 500):
        records, _ = _plain_page("wms", _erp_page(start, min(500, products - start))) or ([], None)
        stock += records
    return ReadState.of(
        stock,
        listings,
        unready=frozenset(),
        channel_warehouse_status={},
        problems=[],
        objects=[],
        read_stores=frozenset(s.name for s in stores),
    )


def measure(listings: int, shop_size: int) -> list[str]:
    shops = max(1, listings // shop_size)
    products = listings // shops
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    state = read_state(shops, products)
    held = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    from invsync.operator.observe import engine_world
    from invsync.operator.state import Snapshot

    stores, source, warehouse, rule = objects("http://127.0.0.1:1", shops)
    snap = Snapshot("default", [rule], {s.name: s for s in stores}, {"w1": warehouse}, {"wms": source})
    tracemalloc.start()
    plan = compute_plan(engine_world(snap, state))
    tally = RuleTally.of(plan.rules["rule"], plan.rules)
    del plan
    kept, transient = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    gc.collect()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    n = len(state.all_slots())
    log(f"{n:,} listings: read state {held / n:.0f} B/listing, tally {kept} B, peak RSS {rss:.0f} MiB")
    assert tally.counts(())
    return [
        f"{n:,} ({shops} x {products:,})",
        f"{len(state.all_stock()):,}",
        f"{held / 2**20:.0f} MiB",
        f"**{held / n:.0f} B**",
        f"{kept / 2**10:.1f} KiB",
        f"{transient / n:.0f} B",
        f"{rss:.0f} MiB",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listings", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--shop-size", type=int, default=10_000, help="products per shop")
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    host = machine()
    rows = [measure(n, args.shop_size) for n in args.listings]
    emit(
        "### Memory kept per listing between syncs\n\n"
        f"Machine: {host}. One rule's last full read (slots, stock, the per-SKU index) built from decoded"
        " pages by the clients' own code, and its plan's tally; tracemalloc's bytes still allocated, and"
        " the peak while a full plan runs."
        " Every shop lists the same SKUs (one ERP record per SKU), so stock is shared across shops."
        " Peak RSS: this whole process (interpreter, libraries, the transient plan). Target <= 400 B.\n\n"
        + table(
            [
                "listings (shops x products)",
                "stock records",
                "read kept",
                "per listing",
                "tally",
                "full plan's peak, per listing (transient)",
                "peak RSS",
            ],
            rows,
        ),
        args.markdown,
    )


if __name__ == "__main__":
    main()
