"""The worked examples and each step of docs/rules.md, directly on the engine."""

from __future__ import annotations

from fractions import Fraction

import pytest
from engine_factories import desired, listing, rule, stock, store, warehouse, world

from invsync.engine import compute_plan, explain


def test_easyboss_seed_45_in_warehouse_1_slot_only() -> None:
    whs = [warehouse("wh-1"), warehouse("wh-2"), warehouse("wh-3")]
    shop = store("mw", {"c1": ["wh-1"], "c2": ["wh-2"], "c3": ["wh-3"]})
    r = rule("eb", ["mw"], [{"name": n, "ratio": 50} for n in ("wh-1", "wh-2", "wh-3")], executionRatio=90)
    records = [
        stock("wh-1", "A", 100),
        stock("wh-2", "A", 100, enabled=False),
        stock("wh-3", "A", 100, enabled=False),
    ]
    w = world([r], [shop], whs, records, [listing("mw", "A", c, 7) for c in ("c1", "c2", "c3")])
    assert desired(w, "eb") == {
        ("mw", "c1", "A"): (45, "ratio"),
        ("mw", "c2", "A"): (0, "noSource"),
        ("mw", "c3", "A"): (0, "noSource"),
    }


@pytest.mark.parametrize(
    ("available", "threshold", "expected"),
    [(100, 0, (90, "ratio")), (5, 5, (0, "threshold")), (6, 5, (5, "ratio")), (0, 0, (0, "threshold"))],
)
def test_aftership_percentage_and_threshold(
    available: int, threshold: int, expected: tuple[int, str]
) -> None:
    r = rule("as", ["id"], [{"name": "jkt", "ratio": 90}], outOfStockThreshold=threshold)
    w = world([r], [store("id")], [warehouse("jkt")], [stock("jkt", "A", available)], [listing("id", "A")])
    assert desired(w, "as")[("id", "cw", "A")] == expected


def test_aftership_continue_selling_beats_threshold_capped_by_store() -> None:
    r = rule("as", ["id", "small"], [{"name": "jkt", "ratio": 90}], outOfStockThreshold=5)
    records = [stock("jkt", "A", 0, continue_selling=True)]
    w = world(
        [r],
        [store("id"), store("small", maxQuantity=500)],
        [warehouse("jkt")],
        records,
        [listing("id", "A"), listing("small", "A")],
    )
    assert desired(w, "as") == {
        ("id", "cw", "A"): (99999, "continueSelling"),
        ("small", "cw", "A"): (500, "continueSelling"),
    }


def test_continue_selling_not_honored_falls_back_to_stock() -> None:
    r = rule("as", ["id"], [{"name": "jkt"}], continueSelling={"honor": False})
    w = world(
        [r],
        [store("id")],
        [warehouse("jkt")],
        [stock("jkt", "A", 3, continue_selling=True)],
        [listing("id", "A")],
    )
    assert desired(w, "as")[("id", "cw", "A")] == (3, "ratio")


def test_one_continue_selling_warehouse_is_enough() -> None:
    r = rule("as", ["id"], [{"name": "a"}, {"name": "b"}])
    records = [stock("a", "X", 4), stock("b", "X", 0, continue_selling=True)]
    w = world([r], [store("id")], [warehouse("a"), warehouse("b")], records, [listing("id", "X")])
    assert desired(w, "as")[("id", "cw", "X")] == (99999, "continueSelling")


def test_two_stores_at_60_on_one_warehouse_oversell_risk_1_2() -> None:
    rules = [
        rule("r1", ["s1"], [{"name": "wh", "ratio": 60}]),
        rule("r2", ["s2"], [{"name": "wh", "ratio": 60}]),
    ]
    w = world(
        rules,
        [store("s1"), store("s2")],
        [warehouse("wh")],
        [stock("wh", "A", 10)],
        [listing("s1", "A"), listing("s2", "A")],
    )
    plan = compute_plan(w)
    assert plan.allocation == {"wh": Fraction(6, 5)}
    assert plan.rules["r1"].oversell_risk == {"wh": Fraction(6, 5)}
    assert plan.rules["r2"].oversell_risk == {"wh": Fraction(6, 5)}
    assert [r.desired for r in plan.rules["r1"].rows] == [6]  # a warning only: the rule still plans


def test_rules_sharing_a_store_own_disjoint_skus_so_no_oversell_risk() -> None:
    rules = [
        rule("a", ["s"], [{"name": "wh", "ratio": 90}], skus={"include": ["A-*"]}),
        rule("b", ["s"], [{"name": "wh", "ratio": 90}], skus={"include": ["B-*"]}),
    ]
    plan = compute_plan(world(rules, [store("s")], [warehouse("wh")], [], []))
    assert plan.allocation == {"wh": Fraction(9, 10)}
    assert not plan.rules["a"].oversell_risk


@pytest.mark.parametrize(
    ("rounding", "available", "expected"),
    [("Down", 7, 3), ("Nearest", 7, 4), ("Up", 7, 4), ("Down", 5, 2), ("Nearest", 5, 3), ("Up", 6, 3)],
)
def test_rounding_is_exact(rounding: str, available: int, expected: int) -> None:
    # ratio 50 x execution 100: 7 -> 3.5, 5 -> 2.5, 6 -> 3.0 exactly (no binary float anywhere)
    r = rule("r", ["s"], [{"name": "wh", "ratio": 50}], rounding=rounding)
    w = world([r], [store("s")], [warehouse("wh")], [stock("wh", "A", available)], [listing("s", "A")])
    assert desired(w, "r")[("s", "cw", "A")] == (expected, "ratio")


def test_percentages_that_floats_get_wrong() -> None:
    # 0.29 * 100 == 28.999999999999996 in binary floats; 29% of 100 is 29.
    r = rule("r", ["s"], [{"name": "wh", "ratio": 29}])
    w = world([r], [store("s")], [warehouse("wh")], [stock("wh", "A", 100)], [listing("s", "A")])
    assert desired(w, "r")[("s", "cw", "A")] == (29, "ratio")


def test_safety_stock_clamp_and_caps() -> None:
    r = rule("r", ["s", "capped"], [{"name": "wh"}], safetyStock=3, maxQuantity=50)
    records = [stock("wh", "LOW", 2), stock("wh", "MID", 40), stock("wh", "HIGH", 1000)]
    listings = [listing(s, k) for s in ("s", "capped") for k in ("LOW", "MID", "HIGH")]
    w = world([r], [store("s"), store("capped", maxQuantity=20)], [warehouse("wh")], records, listings)
    assert desired(w, "r") == {
        ("s", "cw", "LOW"): (0, "clamp"),
        ("s", "cw", "MID"): (37, "ratio"),
        ("s", "cw", "HIGH"): (50, "clamp"),
        ("capped", "cw", "LOW"): (0, "clamp"),
        ("capped", "cw", "MID"): (20, "clamp"),
        ("capped", "cw", "HIGH"): (20, "clamp"),
    }


def test_negative_available_counts_as_zero() -> None:
    r = rule("r", ["s"], [{"name": "a"}, {"name": "b"}])
    records = [stock("a", "X", -10), stock("b", "X", 4)]
    w = world([r], [store("s")], [warehouse("a"), warehouse("b")], records, [listing("s", "X")])
    assert desired(w, "r")[("s", "cw", "X")] == (4, "ratio")


def test_overrides_first_match_wins_and_replace_fields() -> None:
    r = rule(
        "r",
        ["s"],
        [{"name": "wh", "ratio": 100}],
        executionRatio=80,
        overrides=[
            {"skus": ["GIFT-*"], "exclude": True},
            {"skus": ["HERO-1"], "fixedQuantity": 20},
            {"skus": ["SLOW-*", "HERO-*"], "executionRatio": 50, "safetyStock": 2},
            {"skus": ["SLOW-1"], "fixedQuantity": 1},  # shadowed by the previous override
        ],
    )
    skus = ["GIFT-1", "HERO-1", "HERO-2", "SLOW-1", "PLAIN"]
    w = world(
        [r],
        [store("s")],
        [warehouse("wh")],
        [stock("wh", k, 10) for k in skus],
        [listing("s", k) for k in skus],
    )
    assert desired(w, "r") == {
        ("s", "cw", "HERO-1"): (20, "fixed"),
        ("s", "cw", "HERO-2"): (3, "ratio"),
        ("s", "cw", "SLOW-1"): (3, "ratio"),
        ("s", "cw", "PLAIN"): (8, "ratio"),
    }


def test_fixed_quantity_is_clamped_by_store_max() -> None:
    r = rule("r", ["s"], [{"name": "wh"}], overrides=[{"skus": ["*"], "fixedQuantity": 500}])
    w = world([r], [store("s", maxQuantity=100)], [warehouse("wh")], [], [listing("s", "A")])
    assert desired(w, "r")[("s", "cw", "A")] == (100, "clamp")


def test_low_stock_keeps_the_last_units_on_the_preferred_store() -> None:
    r = rule("r", ["a", "b"], [{"name": "wh"}], lowStock={"threshold": 3, "preferredStore": "a"})
    records = [stock("wh", "FEW", 3), stock("wh", "MANY", 4)]
    listings = [listing(s, k) for s in ("a", "b") for k in ("FEW", "MANY")]
    w = world([r], [store("a"), store("b")], [warehouse("wh")], records, listings)
    assert desired(w, "r") == {
        ("a", "cw", "FEW"): (3, "ratio"),
        ("b", "cw", "FEW"): (0, "lowStock"),
        ("a", "cw", "MANY"): (4, "ratio"),
        ("b", "cw", "MANY"): (4, "ratio"),
    }


def test_sku_filter_include_exclude() -> None:
    r = rule("r", ["s"], [{"name": "wh"}], skus={"include": ["A-*", "B-1"], "exclude": ["A-9*"]})
    skus = ["A-1", "A-90", "B-1", "B-2"]
    w = world(
        [r],
        [store("s")],
        [warehouse("wh")],
        [stock("wh", k, 1) for k in skus],
        [listing("s", k) for k in skus],
    )
    assert set(desired(w, "r")) == {("s", "cw", "A-1"), ("s", "cw", "B-1")}


def test_disabled_and_platform_warehouses_never_contribute() -> None:
    whs = [warehouse("own"), warehouse("off", enabled=False), warehouse("fbt", type="Platform")]
    r = rule("r", ["s"], [{"selector": {}, "ratio": 100}])
    records = [stock("own", "A", 5), stock("off", "A", 100), stock("fbt", "A", 1000)]
    w = world([r], [store("s")], whs, records, [listing("s", "A")])
    assert desired(w, "r")[("s", "cw", "A")] == (5, "ratio")
    assert compute_plan(w).allocation == {"own": Fraction(1)}


def test_selector_all_locations_vs_specific_location() -> None:
    whs = [warehouse("jkt", labels={"source": "shop"}), warehouse("sby", labels={"source": "shop"})]
    all_locations = rule("all", ["s1"], [{"selector": {"matchLabels": {"source": "shop"}}, "ratio": 90}])
    specific = rule("one", ["s2"], [{"name": "jkt", "ratio": 90}])
    records = [stock("jkt", "A", 60), stock("sby", "A", 40)]
    w = world(
        [all_locations, specific],
        [store("s1"), store("s2")],
        whs,
        records,
        [listing("s1", "A"), listing("s2", "A")],
    )
    assert desired(w, "all")[("s1", "cw", "A")] == (90, "ratio")
    assert desired(w, "one")[("s2", "cw", "A")] == (54, "ratio")


def test_a_name_entry_wins_over_a_selector() -> None:
    whs = [warehouse("jkt", labels={"source": "shop"})]
    r = rule(
        "r",
        ["s"],
        [{"selector": {"matchLabels": {"source": "shop"}}, "ratio": 90}, {"name": "jkt", "ratio": 50}],
    )
    w = world([r], [store("s")], whs, [stock("jkt", "A", 100)], [listing("s", "A")])
    assert desired(w, "r")[("s", "cw", "A")] == (50, "ratio")


def test_unmatched_skus_are_left_alone_and_counted() -> None:
    r = rule("r", ["s"], [{"name": "wh"}])
    w = world(
        [r],
        [store("s")],
        [warehouse("wh")],
        [stock("wh", "A", 1)],
        [listing("s", "A"), listing("s", "GHOST", quantity=9)],
    )
    plan = compute_plan(w).rules["r"]
    assert [(row.sku, row.desired) for row in plan.rows] == [("A", 1)]
    assert plan.unmatched == {"s": 1}


def test_an_unready_warehouse_contributes_nothing_and_what_only_it_could_feed_is_held() -> None:
    shop = store("mw", {"c1": ["a"], "c2": ["b"], "c3": ["a", "b"]})
    r = rule("r", ["mw"], [{"name": "a"}, {"name": "b"}])
    records = [stock("a", "X", 10), stock("b", "X", 50), stock("b", "ONLY-B", 50)]
    listings = [listing("mw", k, c, 4) for k in ("X", "ONLY-B") for c in ("c1", "c2", "c3")]
    w = world(
        [r], [shop], [warehouse("a"), warehouse("b")], records, listings, unready_warehouses=frozenset({"b"})
    )
    plan = compute_plan(w).rules["r"]
    # c1: a alone. c3: a counts, b (an inactive location, say) does not. c2 and ONLY-B: only b could
    # feed them, so they are held rather than zeroed from missing data.
    assert [(row.channel_warehouse_id, row.sku, row.desired, row.reason) for row in plan.rows] == [
        ("c1", "X", 10, "ratio"),
        ("c3", "X", 10, "ratio"),
        ("c1", "ONLY-B", 0, "noSource"),
    ]
    assert plan.held == {"mw": 3}
    [held] = [e for e in explain(w, "r", "ONLY-B") if e.channel_warehouse_id == "c3"]
    assert held.desired is None and held.reason == "held"


def test_channel_warehouses_not_managed() -> None:
    shop = store(
        "mw",
        None,
        multiWarehouse=True,
        warehouses=[
            {"channelWarehouseId": "on", "warehouseRefs": ["wh"]},
            {"channelWarehouseId": "off", "warehouseRefs": ["wh"], "enabled": False},
            {"channelWarehouseId": "restricted", "warehouseRefs": ["wh"]},
        ],
    )
    r = rule("r", ["mw"], [{"name": "wh"}])
    listings = [listing("mw", "A", c, 1) for c in ("on", "off", "restricted", "unmapped")]
    w = world(
        [r],
        [shop],
        [warehouse("wh")],
        [stock("wh", "A", 8)],
        listings,
        channel_warehouse_status={("mw", "restricted"): "RESTRICTED"},
    )
    assert desired(w, "r") == {("mw", "on", "A"): (8, "ratio")}


def test_single_warehouse_store_without_mapping_is_fed_by_every_selected_warehouse() -> None:
    r = rule("r", ["s"], [{"name": "a"}, {"name": "b", "ratio": 50}])
    records = [stock("a", "X", 10), stock("b", "X", 10)]
    w = world([r], [store("s")], [warehouse("a"), warehouse("b")], records, [listing("s", "X", "any-id")])
    assert desired(w, "r")[("s", "any-id", "X")] == (15, "ratio")


def test_ownership_oldest_rule_wins_younger_reports_conflict() -> None:
    old = rule("zz-old", ["s"], [{"name": "wh", "ratio": 10}], created="2026-01-01T00:00:00Z")
    young = rule("aa-young", ["s"], [{"name": "wh", "ratio": 90}], created="2026-02-01T00:00:00Z")
    w = world(
        [young, old],
        [store("s")],
        [warehouse("wh")],
        [stock("wh", "A", 100)],
        [listing("s", "A"), listing("s", "A", "cw2")],
    )
    plan = compute_plan(w)
    assert [row.desired for row in plan.rules["zz-old"].rows] == [10, 10]
    assert list(plan.rules["aa-young"].rows) == []
    assert [(c.store, c.owner, c.count) for c in plan.rules["aa-young"].conflicts] == [("s", "zz-old", 2)]
    assert not plan.rules["zz-old"].conflicts


def test_ownership_ties_break_by_name_and_exclusion_frees_the_sku() -> None:
    a = rule("a", ["s"], [{"name": "wh", "ratio": 10}], overrides=[{"skus": ["FREE"], "exclude": True}])
    b = rule("b", ["s"], [{"name": "wh", "ratio": 90}])
    w = world(
        [b, a],
        [store("s")],
        [warehouse("wh")],
        [stock("wh", k, 100) for k in ("A", "FREE")],
        [listing("s", "A"), listing("s", "FREE")],
    )
    assert desired(w, "a") == {("s", "cw", "A"): (10, "ratio")}
    assert desired(w, "b") == {("s", "cw", "FREE"): (90, "ratio")}


def test_webhook_path_replans_only_the_named_skus() -> None:
    r = rule("r", ["s"], [{"name": "wh"}])
    w = world(
        [r],
        [store("s")],
        [warehouse("wh")],
        [stock("wh", k, 5) for k in "ABC"],
        [listing("s", k) for k in "ABC"],
    )
    assert [row.sku for row in compute_plan(w, skus={"B"}).rules["r"].rows] == ["B"]


def test_rows_keep_listing_identity_and_counts() -> None:
    r = rule("r", ["s"], [{"name": "wh"}])
    w = world(
        [r],
        [store("s")],
        [warehouse("wh")],
        [stock("wh", "A", 5), stock("wh", "B", 2)],
        [listing("s", "A", quantity=5, product="p1"), listing("s", "B", quantity=9, product="p1")],
    )
    plan = compute_plan(w).rules["r"]
    row = plan.rows[1]
    assert (row.rule, row.product_id, row.sku_id, row.live, row.desired) == ("r", "p1", "s-B-cw", 9, 2)
    assert plan.rows[-1] == row and list(plan.rows[0:1]) == [plan.rows[0]]
    counts = plan.counts()["s"]
    assert (counts.listings, counts.in_sync, counts.drifted) == (2, 1, 1)


def test_a_rule_selecting_nothing_that_feeds_a_slot_leaves_it_alone() -> None:
    # A selector typo must not zero a whole store; a disabled feeding Warehouse does show 0.
    typo = rule("typo", ["s"], [{"selector": {"matchLabels": {"source": "shopfy"}}}])
    off = rule("off", ["t"], [{"name": "wh-off"}])
    whs = [warehouse("wh", labels={"source": "shopify"}), warehouse("wh-off", enabled=False)]
    w = world(
        [typo, off],
        [store("s"), store("t")],
        whs,
        [stock("wh", "A", 5), stock("wh-off", "A", 5)],
        [listing("s", "A", quantity=3), listing("t", "A", quantity=3)],
    )
    assert desired(w, "typo") == {}
    assert desired(w, "off") == {("t", "cw", "A"): (0, "noSource")}
    [why] = explain(w, "typo", "A")
    assert why.reason == "notManaged" and "selects no Warehouse" in why.steps[0]


def test_store_selection_is_the_union_of_names_and_selector_within_the_namespace() -> None:
    stores = [
        store("named"),
        store("labelled", labels={"region": "id"}),
        store("other", labels={"region": "my"}),
        store("far", labels={"region": "id"}, namespace="elsewhere"),
    ]
    r = rule("r", ["named"], [{"name": "wh"}], store_labels={"region": "id"})
    listings = [listing(s.name, "A") for s in stores]
    w = world([r], stores, [warehouse("wh")], [stock("wh", "A", 2)], listings)
    assert {key[0] for key in desired(w, "r")} == {"named", "labelled"}
