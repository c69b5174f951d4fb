"""What the engine alone decides about a slot besides its quantity: selected or not, held and why,
not writable, and seller SKUs on more than one product (docs/rules.md, "Selection" and "Held slots")."""

from __future__ import annotations

from dataclasses import replace

from engine_factories import listing, rule, stock, store, warehouse, world

from invsync.engine import HeldSlots, Listing, NotWritable, compute_plan, explain, selection


def test_a_single_mapping_naming_a_missing_warehouse_holds_its_slot_whatever_the_channel_id() -> None:
    # multiWarehouse false, one mapping: the listing's one slot is fed by it whatever id the platform
    # reports. Without Warehouse gone, 10 would be pushed from wa alone; the slot is held instead.
    shop = store(
        "tt",
        multiWarehouse=False,
        warehouses=[{"channelWarehouseId": "CW1", "warehouseRefs": ["wa", "gone"]}],
    )
    r = rule("r", ["tt"], [{"selector": {"matchLabels": {"team": "x"}}}])
    wa = warehouse("wa", labels={"team": "x"})
    w = world([r], [shop], [wa], [stock("wa", "SKU", 10)], [listing("tt", "SKU", "OTHER-ID", 50)])
    plan = compute_plan(w).rules["r"]
    assert list(plan.rows) == []
    assert plan.holds == [HeldSlots("tt", "missingWarehouse", ("gone",), 1)]
    assert "Warehouse gone does not exist" in plan.holds[0].message
    assert selection(r, [shop], [wa]).missing_warehouses == ("gone",)
    [why] = explain(w, "r", "SKU")
    assert why.desired is None and why.reason == "held"
    # Once gone exists (and the rule selects it), the slot converges on both warehouses' stock.
    gone = warehouse("gone", labels={"team": "x"})
    fixed = replace(w, warehouses=[wa, gone], stock=[stock("wa", "SKU", 10), stock("gone", "SKU", 5)])
    [row] = compute_plan(fixed).rules["r"].rows
    assert (row.desired, row.reason) == (15, "ratio")


def test_two_warehouses_on_one_location_hold_every_slot_either_feeds_and_name_both() -> None:
    """A location counts at most once per rule (docs/rules.md, "Held slots"): c1 would read it twice,
    and c2 (fed by a alone) would show it again next to b's copy elsewhere, so both are held."""
    shop = store("mw", {"c1": ["a", "b"], "c2": ["a"], "c3": ["c"]})
    r = rule("r", ["mw"], [{"name": "a"}, {"name": "b"}, {"name": "c"}])
    # a copy-paste: b is the same (source, location) as a
    w = world(
        [r], [shop], [warehouse("a", "L1"), warehouse("b", "L1"), warehouse("c", "L2")],
        [stock("L1", "X", 100), stock("L2", "X", 8)],
        [listing("mw", "X", "c1", 7), listing("mw", "X", "c2", 7), listing("mw", "X", "c3", 7)],
    )  # fmt: skip
    plan = compute_plan(w).rules["r"]
    assert [(row.channel_warehouse_id, row.desired) for row in plan.rows] == [("c3", 8)]
    assert plan.holds == [HeldSlots("mw", "duplicateLocation", ("a", "b"), 2, "src/L1")]
    assert "Warehouses a, b are the same location src/L1" in plan.holds[0].message
    assert plan.counts()["mw"].held == 2 and plan.counts()["mw"].listings == 3
    assert selection(r, [shop], w.warehouses).duplicate_locations == (("src/L1", ("a", "b")),)


def test_every_listing_of_a_seller_sku_on_two_products_gets_its_quantity_and_the_sku_is_named() -> None:
    r = rule("r", ["tt"], [{"name": "w"}])
    twice = [listing("tt", "DUP", quantity=1, product="p1"), listing("tt", "DUP", quantity=2, product="p2")]
    w = world([r], [store("tt")], [warehouse("w")], [stock("w", "DUP", 30), stock("w", "ONE", 4)],
              [*twice, listing("tt", "ONE")])  # fmt: skip
    plan = compute_plan(w).rules["r"]
    assert [(row.product_id, row.sku, row.desired) for row in plan.rows] == [
        ("p1", "DUP", 30),
        ("p2", "DUP", 30),
        ("p-ONE", "ONE", 4),
    ]
    assert plan.duplicate_skus == {"tt": ("DUP",)}
    assert plan.counts()["tt"].listings == 3


def test_a_listing_the_platform_takes_no_update_for_is_not_managed_and_says_its_status() -> None:
    r = rule("r", ["tt"], [{"name": "w"}])
    draft = Listing("tt", "D", "p-D", "s-D", "cw", 3, status="DRAFT", writable=False)
    w = world([r], [store("tt")], [warehouse("w")], [stock("w", "D", 9), stock("w", "A", 9)],
              [draft, listing("tt", "A")])  # fmt: skip
    plan = compute_plan(w).rules["r"]
    assert [row.sku for row in plan.rows] == ["A"]
    assert plan.not_writable == [NotWritable("tt", "tiktok", "DRAFT", 1)]
    assert plan.not_writable[0].reason == "product status DRAFT: TikTok updates only ACTIVATE products"
    assert plan.counts()["tt"].not_writable == 1 and plan.counts()["tt"].listings == 1
    [why] = explain(w, "r", "D")
    assert why.desired is None and "product status DRAFT" in why.steps[-2]


def test_a_selector_matching_nothing_is_named() -> None:
    r = rule("r", [], [{"selector": {"matchLabels": {"team": "typo"}}}], store_labels={"tier": "typo"})
    sel = selection(r, [store("tt", labels={"tier": "gold"})], [warehouse("w", labels={"team": "x"})])
    assert sel.stores == () and sel.warehouses == ()
    assert sel.empty_selectors == (
        "stores.selector matches no Store",
        "warehouses[0].selector matches no Warehouse",
    )
