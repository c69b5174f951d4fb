"""Properties of the computation over generated worlds (hypothesis)."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import msgspec
from engine_factories import listing, rule, stock, store, warehouse
from hypothesis import given, settings
from hypothesis import strategies as st

from invsync.engine import World, compute_plan

SKUS = ["A", "B", "C", "D"]
WAREHOUSES = ["w0", "w1", "w2"]
STORES = ["s0", "s1", "s2"]


@st.composite
def worlds(
    draw: st.DrawFn, allow_continue: bool = True, allow_fixed: bool = True, round_down: bool = False
) -> World:
    whs = [
        warehouse(
            n,
            type=draw(st.sampled_from(["SelfOwned", "ThirdParty", "Platform"])),
            enabled=draw(st.booleans()),
            labels={"all": "yes"},
        )
        for n in WAREHOUSES
    ]
    stores = [store(n, maxQuantity=draw(st.integers(0, 400))) for n in STORES]
    rules = []
    for i in range(draw(st.integers(1, 2))):
        spec: dict[str, Any] = {
            "executionRatio": draw(st.integers(0, 100)),
            "safetyStock": draw(st.integers(0, 5)),
            "rounding": "Down" if round_down else draw(st.sampled_from(["Down", "Nearest", "Up"])),
            "outOfStockThreshold": draw(st.integers(0, 5)),
            "maxQuantity": draw(st.none() | st.integers(0, 300)),
            "continueSelling": {"honor": draw(st.booleans()), "quantity": draw(st.integers(0, 99999))},
        }
        if draw(st.booleans()):
            spec["lowStock"] = {
                "threshold": draw(st.integers(0, 10)),
                "preferredStore": draw(st.sampled_from(STORES)),
            }
        if allow_fixed and draw(st.booleans()):
            spec["overrides"] = [
                {"skus": [draw(st.sampled_from(SKUS))], "fixedQuantity": draw(st.integers(0, 500))}
            ]
        if draw(st.booleans()):
            entries: list[dict[str, Any]] = [
                {"selector": {"matchLabels": {"all": "yes"}}, "ratio": draw(st.integers(0, 100))}
            ]
        else:
            names = draw(st.lists(st.sampled_from(WAREHOUSES), min_size=1, max_size=3, unique=True))
            entries = [{"name": n, "ratio": draw(st.integers(0, 100))} for n in names]
        chosen = draw(st.lists(st.sampled_from(STORES), min_size=1, max_size=3, unique=True))
        rules.append(rule(f"r{i}", chosen, entries, created=f"2026-01-0{i + 1}T00:00:00Z", **spec))
    records = [
        stock(
            w,
            k,
            draw(st.integers(-5, 200)),
            continue_selling=allow_continue and draw(st.booleans()),
            enabled=draw(st.booleans()),
        )
        for w in WAREHOUSES
        for k in SKUS
        if draw(st.booleans())
    ]
    listings = [
        listing(s, k, quantity=draw(st.integers(0, 50))) for s in STORES for k in SKUS if draw(st.booleans())
    ]
    return World(rules, stores, whs, records, listings)


def _rows(w: World) -> set[tuple[str, str, str, str, int, str]]:
    return {
        (r.rule, r.store, r.channel_warehouse_id, r.sku, r.desired, r.reason)
        for rp in compute_plan(w).rules.values()
        for r in rp.rows
    }


@settings(max_examples=150, deadline=None)
@given(worlds())
def test_never_negative_never_above_the_caps(w: World) -> None:
    store_max = {s.name: s.spec.max_quantity for s in w.stores}
    rule_max = {r.name: r.spec.max_quantity for r in w.rules}
    for rule_name, _store, _cw, _sku, value, reason in _rows(w):
        store_cap = store_max[_store]
        assert 0 <= value <= store_cap
        cap = rule_max[rule_name]
        if reason != "continueSelling" and cap is not None:
            assert value <= cap


@settings(max_examples=150, deadline=None)
@given(worlds(), st.data())
def test_monotone_in_available_stock(w: World, data: st.DataObject) -> None:
    if not w.stock:
        return
    k = data.draw(st.integers(0, len(w.stock) - 1))
    more = list(w.stock)
    more[k] = msgspec.structs.replace(more[k], available=more[k].available + data.draw(st.integers(1, 100)))
    before = {(r[0], r[1], r[2], r[3]): r[4] for r in _rows(w)}
    after = {(r[0], r[1], r[2], r[3]): r[4] for r in _rows(replace(w, stock=more))}
    assert before.keys() == after.keys()
    assert all(after[key] >= before[key] for key in before)


@settings(max_examples=150, deadline=None)
@given(worlds(), st.data())
def test_disabled_or_platform_warehouse_never_contributes(w: World, data: st.DataObject) -> None:
    inert = {x.name for x in w.warehouses if not x.spec.enabled or x.spec.type == "Platform"}
    changed = [
        msgspec.structs.replace(
            r, available=data.draw(st.integers(-5, 500)), continue_selling=data.draw(st.booleans())
        )
        if r.location in inert
        else r
        for r in w.stock
    ]
    assert _rows(w) == _rows(replace(w, stock=changed))


@settings(max_examples=150, deadline=None)
@given(worlds(allow_continue=False, allow_fixed=False, round_down=True))
def test_a_pool_allocated_at_most_once_is_never_oversold(w: World) -> None:
    """(Rounding Up or Nearest may add up to one unit per store: a choice the rule makes knowingly.)"""
    plan = compute_plan(w)
    pool: dict[str, int] = {}
    for r in w.stock:
        if r.enabled and r.location in plan.allocation:
            pool[r.sku] = pool.get(r.sku, 0) + max(r.available, 0)
    if any(ratio > 1 for ratio in plan.allocation.values()):
        return
    total: dict[str, int] = {}
    for rp in plan.rules.values():
        for r in rp.rows:
            total[r.sku] = total.get(r.sku, 0) + r.desired
    for sku, units in total.items():
        assert units <= pool.get(sku, 0)


@settings(max_examples=100, deadline=None)
@given(worlds(), st.randoms(use_true_random=False))
def test_result_never_depends_on_input_order(w: World, rnd: random.Random) -> None:
    def shuffled(items: Any) -> list[Any]:
        out = list(items)
        rnd.shuffle(out)
        return out

    other = World(
        shuffled(w.rules), shuffled(w.stores), shuffled(w.warehouses), shuffled(w.stock), shuffled(w.listings)
    )
    assert _rows(w) == _rows(other)
    assert compute_plan(w).allocation == compute_plan(other).allocation


@settings(max_examples=100, deadline=None)
@given(worlds(), st.sets(st.sampled_from(SKUS)))
def test_replanning_some_skus_gives_the_full_plans_rows_for_them(w: World, skus: set[str]) -> None:
    partial = {
        (r.rule, r.store, r.channel_warehouse_id, r.sku, r.desired, r.reason)
        for rp in compute_plan(w, skus=skus).rules.values()
        for r in rp.rows
    }
    assert partial == {row for row in _rows(w) if row[3] in skus}
