"""Kubernetes-convention conditions as pure functions over the plain dicts kept in `status`.

`Ready` is always present; the abnormal-true conditions (Reconciling, Stalled, Conflict,
OversellRisk) are present only while True, as kstatus and Flux expect. `lastTransitionTime`
moves only when a condition's status changes, so an unchanged world writes an unchanged status.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

READY = "Ready"
RECONCILING = "Reconciling"
STALLED = "Stalled"
CONFLICT = "Conflict"
OVERSELL_RISK = "OversellRisk"
MULTI_WAREHOUSE = "MultiWarehouse"

# Conditions that exist only while True; Ready-style conditions are kept with either status.
ABNORMAL_TRUE = frozenset({RECONCILING, STALLED, CONFLICT, OVERSELL_RISK})

Status = Literal["True", "False", "Unknown"]


@dataclass(frozen=True, slots=True)
class Cond:
    """A condition as a reconcile decided it, before timestamps and generations are applied."""

    type: str
    status: Status
    reason: str
    message: str = ""


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge(
    existing: Sequence[Mapping[str, Any]] | None,
    desired: Iterable[Cond],
    *,
    generation: int | None,
    now: datetime,
) -> list[dict[str, Any]]:
    """The new `status.conditions` list: one entry per desired condition, in the order given.

    A desired condition of an abnormal-true type with status False is dropped (absence means
    False). Types not desired are removed. lastTransitionTime is carried over unless the status
    changed.
    """
    previous = {c.get("type"): c for c in existing or ()}
    out: list[dict[str, Any]] = []
    for cond in desired:
        if cond.type in ABNORMAL_TRUE and cond.status != "True":
            continue
        old = previous.get(cond.type)
        transition = (
            old["lastTransitionTime"]
            if old is not None and old.get("status") == cond.status and old.get("lastTransitionTime")
            else rfc3339(now)
        )
        entry: dict[str, Any] = {
            "type": cond.type,
            "status": cond.status,
            "reason": cond.reason,
            "message": cond.message,
            "lastTransitionTime": transition,
        }
        if generation is not None:
            entry["observedGeneration"] = generation
        out.append(entry)
    return out


def find(conditions: Sequence[Mapping[str, Any]] | None, type_: str) -> Mapping[str, Any] | None:
    return next((c for c in conditions or () if c.get("type") == type_), None)


def with_condition(
    existing: Sequence[Mapping[str, Any]] | None,
    cond: Cond,
    *,
    generation: int | None,
    now: datetime,
) -> list[dict[str, Any]]:
    """Set (or, for an abnormal-true type going False, remove) one condition, keeping the others."""
    kept = [Cond(c["type"], c["status"], c.get("reason", ""), c.get("message", "")) for c in existing or ()]
    replaced = [cond if c.type == cond.type else c for c in kept]
    if all(c.type != cond.type for c in kept):
        replaced.append(cond)
    merged = merge(existing, replaced, generation=generation, now=now)
    # Untouched conditions keep the generation they were set for.
    old = {c.get("type"): c for c in existing or ()}
    for entry in merged:
        if entry["type"] != cond.type and entry["type"] in old:
            if "observedGeneration" in old[entry["type"]]:
                entry["observedGeneration"] = old[entry["type"]]["observedGeneration"]
            else:
                entry.pop("observedGeneration", None)
    return merged
