"""kopf wiring: watches and indices, bound to an Operator (runtime.py). Decisions live in reconcile.py.

No handler here is of a kind kopf persists progress for (only indices and raw event handlers),
and workers are plain asyncio tasks rather than kopf daemons, so the operator adds no finalizer
and no annotation: deleting a rule is never blocked, and an unchanged world writes nothing.
"""

from __future__ import annotations

import contextvars
from collections.abc import Mapping
from typing import Any

import kopf

from ..api import GROUP, VERSION
from .bodies import RawBody, plain
from .runtime import Indices, Operator


def _fingerprint(body: Mapping[str, Any], event_type: str | None) -> Any:
    if event_type == "DELETED":
        return None
    meta = body.get("metadata", {})
    return (meta.get("generation"), tuple(sorted((meta.get("labels") or {}).items())))


def register(registry: kopf.OperatorRegistry, op: Operator) -> None:
    """Register every handler on `registry`, bound to `op`. Handlers take only keyword arguments
    (kopf passes many); the index names are the keyword arguments handlers receive them by."""

    def keep_body(**kw: Any) -> dict[str, RawBody]:
        return {kw["namespace"]: plain(kw["body"])}

    for plural in ("stores", "warehouses", "inventorysources", "syncrules"):
        kopf.index(GROUP, VERSION, plural, id=f"{plural}_index", registry=registry)(keep_body)
    # No Secret is watched: the operator may read only the Secrets a namespace grants it, by name
    # (operator/secrets.py; docs/security.md, "Granting access").

    def attach(kw: Mapping[str, Any]) -> None:
        if op.indices is None:
            op.indices = Indices(
                stores=kw["stores_index"],
                warehouses=kw["warehouses_index"],
                sources=kw["inventorysources_index"],
                rules=kw["syncrules_index"],
            )
            # kopf sets up kopf.event's queue only in the tasks it runs handlers in: workers started
            # by the shard coordinator (its own task) run in a copy of this handler's context.
            op.handler_context = contextvars.copy_context()

    def touched(kind: str) -> Any:
        async def on_event(**kw: Any) -> None:  # async: kopf runs it in the loop, not in a thread
            attach(kw)
            op.touched(kind, kw["namespace"], kw["name"], _fingerprint(kw["body"], kw["event"].get("type")))

        return on_event

    kinds = {"stores": "Store", "warehouses": "Warehouse", "inventorysources": "InventorySource"}
    for plural, kind in kinds.items():
        kopf.on.event(GROUP, VERSION, plural, id=f"{plural}_event", registry=registry)(touched(kind))

    @kopf.on.event(GROUP, VERSION, "syncrules", id="syncrules_event", registry=registry)
    async def syncrules_event(**kw: Any) -> None:
        attach(kw)
        deleted = kw["event"].get("type") == "DELETED"
        if deleted:
            await op.remove_rule(kw["namespace"], kw["name"])
        else:
            op.upsert_rule(plain(kw["body"]))
        mark = None if deleted else kw["body"]["metadata"].get("generation")
        op.touched("SyncRule", kw["namespace"], kw["name"], mark)

    @kopf.on.cleanup(registry=registry)
    async def stop_workers(**_: Any) -> None:
        await op.stop()
