"""Inventory and listing snapshot files (docs/interfaces.md), JSON or CSV with the same column names,
optionally gzip-compressed (a ``.gz`` name); read here, and written by `invsync snapshot`.

Errors are one line naming the file, the row and the field. Rows are checked by hand rather than by
pydantic: a snapshot of a large shop holds a million listings. The files are read strictly (a repeated
key or column, a repeated row, a numeral Python alone would read such as ``1_000`` or Arabic-Indic
digits, a name with surrounding spaces or control characters): each would otherwise change a plan
silently (two rows of one SKU at one location were added up).
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import json
import operator
import os
import re
import tempfile
import unicodedata
import zlib
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any, TypeVar, cast

from .engine.records import Listing, StockRecord
from .errors import InputError

T = TypeVar("T")
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no", ""}
_INTEGER = re.compile(r"-?[0-9]+")  # ASCII digits only: int() also reads "1_000" and "٤٥"
_INVISIBLE = {"Cc", "Cf", "Cs", "Zl", "Zp"}  # control, format (zero-width), line and paragraph separators


def _invisible(text: str) -> str | None:
    """The first character of `text` a reader cannot see or that breaks a line, as U+XXXX."""
    if text.isprintable():  # the usual case, at C speed: a snapshot holds millions of names
        return None
    for char in text:
        if unicodedata.category(char) in _INVISIBLE:
            return f"U+{ord(char):04X}"
    return None


class _Keys(dict[str, Any]):
    """A JSON object that held a key twice (json keeps the last value), and which key."""

    duplicate: str = ""


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) == len(pairs):  # the usual case, at C speed: a snapshot holds millions of rows
        return obj
    seen: set[str] = set()
    marked = _Keys(obj)
    marked.duplicate = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
    return marked


class _Row:
    """One snapshot row and where it came from, with typed field access."""

    def __init__(self, where: str, values: Mapping[str, Any], from_csv: bool) -> None:
        self.where = where
        self.values = values
        self.csv = from_csv

    def fail(self, field: str, problem: str) -> InputError:
        return InputError(f"{self.where}: {field}: {problem}")

    def text(self, field: str) -> str:
        value = self.values.get(field)
        if value is None or value == "":
            raise self.fail(field, "required")
        if type(value) is str and value.isprintable() and value[0] != " " != value[-1]:
            return value  # the usual case, checked at C speed (space is the only printable blank)
        return self._checked(field, value)

    def optional_text(self, field: str) -> str:
        value = self.values.get(field)
        return "" if value is None else self._checked(field, value)

    def _checked(self, field: str, value: Any) -> str:
        """A name as the platform and the source hold it: ``" A-1"`` is not ``A-1``, and a newline would
        break every table it is printed in."""
        if not isinstance(value, str):
            raise self.fail(field, f"expected a string, got {value!r}")
        if value != value.strip():
            raise self.fail(field, f"leading or trailing whitespace in {value!r}")
        invisible = _invisible(value)
        if invisible is not None:
            raise self.fail(field, f"control character {invisible} in {value!r}")
        return value

    def ref(self, field: str, kind: str, known: Collection[str] | None) -> str:
        """A name that must be one of the manifests' `kind` resources (None: not checked)."""
        value = self.text(field)
        if known is not None and value not in known:
            raise self.fail(field, f"no {kind} named {value!r} in the manifests")
        return value

    def integer(self, field: str, minimum: int | None = None) -> int:
        value = self.values.get(field)
        if value is None or value == "":
            raise self.fail(field, "required")
        if self.csv and isinstance(value, str):
            if not _INTEGER.fullmatch(value.strip()):
                raise self.fail(field, f"expected an integer (digits 0-9), got {value!r}")
            value = int(value.strip())
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.fail(field, f"expected an integer, got {value!r}")
        if minimum is not None and value < minimum:
            raise self.fail(field, f"must be >= {minimum}, got {value}")
        return value

    def flag(self, field: str, default: bool) -> bool:
        value = self.values.get(field, default)
        if value is None:
            return default
        if self.csv and isinstance(value, str):
            text = value.strip().lower()
            if text in _TRUE or text in _FALSE:
                return text in _TRUE if text else default
        if not isinstance(value, bool):
            raise self.fail(field, f"expected true or false, got {value!r}")
        return value


def is_csv(path: str | Path) -> bool:
    """A snapshot named ``*.csv`` or ``*.csv.gz`` is CSV; any other name is JSON."""
    return str(path).removesuffix(".gz").endswith(".csv")


_SPACE = re.compile(r"[ \t\n\r]*")
_NUMBER_TAIL = re.compile(r"[0-9.eE+\-]*")
_PIECE = 1 << 20  # characters read at a time: a snapshot is read as a stream, never whole


class _JsonStream:
    """The JSON text of a snapshot read a piece at a time, so a million rows never sit in memory as
    text and as parsed objects at once. Only the outer object and its rows array are walked here; every
    value (a row, another top-level field) is parsed by the standard library's decoder."""

    def __init__(self, path: str, text: IO[str]) -> None:
        self.path = path
        self.text = text
        self.buf = ""
        self.pos = 0
        self.line = 1  # the line the buffer starts on
        self.eof = False
        self.decoder = json.JSONDecoder(object_pairs_hook=_object)

    def _more(self) -> bool:
        """Drop what was read and append the next piece (at least as large as what is kept, so a long
        value costs a logarithmic number of retries)."""
        if self.eof:
            return False
        chunk = self.text.read(max(_PIECE, len(self.buf) - self.pos))
        if not chunk:
            self.eof = True
            return False
        self.line += self.buf.count("\n", 0, self.pos)
        self.buf = self.buf[self.pos :] + chunk
        self.pos = 0
        return True

    def peek(self) -> str:
        """The next character that is not white space; "" at the end of the text."""
        while True:
            match = _SPACE.match(self.buf, self.pos)
            self.pos = match.end() if match else self.pos
            if self.pos < len(self.buf) or not self._more():
                return self.buf[self.pos : self.pos + 1]

    def take(self, char: str) -> bool:
        if self.peek() != char:
            return False
        self.pos += 1
        return True

    def value(self) -> Any:
        self.peek()
        while True:
            try:
                value, end = self.decoder.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                if self._more():  # the value may go on in the next piece
                    continue
                raise self.invalid(exc.msg, exc.pos) from None
            if _NUMBER_TAIL.fullmatch(self.buf, end) and self._more():  # a number may go on: "1" ".5"
                continue
            self.pos = end
            return value

    def invalid(self, problem: str, pos: int | None = None) -> InputError:
        at = self.pos if pos is None else pos
        return InputError(
            f"{self.path}: line {self.line + self.buf.count(chr(10), 0, at)}: not valid JSON: {problem}"
        )


def _json_rows(path: str, text: IO[str], key: str) -> Iterator[tuple[int, Any]]:
    """(index, value) of each element of the `key` array of a JSON object, read as a stream; the
    object's other fields are parsed and ignored."""
    stream = _JsonStream(path, text)
    shape = InputError(f'{path}: {key}: expected {{"{key}": [...]}}')
    if not stream.take("{"):
        if stream.peek() in ("[", '"', "t", "f", "n", "-") or stream.peek().isdigit():
            raise shape
        raise stream.invalid("Expecting value")
    seen: set[str] = set()
    found = False
    if not stream.take("}"):
        while True:
            if stream.peek() != '"':
                raise stream.invalid("Expecting property name enclosed in double quotes")
            name = stream.value()
            if name in seen:
                raise InputError(f"{path}: {name}: duplicate key")
            seen.add(name)
            if not stream.take(":"):
                raise stream.invalid("Expecting ':' delimiter")
            if name != key:
                stream.value()
            elif not stream.take("["):
                stream.value()  # a syntax error inside it is reported as such
                raise shape
            else:
                found = True
                index = 0
                if not stream.take("]"):
                    while True:
                        yield index, stream.value()
                        index += 1
                        if stream.take("]"):
                            break
                        if not stream.take(","):
                            raise stream.invalid("Expecting ',' delimiter")
            if stream.take("}"):
                break
            if not stream.take(","):
                raise stream.invalid("Expecting ',' delimiter")
    if stream.peek():
        raise stream.invalid("Extra data")
    if not found:
        raise shape


@contextlib.contextmanager
def _reading(path: str) -> Iterator[IO[str]]:
    """The file as a text stream (gzip-decompressed for a ``.gz`` name); an unreadable file, bad gzip
    data or bytes that are not UTF-8, wherever they occur in the stream, as one line naming the file."""
    try:
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8", newline="") as text:
            yield cast(IO[str], text)
    except OSError as exc:
        if exc.strerror is None:  # gzip's BadGzipFile
            raise InputError(f"{path}: not a gzip file: {exc}") from None
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None
    except (EOFError, zlib.error):
        raise InputError(f"{path}: truncated or corrupt gzip data") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text file") from None


def _rows(path: str, key: str, columns: tuple[str, ...], required: int) -> Iterator[_Row]:
    """Rows of a JSON or CSV snapshot, read as a stream; a CSV file must have the first `required`
    columns."""
    with _reading(path) as text:
        if is_csv(path):
            reader = csv.DictReader(text)
            header = list(reader.fieldnames or [])
            repeated = [c for i, c in enumerate(header) if c in header[:i]]
            if repeated:
                raise InputError(f"{path}: line 1: {repeated[0]}: duplicate column")
            missing = [c for c in columns[:required] if c not in header]
            if missing:
                raise InputError(
                    f"{path}: line 1: {missing[0]}: missing column (expected {', '.join(columns)})"
                )
            for values in reader:
                if None in values:
                    raise InputError(f"{path}: line {reader.line_num}: more values than columns")
                yield _Row(f"{path}: line {reader.line_num}", values, True)
            return
        known = set(columns)
        for i, values in _json_rows(path, text, key):
            if not isinstance(values, dict):
                raise InputError(f"{path}: {key}[{i}]: expected an object")
            if isinstance(values, _Keys):
                raise InputError(f"{path}: {key}[{i}]: {values.duplicate}: duplicate key")
            if not known.issuperset(values):
                raise InputError(f"{path}: {key}[{i}]: {sorted(set(values) - known)[0]}: unknown field")
            yield _Row(f"{path}: {key}[{i}]", values, False)


def _load(
    path: str,
    key: str,
    columns: tuple[str, ...],
    required: int,
    build: Callable[[_Row], T],
    identity: tuple[str, ...],
) -> list[T]:
    """The records of a snapshot; two rows with the same `identity` columns are an error naming both."""
    records: list[T] = []
    first: dict[tuple[Any, ...], str] = {}
    identify = operator.itemgetter(*identity)  # a tuple, at C speed
    for row in _rows(path, key, columns, required):
        records.append(build(row))  # checks every identity column first
        ident = identify(row.values)
        if ident in first:
            shown = ", ".join(f"{c} {v!r}" for c, v in zip(identity, ident, strict=True))
            earlier = first[ident].removeprefix(f"{path}: ")
            raise row.fail(identity[-1], f"duplicate row ({shown}), first at {earlier}")
        first[ident] = row.where
    return records


INVENTORY_COLUMNS = ("source", "location", "sku", "available", "continueSelling", "enabled")
LISTING_COLUMNS = (
    *("store", "sku", "productId", "skuId", "channelWarehouseId", "quantity"),
    *("status", "writable"),
)
_LISTING_REQUIRED = 6  # status and writable are optional


def load_inventory(path: str, sources: Collection[str] | None = None) -> list[StockRecord]:
    """Stock records of an inventory snapshot (available may be negative: sources oversell too).

    `sources`: the InventorySource names a row may name; a typo would silently plan from nothing."""
    return _load(
        path,
        "inventory",
        INVENTORY_COLUMNS,
        4,  # continueSelling and enabled are optional
        lambda r: StockRecord(
            r.ref("source", "InventorySource", sources),
            r.text("location"),
            r.text("sku"),
            r.integer("available"),
            r.flag("continueSelling", False),
            r.flag("enabled", True),
        ),
        ("source", "location", "sku"),
    )


def load_listings(path: str, stores: Collection[str] | None = None) -> list[Listing]:
    """Live channel slots of a listings snapshot; `stores`: the Store names a row may name."""
    return _load(
        path,
        "listings",
        LISTING_COLUMNS,
        _LISTING_REQUIRED,
        lambda r: Listing(
            r.ref("store", "Store", stores),
            r.text("sku"),
            r.text("productId"),
            r.text("skuId"),
            r.text("channelWarehouseId"),
            r.integer("quantity", minimum=0),
            r.optional_text("status"),
            r.flag("writable", True),
        ),
        ("store", "productId", "skuId", "channelWarehouseId"),
    )


# --------------------------------------------------------------------------- writing


@contextlib.contextmanager
def writing(path: Path) -> Iterator[IO[str]]:
    """A text stream to `path`, gzip-compressed for a ``.gz`` name, that appears there only complete:
    it goes to a temporary file beside `path`, renamed when the block ends, removed if it raises."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as raw:
            binary = gzip.GzipFile(fileobj=raw, mode="wb") if path.name.endswith(".gz") else raw
            with io.TextIOWrapper(cast(IO[bytes], binary), encoding="utf-8", newline="") as text:
                yield text
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write(
    out: IO[str], key: str, columns: tuple[str, ...], rows: Iterable[tuple[Any, ...]], csv_: bool
) -> int:
    """Rows written one at a time (a snapshot may hold a million listings); how many."""
    count = 0
    if csv_:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["true" if v is True else "false" if v is False else v for v in row])
            count += 1
        return count
    out.write(f'{{"{key}": [')
    for row in rows:
        out.write(("," if count else "") + "\n" + json.dumps(dict(zip(columns, row, strict=True))))
        count += 1
    out.write("\n]}\n")
    return count


def write_inventory(out: IO[str], records: Iterable[StockRecord], csv_: bool = False) -> int:
    """An inventory snapshot that load_inventory reads back as `records`."""
    rows = ((r.source, r.location, r.sku, r.available, r.continue_selling, r.enabled) for r in records)
    return _write(out, "inventory", INVENTORY_COLUMNS, rows, csv_)


def write_listings(out: IO[str], records: Iterable[Listing], csv_: bool = False) -> int:
    """A listings snapshot that load_listings reads back as `records`."""
    rows = (
        (r.store, r.sku, r.product_id, r.sku_id, r.channel_warehouse_id, r.quantity, r.status, r.writable)
        for r in records
    )
    return _write(out, "listings", LISTING_COLUMNS, rows, csv_)
