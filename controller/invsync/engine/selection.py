"""Which Stores and Warehouses a SyncRule selects, with their ratios, and what it names that is missing
(docs/rules.md, "Selection"). The planner and the operator both read a rule's selection from here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..api.kinds import Store, SyncRule, Warehouse


@dataclass(frozen=True, slots=True)
class Selection:
    """What one rule selects in its namespace."""

    stores: tuple[str, ...]  # existing Stores: names first (as written), then selector matches by name
    ratios: dict[
        str, int
    ]  # existing Warehouse -> ratio; a name entry wins over selectors, first selector wins
    missing_stores: tuple[str, ...]  # Stores the rule names that do not exist
    # Warehouses the rule names, or a selected Store maps, that do not exist: the slots they would feed
    # are held (nothing is known about their stock, so no quantity can be trusted).
    missing_warehouses: tuple[str, ...]
    empty_selectors: tuple[str, ...]  # "stores.selector matches no Store", "warehouses[1].selector ..."
    # ("source/location", the selected Warehouses reading it) where two or more read one location: a
    # location counts at most once per rule, so every slot they feed is held (docs/rules.md).
    duplicate_locations: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def warehouses(self) -> tuple[str, ...]:
        return tuple(self.ratios)


def selection(rule: SyncRule, stores: Sequence[Store], warehouses: Sequence[Warehouse]) -> Selection:
    """The Stores and Warehouses of `rule`'s namespace it selects, and what it refers to that is missing."""
    spec = rule.spec
    ns = rule.namespace
    own_stores = {s.name: s for s in stores if s.namespace == ns}
    own_whs = [w for w in warehouses if w.namespace == ns]
    wh_names = {w.name for w in own_whs}
    names = list(dict.fromkeys(spec.stores.names))
    empty: list[str] = []
    selector = spec.stores.selector
    if selector is not None:
        matched = [n for n, s in sorted(own_stores.items()) if selector.matches(s.metadata.labels)]
        if not matched:
            empty.append("stores.selector matches no Store")
        names = list(dict.fromkeys([*names, *matched]))
    chosen = tuple(n for n in names if n in own_stores)
    ratios: dict[str, int] = {}
    by_name = {e.name: e.ratio for e in spec.warehouses if e.name is not None}
    matched_by: set[int] = set()
    for w in sorted(own_whs, key=lambda w: w.name):
        if w.name in by_name:
            ratios[w.name] = by_name[w.name]
            continue
        for i, entry in enumerate(spec.warehouses):
            if entry.selector is not None and entry.selector.matches(w.metadata.labels):
                ratios[w.name] = entry.ratio
                matched_by.add(i)
                break
    for i, entry in enumerate(spec.warehouses):
        selector_matches = entry.selector is not None and (
            i in matched_by or any(entry.selector.matches(w.metadata.labels) for w in own_whs)
        )
        if entry.selector is not None and not selector_matches:
            empty.append(f"warehouses[{i}].selector matches no Warehouse")
    missing = [n for n in by_name if n not in wh_names]
    for name in chosen:
        missing += [
            r for m in own_stores[name].spec.warehouses for r in m.warehouse_refs if r not in wh_names
        ]
    readers: dict[str, list[str]] = {}
    for w in own_whs:
        if w.name in ratios:
            readers.setdefault(f"{w.spec.source_ref.name}/{w.spec.location_id}", []).append(w.name)
    return Selection(
        duplicate_locations=tuple(
            (where, tuple(sorted(names))) for where, names in sorted(readers.items()) if len(names) > 1
        ),
        stores=chosen,
        ratios=ratios,
        missing_stores=tuple(n for n in names if n not in own_stores),
        missing_warehouses=tuple(dict.fromkeys(missing)),
        empty_selectors=tuple(empty),
    )
