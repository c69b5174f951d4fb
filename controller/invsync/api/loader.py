"""Load invsync manifests from files, directories and stdin, and check them as the cluster would.

Every error is one line: ``FILE: Kind/name: field.path: what is wrong``. Documents of other API
groups (Secrets, ConfigMaps...) are skipped silently, as `kubectl apply -f DIR` mixes them in; one of
our kinds under a misspelt group is an error, and so is a key repeated in one mapping.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ..errors import InputError
from .common import GROUP, VERSION, LabelSelector, Resource
from .kinds import KINDS, TIKTOK_HOST, InventorySource, Store, SyncRule, Warehouse

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass
class Manifests:
    """The invsync resources found, in file order, with the file each came from."""

    sources: list[InventorySource] = field(default_factory=list)
    warehouses: list[Warehouse] = field(default_factory=list)
    stores: list[Store] = field(default_factory=list)
    rules: list[SyncRule] = field(default_factory=list)
    origin: dict[tuple[str, str, str], str] = field(default_factory=dict)  # (kind, ns, name) -> file

    def where(self, r: Resource) -> str:
        """The ``FILE: Kind/name`` prefix of an error about `r`."""
        return f"{self.origin[(r.kind, r.namespace, r.name)]}: {r.kind}/{r.name}"


def _loc(parts: Sequence[int | str]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(document)"


def _files(path: str) -> Iterator[tuple[str, str, bool]]:
    """(display name, text, named explicitly) of each manifest file under `path` ('-' reads stdin);
    directories are not searched recursively, as with `kubectl apply -f`."""
    if path == "-":
        yield "<stdin>", sys.stdin.read(), True
        return
    p = Path(path)
    try:
        if p.is_dir():
            for child in sorted(p.iterdir()):
                if child.is_file() and child.suffix in MANIFEST_SUFFIXES:
                    yield str(child), child.read_text(), False
        else:
            yield path, p.read_text(), True
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text file") from None


def _duplicate_key(node: yaml.Node | None, path: tuple[int | str, ...] = ()) -> tuple[str, int, int] | None:
    """(field path, first line, second line) of the first key repeated in one mapping: YAML and JSON
    keep the last value, so a second `spec:` would silently replace the first."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value != "<<":
                line = key.start_mark.line + 1
                if key.value in seen:
                    return _loc([*path, key.value]), seen[key.value], line
                seen[key.value] = line
            found = _duplicate_key(value, (*path, key.value if isinstance(key, yaml.ScalarNode) else "?"))
            if found is not None:
                return found
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            found = _duplicate_key(item, (*path, i))
            if found is not None:
                return found
    return None


def _resource(doc: Any) -> str:
    """``Kind/name`` of a document, for errors found before it is parsed."""
    meta = doc.get("metadata") if isinstance(doc, dict) else None
    name = meta.get("name") if isinstance(meta, dict) else None
    kind = doc.get("kind") if isinstance(doc, dict) else None
    return f"{kind}/{name or '(unnamed)'}"


def _documents(name: str, text: str) -> Iterator[tuple[int, Any]]:
    loader = yaml.SafeLoader(text)
    try:
        index = 0
        while loader.check_node():
            node = loader.get_node()
            doc = loader.construct_document(node)
            duplicate = _duplicate_key(node)
            if duplicate is not None:
                field_path, first, second = duplicate
                raise InputError(
                    f"{name}: {_resource(doc)}: {field_path}: duplicate key (lines {first} and {second})"
                )
            if isinstance(doc, dict) and doc.get("kind") == "List" and isinstance(doc.get("items"), list):
                for item in doc["items"]:
                    yield index, item
            elif doc is not None:
                yield index, doc
            index += 1
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "malformed"
        raise InputError(f"{name}:{at}: not valid YAML: {problem}") from None
    finally:
        loader.dispose()


def _mistyped_group(group: str) -> bool:
    """A group that is ours misspelt (invsync.io, invsnyc.dev): its document would be skipped, and
    `plan`/`diff` would then compute from a world without it. Other groups may own these kind names."""
    return "invsync" in group or difflib.SequenceMatcher(None, group, GROUP).ratio() >= 0.75


def parse(doc: Any, where: str, index: int, explicit: bool = True) -> Resource | None:
    """One document as its typed model; None for documents of other API groups, and for files in a
    directory that hold no Kubernetes object at all (e.g. the sandbox config next to the manifests)."""
    is_object = isinstance(doc, dict) and ("apiVersion" in doc or "kind" in doc)
    if not is_object and not explicit:
        return None
    if not isinstance(doc, dict):
        raise InputError(f"{where}: document {index + 1}: expected a Kubernetes object (a mapping)")
    api_version = doc.get("apiVersion")
    kind = doc.get("kind")
    meta = doc.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    resource = f"{kind}/{name or '(unnamed)'}"
    if not is_object:
        raise InputError(f"{where}: document {index + 1}: apiVersion and kind are not set")
    if api_version is None:  # kubectl refuses it too; never skip a SyncRule silently for it
        raise InputError(
            f"{where}: {resource}: apiVersion: required (invsync.dev/v1alpha1 for invsync kinds)"
        )
    if not isinstance(api_version, str) or not api_version.startswith(f"{GROUP}/"):
        group = api_version.split("/")[0] if isinstance(api_version, str) and "/" in api_version else ""
        if isinstance(kind, str) and kind in KINDS and group and _mistyped_group(group):
            raise InputError(
                f"{where}: {resource}: apiVersion: unknown group {group!r} "
                f"(invsync kinds are {GROUP}/{VERSION})"
            )
        return None
    model = KINDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise InputError(
            f"{where}: {resource}: kind: unknown kind {kind!r}, expected one of {', '.join(KINDS)}"
        )
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        value = first.get("input")
        shown = ""
        if not isinstance(value, dict | list) and first["type"] != "missing":
            text = repr(value)
            shown = f" (got {text if len(text) <= 60 else text[:57] + '...'})"
        raise InputError(f"{where}: {resource}: {_loc(first['loc'])}: {first['msg']}{shown}") from None


def load(paths: Sequence[str]) -> Manifests:
    """Every invsync resource under `paths`, schema-checked; duplicates are errors."""
    found = Manifests()
    for path in paths:
        for name, text, explicit in _files(path):
            for index, doc in _documents(name, text):
                r = parse(doc, name, index, explicit)
                if r is None:
                    continue
                key = (r.kind, r.namespace, r.name)
                if key in found.origin:
                    raise InputError(
                        f"{name}: {r.kind}/{r.name}: metadata.name: duplicate, "
                        f"also defined in {found.origin[key]}"
                    )
                found.origin[key] = name
                if isinstance(r, InventorySource):
                    found.sources.append(r)
                elif isinstance(r, Warehouse):
                    found.warehouses.append(r)
                elif isinstance(r, Store):
                    found.stores.append(r)
                elif isinstance(r, SyncRule):
                    found.rules.append(r)
    return found


# --------------------------------------------------------------------------- the CRDs' CEL rules


def _cel(m: Manifests) -> None:
    """The cross-field rules the CRDs enforce with CEL at admission, checked offline."""
    for s in m.sources:
        if s.spec.provider == "shopify" and s.spec.credentials_secret_ref is None:
            raise InputError(f"{m.where(s)}: spec.credentialsSecretRef: required for provider shopify")
    for st in m.stores:
        seen: set[str] = set()
        for i, cw in enumerate(st.spec.warehouses):
            _unique(m, st, f"spec.warehouses[{i}].warehouseRefs", cw.warehouse_refs)
            if cw.channel_warehouse_id in seen:
                raise InputError(
                    f"{m.where(st)}: spec.warehouses[{i}].channelWarehouseId: "
                    f"duplicate {cw.channel_warehouse_id!r}"
                )
            seen.add(cw.channel_warehouse_id)
        ids = {"tiktok": ("shopCipher", st.spec.shop_cipher), "shopee": ("shopId", st.spec.shop_id)}
        field, value = ids.get(st.spec.platform, ("", ""))
        if value is None:
            raise InputError(f"{m.where(st)}: spec.{field}: required for platform {st.spec.platform}")
        if st.spec.platform == "shopee" and TIKTOK_HOST in st.spec.endpoint:
            raise InputError(
                f"{m.where(st)}: spec.endpoint: a shopee store names its Shopee API host, "
                "e.g. https://partner.shopeemobile.com"
            )
        if st.spec.platform == "lazada" and not st.spec.endpoint.endswith("/rest"):
            raise InputError(
                f"{m.where(st)}: spec.endpoint: a lazada Store names its venture's API base, "
                "e.g. https://api.lazada.sg/rest"
            )
        if not st.spec.multi_warehouse and len(st.spec.warehouses) > 1:
            raise InputError(
                f"{m.where(st)}: spec.warehouses: a store with multiWarehouse false "
                "has at most one channel warehouse"
            )
    for r in m.rules:
        spec = r.spec
        if not spec.stores.names and spec.stores.selector is None:
            raise InputError(f"{m.where(r)}: spec.stores: name at least one store or give a selector")
        _unique(m, r, "spec.stores.names", spec.stores.names)
        _selector(m, r, "spec.stores.selector", spec.stores.selector)
        for i, w in enumerate(spec.warehouses):
            _selector(m, r, f"spec.warehouses[{i}].selector", w.selector)
        for i, o in enumerate(spec.overrides):
            if o.exclude and o.fixed_quantity is not None:
                raise InputError(
                    f"{m.where(r)}: spec.overrides[{i}].fixedQuantity: "
                    "an override that excludes its SKUs publishes no quantity"
                )
        low = spec.low_stock
        if low is not None and spec.stores.selector is None and low.preferred_store not in spec.stores.names:
            raise InputError(
                f"{m.where(r)}: spec.lowStock.preferredStore: must be one of stores.names: "
                "the store that keeps the last units gets its stock from this rule"
            )
        names: set[str] = set()
        for i, w in enumerate(spec.warehouses):
            if (w.name is None) == (w.selector is None):
                raise InputError(f"{m.where(r)}: spec.warehouses[{i}]: needs exactly one of name or selector")
            if w.name is not None:
                if w.name in names:
                    raise InputError(
                        f"{m.where(r)}: spec.warehouses[{i}].name: duplicate warehouse {w.name!r}"
                    )
                names.add(w.name)


def _unique(m: Manifests, owner: Resource, where: str, names: Sequence[str]) -> None:
    """A list the CRD declares a set: the API server refuses a repeated value."""
    for j, name in enumerate(names):
        if name in names[:j]:
            raise InputError(f"{m.where(owner)}: {where}[{j}]: duplicate {name!r}")


def _selector(m: Manifests, owner: Resource, where: str, selector: LabelSelector | None) -> None:
    for j, req in enumerate(selector.match_expressions if selector is not None else ()):
        if (req.operator in ("In", "NotIn")) != bool(req.values):
            raise InputError(
                f"{m.where(owner)}: {where}.matchExpressions[{j}].values: "
                "required for operator In and NotIn, empty for Exists and DoesNotExist"
            )


# --------------------------------------------------------------------------- references


def _refs(m: Manifests) -> None:
    """Every reference names a resource of the same namespace (cross-namespace references are refused)."""
    known: dict[str, dict[str, set[str]]] = {"InventorySource": {}, "Warehouse": {}, "Store": {}}
    for r in [*m.sources, *m.warehouses, *m.stores]:
        known[r.kind].setdefault(r.name, set()).add(r.namespace)

    def check(owner: Resource, where: str, kind: str, name: str) -> None:
        namespaces = known[kind].get(name, set())
        if owner.namespace in namespaces:
            return
        message = f"{m.where(owner)}: {where}: {kind} {name!r} not found in namespace {owner.namespace!r}"
        if namespaces:
            message += f" (one exists in namespace {min(namespaces)!r}: references stay in their namespace)"
        raise InputError(message)

    for w in m.warehouses:
        check(w, "spec.sourceRef.name", "InventorySource", w.spec.source_ref.name)
    for st in m.stores:
        for i, cw in enumerate(st.spec.warehouses):
            for j, ref in enumerate(cw.warehouse_refs):
                check(st, f"spec.warehouses[{i}].warehouseRefs[{j}]", "Warehouse", ref)
    for r in m.rules:
        for i, name in enumerate(r.spec.stores.names):
            check(r, f"spec.stores.names[{i}]", "Store", name)
        for i, entry in enumerate(r.spec.warehouses):
            if entry.name is not None:
                check(r, f"spec.warehouses[{i}].name", "Warehouse", entry.name)
        if r.spec.low_stock is not None:
            check(r, "spec.lowStock.preferredStore", "Store", r.spec.low_stock.preferred_store)


def validate(m: Manifests) -> None:
    """The CRD rules and the cross-resource checks; raises InputError on the first problem."""
    _cel(m)
    _refs(m)


def load_and_validate(paths: Sequence[str]) -> Manifests:
    """`load` then `validate`: what `invsync validate` and `invsync plan` run first."""
    found = load(paths)
    validate(found)
    return found
