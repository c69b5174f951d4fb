"""Explanations, the safety hold, push batches and plan diffs."""

from __future__ import annotations

from dataclasses import replace

import msgspec
import pytest
from engine_factories import listing, rule, stock, store, warehouse, world

from invsync.api.kinds import SafetyPolicy
from invsync.engine import (
    Listing,
    PlanRow,
    World,
    compute_plan,
    diff_plans,
    explain,
    push_batches,
    safety_hold,
)


def test_explain_walks_every_step_with_the_numbers() -> None:
    shop = store("mw", {"c1": ["wh-1"], "c2": ["wh-2"]})
    r = rule("eb", ["mw"], [{"name": "wh-1", "ratio": 50}, {"name": "wh-2", "ratio": 50}], executionRatio=90)
    w = world(
        [r],
        [shop],
        [warehouse("wh-1"), warehouse("wh-2")],
        [stock("wh-1", "A", 100), stock("wh-2", "A", 30, enabled=False)],
        [listing("mw", "A", "c1", 10), listing("mw", "A", "c2", 10)],
    )
    first, second = explain(w, "eb", "A")
    assert (first.channel_warehouse_id, first.desired, first.reason) == ("c1", 45, "ratio")
    text = "\n".join(first.steps)
    for expected in (
        "fed by: wh-1",
        "wh-1 contributes: available 100, ratio 50%",
        "pool = 100",
        "raw = (100 x 50% = 50) x 90% - safetyStock 0 = 45",
        "rounding Down: 45",
        "clamp to [0, 99999]: 45",
        "9. lowStock: not configured",
        "=> 45 (ratio); live 10",
    ):
        assert expected in text
    assert (second.desired, second.reason) == (0, "noSource")
    assert any("disabled there" in s for s in second.steps)


def test_explain_says_why_a_slot_is_left_alone() -> None:
    old = rule("old", ["s"], [{"name": "wh"}], created="2026-01-01T00:00:00Z")
    young = rule("young", ["s"], [{"name": "wh"}], created="2026-03-01T00:00:00Z", skus={"include": ["A"]})
    w = world([old, young], [store("s")], [warehouse("wh")], [], [listing("s", "A"), listing("s", "B")])
    [conflict] = explain(w, "young", "A")
    assert conflict.desired is None and conflict.reason == "conflict" and "old" in conflict.steps[0]
    [excluded] = explain(w, "young", "B")
    assert excluded.reason == "notManaged" and "skus.include" in excluded.steps[0]
    [unmatched] = explain(w, "old", "A")
    assert unmatched.reason == "unmatched" and unmatched.desired is None
    with pytest.raises(KeyError):
        explain(w, "nope", "A")


def _row(sku: str, live: int, desired: int, product: str = "p", cw: str = "c") -> PlanRow:
    return PlanRow("r", "s", cw, sku, product, f"id-{sku}-{cw}", live, desired, "ratio")


def test_safety_hold_triggers_above_the_fraction_and_has_a_stable_id() -> None:
    policy = SafetyPolicy(max_zero_fraction=0.5, min_listings=4)
    rows = [_row(f"K{i}", 5, 0 if i < 3 else 5) for i in range(5)]  # 3 of 5 showing stock zeroed
    hold = safety_hold(rows, policy)
    assert hold is not None and (hold.zeroing, hold.of) == (3, 5)
    assert safety_hold(list(reversed(rows)), policy) == hold  # same set, same id
    other = safety_hold([*rows[:4], _row("K4", 5, 0)], policy)
    assert other is not None and other.id != hold.id
    assert safety_hold(rows[1:], policy) is None  # 2 of 4 is not more than half
    assert safety_hold(rows[:3], policy) is None  # below minListings
    assert safety_hold([_row("Z", 0, 0)] * 10, policy) is None  # nothing showing stock


def test_push_batches_group_per_product_skip_in_sync_and_put_decreases_first() -> None:
    rows = [
        _row("UP-1", 1, 5, "p-up"),
        _row("SAME", 3, 3, "p-same"),
        _row("DOWN-1", 9, 4, "p-down"),
        _row("MIX-1", 1, 2, "p-mix", "c1"),
        _row("MIX-1", 5, 0, "p-mix", "c2"),
    ]
    batches = push_batches(rows, "DecreasesFirst", listings=())
    assert [(b.product_id, b.priority) for b in batches] == [("p-mix", 0), ("p-down", 1), ("p-up", 2)]
    mix = batches[0]
    assert [(u.channel_warehouse_id, u.quantity, u.sku) for u in mix.updates] == [
        ("c1", 2, "MIX-1"),
        ("c2", 0, "MIX-1"),
    ]
    as_listed = push_batches(rows, "AsListed", listings=())
    assert [b.product_id for b in as_listed] == ["p-up", "p-down", "p-mix"]


def _diff_world(ratio: int, quantities: dict[str, int]) -> World:
    r = rule("r", ["a", "b"], [{"name": "wh", "ratio": ratio}])
    return world(
        [r],
        [store("a"), store("b")],
        [warehouse("wh")],
        [stock("wh", k, 10) for k in quantities],
        [listing(s, k, quantity=q) for s in ("a", "b") for k, q in quantities.items()],
    )


def test_diff_rows_and_per_store_summary() -> None:
    base = _diff_world(100, {"A": 10, "B": 10})
    head = replace(base, rules=[rule("r", ["a"], [{"name": "wh", "ratio": 50}])])
    diff = diff_plans(compute_plan(base), compute_plan(head))
    assert [(r.store, r.sku, r.before, r.after, r.delta) for r in diff.rows] == [
        ("a", "A", 10, 5, -5),
        ("a", "B", 10, 5, -5),
    ]  # store b leaves the rule: left as it is, no change
    assert diff.changed and diff.stores["a"].down == 2 and diff.stores["a"].units_moved == 10
    assert not diff_plans(compute_plan(base), compute_plan(base)).changed


def test_diff_counts_zeroes_and_matches_by_key_across_snapshots() -> None:
    base = _diff_world(100, {"A": 0, "B": 0})
    head_rule = rule(
        "r", ["a", "b"], [{"name": "wh", "ratio": 100}], overrides=[{"skus": ["A"], "fixedQuantity": 0}]
    )
    same = replace(base, rules=[head_rule])
    copied = replace(same, listings=list(reversed([msgspec.structs.replace(s) for s in base.listings])))
    positional = diff_plans(compute_plan(base), compute_plan(same))
    keyed = diff_plans(compute_plan(base), compute_plan(copied))
    assert sorted(positional.rows, key=str) == sorted(keyed.rows, key=str)
    assert positional.stores == keyed.stores
    assert (positional.stores["a"].down, positional.stores["a"].to_zero, positional.stores["a"].up) == (
        1,
        1,
        0,
    )


def test_a_changed_sku_carries_its_other_warehouses_at_their_live_values() -> None:
    """TikTok update-inventory: every warehouse assigned to the SKU in each update (docs/platforms.md)."""
    rows = [PlanRow("r", "s", "c1", "MW-1", "p", "sku-1", 4, 9, "ratio")]
    listings = [
        Listing("s", "MW-1", "p", "sku-1", "c1", 4),
        Listing("s", "MW-1", "p", "sku-1", "c2", 7),  # not managed by the rule: its live value goes along
        Listing("s", "OTHER", "p", "sku-2", "c1", 3),  # another SKU of the product: unchanged, not sent
        Listing("t", "MW-1", "p", "sku-1", "c3", 1),  # another store
    ]
    (batch,) = push_batches(rows, "DecreasesFirst", listings=listings)
    assert [(u.channel_warehouse_id, u.quantity, u.carried) for u in batch.updates] == [
        ("c1", 9, False),
        ("c2", 7, True),
    ]
