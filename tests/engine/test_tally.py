"""RuleTally: a webhook sync's incremental counts (take out the re-planned SKUs' old plan, add their new
one) equal the counts of a full plan, after many random changes (docs/status.md, docs/rules.md)."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import msgspec
import pytest
from engine_factories import listing, rule, stock, store, warehouse

from invsync.api.kinds import SafetyPolicy
from invsync.engine import Listing, RulePlan, StockRecord, World, compute_plan, safety_hold
from invsync.engine.tally import RuleTally

SKUS = [f"K{i}" for i in range(12)]
CWS = ["cw1", "cw2"]


def _world(rnd: random.Random) -> World:
    """Two rules sharing stores and pools, multi-warehouse stores, an unready and a missing Warehouse,
    products not writable, a seller SKU on two products: every kind of count a tally keeps."""
    whs = [warehouse(n, labels={"all": "yes"}) for n in ("w0", "w1", "w2")]
    whs.append(warehouse("dup", location="w0"))  # the same location as w0: held when both feed a slot
    stores = [
        store("s0", {"cw1": ["w0", "w1"], "cw2": ["w2"]}, maxQuantity=rnd.choice([50, 400])),
        store("s1", {"cw1": ["w1", "gone"], "cw2": ["w0", "dup"]}),  # gone: no such Warehouse
        store("s2"),
    ]
    spec: dict[str, Any] = {
        "outOfStockThreshold": rnd.randint(0, 3),
        "lowStock": {"threshold": 8, "preferredStore": "s0"},
        "overrides": [{"skus": ["K1"], "fixedQuantity": 7}, {"skus": ["K2"], "exclude": True}],
    }
    rules = [
        rule("old", ["s0", "s1"], [{"name": "w0"}, {"name": "w1", "ratio": 60}], "2026-01-01T00:00:00Z"),
        rule(
            "young",
            ["s0", "s1", "s2"],
            [{"selector": {"matchLabels": {"all": "yes"}}, "ratio": rnd.randint(10, 100)}],
            "2026-01-02T00:00:00Z",
            skus={"include": ["K*"], "exclude": ["K3"]},
            **spec,
        ),
    ]
    records = [
        stock(w, k, rnd.randint(-2, 30), enabled=rnd.random() > 0.1, continue_selling=rnd.random() < 0.05)
        for w in ("w0", "w1", "w2")
        for k in SKUS
        if rnd.random() < 0.7
    ]
    listings = [
        _listing(rnd, s, k, cw) for s in ("s0", "s1") for k in SKUS for cw in CWS if rnd.random() < 0.8
    ]
    listings += [_listing(rnd, "s2", k, "cw") for k in SKUS if rnd.random() < 0.8]
    listings.append(listing("s0", "K4", "cw1", 3, product="p-other"))  # K4 on a second product of s0
    return World(rules, stores, whs, records, listings, unready_warehouses=frozenset({"w2"}))


def _listing(rnd: random.Random, s: str, k: str, cw: str) -> Listing:
    x = listing(s, k, cw, quantity=rnd.choice([0, 0, rnd.randint(1, 40)]))
    return msgspec.structs.replace(x, status="DRAFT", writable=False) if rnd.random() < 0.05 else x


def _of(w: World, skus: set[str]) -> World:
    return replace(
        w,
        stock=[r for r in w.stock if r.sku in skus],
        listings=[x for x in w.listings if x.sku in skus],
    )


def _change(rnd: random.Random, w: World) -> tuple[World, set[str]]:
    """One random change to one or a few SKUs: stock, a live quantity, a slot appearing or going."""
    skus = set(rnd.sample(SKUS, rnd.choice([1, 1, 2, 3])))
    stock_ = list(w.stock)
    listings = list(w.listings)
    for sku in skus:
        what = rnd.random()
        if what < 0.4:
            where = rnd.choice(["w0", "w1", "w2"])
            stock_ = [r for r in stock_ if (r.location, r.sku) != (where, sku)]
            if rnd.random() < 0.9:
                stock_.append(StockRecord("src", where, sku, rnd.randint(-2, 30), enabled=rnd.random() > 0.1))
        elif what < 0.8:
            mine = [i for i, x in enumerate(listings) if x.sku == sku]
            if mine:
                i = rnd.choice(mine)
                listings[i] = msgspec.structs.replace(
                    listings[i], quantity=rnd.choice([0, rnd.randint(1, 40)])
                )
        elif what < 0.9:
            listings = [x for x in listings if not (x.sku == sku and x.store == "s1")]
        else:
            listings.append(listing("s1", sku, rnd.choice(CWS), rnd.randint(0, 9), product=f"p-new-{sku}"))
    return replace(w, stock=stock_, listings=listings), skus


def _assert_as_full(tally: RuleTally, full: RulePlan) -> None:
    assert tally.counts(()) == full.counts()
    assert tally.held_slots() == list(full.holds)
    assert tally.conflict_list() == list(full.conflicts)
    assert tally.not_writable_list() == list(full.not_writable)
    assert tally.duplicate_skus() == full.duplicate_skus
    drift: dict[str, int] = {}
    for row in full.rows:
        if row.live != row.desired:
            drift[row.store] = drift.get(row.store, 0) + abs(row.desired - row.live)
    assert dict(tally.drift_units) == drift
    for policy in (SafetyPolicy(), SafetyPolicy(maxZeroFraction=0.05, minListings=1)):
        assert tally.safety_hold(policy) == safety_hold(full.rows, policy)


@pytest.mark.parametrize("seed", range(20))
def test_incremental_tally_equals_the_full_plans_after_random_changes(seed: int) -> None:
    rnd = random.Random(seed)
    w = _world(rnd)
    plan = compute_plan(w)
    tallies = {name: RuleTally.of(rp, plan.rules) for name, rp in plan.rules.items()}
    assert any(t.held_slots() for t in tallies.values()) and tallies["young"].conflict_list()
    for _ in range(60):
        changed, skus = _change(rnd, w)
        before, after = compute_plan(_of(w, skus)), compute_plan(_of(changed, skus))
        for name, tally in tallies.items():
            tally.add(before.rules[name], -1)
            tally.add(after.rules[name])
        w = changed
        full = compute_plan(w)
        for name, tally in tallies.items():
            assert tally == RuleTally.of(full.rules[name], full.rules)
            _assert_as_full(tally, full.rules[name])


def test_an_acknowledged_push_counts_the_slot_at_its_new_value() -> None:
    rnd = random.Random(7)
    w = _world(rnd)
    plan = compute_plan(w)
    tally = RuleTally.of(plan.rules["young"], plan.rules)
    acked = {}
    for row in plan.rules["young"].rows:
        if row.live != row.desired and rnd.random() < 0.5:
            tally.relive(row, row.desired)
            acked[(row.store, row.product_id, row.sku_id, row.channel_warehouse_id)] = row.desired
    assert acked
    pushed = replace(
        w,
        listings=[
            msgspec.structs.replace(
                x, quantity=acked.get((x.store, x.product_id, x.sku_id, x.channel_warehouse_id), x.quantity)
            )
            for x in w.listings
        ],
    )
    full = compute_plan(pushed)
    assert tally == RuleTally.of(full.rules["young"], full.rules)
