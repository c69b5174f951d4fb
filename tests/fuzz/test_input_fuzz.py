"""Hostile files for the offline tools (issue 9): snapshot parsers, the manifest loader and `invsync
plan` get mutated copies of the examples and random bytes. Each either works or fails with one
line naming the file (InputError; the CLI exits 2): never a traceback, never a hang."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from invsync.api.loader import load_and_validate
from invsync.cli import main
from invsync.errors import InputError
from invsync.snapshots import load_inventory, load_listings
from invsync.testing.cluster import REPO_ROOT

EXAMPLES = REPO_ROOT / "examples"
SNAPSHOTS = EXAMPLES / "snapshots"
MANIFESTS = [d for f in sorted(EXAMPLES.glob("[0-9]*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d]
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def mutate(data: st.DataObject, doc: Any) -> Any:
    """`doc` with one node, at a path hypothesis draws, replaced by random JSON or removed."""
    doc = copy.deepcopy(doc)
    parent: Any = None
    key: Any = None
    node = doc
    while isinstance(node, dict | list) and node and data.draw(st.booleans()):
        key = data.draw(st.sampled_from(list(node) if isinstance(node, dict) else list(range(len(node)))))
        parent, node = node, node[key]
    if parent is None:
        return data.draw(JSON)
    if data.draw(st.booleans()):
        del parent[key]
    else:
        parent[key] = data.draw(JSON)
    return doc


def one_line_naming(error: InputError, path: Path) -> None:
    text = str(error)
    assert "\n" not in text and text.startswith(str(path)), text


@contextlib.contextmanager
def bugs_raise() -> Iterator[None]:
    """The CLI turns an unexpected exception into one line too; here it must surface as the bug it is."""
    os.environ["INVSYNC_DEBUG"] = "1"
    try:
        yield
    finally:
        del os.environ["INVSYNC_DEBUG"]


SNAPSHOT_DOCS = {
    "inventory": json.loads((SNAPSHOTS / "inventory.json").read_text()),
    "listings": json.loads((SNAPSHOTS / "listings.json").read_text()),
}
LOADERS = {"inventory": load_inventory, "listings": load_listings}


@FUZZ
@given(kind=st.sampled_from(["inventory", "listings"]), data=st.data())
def test_mutated_json_snapshots_load_or_fail_in_one_line(
    workdir: Path, kind: str, data: st.DataObject
) -> None:
    path = workdir / f"{kind}.json"
    path.write_text(json.dumps(mutate(data, SNAPSHOT_DOCS[kind])))
    try:
        rows = LOADERS[kind](str(path))
    except InputError as error:
        one_line_naming(error, path)
    else:
        assert isinstance(rows, list)


CSV_CELL = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\r\x00"), max_size=10)


@FUZZ
@given(
    kind=st.sampled_from(["inventory", "listings"]),
    keep_header=st.booleans(),
    rows=st.lists(st.lists(CSV_CELL, max_size=8), max_size=6),
    junk=st.binary(max_size=40),
)
def test_hostile_csv_and_bytes_load_or_fail_in_one_line(
    workdir: Path, kind: str, keep_header: bool, rows: list[list[str]], junk: bytes
) -> None:
    header = (SNAPSHOTS / f"{kind}.csv").read_text().splitlines()[0]
    path = workdir / f"{kind}.csv"
    body = "\n".join(",".join(json.dumps(c) if "," in c or '"' in c else c for c in r) for r in rows)
    path.write_bytes(((header + "\n") if keep_header else "").encode() + body.encode() + junk)
    try:
        LOADERS[kind](str(path))
    except InputError as error:
        one_line_naming(error, path)


@FUZZ
@given(data=st.data())
def test_mutated_manifests_load_or_fail_in_one_line(workdir: Path, data: st.DataObject) -> None:
    docs = list(MANIFESTS)
    i = data.draw(st.integers(0, len(docs) - 1))
    docs[i] = mutate(data, docs[i])
    path = workdir / "manifests.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    try:
        load_and_validate([str(path)])
    except InputError as error:
        one_line_naming(error, path)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), target=st.sampled_from(["manifests", "inventory", "listings"]))
def test_invsync_plan_on_hostile_input_exits_0_or_2_with_one_line(
    workdir: Path, data: st.DataObject, target: str
) -> None:
    files = {
        "manifests": workdir / "plan-manifests.yaml",
        "inventory": workdir / "plan-inventory.json",
        "listings": workdir / "plan-listings.json",
    }
    docs = list(MANIFESTS)
    inventory, listings = SNAPSHOT_DOCS["inventory"], SNAPSHOT_DOCS["listings"]
    if target == "manifests":
        i = data.draw(st.integers(0, len(docs) - 1))
        docs[i] = mutate(data, docs[i])
    elif target == "inventory":
        inventory = mutate(data, inventory)
    else:
        listings = mutate(data, listings)
    files["manifests"].write_text(yaml.safe_dump_all(docs))
    files["inventory"].write_text(json.dumps(inventory))
    files["listings"].write_text(json.dumps(listings))
    out, err = io.StringIO(), io.StringIO()
    argv = ["plan", "-f", str(files["manifests"]), "--inventory", str(files["inventory"]),
            "--listings", str(files["listings"]), "-o", "json"]  # fmt: skip
    with bugs_raise(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    assert code in (0, 2)
    if code == 2:
        lines = err.getvalue().splitlines()
        assert len(lines) == 1 and lines[0].startswith("invsync: error: "), err.getvalue()
    else:
        assert json.loads(out.getvalue())["rows"] is not None


DURATION_TEXT = st.one_of(
    st.text(max_size=40),
    st.from_regex(r"\A([0-9]{1,30}(\.[0-9]{1,12})?(ms|s|m|h)){1,6}\Z"),
    st.integers(0, 10**400).map(lambda n: f"{n}h"),
)


@settings(max_examples=400, deadline=None)
@given(text=DURATION_TEXT)
def test_parse_duration_refuses_with_a_value_error_naming_the_value_or_stays_within_30_days(
    text: str,
) -> None:
    """`interval: 99999999999999999999h` raised OverflowError and stopped every rule of a namespace."""
    from datetime import timedelta

    from invsync.api import parse_duration

    try:
        value = parse_duration(text)
    except ValueError as exc:
        assert repr(text if len(text) <= 40 else text[:37] + "...") in str(exc)  # names the value
        return
    assert timedelta(0) <= value <= timedelta(days=30)
