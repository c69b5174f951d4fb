"""kopf wiring: watches, indices and one worker task per SyncRule. Decisions live in reconcile.py.

No handler here is of a kind kopf persists progress for (only indices and raw event handlers),
and workers are plain asyncio tasks rather than kopf daemons, so the operator adds no finalizer
and no annotation: deleting a rule is never blocked, and an unchanged world writes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import kopf
from pydantic import ValidationError

from .. import metrics
from ..api import GROUP, VERSION, InventorySource, Store, SyncRule, SyncRuleStatus, Warehouse, parse_duration
from ..api.common import Resource
from ..engine.records import StockRecord
from .conditions import RECONCILING, Cond, with_condition
from .kube import Kube, KubePorts
from .reconcile import (
    APPROVE_HOLD,
    REQUESTED_AT,
    Event,
    RuleMemory,
    Shard,
    SharedMemory,
    Snapshot,
    dependencies,
    object_patch,
    observe_source,
    observe_store,
    status_patch,
    sync_rule,
)

log = logging.getLogger("invsync.operator")

RETRY_BACKOFF = (5.0, 10.0, 30.0, 60.0)  # after a sync that raised: retry sooner than `interval`
# A sync that could not read or push for one of these passing reasons is retried with RETRY_BACKOFF
# too: a platform outage must not leave the channel wrong for a whole `interval`.
TRANSIENT = frozenset({"SourceUnavailable", "StoreUnavailable", "PushFailed"})
PROBE_DELAY = 2.0  # before probing an object no rule uses: lets the rules' first syncs claim theirs


def _plain(body: Mapping[str, Any]) -> dict[str, Any]:
    """A detached copy of a kopf body (kopf bodies are live views)."""
    return copy.deepcopy(dict(body))


def _parse(model: type[Resource], body: Mapping[str, Any]) -> Any:
    """The resource without its status, or None (and a log line naming it) when it does not parse."""
    try:
        return model.model_validate({k: v for k, v in body.items() if k != "status"})
    except ValidationError as exc:
        meta = body.get("metadata", {})
        log.error("%s %s/%s is invalid: %s", body.get("kind"), meta.get("namespace"), meta.get("name"), exc)
        return None


def _rv(body: Mapping[str, Any] | None) -> int:
    try:
        return int((body or {}).get("metadata", {}).get("resourceVersion", "0"))
    except ValueError:
        return 0


@dataclass
class Indices:
    """kopf's indices, keyed by namespace; values are detached bodies (Secrets: names only)."""

    stores: Mapping[str, Iterable[dict[str, Any]]]
    warehouses: Mapping[str, Iterable[dict[str, Any]]]
    sources: Mapping[str, Iterable[dict[str, Any]]]
    rules: Mapping[str, Iterable[dict[str, Any]]]
    secrets: Mapping[str, Iterable[str]]


def _by_name(index: Mapping[str, Iterable[dict[str, Any]]], namespace: str) -> dict[str, dict[str, Any]]:
    return {b["metadata"]["name"]: b for b in index.get(namespace, ())}


class RuleWorker:
    """One SyncRule's loop: sleep until a trigger or the interval, then sync."""

    def __init__(self, op: Operator, body: dict[str, Any]) -> None:
        self.op = op
        self.namespace: str = body["metadata"]["namespace"]
        self.name: str = body["metadata"]["name"]
        self.body = body
        self.memory = RuleMemory()
        self.wake = asyncio.Event()
        self.full = True
        self.skus: set[str] = set()
        self.webhook_rows: list[StockRecord] = []
        self.deps: set[tuple[str, str]] = set()
        self.selects: set[str] = set()  # kinds the rule selects by label
        self.synced_generation: int | None = None
        self.synced_marks: tuple[str | None, str | None] = (None, None)
        self.last_warnings: set[tuple[str, str]] = set()
        self.transient = False  # the last sync failed for a passing reason (TRANSIENT)
        self.task: asyncio.Task[None] | None = None

    def update(self, body: dict[str, Any]) -> None:
        if _rv(body) >= _rv(self.body):
            self.body = body
        if self.synced_generation is None:
            return  # the first sync has not started: it will use this body anyway
        changed = body["metadata"].get("generation") != self.synced_generation
        if changed or self._marks() != self.synced_marks:
            self.trigger()

    def _marks(self) -> tuple[str | None, str | None]:
        ann = self.body["metadata"].get("annotations") or {}
        return ann.get(REQUESTED_AT), ann.get(APPROVE_HOLD)

    def trigger(self) -> None:
        if self.synced_generation is None:
            return  # the first sync has not started: it will see the change anyway
        self.full = True
        self.wake.set()

    def webhook(self, rows: list[StockRecord], arrival: float) -> None:
        if not self.full:
            self.skus |= {r.sku for r in rows}
            self.webhook_rows += rows
        for r in rows:
            self.memory.arrivals.setdefault(r.sku, arrival)
        self.wake.set()

    def _poll(self) -> float:
        """The shortest pollInterval of the sources the rule reads: a full re-read is due then."""
        idx = self.op.indices
        polls = [
            parse_duration((body.get("spec") or {}).get("pollInterval", "5m")).total_seconds()
            for name, body in (_by_name(idx.sources, self.namespace).items() if idx is not None else ())
            if ("InventorySource", name) in self.deps
        ]
        return max(min(polls, default=float("inf")), 1.0)

    async def run(self) -> None:
        failures = 0
        requeue: float | None = 0.0
        while True:
            interval = min(self._interval(), self._poll())
            timeout = interval if requeue is None else min(interval, requeue)
            try:
                await asyncio.wait_for(self.wake.wait(), timeout)
            except TimeoutError:
                self.full = True  # `interval` (or a requeue) is a full reconcile against the live channel
            self.wake.clear()
            full, skus, rows = self.full, frozenset(self.skus), self.webhook_rows
            self.full, self.skus, self.webhook_rows = False, set(), []
            try:
                requeue = await self.sync(None if full else skus, rows)
                if self.transient:
                    backoff = RETRY_BACKOFF[min(failures, len(RETRY_BACKOFF) - 1)]
                    requeue = backoff if requeue is None else min(requeue, backoff)
                    failures += 1
                    self.full = True
                else:
                    failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("SyncRule %s/%s: sync failed", self.namespace, self.name)
                metrics.SYNC_RUNS.labels(self.namespace, self.name, "failure").inc()
                with contextlib.suppress(Exception):
                    await self._set_condition(Cond("Ready", "False", "ReconcileError", str(exc)[:500]))
                requeue = RETRY_BACKOFF[min(failures, len(RETRY_BACKOFF) - 1)]
                failures += 1
                self.full = True

    def _interval(self) -> float:
        spec = self.body.get("spec") or {}
        try:
            return max(parse_duration(spec.get("interval", "5m")).total_seconds(), 1.0)
        except ValueError:
            return 300.0

    async def _set_condition(self, cond: Cond) -> None:
        status = self.body.get("status") or {}
        conditions = with_condition(
            status.get("conditions"), cond, generation=self.body["metadata"].get("generation"), now=_now()
        )
        await self._write({"conditions": conditions})

    async def _write(self, patch: Mapping[str, Any]) -> None:
        updated = await self.op.kube.patch_status("SyncRule", self.namespace, self.name, patch)
        if updated is not None:
            self.body = updated

    async def sync(self, skus: frozenset[str] | None, rows: list[StockRecord]) -> float | None:
        started = time.monotonic()
        self.transient = False
        body = self.body
        self.synced_generation = body["metadata"].get("generation")
        self.synced_marks = self._marks()
        rule: SyncRule | None = _parse(SyncRule, body)
        if rule is None:
            return None
        rule = rule.model_copy(update={"status": _parse_status(body)})
        snap = self.op.snapshot(self.namespace)
        self.deps = dependencies(rule, snap)
        self.selects = {"Store"} if rule.spec.stores.selector is not None else set()
        if any(w.selector is not None for w in rule.spec.warehouses):
            self.selects.add("Warehouse")
        metrics.set_rule_interval(self.namespace, self.name, self._interval())

        async def progress(done: int, total: int) -> None:
            await self._set_condition(Cond(RECONCILING, "True", "Pushing", f"pushed {done}/{total}"))

        now = _now()
        report = await sync_rule(
            rule,
            snap,
            self.op.ports,
            self.memory,
            self.op.shared,
            now=now,
            skus=skus,
            webhook_rows=rows,
            progress=progress,
        )
        await self.op.write_objects(self.namespace, report.objects, now)
        patch = status_patch(self.body.get("status"), report.status, now)
        if patch is not None:
            await self._write(patch)
        self._post(report.events)
        self.transient = report.result in ("partial", "failure") and any(
            ev.reason in TRANSIENT for ev in report.events if ev.type == "Warning"
        )
        conditions = {c["type"]: c["status"] for c in report.status["conditions"]}
        pushed = sum(c.pushed for c in report.stores.values())
        failed = sum(c.failed for c in report.stores.values())
        if pushed or failed or report.result != "success":
            # quiet syncs stay quiet; what changed a channel (or could not) is worth a line
            log.info(
                "SyncRule %s/%s: %s (%s sync), pushed %d, failed %d, drifted %d",
                self.namespace,
                self.name,
                report.result,
                "full" if skus is None else f"{len(skus)}-SKU",
                pushed,
                failed,
                sum(c.drifted for c in report.stores.values()),
            )
        metrics.set_rule_conditions(self.namespace, self.name, conditions)
        metrics.record_sync(
            self.namespace,
            self.name,
            result=report.result,
            duration_seconds=time.monotonic() - started,
            stores={
                name: metrics.StoreResult(
                    in_sync=c.in_sync,
                    drifted=c.drifted,
                    failed=c.failed,
                    unmatched=c.unmatched,
                    held=c.held,
                    conflicted=c.conflicted,
                    drift_units=c.drift_units,
                    pushed_ok=c.pushed,
                    pushed_failed=c.failed,
                )
                for name, c in report.stores.items()
            },
            finished_at=time.time(),
        )
        metrics.set_pool_allocation(self.namespace, {w: float(r) for w, r in report.allocation.items()})
        for seconds in report.change_to_push:
            metrics.CHANGE_TO_PUSH.labels("tiktok").observe(seconds)
        return report.requeue_after

    def _post(self, events: Iterable[Event]) -> None:
        """Post Events; standing warnings (holds, conflicts, missing things) once per change."""
        warnings: set[tuple[str, str]] = set()
        for ev in events:
            if ev.type == "Warning" and ev.reason != "PushFailed":
                warnings.add((ev.reason, ev.message))
                if (ev.reason, ev.message) in self.last_warnings:
                    continue
            kopf.event(cast(kopf.Body, self.body), type=ev.type, reason=ev.reason, message=ev.message)
        self.last_warnings = warnings


def _parse_status(body: Mapping[str, Any]) -> SyncRuleStatus | None:
    raw = body.get("status")
    if not raw:
        return None
    try:
        return SyncRuleStatus.model_validate(raw)
    except ValidationError:
        return None


def _now() -> datetime:
    return datetime.now(UTC)


class Operator:
    """Process-wide state: the indices, the workers of this shard, the shared memory."""

    def __init__(self, kube: Kube, shard: Shard) -> None:
        self.kube = kube
        self.ports = KubePorts(kube, self.read_secret)
        self.shard = shard
        self.shared = SharedMemory()
        self.indices: Indices | None = None
        self.workers: dict[tuple[str, str], RuleWorker] = {}
        self.fingerprints: dict[tuple[str, str, str], Any] = {}
        self.started = False  # kopf's startup activities ran: /readyz answers 200
        self.probes: dict[tuple[str, str, str], asyncio.Task[None]] = {}
        # (kind, namespace) -> name -> (resourceVersion, parsed resource or None when invalid)
        self.parsed: dict[tuple[str, str], dict[str, tuple[str | None, Any]]] = {}

    # ---------------------------------------------------------------- snapshot

    def snapshot(self, namespace: str) -> Snapshot:
        idx = self.indices
        if idx is None:
            raise RuntimeError("indices are not populated yet")

        def parsed(model: type[Resource], index: Mapping[str, Iterable[dict[str, Any]]]) -> dict[str, Any]:
            # Parsed once per resourceVersion: every sync of every rule snapshots the whole namespace,
            # and re-parsing it each time grew with rules x objects (bench/bench_steady.py, 100 rules).
            cached = self.parsed.get((model.__name__, namespace), {})
            fresh: dict[str, tuple[str | None, Any]] = {}
            for name, body in _by_name(index, namespace).items():
                rv = body["metadata"].get("resourceVersion")
                hit = cached.get(name)
                fresh[name] = (
                    hit if hit is not None and rv is not None and hit[0] == rv else (rv, _parse(model, body))
                )
            self.parsed[(model.__name__, namespace)] = fresh
            return {name: obj for name, (_, obj) in fresh.items() if obj is not None}

        return Snapshot(
            namespace=namespace,
            rules=list(parsed(SyncRule, idx.rules).values()),
            stores=parsed(Store, idx.stores),
            warehouses=parsed(Warehouse, idx.warehouses),
            sources=parsed(InventorySource, idx.sources),
        )

    async def write_objects(self, namespace: str, objects: Iterable[Any], now: datetime) -> None:
        idx = self.indices
        if idx is None:
            return
        index = {"Store": idx.stores, "Warehouse": idx.warehouses, "InventorySource": idx.sources}
        for obs in objects:
            body = _by_name(index[obs.kind], namespace).get(obs.name)
            if body is None:
                continue
            refresh = None
            if obs.kind == "InventorySource":
                refresh = parse_duration((body.get("spec") or {}).get("pollInterval", "5m"))
            patch = object_patch(
                body.get("status"), obs, body["metadata"].get("generation"), now, refresh_after=refresh
            )
            if patch is not None:
                await self.kube.patch_status(obs.kind, namespace, obs.name, patch)

    def source(self, namespace: str, name: str) -> InventorySource | None:
        body = _by_name(self.indices.sources, namespace).get(name) if self.indices is not None else None
        return _parse(InventorySource, body) if body is not None else None

    async def read_secret(self, namespace: str, name: str) -> Mapping[str, str] | None:
        if self.indices is not None and name not in self.indices.secrets.get(namespace, ()):
            return None
        return await self.kube.read_secret(namespace, name)

    # ---------------------------------------------------------------- rules

    def upsert_rule(self, body: dict[str, Any]) -> None:
        ns, name = body["metadata"]["namespace"], body["metadata"]["name"]
        if not self.shard.owns(ns, name):
            return
        worker = self.workers.get((ns, name))
        if worker is None:
            worker = self.workers[(ns, name)] = RuleWorker(self, body)
            worker.task = asyncio.create_task(worker.run(), name=f"syncrule {ns}/{name}")
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
        for probe in list(self.probes.values()):
            probe.cancel()
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
            body = _by_name(self.indices.warehouses, namespace).get(name) if self.indices else None
            if body is None:
                return
            kind, name = "InventorySource", body["spec"]["sourceRef"]["name"]
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
                found = await observe_source(snap, name, self.ports, self.shared, _now())
            await self.write_objects(namespace, found, _now())
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


def _fingerprint(body: Mapping[str, Any], event_type: str | None) -> Any:
    if event_type == "DELETED":
        return None
    meta = body.get("metadata", {})
    return (meta.get("generation"), tuple(sorted((meta.get("labels") or {}).items())))


def register(registry: kopf.OperatorRegistry, op: Operator) -> None:
    """Register every handler on `registry`, bound to `op`. Handlers take only keyword arguments
    (kopf passes many); the index names are the keyword arguments handlers receive them by."""

    def keep_body(**kw: Any) -> dict[str, dict[str, Any]]:
        return {kw["namespace"]: _plain(kw["body"])}

    def keep_name(**kw: Any) -> dict[str, str]:
        return {kw["namespace"]: kw["name"]}  # a Secret's presence only: never its data

    for plural in ("stores", "warehouses", "inventorysources", "syncrules"):
        kopf.index(GROUP, VERSION, plural, id=f"{plural}_index", registry=registry)(keep_body)
    kopf.index("v1", "secrets", id="secrets_index", registry=registry)(keep_name)

    def attach(kw: Mapping[str, Any]) -> None:
        if op.indices is None:
            op.indices = Indices(
                stores=kw["stores_index"],
                warehouses=kw["warehouses_index"],
                sources=kw["inventorysources_index"],
                rules=kw["syncrules_index"],
                secrets=kw["secrets_index"],
            )

    def touched(kind: str) -> Any:
        async def on_event(**kw: Any) -> None:  # async: kopf runs it in the loop, not in a thread
            attach(kw)
            if kind == "Secret":
                deleted = kw["event"].get("type") == "DELETED"
                mark = None if deleted else kw["body"]["metadata"].get("resourceVersion")
            else:
                mark = _fingerprint(kw["body"], kw["event"].get("type"))
            op.touched(kind, kw["namespace"], kw["name"], mark)

        return on_event

    kinds = {"stores": "Store", "warehouses": "Warehouse", "inventorysources": "InventorySource"}
    for plural, kind in kinds.items():
        kopf.on.event(GROUP, VERSION, plural, id=f"{plural}_event", registry=registry)(touched(kind))
    kopf.on.event("v1", "secrets", id="secrets_event", registry=registry)(touched("Secret"))

    @kopf.on.event(GROUP, VERSION, "syncrules", id="syncrules_event", registry=registry)
    async def syncrules_event(**kw: Any) -> None:
        attach(kw)
        deleted = kw["event"].get("type") == "DELETED"
        if deleted:
            await op.remove_rule(kw["namespace"], kw["name"])
        else:
            op.upsert_rule(_plain(kw["body"]))
        mark = None if deleted else kw["body"]["metadata"].get("generation")
        op.touched("SyncRule", kw["namespace"], kw["name"], mark)

    @kopf.on.cleanup(registry=registry)
    async def stop_workers(**_: Any) -> None:
        await op.stop()
