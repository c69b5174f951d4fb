"""Generate the CustomResourceDefinitions in crds/ from the pydantic models.

Pydantic emits JSON Schema; Kubernetes wants a *structural* OpenAPI v3 schema: no $ref, no anyOf
around nullable fields, no titles. This module rewrites one into the other and adds the CRD
envelope (names, printer columns, status subresource).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from .common import GROUP, VERSION
from .kinds import KINDS

READY = '.status.conditions[?(@.type=="Ready")]'

# kind -> (plural, short names, extra printer columns placed before READY)
_NAMES: dict[str, tuple[str, list[str], list[dict[str, Any]]]] = {
    "InventorySource": (
        "inventorysources",
        ["isrc"],
        [
            {"name": "Provider", "type": "string", "jsonPath": ".spec.provider"},
            {"name": "Items", "type": "integer", "jsonPath": ".status.items"},
        ],
    ),
    "Warehouse": (
        "warehouses",
        ["wh"],
        [
            {"name": "Source", "type": "string", "jsonPath": ".spec.sourceRef.name"},
            {"name": "Type", "type": "string", "jsonPath": ".spec.type"},
            {"name": "Available", "type": "integer", "jsonPath": ".status.available"},
        ],
    ),
    "Store": (
        "stores",
        ["store"],
        [
            {"name": "Platform", "type": "string", "jsonPath": ".spec.platform"},
            {"name": "Listings", "type": "integer", "jsonPath": ".status.listings"},
        ],
    ),
    "SyncRule": (
        "syncrules",
        ["sr"],
        [
            {"name": "Listings", "type": "integer", "jsonPath": ".status.summary.listings"},
            {"name": "In-Sync", "type": "integer", "jsonPath": ".status.summary.inSync"},
            {"name": "Drifted", "type": "integer", "jsonPath": ".status.summary.drifted"},
        ],
    ),
}

_DROP = {"title"}


def _structural(node: Any, defs: dict[str, Any]) -> Any:
    """Inline $refs and turn pydantic's JSON Schema idioms into structural OpenAPI v3."""
    if isinstance(node, list):
        return [_structural(n, defs) for n in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    if "$ref" in node:
        target = defs[node.pop("$ref").rsplit("/", 1)[-1]]
        node = {**target, **node}
    if "anyOf" in node:  # Optional[X] -> X, nullable
        options = [o for o in node.pop("anyOf") if o.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"cannot express union {options} structurally")
        node = {**_structural(options[0], defs), **node, "nullable": True}
        if node.get("default", ...) is None:
            del node["default"]
    if "const" in node:
        node["enum"] = [node.pop("const")]
    for bound, limit in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(node.get(bound), int | float) and not isinstance(node[bound], bool):
            node[limit] = node.pop(bound)  # JSON Schema's number form -> OpenAPI v3.0's boolean form
            node[bound] = True
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP or key == "$defs":
            continue
        if key == "properties":
            out[key] = {k: _structural(v, defs) for k, v in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = _structural(value, defs)
        elif key == "default" and isinstance(value, dict | list) and not value:
            continue  # empty defaults add noise to every object
        else:
            out[key] = value
    if "properties" in out:
        out.setdefault("type", "object")
    if isinstance(out.get("additionalProperties"), bool):
        del out["additionalProperties"]  # structural schemas prune unknown fields instead
    return out


def _fill_object_defaults(schema: dict[str, Any]) -> None:
    """Give optional object fields an explicit `{}` default, so the API server applies the nested
    defaults exactly as pydantic's default factories do."""
    required = set(schema.get("required", []))
    for name, prop in schema.get("properties", {}).items():
        if (
            prop.get("type") == "object"
            and "properties" in prop
            and "default" not in prop
            and name not in required
            and not prop.get("nullable")
        ):
            prop["default"] = {}
        _fill_object_defaults(prop)
        if isinstance(prop.get("items"), dict):
            _fill_object_defaults(prop["items"])


class _NoAliasDumper(yaml.SafeDumper):
    """Repeated sub-schemas are written out in full: kubectl and humans read CRDs without anchors."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def kind_schema(kind: str) -> dict[str, Any]:
    model = KINDS[kind]
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.get("$defs", {})
    spec = _structural(raw["properties"]["spec"], defs)
    status = _structural(raw["properties"]["status"], defs)
    status.pop("nullable", None)
    _fill_object_defaults(spec)
    return {
        "type": "object",
        "description": " ".join((model.__doc__ or kind).split()),
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
    }


def crd(kind: str) -> dict[str, Any]:
    plural, short, columns = _NAMES[kind]
    printer = [
        *columns,
        {"name": "Ready", "type": "string", "jsonPath": f"{READY}.status"},
        {"name": "Reason", "type": "string", "jsonPath": f"{READY}.reason"},
        {"name": "Message", "type": "string", "jsonPath": f"{READY}.message", "priority": 1},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": short,
                "categories": ["invsync"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": printer,
                    "schema": {"openAPIV3Schema": kind_schema(kind)},
                }
            ],
        },
    }


def render() -> dict[str, str]:
    """File name -> YAML text for every CRD."""
    header = "# Generated by `make crds` from controller/invsync/api; do not edit.\n"
    return {
        f"{GROUP}_{_NAMES[k][0]}.yaml": header
        + yaml.dump(crd(k), Dumper=_NoAliasDumper, sort_keys=False, width=120)
        for k in KINDS
    }


def main(argv: list[str] | None = None) -> int:
    """Write the CRDs into each directory given (crds/, and manifests/crds/ for the kustomize base and
    charts/invsync/crds/ for the Helm chart, which may not load files from outside their roots)."""
    for directory in argv or sys.argv[1:] or ["crds"]:
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        for name, text in render().items():
            (out / name).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
