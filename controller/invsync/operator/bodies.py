"""The raw objects kopf hands us, typed (after kopf's own RawBody / RawMeta), and their parsing."""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable, Mapping
from typing import Any, TypedDict, TypeVar, cast

from pydantic import ValidationError

from ..api.common import Resource

log = logging.getLogger("invsync.operator")

R = TypeVar("R", bound=Resource)


class RawMeta(TypedDict, total=False):
    name: str
    namespace: str
    generation: int
    resourceVersion: str
    creationTimestamp: str
    labels: dict[str, str]
    annotations: dict[str, str]


class RawBody(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: RawMeta
    spec: dict[str, Any]
    status: dict[str, Any]


Index = Mapping[str, Iterable[RawBody]]  # a kopf index of bodies, keyed by namespace


def plain(body: Mapping[str, Any]) -> RawBody:
    """A detached copy of a kopf body (kopf bodies are live views)."""
    return cast(RawBody, copy.deepcopy(dict(body)))


def parse(model: type[R], body: RawBody) -> R | None:
    """The resource without its status, or None (and a log line naming it) when it does not parse."""
    parsed = parse_checked(model, body)
    if isinstance(parsed, str):
        meta = body.get("metadata", {})
        log.error(
            "%s %s/%s is invalid: %s", body.get("kind"), meta.get("namespace"), meta.get("name"), parsed
        )
        return None
    return parsed


def parse_checked(model: type[R], body: RawBody) -> R | str:
    """The resource without its status, or what is wrong with it: each bad field by its path in the
    manifest (`spec.interval: duration '99999h' is longer than 720h`), for a condition and an Event."""
    try:
        return model.model_validate({k: v for k, v in body.items() if k != "status"})
    except ValidationError as exc:
        return invalid_fields(exc)


def invalid_fields(exc: ValidationError, limit: int = 3) -> str:
    errors = exc.errors(include_url=False, include_input=False)
    parts = [
        f"{'.'.join(str(p) for p in err['loc']) or 'object'}: {err['msg'].removeprefix('Value error, ')}"
        for err in errors[:limit]
    ]
    more = f"; and {len(errors) - limit} more" if len(errors) > limit else ""
    return "; ".join(parts)[:900] + more


def resource_version(body: RawBody | None) -> int:
    try:
        return int((body or {}).get("metadata", {}).get("resourceVersion", "0"))
    except ValueError:
        return 0


def by_name(index: Index, namespace: str) -> dict[str, RawBody]:
    return {b["metadata"]["name"]: b for b in index.get(namespace, ())}
