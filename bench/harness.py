"""What the operator benchmarks share: the real control plane, the sandbox in a thread, `invsync run` as a
subprocess (the e2e tests' `Operator`), a synthetic world and Markdown output.

The world: one ERP source `wms` with SKU-0000000.. at location L1 (webhooks to the operator), one
Warehouse on it, `stores` TikTok shops listing the same `products` SKUs (one slot each, warehouse
7000) and one SyncRule per group of stores at ratio 100, so every slot's target is the ERP's
`available` and "every slot matches" is checked against the sandbox's own state.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from invsync.sandbox.server import Sandbox, SandboxThread
from invsync.testing.cluster import REPO_ROOT, ControlPlane, binary_dir
from report import log

sys.path.insert(0, str(REPO_ROOT / "tests" / "e2e"))
from operator_env import Env as Env
from operator_env import Operator as Operator
from operator_env import resource, secret
from operator_env import wait_for as wait_for

APP = {"app_key": "bench-key", "app_secret": "bench-secret"}
WEBHOOK_SECRET = "bench-hook-secret"
LOCATION = "L1"
CHANNEL_WAREHOUSE = "7000"
TIKTOK_PAGE = 100  # products per products-search page
ERP_PAGE = 500  # rows per ERP page (providers/http_source.py PAGE_LIMIT)


@contextmanager
def control_plane() -> Iterator[ControlPlane]:
    """etcd + kube-apiserver with the CRDs applied, for the whole benchmark."""
    with ControlPlane(binary_dir()) as plane:
        plane.apply_crds(REPO_ROOT / "crds")
        yield plane


@dataclass(frozen=True)
class World:
    stores: int
    products: int  # listed in every store, one slot each
    rps: float  # per store, the sandbox's limit and the Store's rateLimit
    # The Store's burst, below the platform's bucket (rps): a platform bucket that is full while the
    # first requests are in flight loses refill the client's bucket counted, and answers 429 later.
    burst: int = 50
    available: int = 7  # ERP stock of every SKU
    listed: int = 0  # the channel's starting quantity of every slot
    rules: int = 1  # stores are split evenly among this many SyncRules
    interval: str = "1h"

    def cipher(self, s: int) -> str:
        return f"ROW_bench{s}"

    def sandbox_config(self, op: Operator) -> dict[str, Any]:
        hook = f"http://127.0.0.1:{op.webhook_port}/webhooks/{op.namespace}/wms"
        return {
            "tiktok": APP
            | {
                "requestsPerSecond": self.rps,
                "shops": [
                    {
                        "cipher": self.cipher(s),
                        "access_token": f"token-{s}",
                        "warehouses": [{"id": CHANNEL_WAREHOUSE, "is_default": True}],
                        "generate": {"products": self.products, "quantity": self.listed},
                    }
                    for s in range(self.stores)
                ],
            },
            "erp": [
                {
                    "name": "wms",
                    "token": "wms-token",
                    "generate": {
                        "items": self.products,
                        "available": self.available,
                        "locations": [LOCATION],
                    },
                    "webhook": {"url": hook, "secret": WEBHOOK_SECRET},
                }
            ],
        }

    def manifests(self, url: str) -> list[dict[str, Any]]:
        docs = [
            secret("wms-creds", {"token": "wms-token"}),
            secret("wms-webhook", {"secret": WEBHOOK_SECRET}),
            resource(
                "InventorySource",
                "wms",
                {
                    "provider": "http",
                    "endpoint": f"{url}/erp/wms",
                    "credentialsSecretRef": {"name": "wms-creds"},
                    "webhook": {"secretRef": {"name": "wms-webhook"}},
                },
            ),
            resource("Warehouse", "w1", {"sourceRef": {"name": "wms"}, "locationId": LOCATION}),
        ]
        for s in range(self.stores):
            docs.append(secret(f"tiktok-{s}", APP | {"access_token": f"token-{s}"}))
            docs.append(
                resource(
                    "Store",
                    f"store-{s}",
                    {
                        "platform": "tiktok",
                        "endpoint": url,
                        "shopCipher": self.cipher(s),
                        "credentialsSecretRef": {"name": f"tiktok-{s}"},
                        "rateLimit": {"requestsPerSecond": self.rps, "burst": self.burst},
                    },
                )
            )
        return docs

    def rule_manifests(self) -> list[dict[str, Any]]:
        return [
            resource(
                "SyncRule",
                f"rule-{r}",
                {
                    "stores": {"names": [f"store-{s}" for s in range(r, self.stores, self.rules)]},
                    "warehouses": [{"name": "w1", "ratio": 100}],
                    "interval": self.interval,
                },
            )
            for r in range(self.rules)
        ]


def mismatched(sb: Sandbox, world: World) -> int:
    """Slots whose channel quantity differs from the ERP's available (the target at ratio 100)."""
    rows = sb.state.erp["wms"].rows
    wrong = 0
    for s in range(world.stores):
        for sku in list(sb.state.tiktok[world.cipher(s)].skus.values()):
            if sku.inventory[CHANNEL_WAREHOUSE] != rows[(LOCATION, sku.seller_sku)].available:
                wrong += 1
    return wrong


def tiktok_calls(sb: Sandbox, operation: str) -> dict[str, int]:
    """HTTP status -> requests of one TikTok operation, as the sandbox counted them."""
    calls: dict[str, int] = {}
    for r in sb.state.counts()["requests"]:
        if r["platform"] == "tiktok" and r["operation"] == operation:
            calls[r["code"]] = calls.get(r["code"], 0) + r["count"]
    return calls


@contextmanager
def running(plane: ControlPlane, world: World, name: str) -> Iterator[Env]:
    """A fresh namespace, the world's sandbox, its manifests (not the rules) and a ready operator."""
    namespace = f"bench-{name}-{int(time.time() * 1000) % 10**9}"
    plane.kubectl("create", "namespace", namespace, check=True)
    logdir = Path(tempfile.mkdtemp(prefix="invsync-bench-"))
    op = Operator(plane.kubeconfig, namespace, logdir / "operator.log")
    thread = SandboxThread(world.sandbox_config(op))
    sb = thread.start()
    try:
        env = Env(namespace, plane.kubectl, sb, op)
        env.apply(world.manifests(sb.url))
        op.start()
        yield env
    finally:
        op.stop()
        thread.stop()
        log(f"operator log: {op.log}")


def resource_versions(env: Env) -> dict[str, str]:
    """kind/name -> resourceVersion of every invsync object in the namespace."""
    out = env.kubectl(
        "get", "syncrules,stores,warehouses,inventorysources", "-n", env.namespace, "-o", "json", check=True
    ).stdout
    items = json.loads(out)["items"]
    return {f"{i['kind']}/{i['metadata']['name']}": i["metadata"]["resourceVersion"] for i in items}


def process_usage(pid: int) -> tuple[float, float, float]:
    """CPU seconds (user + system), current RSS and peak RSS (MiB) of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    status = {k: v for k, _, v in (line.partition(":") for line in lines)}
    return cpu, int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024


def sync_runs(op: Operator) -> float:
    return op.metric("invsync_sync_runs_total")


def wait_converged(sb: Sandbox, world: World, timeout: float) -> float:
    """Seconds until every slot matches (polled every 0.2 s)."""
    started = time.perf_counter()
    wait_for(lambda: mismatched(sb, world) == 0, what="every slot to match", timeout=timeout)
    return time.perf_counter() - started
