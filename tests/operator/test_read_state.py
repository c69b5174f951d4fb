"""ReadState.of keeps what a full read found by seller SKU: every slot once, the later read of a slot
or of a (source, location) winning (operator/state.py)."""

from __future__ import annotations

from invsync.engine.records import Listing, StockRecord
from invsync.operator.state import ReadState


def _state(stock: list[StockRecord], listings: list[Listing]) -> ReadState:
    return ReadState.of(stock, listings, read_stores=frozenset({"shop", "other"}))


def test_a_slot_read_twice_keeps_its_later_read_once() -> None:
    first = Listing("shop", "A", "p1", "s1", "w1", 3)
    again = Listing("shop", "A", "p1", "s1", "w1", 5)
    second_warehouse = Listing("shop", "A", "p1", "s1", "w2", 4)
    state = _state([], [first, second_warehouse, again])
    assert state.slots_of(["A"]) == [again, second_warehouse]
    assert len(state.all_slots()) == 2


def test_a_product_read_again_under_a_renamed_seller_sku_is_only_the_new_skus() -> None:
    """The catalogue changed while the read paged: the product came back on a later page with its
    seller SKU renamed. Its slot is the new SKU's alone; keeping it under both would push it twice."""
    old = Listing("shop", "OLD", "p1", "s1", "w1", 3)
    between = Listing("shop", "B", "p2", "s2", "w1", 1)
    renamed = Listing("shop", "NEW", "p1", "s1", "w1", 3)
    state = _state([], [old, between, renamed])
    assert state.slots_of(["OLD"]) == []
    assert state.slots_of(["NEW"]) == [renamed]
    assert sorted(x.sku for x in state.all_slots()) == ["B", "NEW"]


def test_one_seller_sku_in_two_stores_and_on_two_products_keeps_every_slot() -> None:
    slots = [
        Listing("shop", "A", "p1", "s1", "w1", 1),
        Listing("shop", "A", "p2", "s2", "w1", 2),
        Listing("other", "A", "p1", "s1", "w1", 3),
    ]
    assert _state([], slots).slots_of(["A"]) == slots


def test_stock_keeps_each_location_once_the_later_read_winning() -> None:
    l1 = StockRecord("wms", "L1", "A", 5)
    l2 = StockRecord("wms", "L2", "A", 7)
    l1_again = StockRecord("wms", "L1", "A", 9)
    other_source = StockRecord("erp", "L1", "A", 2)
    state = _state([l1, l2, l1_again, other_source], [])
    assert state.all_stock() == [l1_again, l2, other_source]
