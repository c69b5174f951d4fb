"""Snapshot files are read as a stream (issue 17: a million listings must fit): the JSON reader walks
the outer object a piece at a time. Read with pieces of a few characters, every document must give the
rows `json.loads` gives, and every document `json.loads` refuses must be refused, with the line."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from invsync import snapshots
from invsync.engine.records import Listing
from invsync.errors import InputError
from invsync.snapshots import load_listings, write_listings

VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)
SPACE = st.sampled_from(["", " ", "\n", "\t ", "\r\n  "])


def rows_of(text: str, piece: int) -> list[Any]:
    snapshots._PIECE = piece  # restored by the fixture below
    return [value for _, value in snapshots._json_rows("f.json", io.StringIO(text), "rows")]


@pytest.fixture(autouse=True)
def _piece() -> Any:
    saved = snapshots._PIECE
    yield
    snapshots._PIECE = saved


@settings(max_examples=300, deadline=None)
@given(
    rows=st.lists(VALUES, max_size=5),
    others=st.dictionaries(st.text(max_size=4).filter(lambda k: k != "rows"), VALUES, max_size=2),
    space=SPACE,
    piece=st.integers(1, 9),
)
def test_rows_read_in_pieces_are_what_json_loads_reads(
    rows: list[Any], others: dict[str, Any], space: str, piece: int
) -> None:
    doc = {**others, "rows": rows}
    text = json.dumps(doc, indent=2 if space else None).replace("\n", "\n" + space)
    assert rows_of(text, piece) == json.loads(text)["rows"]


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(VALUES, min_size=1, max_size=4), cut=st.integers(0, 400), piece=st.integers(1, 9))
def test_a_document_json_loads_refuses_is_refused(rows: list[Any], cut: int, piece: int) -> None:
    """A truncated or corrupted document fails with one line naming the file, never a partial read
    that looks whole."""
    text = json.dumps({"rows": rows}, indent=1)
    broken = text[: cut % len(text)] + ("}" if cut % 3 == 0 else "")
    try:
        json.loads(broken)
    except json.JSONDecodeError:
        with pytest.raises(InputError, match=r"^f\.json: "):
            rows_of(broken, piece)


def test_the_line_of_an_error_is_counted_across_pieces() -> None:
    text = '{"rows": [\n' + ",\n".join(["1"] * 50) + ",\n  x\n]}"
    with pytest.raises(InputError, match=r"^f\.json: line 52: not valid JSON"):
        rows_of(text, 7)


def test_a_million_listings_gzip_round_trip_reads_back(tmp_path: Path) -> None:
    """write_listings streams, load_listings streams: what is written is what is read, gzip too."""
    listings = [
        Listing("s", f"SKU-{i}", f"P{i // 3}", f"K{i}", "W1", i % 7, "ACTIVATE", i % 5 != 0)
        for i in range(30_000)
    ]
    path = tmp_path / "listings.json.gz"
    with snapshots.writing(path) as out:
        write_listings(out, listings)
    snapshots._PIECE = 4096
    assert load_listings(str(path), {"s"}) == listings


def test_bad_bytes_deep_in_a_gzip_stream_name_the_file(tmp_path: Path) -> None:
    """A stream fails where the bad bytes are, long after the first rows were read: one line, no rows."""
    rows = b",\n".join(
        b'{"store": "s", "sku": "A", "productId": "p", "skuId": "%d", "channelWarehouseId": "w", '
        b'"quantity": 1}' % i
        for i in range(20_000)
    )
    latin = tmp_path / "latin.json.gz"
    latin.write_bytes(gzip.compress(b'{"listings": [' + rows + b',\n{"sku": "caf\xe9"}]}'))
    with pytest.raises(InputError, match=r"latin\.json\.gz: not a text file"):
        load_listings(str(latin))
    whole = gzip.compress(b'{"listings": [' + rows + b"]}")
    cut = tmp_path / "cut.json.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(InputError, match=r"cut\.json\.gz: truncated or corrupt gzip data"):
        load_listings(str(cut))
