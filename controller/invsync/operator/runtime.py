"""The Operator's process-wide state: parsed objects by resourceVersion, the workers of this shard,
status probes for objects no rule uses, and the memory shared by every rule."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

import kopf

from .. import metrics
from ..api import InventorySource, Store, SyncRule, Warehouse, parse_duration
from ..api.common import Resource
from ..engine.records import StockRecord
from .bodies import Index, RawBody, by_name, parse, parse_checked
from .conditions import READY, Cond, merge
from .kube import Kube, KubePorts
from .objects import object_patch
from .observe import observe_source, observe_store
from .reasons import Reason
from .secrets import SecretCache
from .state import ObjectStatus, SharedMemory, Snapshot
from .worker import RuleWorker, utc_now

if TYPE_CHECKING:
    from .sharding import ShardCoordinator

log = logging.getLogger("invsync.operator")

PROBE_DELAY = 2.0  # before probing an object no rule uses: lets the rules' first syncs claim theirs


@dataclass
class Indices:
    """kopf's indices, keyed by namespace; values are detached bodies."""

    stores: Index
    warehouses: Index
    sources: Index
    rules: Index


class Operator:
    """Process-wide state: the indices, the workers of this shard, the shared memory."""

    def __init__(self, kube: Kube, shard: Shard) -> None:
        self.kube = kube
        self.ports = KubePorts(kube, self.read_secret)
        self.shard = shard
        # With shards discovered from the cluster, a rule is acted on only while its claim is held.
        self.coordinator: ShardCoordinator | None = None
        self.shared = SharedMemory()
        self.indices: Indices | None = None
        self.workers: dict[tuple[str, str], RuleWorker] = {}
        self.fingerprints: dict[tuple[str, str, str], Any] = {}
        self.started = False  # kopf's startup activities ran: /readyz answers 200
        self.probes: dict[tuple[str, str, str], asyncio.Task[None]] = {}
        # (kind, namespace) -> name -> (resourceVersion, parsed resource or what is wrong with it)
        self.parsed: dict[tuple[str, str], dict[str, tuple[str | None, Resource | str]]] = {}
        # (kind, namespace, name) -> (generation, message) of the InvalidSpec status written for it
        self.invalid: dict[tuple[str, str, str], tuple[int | None, str]] = {}
        self.background: set[asyncio.Task[None]] = set()
        # A kopf handler's context, in which kopf.event can post (handlers.attach sets it).
        self.handler_context: contextvars.Context | None = None
        # Secrets by name, never logged; an edited one wakes the rules using it, as an event would
        self.secrets = SecretCache(kube.get_secret, lambda ns, name, rv: self.touched("Secret", ns, name, rv))

    def start(self) -> None:
        """The Secrets in use are re-read in the background (docs/operations.md, "Secrets")."""
        task = asyncio.get_running_loop().create_task(self.secrets.run(), name="secret refresh")
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    # ---------------------------------------------------------------- snapshot

    def snapshot(self, namespace: str) -> Snapshot:
        idx = self.indices
        if idx is None:
            raise RuntimeError("indices are not populated yet")

        def parsed(model: type[Resource], index: Index) -> dict[str, Any]:
            # Parsed once per resourceVersion: every sync of every rule snapshots the whole namespace,
            # and re-parsing it each time grew with rules x objects (bench/bench_steady.py, 100 rules).
            cached = self.parsed.get((model.__name__, namespace), {})
            fresh: dict[str, tuple[str | None, Resource | str]] = {}
            valid: dict[str, Any] = {}
            for name, body in by_name(index, namespace).items():
                rv = body["metadata"].get("resourceVersion")
                hit = cached.get(name)
                fresh[name] = entry = (
                    hit
                    if hit is not None and rv is not None and hit[0] == rv
                    else (rv, parse_checked(model, body))
                )
                if isinstance(entry[1], str):
                    self.report_invalid(model.__name__, body, entry[1])
                else:
                    valid[name] = entry[1]
            self.parsed[(model.__name__, namespace)] = fresh
            return valid

        return Snapshot(
            namespace=namespace,
            rules=list(parsed(SyncRule, idx.rules).values()),
            stores=parsed(Store, idx.stores),
            warehouses=parsed(Warehouse, idx.warehouses),
            sources=parsed(InventorySource, idx.sources),
        )

    def report_invalid(self, kind: str, body: RawBody, message: str) -> None:
        """An object the operator cannot use (admitted before a bound existed, docs/operations.md,
        "Objects the operator cannot use") gets Ready=False InvalidSpec naming its fields and a
        Warning Event, once per generation; the rules using it see it as missing."""
        meta = body["metadata"]
        key = (kind, meta["namespace"], meta["name"])
        mark = (meta.get("generation"), message)
        owner = meta["name"] if kind == "SyncRule" else f"{kind}/{meta['name']}"  # as workers and probes
        if self.invalid.get(key) == mark or not self.shard.owns(meta["namespace"], owner):
            return
        self.invalid[key] = mark
        try:
            task = asyncio.get_running_loop().create_task(self._write_invalid(kind, body, message))
        except RuntimeError:  # no loop (offline callers): the next snapshot in the operator writes it
            del self.invalid[key]
            return
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def _write_invalid(self, kind: str, body: RawBody, message: str) -> None:
        meta = body["metadata"]
        generation = meta.get("generation")
        status = body.get("status") or {}
        ready: dict[str, Any] = next(
            (c for c in status.get("conditions") or () if c.get("type") == READY), {}
        )
        text = f"{kind} {meta['name']} is invalid: {message}"
        log.error("%s %s/%s is invalid: %s", kind, meta["namespace"], meta["name"], message)
        try:
            if (
                status.get("observedGeneration") != generation
                or ready.get("reason") != Reason.INVALID_SPEC
                or ready.get("message") != text
            ):
                conditions = merge(
                    status.get("conditions"),
                    [Cond(READY, "False", Reason.INVALID_SPEC, text)],
                    generation=generation,
                    now=utc_now(),
                )
                await self.kube.patch_status(
                    kind,
                    meta["namespace"],
                    meta["name"],
                    {"observedGeneration": generation, "conditions": conditions},
                )
        except Exception:
            self.invalid.pop((kind, meta["namespace"], meta["name"]), None)  # retried at the next snapshot
            log.exception(
                "%s %s/%s: could not write its InvalidSpec status", kind, meta["namespace"], meta["name"]
            )
            return
        kopf.event(cast(kopf.Body, body), type="Warning", reason=Reason.INVALID_SPEC, message=text)

    async def write_objects(self, namespace: str, objects: Iterable[ObjectStatus], now: datetime) -> None:
        idx = self.indices
        if idx is None:
            return
        index = {"Store": idx.stores, "Warehouse": idx.warehouses, "InventorySource": idx.sources}
        for obs in objects:
            body = by_name(index[obs.kind], namespace).get(obs.name)
            if body is None:
                continue
            source = self.parsed_source(namespace, obs.name) if obs.kind == "InventorySource" else None
            refresh = parse_duration(source.spec.poll_interval) if source is not None else None
            patch = object_patch(
                body.get("status"), obs, body["metadata"].get("generation"), now, refresh_after=refresh
            )
            if patch is not None:
                await self.kube.patch_status(obs.kind, namespace, obs.name, patch)
            current = body["metadata"].get("annotations") or {}
            if any(current.get(k) != v for k, v in obs.annotations.items()):
                await asyncio.to_thread(self.kube.annotate, obs.kind, namespace, obs.name, obs.annotations)

    def source(self, namespace: str, name: str) -> InventorySource | None:
        body = by_name(self.indices.sources, namespace).get(name) if self.indices is not None else None
        return parse(InventorySource, body) if body is not None else None

    def parsed_source(self, namespace: str, name: str) -> InventorySource | None:
        """The source as the last snapshot parsed it; None when missing or invalid."""
        entry = self.parsed.get(("InventorySource", namespace), {}).get(name)
        return entry[1] if entry is not None and isinstance(entry[1], InventorySource) else None

    async def read_secret(self, namespace: str, name: str) -> Mapping[str, str] | None:
        """The Secret's data (None: not found), from a GET at most SECRET_REFRESH old; raises
        SecretAccessDenied when the namespace did not grant access (docs/security.md)."""
        return await self.secrets.read(namespace, name)

    # ---------------------------------------------------------------- rules

    def owns_rule(self, namespace: str, name: str) -> bool:
        if self.coordinator is not None:
            return self.coordinator.holds(namespace, name) and not self.coordinator.fenced()
        return self.shard.owns(namespace, name)

    def shard_view(self) -> dict[str, object]:
        """What /shard answers: enough to see who acts on which rule, never a Secret."""
        coordinator = self.coordinator
        return {
            "replica": coordinator.ref.replica if coordinator is not None else None,
            "shard": self.shard.index,
            "shards": self.shard.count,
            "peers": list(coordinator.peers) if coordinator is not None else [],
            "fenced": coordinator.fenced() if coordinator is not None else False,
            "rules": sorted(f"{ns}/{name}" for ns, name in self.workers),
        }

    def rule_keys(self) -> list[tuple[str, str]]:
        """Every SyncRule the watch has seen, as (namespace, name)."""
        idx = self.indices
        if idx is None:
            return []
        return [(ns, body["metadata"]["name"]) for ns, bodies in idx.rules.items() for body in bodies]

    def start_rule(self, namespace: str, name: str) -> None:
        """Start (or update) the worker of a rule this replica has just claimed."""
        body = by_name(self.indices.rules, namespace).get(name) if self.indices is not None else None
        if body is not None:
            self.upsert_rule(body)

    def upsert_rule(self, body: RawBody) -> None:
        ns, name = body["metadata"]["namespace"], body["metadata"]["name"]
        if not self.owns_rule(ns, name):
            if self.coordinator is not None:
                self.coordinator.wake.set()  # a new rule: claimed at once, not at the next tick
            return
        worker = self.workers.get((ns, name))
        if worker is None:
            worker = self.workers[(ns, name)] = RuleWorker(self, body)
            context = None if self.handler_context is None else self.handler_context.copy()
            worker.task = asyncio.create_task(worker.run(), name=f"syncrule {ns}/{name}", context=context)
        else:
            worker.update(body)

    async def remove_rule(self, namespace: str, name: str) -> None:
        worker = self.workers.pop((namespace, name), None)
        if worker is not None and worker.task is not None:
            worker.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker.task
        metrics.forget_rule(namespace, name)

    async def stop(self) -> None:
        if self.coordinator is not None:
            await self.coordinator.stop(self)
        for task in [*self.probes.values(), *self.background]:
            task.cancel()
        for ns, name in list(self.workers):
            worker = self.workers.pop((ns, name))
            if worker.task is not None:
                worker.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker.task

    # ---------------------------------------------------------------- triggers

    def touched(self, kind: str, namespace: str, name: str, fingerprint: Any) -> None:
        """Wake the rules that use an object whose spec, labels or (Secret) data changed, and every
        other rule of the namespace when a SyncRule is created, changed or deleted."""
        key = (kind, namespace, name)
        if self.fingerprints.get(key) == fingerprint:
            return
        self.fingerprints[key] = fingerprint
        for (ns, rule), worker in self.workers.items():
            if ns != namespace:
                continue
            # Another rule's change can move ownership, conflicts and oversell risk of every rule.
            if (kind == "SyncRule" and rule != name) or (kind, name) in worker.deps or kind in worker.selects:
                worker.trigger()
        if fingerprint is not None and kind in ("Store", "Warehouse", "InventorySource"):
            self._probe_later(namespace, kind, name)

    def _probe_later(self, namespace: str, kind: str, name: str) -> None:
        """Give a Store, or an InventorySource and its Warehouses, a status even when no rule uses it."""
        if kind == "Warehouse":
            body = by_name(self.indices.warehouses, namespace).get(name) if self.indices else None
            if body is None:
                return
            ref = ((body.get("spec") or {}).get("sourceRef") or {}).get("name")
            if not isinstance(ref, str):
                return  # invalid: the next snapshot of the namespace reports it
            kind, name = "InventorySource", ref
        key = (namespace, kind, name)
        if key in self.probes or not self.shard.owns(namespace, f"{kind}/{name}"):
            return
        self.probes[key] = asyncio.create_task(self._probe(*key), name=f"probe {kind} {namespace}/{name}")

    async def _probe(self, namespace: str, kind: str, name: str) -> None:
        try:
            await asyncio.sleep(PROBE_DELAY)
            if any(ns == namespace and (kind, name) in w.deps for (ns, _), w in self.workers.items()):
                return  # a rule reads it and writes its status
            snap = self.snapshot(namespace)
            if kind == "Store":
                found = (
                    await observe_store(snap, name, self.ports, self.shared) if name in snap.stores else []
                )
            else:
                found = await observe_source(snap, name, self.ports, self.shared, utc_now())
            await self.write_objects(namespace, found, utc_now())
        except Exception:
            log.exception("%s %s/%s: status probe failed", kind, namespace, name)
        finally:
            self.probes.pop((namespace, kind, name), None)

    def webhook(self, namespace: str, source: str, rows: list[StockRecord]) -> int:
        arrival = time.monotonic()
        woken = 0
        for (ns, _), worker in self.workers.items():
            if ns == namespace and ("InventorySource", source) in worker.deps:
                worker.webhook(rows, arrival)
                woken += 1
        return woken


def stable_shard(namespace: str, name: str, shards: int) -> int:
    """The shard a rule belongs to: the same in every process and every restart."""
    digest = hashlib.sha256(f"{namespace}/{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % shards


@dataclass(frozen=True, slots=True)
class Shard:
    """Replica `index` of `count`; an index at or past the count (a replica scaled away) owns nothing."""

    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> Shard:
        """`I/N`, 0 <= I < N."""
        try:
            i, n = (int(x) for x in text.split("/"))
        except ValueError:
            raise ValueError(f"--shard {text!r}: expected I/N, e.g. 0/3") from None
        if n < 1 or not 0 <= i < n:
            raise ValueError(f"--shard {text!r}: need N >= 1 and 0 <= I < N")
        return cls(i, n)

    def owns(self, namespace: str, name: str) -> bool:
        return self.index < self.count and stable_shard(namespace, name, self.count) == self.index
