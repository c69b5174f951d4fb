"""One SyncRule's loop: wait for a trigger, a webhook or the interval, sync, write what changed, and
retry sooner after a sync that failed or could not read or push for a passing reason."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

import kopf
from pydantic import ValidationError

from .. import metrics
from ..api import SyncRule, SyncRuleStatus, parse_duration
from ..engine.records import StockRecord
from .bodies import RawBody, parse_checked, resource_version
from .conditions import READY, RECONCILING, Cond, with_condition
from .observe import dependencies
from .reasons import TRANSIENT, Reason
from .reconcile import sync_rule
from .report import pushed_event, same_conditions, status_patch
from .state import APPROVE_HOLD, REQUESTED_AT, Event, RuleMemory

if TYPE_CHECKING:
    from .runtime import Operator

log = logging.getLogger("invsync.operator")

RETRY_BACKOFF = (5.0, 10.0, 30.0, 60.0)  # after a sync that raised: retry sooner than `interval`
PROGRESS_TIMEOUT = 5.0  # seconds one `pushed N/M` status write may take before it is dropped
# A channel that changed behind invsync's back is re-read at once, but not sooner than this after the
# previous full sync ended: on a busy shop every order does it, and back-to-back full reads of a large
# catalogue would starve the rate limit (docs/rules.md, "How a sync runs").
REREAD_MIN_GAP = 15.0
# A webhook sync's status and its Pushed Event wait until this long after the rule's last status
# write, each later one replacing the status and adding to the Event; a status whose conditions
# change is written at once, and full syncs write theirs at once (docs/status.md). At 50 changes a
# second, one write and one Event per change would be 100 API writes a second on one object.
STATUS_MIN_GAP = 5.0


class RuleWorker:
    """One SyncRule's loop: sleep until a trigger or the interval, then sync."""

    def __init__(self, op: Operator, body: RawBody) -> None:
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
        self.full_synced_at = float("-inf")  # monotonic end of the last full sync
        self.unwritten: dict[str, Any] | None = None  # status patch of webhook syncs, waiting
        self.unposted = 0  # listing quantities webhook syncs set whose Pushed Event waits
        self.status_written_at = float("-inf")  # monotonic time of the last status a sync wrote
        self.task: asyncio.Task[None] | None = None

    def update(self, body: RawBody) -> None:
        if resource_version(body) >= resource_version(self.body):
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
        sources = (
            self.op.parsed_source(self.namespace, name)
            for kind, name in self.deps
            if kind == "InventorySource"
        )
        # parsed sources only: an invalid pollInterval is the source's InvalidSpec, never this loop's crash
        polls = [parse_duration(src.spec.poll_interval).total_seconds() for src in sources if src is not None]
        return max(min(polls, default=float("inf")), 1.0)

    async def run(self) -> None:
        failures = 0
        # When the next full sync is due: `interval` after the last full one (or sooner, a requeue).
        # Webhook syncs in between do not move it: on a busy shop they never stop, and only a full
        # read sees what changed on the channel without a webhook.
        full_due = time.monotonic()
        while True:
            due = full_due
            if self.unwritten is not None or self.unposted:
                due = min(due, self.status_written_at + STATUS_MIN_GAP)
            try:
                await asyncio.wait_for(self.wake.wait(), max(0.0, due - time.monotonic()))
            except TimeoutError:
                if time.monotonic() < full_due:  # only what webhook syncs left waiting is due
                    await self._flush_waiting()
                    continue
                self.full = True  # `interval` (or a requeue) is a full reconcile against the live channel
            self.wake.clear()
            full, skus, rows = self.full, frozenset(self.skus), self.webhook_rows
            self.full, self.skus, self.webhook_rows = False, set(), []
            requeue: float | None = None
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
                self.unwritten = None  # the error is the status now; the retried sync writes the rest
                with contextlib.suppress(Exception):
                    await self._set_condition(Cond(READY, "False", Reason.RECONCILE_ERROR, str(exc)[:500]))
                requeue = RETRY_BACKOFF[min(failures, len(RETRY_BACKOFF) - 1)]
                failures += 1
                self.full = True
            ended = time.monotonic()
            if full:
                full_due = ended + min(self._interval(), self._poll())
            if requeue is not None:
                full_due = min(full_due, ended + requeue)

    def _interval(self) -> float:
        """The rule's `interval`; one it cannot use (the rule is InvalidSpec) waits the default 5m."""
        spec = self.body.get("spec") or {}
        try:
            seconds = parse_duration(str(spec.get("interval", "5m"))).total_seconds()
        except ValueError:
            return 300.0
        return seconds if seconds >= 1.0 else 300.0

    async def _set_condition(self, cond: Cond, timeout: float | None = None) -> None:
        status = self.body.get("status") or {}
        conditions = with_condition(
            status.get("conditions"), cond, generation=self.body["metadata"].get("generation"), now=utc_now()
        )
        await self._write({"conditions": conditions}, timeout=timeout)

    async def _write(self, patch: Mapping[str, Any], timeout: float | None = None) -> None:
        updated = await self.op.kube.patch_status(
            "SyncRule", self.namespace, self.name, patch, timeout=timeout
        )
        if updated is not None:
            self.body = updated

    async def _write_progress(self, done: int, total: int) -> None:
        cond = Cond(RECONCILING, "True", Reason.PUSHING, f"pushed {done}/{total}")
        await self._set_condition(cond, timeout=PROGRESS_TIMEOUT)

    def _reread(self, changed: int, read: int, unreadable: int, requeue: float | None) -> float | None:
        """Ask for a full re-read: now, or when REREAD_MIN_GAP has passed since the last full sync
        (the returned requeue, which the loop turns into a full sync)."""
        wait = REREAD_MIN_GAP - (time.monotonic() - self.full_synced_at)
        log.warning(
            "SyncRule %s/%s: %d of %d live slots read changed behind invsync's back, %d stores "
            "unreadable: full re-read%s",
            self.namespace,
            self.name,
            changed,
            read,
            unreadable,
            f" in {wait:.0f}s" if wait > 0 else "",
        )
        if wait <= 0:
            self.trigger()
            return requeue
        return wait if requeue is None else min(requeue, wait)

    async def sync(self, skus: frozenset[str] | None, rows: list[StockRecord]) -> float | None:
        started = time.monotonic()
        self.transient = False
        body = self.body
        self.synced_generation = body["metadata"].get("generation")
        self.synced_marks = self._marks()
        rule = parse_checked(SyncRule, body)
        if isinstance(rule, str):
            self.op.report_invalid("SyncRule", body, rule)
            return None
        rule = rule.model_copy(update={"status": _parse_status(body)})
        snap = self.op.snapshot(self.namespace)
        self.deps = dependencies(rule, snap)
        self.selects = {"Store"} if rule.spec.stores.selector is not None else set()
        if any(w.selector is not None for w in rule.spec.warehouses):
            self.selects.add("Warehouse")
        metrics.set_rule_interval(self.namespace, self.name, self._interval())

        progress = ProgressWriter(self._write_progress)
        now = utc_now()
        try:
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
        finally:
            await progress.close()  # before the final status, which removes Reconciling
        await self.op.write_objects(self.namespace, report.objects, now)
        self.unwritten = status_patch(self.body.get("status"), report.status, now)
        self.unposted += sum(c.pushed for c in report.stores.values())
        waits = (
            skus is not None
            and time.monotonic() - self.status_written_at < STATUS_MIN_GAP
            and same_conditions(self.body.get("status"), report.status)
        )
        if not waits:
            await self._flush()
        self._post(e for e in report.events if e.reason != Reason.PUSHED)
        requeue = report.requeue_after
        if skus is None:
            self.full_synced_at = time.monotonic()
        if report.live.reread:  # the channel changed behind invsync's back: re-read it all
            requeue = self._reread(report.live.changed, report.live.read, len(report.live.problems), requeue)
        # A progress write that failed means the API server was away mid-sync: what changed meanwhile
        # (stock with no webhook, a missed event) is re-read by a retried sync, as for a sync that raised.
        self.transient = progress.failed or (
            report.result in ("partial", "failure")
            and any(ev.reason in TRANSIENT for ev in report.events if ev.type == "Warning")
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
        for store, seconds in report.change_to_push:
            metrics.CHANGE_TO_PUSH.labels(snap.stores[store].spec.platform).observe(seconds)
        return requeue

    async def _flush(self) -> None:
        """Write the status and post the Pushed Event that syncs left waiting."""
        if self.unwritten is not None:
            await self._write(self.unwritten)
            self.unwritten, self.status_written_at = None, time.monotonic()
        if self.unposted:
            listings, self.unposted = self.unposted, 0
            self._event(pushed_event(listings))

    async def _flush_waiting(self) -> None:
        """_flush once STATUS_MIN_GAP has passed; an API server away is tried again a gap later."""
        try:
            await self._flush()
        except Exception as exc:
            self.status_written_at = time.monotonic()
            log.warning("SyncRule %s/%s: status write failed, retried: %s", self.namespace, self.name, exc)

    def _post(self, events: Iterable[Event]) -> None:
        """Post Events; standing warnings (holds, conflicts, missing things) once per change."""
        warnings: set[tuple[str, str]] = set()
        for ev in events:
            if ev.type == "Warning" and ev.reason != Reason.PUSH_FAILED:
                warnings.add((ev.reason, ev.message))
                if (ev.reason, ev.message) in self.last_warnings:
                    continue
            self._event(ev)
        self.last_warnings = warnings

    def _event(self, ev: Event) -> None:
        kopf.event(cast(kopf.Body, self.body), type=ev.type, reason=ev.reason, message=ev.message)


class ProgressWriter:
    """`Reconciling ... pushed N/M` written beside the push, never in its way: pushes need only the
    platform, so a hanging API server must not stop them (docs/operations.md, "kube-apiserver down").
    The latest value wins; each write gives up after PROGRESS_TIMEOUT; close() drops what is left.
    A write that failed marks the sync for a retry."""

    def __init__(self, write: Callable[[int, int], Awaitable[None]]) -> None:
        self._write = write
        self._latest: tuple[int, int] | None = None
        self._task: asyncio.Task[None] | None = None
        self.failed = False  # a write failed or timed out: the sync is retried (RuleWorker.sync)

    async def __call__(self, done: int, total: int) -> None:
        self._latest = (done, total)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain())

    async def _drain(self) -> None:
        while self._latest is not None:
            (done, total), self._latest = self._latest, None
            try:
                await asyncio.wait_for(self._write(done, total), PROGRESS_TIMEOUT)
            except Exception as exc:  # a progress line is not worth failing or delaying a push for
                self.failed = True
                log.debug("progress write (pushed %d/%d) dropped: %s", done, total, exc)

    async def close(self) -> None:
        self._latest = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def _parse_status(body: Mapping[str, Any]) -> SyncRuleStatus | None:
    raw = body.get("status")
    if not raw:
        return None
    try:
        return SyncRuleStatus.model_validate(raw)
    except ValidationError:
        return None


def utc_now() -> datetime:
    return datetime.now(UTC)
