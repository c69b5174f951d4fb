"""What every drill and `make soak` share: a world with enough listings that faults land mid-sync,
the plan of that world computed offline by `invsync plan` from the sandbox's own state, and a TCP
relay that can cut the operator off from the platform."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from operator_env import INVSYNC, Env, Operator, free_port, resource, secret

SHOP = "ROW_drill"
STORE = "drill"
PRODUCTS = 110  # two SKUs each, 440 slots: more than one page of products (100 per page)
SKUS = [f"D-{i:03d}" for i in range(PRODUCTS * 2)]
Slot = tuple[str, str]  # seller SKU, channel warehouse id


def drill_sandbox(op: Operator) -> dict[str, Any]:
    """One multi-warehouse TikTok shop fed by an ERP with two locations; every slot starts at 7."""
    products = [
        {
            "id": f"p{i}",
            "skus": [
                {
                    "id": f"s{sku}",
                    "seller_sku": sku,
                    "inventory": [
                        {"warehouse_id": "9001", "quantity": 7},
                        {"warehouse_id": "9002", "quantity": 7},
                    ],
                }
                for sku in SKUS[2 * i : 2 * i + 2]
            ],
        }
        for i in range(PRODUCTS)
    ]
    rows = [
        {"sku": sku, "location": loc, "available": (i * k) % 37 + 1}
        for i, sku in enumerate(SKUS)
        for loc, k in (("L1", 7), ("L2", 5))
    ]
    return {
        "tiktok": {
            "app_key": "drill-app-key",
            "app_secret": "drill-app-secret",
            "shops": [
                {
                    "cipher": SHOP,
                    "access_token": "drill-access-token",
                    "warehouses": [{"id": "9001", "is_default": True}, {"id": "9002"}],
                    "products": products,
                }
            ],
        },
        "erp": [{"name": "erp", "token": "drill-erp-token", "items": rows}],
    }


def drill_manifests(
    source_url: str, channel_url: str, rules: Sequence[str] = ("drill",), requests_per_second: float = 50
) -> list[dict[str, Any]]:
    """The drill world's resources; several `rules` split the SKUs between them by their last digit."""
    docs = [
        secret(
            "drill-tt",
            {
                "app_key": "drill-app-key",
                "app_secret": "drill-app-secret",
                "access_token": "drill-access-token",
            },
        ),
        secret("drill-erp", {"token": "drill-erp-token"}),
        resource(
            "InventorySource",
            "erp",
            {
                "provider": "http",
                "endpoint": f"{source_url}/erp/erp",
                "credentialsSecretRef": {"name": "drill-erp"},
            },
        ),
        resource("Warehouse", "w1", {"sourceRef": {"name": "erp"}, "locationId": "L1"}),
        resource("Warehouse", "w2", {"sourceRef": {"name": "erp"}, "locationId": "L2"}),
        resource(
            "Store",
            STORE,
            {
                "platform": "tiktok",
                "endpoint": channel_url,
                "shopCipher": SHOP,
                "credentialsSecretRef": {"name": "drill-tt"},
                "multiWarehouse": True,
                "rateLimit": {"requestsPerSecond": requests_per_second, "burst": 10},
                "warehouses": [
                    {"channelWarehouseId": "9001", "warehouseRefs": ["w1"]},
                    {"channelWarehouseId": "9002", "warehouseRefs": ["w2"]},
                ],
            },
        ),
    ]
    for r, name in enumerate(rules):
        spec: dict[str, Any] = {
            "stores": {"names": [STORE]},
            "warehouses": [{"name": "w1", "ratio": 80}, {"name": "w2", "ratio": 60}],
            "executionRatio": 90,
            "interval": "1h",
        }
        if len(rules) > 1:
            spec["skus"] = {"include": [f"D-*{d}" for d in range(10) if d % len(rules) == r]}
        docs.append(resource("SyncRule", name, spec))
    return docs


def live(env: Env) -> dict[Slot, int]:
    return {(sku, wh): q for (sku, wh), q in env.quantities(SHOP).items()}


def planned(
    env: Env,
    manifests: Sequence[Mapping[str, Any]],
    workdir: Path,
    stores: Mapping[str, str] | None = None,
    listings: Sequence[Mapping[str, Any]] | None = None,
) -> dict[Slot, int | None]:
    """Desired quantity of every slot, by `invsync plan` on the sandbox's current stock and listings
    of `stores` (Store name -> shop cipher; the drill Store by default) or, for another platform,
    these `listings` rows (None: the plan leaves the slot alone)."""
    state = env.admin("GET", "state")
    inventory = [
        {
            "source": name,
            "location": row["location"],
            "sku": row["sku"],
            "available": row["available"],
            "continueSelling": bool(row.get("continueSelling")),
            "enabled": row.get("enabled", True) is not False,
        }
        for name, src in state["erp"].items()
        for row in src["items"]
    ]
    listings = (
        listings
        if listings is not None
        else [
            {
                "store": store,
                "sku": sku["seller_sku"],
                "productId": product["id"],
                "skuId": sku["id"],
                "channelWarehouseId": inv["warehouse_id"],
                "quantity": inv["quantity"],
            }
            for store, cipher in (stores or {STORE: SHOP}).items()
            for product in state["tiktok"][cipher]["products"]
            for sku in product["skus"]
            for inv in sku["inventory"]
        ]
    )
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "manifests.yaml").write_text(yaml.safe_dump_all(list(manifests)))
    (workdir / "inventory.json").write_text(json.dumps({"inventory": inventory}))
    (workdir / "listings.json").write_text(json.dumps({"listings": listings}))
    done = subprocess.run(
        [str(INVSYNC), "plan", "-f", str(workdir / "manifests.yaml"), "--inventory",
         str(workdir / "inventory.json"), "--listings", str(workdir / "listings.json"), "-o", "json"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return {
        (row["sku"], row["channelWarehouseId"]): row["desired"] for row in json.loads(done.stdout)["rows"]
    }


def matches_plan(
    env: Env, manifests: Sequence[Mapping[str, Any]], workdir: Path, before: Mapping[Slot, int]
) -> bool:
    """Every planned slot holds its desired quantity; a slot the plan leaves alone kept its value."""
    now = live(env)
    plan = planned(env, manifests, workdir)
    return set(plan) == set(now) and all(
        now[slot] == (before[slot] if want is None else want) for slot, want in plan.items()
    )


def products_to_push(plan: Mapping[Slot, int | None], before: Mapping[Slot, int], rules: int = 1) -> int:
    """Inventory update requests a clean sync makes: one per product with a slot to change, per rule
    (several rules split a product's SKUs by their last digit, as drill_manifests does)."""
    return len(
        {
            (SKUS.index(sku) // 2, SKUS.index(sku) % 10 % rules)
            for (sku, wh), want in plan.items()
            if want is not None and want != before[(sku, wh)]
        }
    )


class TcpRelay:
    """A TCP relay from a local port to `target_port`: `cut()` drops the link (open connections are
    aborted, new ones are accepted and never answered, as when packets are dropped), `heal()` restores it."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.split = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._links: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> TcpRelay:
        self._thread.start()
        self._call(self._start())
        return self

    def __exit__(self, *_: object) -> None:
        self._call(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def cut(self) -> None:
        self._call(self._set(True))

    def heal(self) -> None:
        self._call(self._set(False))

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._set(False)

    async def _set(self, split: bool) -> None:
        self.split = split
        for writer in list(self._links):  # every change of state breaks what was open
            writer.transport.abort()
        self._links.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._links.add(writer)
        try:
            if self.split:
                while await reader.read(65536):  # swallowed: the caller waits for its own timeout
                    pass
                return
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
            self._links.add(up_writer)
            await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))
        except OSError:
            pass
        finally:
            writer.transport.abort()
            self._links.discard(writer)


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.transport.abort()
