"""The deployment of ``make deploy`` as the tests of tests/deploy/ see it: the sandbox's admin API (through
its Service), the channel's quantities and `invsync plan` over the deployed manifests."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from invsync.testing import deploy

INVSYNC = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "invsync"
Slot = tuple[str, str, str]  # Store, seller SKU, channel warehouse id
# examples/30-stores.yaml's Stores, by where the sandbox keeps their shops (examples/sandbox.yaml)
TIKTOK_SHOPS = {"tiktok-mw": "ROW_mw", "tiktok-id": "ROW_id", "tiktok-sea": "ROW_sea"}
SHOPEE_SHOPS = {"shopee-sg": "1001"}
LAZADA_STORE = "lazada-sg"  # the sandbox's one Lazada seller
EB_A_JAKARTA = ("tiktok-mw", "EB-A", "7068517275539637001")  # wms wh1 x 90% x 50% (easyboss-multi-warehouse)


def listings(state: dict[str, Any]) -> list[dict[str, Any]]:
    """Every slot of every example Store as the sandbox holds it, in `invsync plan --listings` form."""
    rows = [
        {"store": store, "sku": sku["seller_sku"], "productId": product["id"], "skuId": sku["id"],
         "channelWarehouseId": inv["warehouse_id"], "quantity": inv["quantity"], "status": product["status"]}
        for store, cipher in TIKTOK_SHOPS.items()
        for product in state["tiktok"][cipher]["products"]
        for sku in product["skus"]
        for inv in sku["inventory"]
    ]  # fmt: skip
    rows += [
        {"store": store, "sku": model["model_sku"], "productId": str(item["item_id"]),
         "skuId": str(model["model_id"]), "channelWarehouseId": location, "quantity": stock,
         "status": item["item_status"], "writable": item["item_status"] == "NORMAL"}
        for store, shop_id in SHOPEE_SHOPS.items()
        for item in state["shopee"][shop_id]["items"]
        for model in item["models"]
        for location, stock in model["seller_stock"].items()
    ]  # fmt: skip
    [seller] = state["lazada"].values()
    rows += [
        {"store": LAZADA_STORE, "sku": sku["SellerSku"], "productId": str(product["item_id"]),
         "skuId": str(sku["SkuId"]), "channelWarehouseId": code, "quantity": stock,
         "status": product["status"], "writable": sku["fbl"] is None}
        for product in seller["products"]
        for sku in product["skus"]
        for code, stock in sku["stock"].items()
    ]  # fmt: skip
    return rows


class Deployed(deploy.Deployment):
    """The deployment with the sandbox's admin API and `invsync plan` at hand."""

    def __init__(self, state_dir: Path) -> None:
        super().__init__((state_dir / "kubeconfig").resolve())
        self.state_dir = state_dir

    def admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        request = urllib.request.Request(
            f"{self.sandbox_url()}/_sandbox/{path}",
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def channel(self) -> dict[Slot, int]:
        """What TikTok, Shopee and Lazada show on every slot of the example Stores."""
        return {
            (row["store"], row["sku"], row["channelWarehouseId"]): row["quantity"]
            for row in listings(self.admin("GET", "state"))
        }

    def plan(self, workdir: Path) -> dict[Slot, int | None]:
        """`invsync plan` over the deployed manifests and the sandbox's stock and listings now."""
        rendered = self.kubectl("kustomize", str(deploy.OVERLAY / "demo"))
        manifests = [
            d for d in yaml.safe_load_all(rendered) if d and d["apiVersion"].startswith("invsync.dev/")
        ]
        # each InventorySource reads the sandbox's source named by its endpoint's last path segment
        sources = {
            d["spec"]["endpoint"].rstrip("/").rsplit("/", 1)[1]: d["metadata"]["name"]
            for d in manifests
            if d["kind"] == "InventorySource"
        }
        state = self.admin("GET", "state")
        inventory = [
            {
                "source": sources[name],
                "location": row["location"],
                "sku": row["sku"],
                "available": row["available"],
                "continueSelling": bool(row.get("continueSelling")),
                "enabled": row.get("enabled", True) is not False,
            }
            for name, src in state["erp"].items()
            for row in src["items"]
        ] + [
            {
                "source": sources[name],
                "location": location,
                "sku": item["sku"],
                "available": available,
                "continueSelling": item["inventoryPolicy"] == "CONTINUE",
                "enabled": True,
            }
            for name, shop in state["shopify"].items()
            for item in shop["items"]
            for location, available in item["levels"].items()
        ]
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "manifests.yaml").write_text(yaml.safe_dump_all(manifests))
        (workdir / "inventory.json").write_text(json.dumps({"inventory": inventory}))
        (workdir / "listings.json").write_text(json.dumps({"listings": listings(state)}))
        done = subprocess.run(
            [str(INVSYNC), "plan", "-f", str(workdir / "manifests.yaml"), "--inventory",
             str(workdir / "inventory.json"), "--listings", str(workdir / "listings.json"), "-o", "json"],
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        return {
            (row["store"], row["sku"], row["channelWarehouseId"]): row["desired"]
            for row in json.loads(done.stdout)["rows"]
        }

    def channel_follows_plan(self, workdir: Path, timeout: float = 120.0) -> dict[Slot, int]:
        """Wait until every slot the plan decides holds its desired quantity; returns the channel."""
        deadline = time.monotonic() + timeout
        while True:
            plan, now = self.plan(workdir), self.channel()
            wrong = {
                slot: (now.get(slot), want)
                for slot, want in plan.items()
                if want is not None and now.get(slot) != want
            }
            if not wrong:
                return now
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"the channel differs from invsync plan (slot: (channel, plan)): {wrong}"
                )
            time.sleep(1)

    def operator_pods(self) -> list[dict[str, Any]]:
        pods: list[dict[str, Any]] = self.get(
            "pods", "-n", deploy.OPERATOR_NAMESPACE, "-l", "app.kubernetes.io/name=invsync"
        )["items"]
        return pods

    def change_wms_stock(self, available: int) -> dict[str, Any]:
        """Set EB-A in the WMS's wh1 and return the sandbox's report, which says the webhook reached the
        operator's Service."""
        self.admin("DELETE", "requests")
        report: dict[str, Any] = self.admin(
            "POST", "stock", {"source": "wms", "location": "wh1", "sku": "EB-A", "available": available}
        )
        return report

    def written_once(self) -> None:
        """Since the change: one inventory update (product p-eb-a) and one slot changed by it. A slot
        written twice (a second pod repeating the push, or a stale value then the right one) fails this."""
        writes = self.admin("GET", "requests")["writes"]
        assert writes == {"requests": 1, "slots": 3, "changed": 1}, (
            writes
        )  # the SKU's 3 warehouses go together

    def running_pods(self) -> set[str]:
        return {
            p["metadata"]["name"]
            for p in self.operator_pods()
            if p["metadata"].get("deletionTimestamp") is None
        }

    def wait_claims_held_once(self, timeout: float = 60.0) -> dict[str, str]:
        """Every SyncRule claimed by exactly one running replica (its claim Lease, docs/deploy.md
        "Scaling"); returns rule -> holder."""
        rules = {
            f"{deploy.DEMO_NAMESPACE}/{r['metadata']['name']}"
            for r in self.get("syncrules", "-n", deploy.DEMO_NAMESPACE)["items"]
        }
        pods = self.running_pods()
        deadline = time.monotonic() + timeout
        while True:
            claims = self.get("leases", "-n", deploy.OPERATOR_NAMESPACE, "-l", "invsync.dev/lease=claim")[
                "items"
            ]
            holders = {
                lease["metadata"]["annotations"]["invsync.dev/syncrule"]: lease["spec"].get("holderIdentity")
                for lease in claims
            }
            if set(holders) == rules and set(holders.values()) <= pods:
                assert len(claims) == len(rules), claims  # one claim per rule: never two holders
                return holders
            assert time.monotonic() < deadline, f"claims with replicas {sorted(pods)}: {holders}"
            time.sleep(1)

    def sync_now(self, rule: str) -> None:
        """`invsync sync RULE`: what a user runs when a webhook reached a pod on its way out."""
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        subprocess.run(
            [str(INVSYNC), "sync", rule, "-n", deploy.DEMO_NAMESPACE],
            env=env, check=True, capture_output=True, timeout=60,
        )  # fmt: skip
