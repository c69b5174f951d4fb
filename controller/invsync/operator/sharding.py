"""Shards discovered from the cluster: the StatefulSet's replica count is the shard count, its pods are
the peers webhook deliveries are relayed to, and a SyncRule is acted on only by the replica holding
its claim (a coordination.k8s.io Lease), so a change of the replica count never has two replicas
pushing for one rule (docs/operations.md, "Sharding").

Liveness is one Lease per replica, renewed every tick; a rule's claim names its holder and stays valid
while the holder's replica Lease is renewed. Claims are written only when a rule moves, so the API
server sees one write per replica per tick, however many rules there are."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import kubernetes
from kubernetes.client.exceptions import ApiException

from ..errors import InputError
from .runtime import Shard

log = logging.getLogger("invsync.operator.sharding")

TICK = 2.0  # seconds between two looks at the StatefulSet, the peers and the claims
LEASE_SECONDS = 15  # a replica not renewed this long is dead: its claims may be taken over
FENCE_MARGIN = 5.0  # a replica whose renewal has not succeeded for LEASE_SECONDS - this stops acting
WATCHDOG = 1.0  # seconds between two checks of that
RULE_ANNOTATION = "invsync.dev/syncrule"  # namespace/name of the rule a claim is for
COMPONENT_LABEL = "invsync.dev/lease"  # "replica" or "claim"


@dataclass(frozen=True, slots=True)
class StatefulSetRef:
    """`--statefulset NAMESPACE/NAME` and `--replica POD_NAME`: which replica of which StatefulSet this is."""

    namespace: str
    name: str
    replica: str

    @classmethod
    def parse(cls, statefulset: str, replica: str) -> StatefulSetRef:
        namespace, _, name = statefulset.partition("/")
        if not namespace or not name or "/" in name:
            raise InputError(
                f"--statefulset {statefulset!r}: expected NAMESPACE/NAME, e.g. invsync-system/invsync"
            )
        ref = cls(namespace, name, replica)
        ref.ordinal  # noqa: B018 - fails early on a replica name that is not NAME-ORDINAL
        return ref

    @property
    def ordinal(self) -> int:
        """A StatefulSet's pods are named NAME-0, NAME-1, ...: the ordinal is this replica's shard."""
        match = re.fullmatch(rf"{re.escape(self.name)}-(\d+)", self.replica)
        if match is None:
            raise InputError(
                f"--replica {self.replica!r}: expected a pod name of StatefulSet {self.name} "
                f"({self.name}-0, {self.name}-1, ...); in a pod, set it from metadata.name"
            )
        return int(match.group(1))


class RuleHost(Protocol):
    """What the coordinator needs from the operator: the rules it sees, and starting or stopping one."""

    def rule_keys(self) -> Iterable[tuple[str, str]]: ...

    def start_rule(self, namespace: str, name: str) -> None: ...

    async def remove_rule(self, namespace: str, name: str) -> None: ...


def claim_name(namespace: str, name: str) -> str:
    """A Lease name for any rule name (namespace + name can exceed a name's 253 characters)."""
    return "invsync-rule-" + hashlib.sha256(f"{namespace}/{name}".encode()).hexdigest()[:24]


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Seen:
    """A peer's replica Lease as this process last saw it, and since when (by this process's clock)."""

    version: str | None
    since: float


@dataclass
class ShardCoordinator:
    """Discovers the shard count and peers, and holds the claims of the rules this replica acts on."""

    api: kubernetes.client.ApiClient
    ref: StatefulSetRef
    tick: float = TICK
    lease_seconds: int = LEASE_SECONDS
    shard: Shard = field(init=False)
    peers: list[str] = field(default_factory=list)  # the other replicas' webhook base URLs
    claims: dict[tuple[str, str], str] = field(default_factory=dict)  # rule -> its claim's resourceVersion
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    _renewed_at: float = -1e18  # monotonic start of the last successful renewal
    _seen: dict[str, _Seen] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        self.shard = Shard(self.ref.ordinal, 0)  # owns nothing until the StatefulSet is read
        self.leases = kubernetes.client.CoordinationV1Api(self.api)
        self.apps = kubernetes.client.AppsV1Api(self.api)
        self.core = kubernetes.client.CoreV1Api(self.api)

    # ------------------------------------------------------------ what the operator asks

    def holds(self, namespace: str, name: str) -> bool:
        return (namespace, name) in self.claims

    def fenced(self) -> bool:
        """True when this replica may no longer be seen alive by the others: it must not act."""
        return time.monotonic() - self._renewed_at > self.lease_seconds - FENCE_MARGIN

    # ------------------------------------------------------------ the loop

    async def run(self, host: RuleHost, on_shard: Callable[[Shard], None]) -> None:
        """Every tick (or at once when woken): renew, rediscover, then move claims. Errors are logged
        and retried at the next tick; a replica that cannot renew stops acting before its Lease
        expires (the watchdog: a step can be stuck in a call the API server does not answer)."""
        watchdog = asyncio.create_task(self._watchdog(host), name="shard watchdog")
        try:
            while True:
                try:
                    await self.step(host, on_shard)
                except Exception as exc:
                    log.warning("shard coordination: %s: %s", type(exc).__name__, exc)
                self.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), timeout=self.tick)
        finally:
            watchdog.cancel()

    async def _watchdog(self, host: RuleHost) -> None:
        while True:
            await asyncio.sleep(WATCHDOG)
            if self.claims and self.fenced():
                log.warning("replica Lease not renewed lately: stopping %d rules", len(self.claims))
                keys = list(self.claims)
                self.claims.clear()  # taken again from the API server's claims once renewals succeed
                for key in keys:
                    await host.remove_rule(*key)

    async def step(self, host: RuleHost, on_shard: Callable[[Shard], None]) -> None:
        await self._renew()
        count, selector = await self._statefulset()
        shard = Shard(self.ref.ordinal, count)
        if shard != self.shard:
            log.info("shard %d of %d (was %d of %d)", shard.index, count, self.shard.index, self.shard.count)
            self.shard = shard
            on_shard(shard)
        self.peers = await self._peers(selector)
        wanted = {claim_name(*key): key for key in host.rule_keys() if shard.owns(*key)}
        leases = await self._call(
            self.leases.list_namespaced_lease, self.ref.namespace, label_selector=COMPONENT_LABEL
        )
        claims = {lease.metadata.name: lease for lease in leases.items if _component(lease) == "claim"}
        self._see_replicas(
            [lease for lease in leases.items if _component(lease) == "replica"],
            {lease.spec.holder_identity for lease in claims.values()},
        )
        for key in list(self.claims):
            lease = claims.get(claim_name(*key))
            if (
                claim_name(*key) not in wanted
                or lease is None
                or lease.spec.holder_identity != self.ref.replica
            ):
                await host.remove_rule(*key)  # stopped before its claim is let go: never two actors
                self.claims.pop(key, None)
        for name, lease in claims.items():
            if lease.spec.holder_identity == self.ref.replica and name not in wanted:
                rule = (lease.metadata.annotations or {}).get(RULE_ANNOTATION, name)
                await self._release(name, lease.metadata.resource_version, rule)
        for name, key in sorted(wanted.items()):
            if key in self.claims:
                continue
            if self.fenced():
                return
            if await self._claim(key, claims.get(name)):
                host.start_rule(*key)

    def start(self, host: RuleHost, on_shard: Callable[[Shard], None]) -> None:
        self._task = asyncio.create_task(self.run(host, on_shard), name="shard coordinator")

    async def stop(self, host: RuleHost) -> None:
        """Stop coordinating and every rule, then let the claims and this replica's Lease go, so
        other replicas take them at their next tick rather than after the Lease expires."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for key, version in list(self.claims.items()):
            await host.remove_rule(*key)
            with contextlib.suppress(Exception):
                await self._release(claim_name(*key), version, "/".join(key))
        self.claims.clear()
        with contextlib.suppress(Exception):
            await self._call(self.leases.delete_namespaced_lease, self._replica_lease(), self.ref.namespace)

    # ------------------------------------------------------------ the API server

    async def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(fn, *args, _request_timeout=self.tick * 2, **kwargs)

    def _replica_lease(self) -> str:
        return f"invsync-replica-{self.ref.replica}"

    async def _renew(self) -> None:
        started = time.monotonic()
        now = _now()
        body = {"spec": {"holderIdentity": self.ref.replica, "leaseDurationSeconds": self.lease_seconds,
                         "renewTime": now}}  # fmt: skip
        try:
            await self._call(
                self.leases.patch_namespaced_lease, self._replica_lease(), self.ref.namespace, body
            )
        except ApiException as exc:
            if exc.status != 404:
                raise
            lease = self._lease_body(self._replica_lease(), "replica", acquireTime=now, renewTime=now)
            await self._call(self.leases.create_namespaced_lease, self.ref.namespace, lease)
        self._renewed_at = started

    def _lease_body(self, name: str, component: str, **spec: Any) -> dict[str, Any]:
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": name, "labels": {COMPONENT_LABEL: component}},
            "spec": {"holderIdentity": self.ref.replica, "leaseDurationSeconds": self.lease_seconds, **spec},
        }

    async def _statefulset(self) -> tuple[int, str]:
        """spec.replicas (what `kubectl scale` sets, not what runs: a replica being added or removed
        changes hands at once) and the label selector of its pods."""
        sts = await self._call(self.apps.read_namespaced_stateful_set, self.ref.name, self.ref.namespace)
        replicas = sts.spec.replicas
        labels = sts.spec.selector.match_labels or {}
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        return (1 if replicas is None else int(replicas)), selector

    async def _peers(self, selector: str) -> list[str]:
        """Every other running replica's webhook URL: its pod IP and container port `webhooks`."""
        pods = await self._call(self.core.list_namespaced_pod, self.ref.namespace, label_selector=selector)
        urls = []
        for pod in pods.items:
            if pod.metadata.name == self.ref.replica or pod.metadata.deletion_timestamp is not None:
                continue
            address = pod.status.pod_ip if pod.status is not None else None
            ports = [p for c in pod.spec.containers for p in c.ports or () if p.name == "webhooks"]
            if not address or not ports:
                continue
            host = f"[{address}]" if ":" in address else address
            urls.append(f"http://{host}:{ports[0].container_port}")
        return sorted(urls)

    async def _claim(self, key: tuple[str, str], current: Any) -> bool:
        """Take the rule's claim if it is free, ours already (a restarted replica), or its holder's
        replica Lease expired."""
        namespace, name = key
        body = self._lease_body(claim_name(namespace, name), "claim", acquireTime=_now())
        body["metadata"]["annotations"] = {RULE_ANNOTATION: f"{namespace}/{name}"}
        holder = None if current is None else current.spec.holder_identity
        try:
            if current is None:
                taken = await self._call(self.leases.create_namespaced_lease, self.ref.namespace, body)
            elif holder == self.ref.replica:
                taken = current
            elif self._expired(holder):
                # The resourceVersion makes two takers race safely: one of them gets 409.
                body["metadata"]["resourceVersion"] = current.metadata.resource_version
                taken = await self._call(
                    self.leases.replace_namespaced_lease, body["metadata"]["name"], self.ref.namespace, body
                )
            else:
                return False
        except ApiException as exc:
            if exc.status in (404, 409):  # another replica was faster: looked at again next tick
                return False
            raise
        if self.fenced():  # the answer came too late to act on: adopted at a later tick
            return False
        self.claims[key] = taken.metadata.resource_version
        log.info("claimed SyncRule %s/%s%s", namespace, name, f" from {holder}" if holder else "")
        return True

    def _see_replicas(self, leases: Iterable[Any], holders: Iterable[str | None]) -> None:
        """Note when each replica's Lease last changed, as this process saw it (a missing Lease counts
        as unchanged from when it was first missed)."""
        now = time.monotonic()
        versions = {lease.spec.holder_identity: lease.metadata.resource_version for lease in leases}
        for holder in {*versions, *self._seen, *(h for h in holders if h)}:
            seen = self._seen.get(holder)
            if seen is None or seen.version != versions.get(holder):
                self._seen[holder] = _Seen(versions.get(holder), now)

    def _expired(self, holder: str | None) -> bool:
        """The holder's replica Lease has not changed (or been missing) for a whole lease duration by
        this process's clock (two machines' clocks are never compared), or the claim names no holder."""
        if not holder:
            return True
        seen = self._seen.get(holder)
        return seen is not None and time.monotonic() - seen.since > self.lease_seconds

    async def _release(self, lease_name: str, version: str, rule: str) -> None:
        options = kubernetes.client.V1DeleteOptions(
            preconditions=kubernetes.client.V1Preconditions(resource_version=version)
        )
        try:
            await self._call(
                self.leases.delete_namespaced_lease, lease_name, self.ref.namespace, body=options
            )
        except ApiException as exc:
            if exc.status not in (404, 409):  # gone, or changed hands after this replica's Lease expired
                raise
        log.info("released SyncRule %s", rule)


def _component(lease: Any) -> str | None:
    return (lease.metadata.labels or {}).get(COMPONENT_LABEL)
