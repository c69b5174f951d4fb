"""The operator end to end: a real kube-apiserver, the sandbox over real HTTP, and `invsync run` as a
subprocess. Helpers shared by tests/e2e/test_operator*.py."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml

from invsync.sandbox.config import unwrap_configmap
from invsync.sandbox.server import Sandbox, SandboxThread
from invsync.testing.cluster import REPO_ROOT, Kubectl

T = TypeVar("T")
INVSYNC = Path(sys.executable).parent / "invsync"  # the console script the package installs
API = "invsync.dev/v1alpha1"
TIMEOUT = 60.0  # generous: the machine is shared; every wait polls and returns as soon as it holds


def free_port() -> int:
    return free_ports(1)[0]


# Ports a process listens on later are picked below the kernel's ephemeral range (32768-60999 on
# Linux): a port picked from that range can be taken as the source port of any outgoing connection
# before the operator binds it (a clean-clone `make test` beside `make bench` lost one that way).
_LISTEN_PORTS = range(20000, 32768)


def free_ports(n: int) -> list[int]:
    """`n` distinct loopback ports free now (held open together while picked), outside the ephemeral range."""
    socks: list[socket.socket] = []
    try:
        for port in random.sample(_LISTEN_PORTS, len(_LISTEN_PORTS)):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                sock.close()
                continue
            socks.append(sock)
            if len(socks) == n:
                return [int(s.getsockname()[1]) for s in socks]
        raise RuntimeError(f"no {n} free ports in {_LISTEN_PORTS}")
    finally:
        for sock in socks:
            sock.close()


@dataclass
class Operator:
    """`invsync run` in a subprocess, restartable (SIGKILL included)."""

    kubeconfig: Path
    namespace: str
    log: Path
    metrics_port: int = 0  # 0: two free ports are picked
    webhook_port: int = 0
    args: tuple[str, ...] = ()  # extra `invsync run` arguments, e.g. ("--shard", "0/2")
    proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        if not self.metrics_port or not self.webhook_port:
            self.metrics_port, self.webhook_port = free_ports(2)

    def start(self) -> None:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        argv = [
            str(INVSYNC), "run", "-n", self.namespace,
            "--metrics-port", str(self.metrics_port), "--webhook-port", str(self.webhook_port), *self.args,
        ]  # fmt: skip
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
        wait_for(lambda: self._ready(), what="the operator's /readyz", env_log=self.log)

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"operator exited with {self.proc.returncode}:\n{self.tail()}")
        try:
            return httpx.get(f"http://127.0.0.1:{self.metrics_port}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of `name` whose labels include `labels`."""
        text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text
        total = 0.0
        for line in text.splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            head, value = line.rsplit(" ", 1)
            if all(f'{k}="{v}"' in head for k, v in labels.items()):
                total += float(value)
        return total


_operators: list[Operator] = []


def wait_for(
    probe: Callable[[], T], *, what: str, timeout: float = TIMEOUT, env_log: Path | None = None
) -> T:
    """Poll `probe` until it returns something truthy; fail naming `what` and the last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.2)
    tail = ""
    for op in _operators:
        tail += f"\n--- operator log ({op.log}) ---\n{op.tail()}"
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}{tail}")


@dataclass
class Env:
    """One test's world: its namespace, its sandbox and its operator."""

    namespace: str
    kubectl: Kubectl
    sandbox: Sandbox
    operator: Operator

    # ------------------------------------------------------------- cluster side

    def apply(self, docs: Sequence[Mapping[str, Any]]) -> None:
        self.kubectl(
            "apply", "-n", self.namespace, "-f", "-", input=yaml.safe_dump_all(list(docs)), check=True
        )

    def get(self, kind: str, name: str) -> dict[str, Any]:
        out = self.kubectl("get", "-n", self.namespace, kind, name, "-o", "json", check=True).stdout
        result: dict[str, Any] = json.loads(out)
        return result

    def status(self, kind: str, name: str) -> dict[str, Any]:
        return self.get(kind, name).get("status") or {}

    def condition(self, kind: str, name: str, type_: str = "Ready") -> dict[str, Any] | None:
        conds = self.status(kind, name).get("conditions") or []
        return next((c for c in conds if c.get("type") == type_), None)

    def events(self) -> list[dict[str, Any]]:
        out = self.kubectl("get", "events", "-n", self.namespace, "-o", "json", check=True).stdout
        items: list[dict[str, Any]] = json.loads(out)["items"]
        return items

    def invsync(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "KUBECONFIG": str(self.operator.kubeconfig)}
        return subprocess.run(
            [str(INVSYNC), *args, "-n", self.namespace],
            capture_output=True, text=True, env=env, timeout=60, check=False,
        )  # fmt: skip

    # ------------------------------------------------------------- sandbox side

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        response = httpx.request(method, f"{self.sandbox.url}/_sandbox/{path}", json=body, timeout=10)
        assert response.status_code < 300, response.text
        return response.json()

    def quantities(self, cipher: str) -> dict[tuple[str, str], int]:
        """(seller SKU, channel warehouse id) -> quantity, as the platform shows it."""
        shop = self.admin("GET", "state")["tiktok"][cipher]
        return {
            (sku["seller_sku"], inv["warehouse_id"]): inv["quantity"]
            for product in shop["products"]
            for sku in product["skus"]
            for inv in sku["inventory"]
        }

    def writes(self) -> int:
        """Inventory update requests the platform accepted so far."""
        return int(self.admin("GET", "requests")["writes"].get("requests", 0))

    def update_calls(self) -> int:
        """Every inventory update request that reached the platform, whatever its answer."""
        counts = self.admin("GET", "requests")["requests"]
        return sum(r["count"] for r in counts if r["platform"] == "tiktok" and "update" in r["operation"])


def env_fixture(
    namespace: str,
    kubectl: Kubectl,
    kubeconfig: Path,
    tmp_path: Path,
    sandbox_config: Callable[[Operator], dict[str, Any]],
    args: Sequence[str] = (),
) -> Iterator[Env]:
    """Start the sandbox (its webhooks aimed at the operator) and the operator (`invsync run ARGS`)
    for one test."""
    op = Operator(kubeconfig, namespace, tmp_path / "operator.log", args=tuple(args))
    config = sandbox_config(op)
    sandbox = SandboxThread(config)
    sb = sandbox.start()
    _operators.append(op)
    try:
        op.start()
        yield Env(namespace, kubectl, sb, op)
    finally:
        op.stop()
        _operators.remove(op)
        sandbox.stop()


def secret(name: str, data: Mapping[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": dict(data)}


def resource(
    kind: str, name: str, spec: Mapping[str, Any], labels: Mapping[str, str] | None = None
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if labels:
        meta["labels"] = dict(labels)
    return {"apiVersion": API, "kind": kind, "metadata": meta, "spec": dict(spec)}


def tiktok_store(url: str, name: str, cipher: str, token: str, **spec: Any) -> list[dict[str, Any]]:
    """A TikTok Store of the sandbox shop `cipher` and the Secret of its credentials, both named `name`."""
    creds = {"app_key": "app-key", "app_secret": "app-secret", "access_token": token}
    body = {
        "platform": "tiktok",
        "endpoint": url,
        "shopCipher": cipher,
        "credentialsSecretRef": {"name": name},
    }
    return [secret(name, creds), resource("Store", name, {**body, **spec})]


# --------------------------------------------------------------------------- a small seed world

MW, AS = "ROW_multi", "ROW_after"

SANDBOX = """
tiktok:
  app_key: app-key
  app_secret: app-secret
  shops:
    - cipher: ROW_multi          # EasyBoss: one product, three channel warehouses
      access_token: token-mw
      warehouses:
        - {id: "7001", name: W1, is_default: true}
        - {id: "7002", name: W2}
        - {id: "7003", name: W3}
      products:
        - id: p-A
          skus:
            - id: s-A
              seller_sku: A
              inventory:
                - {warehouse_id: "7001", quantity: 0}
                - {warehouse_id: "7002", quantity: 0}
                - {warehouse_id: "7003", quantity: 0}
    - cipher: ROW_after          # AfterShip: one warehouse, STEADY already in sync
      access_token: token-as
      warehouses: [{id: "8001", name: Main, is_default: true}]
      products: []               # filled from AFTERSHIP_LIVE
    - cipher: ROW_relay          # one warehouse, for a rule placed on another shard
      access_token: token-relay
      warehouses: [{id: "7201", name: Main, is_default: true}]
      products:
        - {id: p-R, skus: [{id: s-R, seller_sku: A, inventory: [{warehouse_id: "7201", quantity: 0}]}]}
    - cipher: ROW_nowl           # two warehouses, but not whitelisted for multi-warehouse
      access_token: token-nowl
      multiWarehouse: false
      warehouses:
        - {id: "7101", name: Default, is_default: true}
        - {id: "7102", name: Second}
      products:
        - id: p-N
          skus:
            - id: s-N
              seller_sku: A
              inventory: [{warehouse_id: "7101", quantity: 0}, {warehouse_id: "7102", quantity: 0}]
shopify:
  - shop: main
    access_token: shpat-main
    locations:
      - {id: "gid://shopify/Location/1", name: JKT, active: true}
      - {id: "gid://shopify/Location/2", name: Closed, active: false}
    items:
      - {sku: HUNDRED, levels: {"gid://shopify/Location/1": 100}}
      - {sku: FIVE, levels: {"gid://shopify/Location/1": 5}}
      - {sku: SIX, levels: {"gid://shopify/Location/1": 6}}
      - {sku: BACKORDER, inventoryPolicy: CONTINUE, levels: {"gid://shopify/Location/1": 0}}
      - {sku: STEADY, levels: {"gid://shopify/Location/1": 10}}
erp:
  - name: wms
    token: wms-token
    items:
      - {sku: A, location: L1, available: 100}
      - {sku: A, location: L2, available: 0, enabled: false}
      - {sku: A, location: L3, available: 0, enabled: false}
    webhook: {url: "%(webhook)s", secret: hook-secret-value}
"""

MANIFESTS = """
apiVersion: v1
kind: Secret
metadata: {name: tiktok-mw}
stringData: {app_key: app-key, app_secret: app-secret, access_token: token-mw}
---
apiVersion: v1
kind: Secret
metadata: {name: tiktok-as}
stringData: {app_key: app-key, app_secret: app-secret, access_token: token-as}
---
apiVersion: v1
kind: Secret
metadata: {name: shopify-main}
stringData: {access_token: shpat-main}
---
apiVersion: v1
kind: Secret
metadata: {name: wms-creds}
stringData: {token: wms-token}
---
apiVersion: v1
kind: Secret
metadata: {name: wms-webhook}
stringData: {secret: hook-secret-value}
---
apiVersion: invsync.dev/v1alpha1
kind: InventorySource
metadata: {name: wms}
spec:
  provider: http
  endpoint: %(url)s/erp/wms
  credentialsSecretRef: {name: wms-creds}
  webhook: {secretRef: {name: wms-webhook}}
---
apiVersion: invsync.dev/v1alpha1
kind: InventorySource
metadata: {name: shopify-main}
spec: {provider: shopify, endpoint: "%(url)s/shopify/main", credentialsSecretRef: {name: shopify-main}}
---
apiVersion: invsync.dev/v1alpha1
kind: Warehouse
metadata: {name: w1}
spec: {sourceRef: {name: wms}, locationId: L1}
---
apiVersion: invsync.dev/v1alpha1
kind: Warehouse
metadata: {name: w2}
spec: {sourceRef: {name: wms}, locationId: L2}
---
apiVersion: invsync.dev/v1alpha1
kind: Warehouse
metadata: {name: w3}
spec: {sourceRef: {name: wms}, locationId: L3}
---
apiVersion: invsync.dev/v1alpha1
kind: Warehouse
metadata: {name: shop-jkt}
spec: {sourceRef: {name: shopify-main}, locationId: "gid://shopify/Location/1"}
---
apiVersion: invsync.dev/v1alpha1
kind: Store
metadata: {name: tiktok-mw}
spec:
  platform: tiktok
  endpoint: %(url)s
  shopCipher: ROW_multi
  credentialsSecretRef: {name: tiktok-mw}
  multiWarehouse: true
  warehouses:
    - {channelWarehouseId: "7001", warehouseRefs: [w1]}
    - {channelWarehouseId: "7002", warehouseRefs: [w2]}
    - {channelWarehouseId: "7003", warehouseRefs: [w3]}
---
apiVersion: invsync.dev/v1alpha1
kind: Store
metadata: {name: tiktok-as}
spec: {platform: tiktok, endpoint: "%(url)s", shopCipher: ROW_after, credentialsSecretRef: {name: tiktok-as}}
---
apiVersion: invsync.dev/v1alpha1
kind: SyncRule
metadata: {name: easyboss}
spec:
  stores: {names: [tiktok-mw]}
  warehouses: [{name: w1, ratio: 50}, {name: w2, ratio: 50}, {name: w3, ratio: 50}]
  executionRatio: 90
  interval: %(interval)s
---
apiVersion: invsync.dev/v1alpha1
kind: SyncRule
metadata: {name: aftership}
spec:
  stores: {names: [tiktok-as]}
  warehouses: [{name: shop-jkt, ratio: 90}]
  outOfStockThreshold: 5
  interval: %(interval)s
"""


AFTERSHIP_LIVE = {"HUNDRED": 0, "FIVE": 3, "SIX": 0, "BACKORDER": 0, "STEADY": 9}


def sandbox_config(op: Operator) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(
        SANDBOX % {"webhook": f"http://127.0.0.1:{op.webhook_port}/webhooks/{op.namespace}/wms"}
    )
    config["tiktok"]["shops"][1]["products"] = [
        {"id": f"p-{sku}", "skus": [{"id": f"s-{sku}", "seller_sku": sku, "inventory": [slot]}]}
        for sku, q in AFTERSHIP_LIVE.items()
        for slot in [{"warehouse_id": "8001", "quantity": q}]
    ]
    return config


def seed_manifests(url: str, interval: str = "1h") -> list[dict[str, Any]]:
    return list(yaml.safe_load_all(MANIFESTS % {"url": url, "interval": interval}))


def summary(env: Env, rule: str) -> dict[str, int]:
    result: dict[str, int] = env.status("SyncRule", rule).get("summary") or {}
    return result


def converged(env: Env) -> bool:
    mw, after = env.quantities(MW), env.quantities(AS)
    return (
        mw == {("A", "7001"): 45, ("A", "7002"): 0, ("A", "7003"): 0}
        and after
        == {("HUNDRED", "8001"): 90, ("FIVE", "8001"): 0, ("SIX", "8001"): 5, ("BACKORDER", "8001"): 99999,
            ("STEADY", "8001"): 9}
    )  # fmt: skip


def ready(env: Env, rule: str) -> bool:
    cond = env.condition("SyncRule", rule)
    return cond is not None and cond["status"] == "True"


# --------------------------------------------------------------------------- the examples/ world

EXAMPLES = REPO_ROOT / "examples"


def examples_sandbox(op: Operator) -> dict[str, Any]:
    """examples/sandbox.yaml, its webhooks aimed at this test's operator and namespace."""
    text = (EXAMPLES / "sandbox.yaml").read_text()
    text = text.replace(
        "http://127.0.0.1:8081/webhooks/invsync-demo/",
        f"http://127.0.0.1:{op.webhook_port}/webhooks/{op.namespace}/",
    )
    return unwrap_configmap(yaml.safe_load(text))


def example_manifests(url: str) -> list[dict[str, Any]]:
    """Every Kubernetes object of examples/, endpoints aimed at this test's sandbox."""
    docs = []
    for path in sorted(EXAMPLES.glob("[0-9]*.yaml")):
        text = path.read_text().replace("http://127.0.0.1:18090", url)
        docs += [d for d in yaml.safe_load_all(text) if isinstance(d, dict) and "kind" in d]
    return docs
