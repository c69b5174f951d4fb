"""Bad manifests and snapshots: exit 2 and ONE line naming the file, the resource (or row) and the field."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from invsync.cli import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DELETE = object()

BASE: list[dict[str, Any]] = [
    {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"}, "stringData": {"token": "t"}},
    {
        "apiVersion": "invsync.dev/v1alpha1",
        "kind": "InventorySource",
        "metadata": {"name": "src"},
        "spec": {"provider": "http", "endpoint": "http://127.0.0.1:1/erp", "pollInterval": "5m"},
    },
    {
        "apiVersion": "invsync.dev/v1alpha1",
        "kind": "Warehouse",
        "metadata": {"name": "wh"},
        "spec": {"sourceRef": {"name": "src"}, "locationId": "l1", "type": "SelfOwned"},
    },
    {
        "apiVersion": "invsync.dev/v1alpha1",
        "kind": "Store",
        "metadata": {"name": "shop"},
        "spec": {
            "platform": "tiktok",
            "shopCipher": "C",
            "credentialsSecretRef": {"name": "creds"},
            "multiWarehouse": True,
            "warehouses": [{"channelWarehouseId": "c1", "warehouseRefs": ["wh"]}],
        },
    },
    {
        "apiVersion": "invsync.dev/v1alpha1",
        "kind": "SyncRule",
        "metadata": {"name": "rule"},
        "spec": {
            "stores": {"names": ["shop"]},
            "warehouses": [{"name": "wh", "ratio": 50}],
            "interval": "5m",
            "continueSelling": {"honor": True, "quantity": 99999},
            "push": {"mode": "Enforce"},
            "safety": {"maxZeroFraction": 0.5},
        },
    },
]
INDEX = {"InventorySource": 1, "Warehouse": 2, "Store": 3, "SyncRule": 4}

# (kind to change, path, new value, expected resource, expected field)
MANIFEST_CASES: list[tuple[str, tuple[Any, ...], Any, str, str]] = [
    ("SyncRule", ("spec", "warehouses", 0, "ratio"), 150, "SyncRule/rule", "spec.warehouses[0].ratio"),
    ("SyncRule", ("spec", "executionRatio"), -1, "SyncRule/rule", "spec.executionRatio"),
    ("SyncRule", ("spec", "safetyStock"), -3, "SyncRule/rule", "spec.safetyStock"),
    ("SyncRule", ("spec", "outOfStockThreshold"), -1, "SyncRule/rule", "spec.outOfStockThreshold"),
    ("SyncRule", ("spec", "rounding"), "Sideways", "SyncRule/rule", "spec.rounding"),
    ("SyncRule", ("spec", "stores"), {}, "SyncRule/rule", "spec.stores"),
    ("SyncRule", ("spec", "warehouses", 0, "selector"), {}, "SyncRule/rule", "spec.warehouses[0]"),
    ("SyncRule", ("spec", "warehouses", 0, "name"), DELETE, "SyncRule/rule", "spec.warehouses[0]"),
    ("SyncRule", ("spec", "warehouses", 1), {"name": "wh"}, "SyncRule/rule", "spec.warehouses[1].name"),
    ("SyncRule", ("spec", "warehouses"), [], "SyncRule/rule", "spec.warehouses"),
    ("SyncRule", ("spec", "interval"), "5 minutes", "SyncRule/rule", "spec.interval"),
    ("SyncRule", ("spec", "ratioo"), 5, "SyncRule/rule", "spec.ratioo"),
    ("SyncRule", ("spec", "push", "mode"), "Sometimes", "SyncRule/rule", "spec.push.mode"),
    ("SyncRule", ("spec", "safety", "maxZeroFraction"), 2, "SyncRule/rule", "spec.safety.maxZeroFraction"),
    (
        "SyncRule",
        ("spec", "continueSelling", "quantity"),
        -1,
        "SyncRule/rule",
        "spec.continueSelling.quantity",
    ),
    ("SyncRule", ("spec", "stores", "names", 0), "nope", "SyncRule/rule", "spec.stores.names[0]"),
    ("SyncRule", ("spec", "warehouses", 0, "name"), "ghost", "SyncRule/rule", "spec.warehouses[0].name"),
    (
        "SyncRule",
        ("spec", "lowStock"),
        {"threshold": 1, "preferredStore": "x"},
        "SyncRule/rule",
        "spec.lowStock.preferredStore",
    ),
    (
        "SyncRule",
        ("spec", "overrides"),
        [{"skus": [], "fixedQuantity": 1}],
        "SyncRule/rule",
        "spec.overrides[0].skus",
    ),
    ("SyncRule", ("metadata", "name"), DELETE, "SyncRule/(unnamed)", "metadata.name"),
    ("Store", ("spec", "platform"), "amazon", "Store/shop", "spec.platform"),
    ("Store", ("spec", "shopCipher"), DELETE, "Store/shop", "spec.shopCipher"),
    ("Store", ("spec", "multiWarehouse"), False, "Store/shop", "spec.warehouses"),  # with two below
    (
        "Store",
        ("spec", "warehouses", 1),
        {"channelWarehouseId": "c1"},
        "Store/shop",
        "spec.warehouses[1].channelWarehouseId",
    ),
    (
        "Store",
        ("spec", "warehouses", 0, "warehouseRefs", 0),
        "ghost",
        "Store/shop",
        "spec.warehouses[0].warehouseRefs[0]",
    ),
    ("Store", ("spec", "maxQuantity"), "lots", "Store/shop", "spec.maxQuantity"),
    (
        "Store",
        ("spec", "rateLimit"),
        {"requestsPerSecond": 0},
        "Store/shop",
        "spec.rateLimit.requestsPerSecond",
    ),
    ("Warehouse", ("spec", "type"), "Virtual", "Warehouse/wh", "spec.type"),
    ("Warehouse", ("spec", "sourceRef", "name"), "ghost", "Warehouse/wh", "spec.sourceRef.name"),
    ("Warehouse", ("spec", "locationId"), DELETE, "Warehouse/wh", "spec.locationId"),
    ("Warehouse", ("spec", "enabled"), "sometimes", "Warehouse/wh", "spec.enabled"),
    ("InventorySource", ("spec", "provider"), "ftp", "InventorySource/src", "spec.provider"),
    ("InventorySource", ("spec", "provider"), "shopify", "InventorySource/src", "spec.credentialsSecretRef"),
    ("InventorySource", ("spec", "endpoint"), "ftp://x", "InventorySource/src", "spec.endpoint"),
    ("InventorySource", ("spec", "pollInterval"), "-5m", "InventorySource/src", "spec.pollInterval"),
    ("InventorySource", ("kind",), "Inventory", "Inventory/src", "kind"),
    ("SyncRule", ("apiVersion",), DELETE, "SyncRule/rule", "apiVersion: required"),
    ("SyncRule", ("apiVersion",), "invsync.dev/v9", "SyncRule/rule", "apiVersion"),
    # a misspelt group of one of our kinds: skipped, `diff` said "no listing changes" (issue 14)
    ("SyncRule", ("apiVersion",), "invsnyc.dev/v1alpha1", "SyncRule/rule", "apiVersion: unknown group"),
    ("Store", ("apiVersion",), "invsync.io/v1alpha1", "Store/shop", "apiVersion: unknown group"),
    # durations and rates beyond their bounds (docs/operations.md, "Bounds on every duration and rate")
    ("SyncRule", ("spec", "interval"), "99999999999999999999h", "SyncRule/rule", "spec.interval: duration"),
    ("SyncRule", ("spec", "interval"), "0s", "SyncRule/rule", "spec.interval: must be between 1s and"),
    (
        "SyncRule",
        ("spec", "push", "increaseSettle"),
        "99999999999999999999h",
        "SyncRule/rule",
        "spec.push.increaseSettle: duration",
    ),
    (
        "SyncRule",
        ("spec", "push", "increaseSettle"),
        "25h",
        "SyncRule/rule",
        "spec.push.increaseSettle: must be between 0s and 24h",
    ),
    (
        "InventorySource",
        ("spec", "pollInterval"),
        "99999999999999999999h",
        "InventorySource/src",
        "spec.pollInterval: duration",
    ),
    (
        "InventorySource",
        ("spec", "pollInterval"),
        "1s",
        "InventorySource/src",
        "spec.pollInterval: must be between 10s and 720h (30 days)",
    ),
    (
        "Store",
        ("spec", "rateLimit"),
        {"requestsPerSecond": 1e-300},
        "Store/shop",
        "spec.rateLimit.requestsPerSecond: Input should be greater than or equal to 0.1",
    ),
    ("Store", ("spec", "rateLimit"), {"burst": 0}, "Store/shop", "spec.rateLimit.burst"),
]


def _set(obj: Any, path: tuple[Any, ...], value: Any) -> None:
    for key in path[:-1]:
        obj = obj[key]
    last = path[-1]
    if value is DELETE:
        del obj[last]
    elif isinstance(obj, list) and last == len(obj):
        obj.append(value)
    else:
        obj[last] = value


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def _one_line(code: int, err: str) -> str:
    assert code == 2
    assert err.endswith("\n") and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize(
    ("kind", "path", "value", "resource", "field"),
    MANIFEST_CASES,
    ids=[f"{c[0]}-{'.'.join(map(str, c[1]))}-{c[2]!r}"[:60] for c in MANIFEST_CASES],
)
def test_malformed_manifest(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    kind: str,
    path: tuple[Any, ...],
    value: Any,
    resource: str,
    field: str,
) -> None:
    docs = copy.deepcopy(BASE)
    if field == "spec.warehouses" and kind == "Store":
        docs[INDEX["Store"]]["spec"]["warehouses"].append(
            {"channelWarehouseId": "c2", "warehouseRefs": ["wh"]}
        )
    _set(docs[INDEX[kind]], path, value)
    target = tmp_path / "bad.yaml"
    target.write_text(yaml.safe_dump_all(docs))
    for verb in (
        ["validate", "-f", str(tmp_path)],
        ["plan", "-f", str(target), "--inventory", "x", "--listings", "y"],
    ):
        err = _one_line(*_run(capsys, *verb))
        assert f"{target}: {resource}: {field}" in err, err


def test_duplicate_resource_names_both_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.yaml").write_text(yaml.safe_dump_all(BASE))
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(BASE[2]))
    err = _one_line(*_run(capsys, "validate", "-f", str(tmp_path)))
    assert (
        f"{tmp_path / 'b.yaml'}: Warehouse/wh: metadata.name: duplicate, "
        f"also defined in {tmp_path / 'a.yaml'}" in err
    )


def test_cross_namespace_reference_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    docs = copy.deepcopy(BASE)
    docs[INDEX["Warehouse"]]["metadata"]["namespace"] = "other"
    docs[INDEX["InventorySource"]]["metadata"]["namespace"] = "other"
    (tmp_path / "m.yaml").write_text(yaml.safe_dump_all(docs))
    err = _one_line(*_run(capsys, "validate", "-f", str(tmp_path / "m.yaml")))
    assert (
        "Store/shop: spec.warehouses[0].warehouseRefs[0]: Warehouse 'wh' not found in namespace 'default'"
        in err
    )
    assert "namespace 'other'" in err


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("kind: [unclosed", "bad.yaml: line 1: not valid YAML"),
        ("- just\n- a list\n", "bad.yaml: document 1: expected a Kubernetes object"),
        (
            "apiVersion: invsync.dev/v1alpha1\nkind: SyncRule\nmetadata: {name: r}\n",
            "SyncRule/r: spec: Field required",
        ),
    ],
)
def test_unparseable_documents(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expected: str
) -> None:
    (tmp_path / "bad.yaml").write_text(text)
    assert expected in _one_line(*_run(capsys, "validate", "-f", str(tmp_path / "bad.yaml")))


def _with_copied_warehouse(labels: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """BASE plus a copy-paste of Warehouse wh under another name: the same location of the same source."""
    docs = copy.deepcopy(BASE)
    twin = copy.deepcopy(docs[INDEX["Warehouse"]])
    twin["metadata"] = {"name": "wh-copy", "labels": labels or {}}
    docs.append(twin)
    return docs


@pytest.mark.parametrize("by", ["name", "selector"])
def test_two_warehouses_on_one_location_in_a_rule_name_both(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], by: str
) -> None:
    """The channel showed 180 for 100 real units and `validate` said ok (issue 14)."""
    docs = _with_copied_warehouse({"tier": "main"})
    rule = docs[INDEX["SyncRule"]]["spec"]
    rule["warehouses"].append(
        {"name": "wh-copy"} if by == "name" else {"selector": {"matchLabels": {"tier": "main"}}}
    )
    (tmp_path / "m.yaml").write_text(yaml.safe_dump_all(docs))
    err = _one_line(*_run(capsys, "validate", "-f", str(tmp_path / "m.yaml")))
    assert (
        f"{tmp_path / 'm.yaml'}: SyncRule/rule: spec.warehouses: Warehouses 'wh' and 'wh-copy' both read "
        "location 'l1' of InventorySource 'src'" in err
    ), err


def test_a_warehouse_on_the_same_location_not_selected_by_the_rule_is_fine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "m.yaml").write_text(yaml.safe_dump_all(_with_copied_warehouse()))
    assert _run(capsys, "validate", "-f", str(tmp_path / "m.yaml"))[0] == 0


@pytest.mark.parametrize(
    ("path", "selector", "field"),
    [
        (
            ("stores", "selector"),
            {"matchLabels": {"region": "mars"}},
            "spec.stores.selector: matches no Store",
        ),
        (
            ("warehouses", 1),
            {"selector": {"matchExpressions": [{"key": "tier", "operator": "Exists"}]}, "ratio": 10},
            "spec.warehouses[1].selector: matches no Warehouse",
        ),
    ],
)
def test_a_selector_matching_nothing_says_which(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], path: tuple[Any, ...], selector: Any, field: str
) -> None:
    docs = copy.deepcopy(BASE)
    _set(docs[INDEX["SyncRule"]]["spec"], path, selector)
    (tmp_path / "m.yaml").write_text(yaml.safe_dump_all(docs))
    err = _one_line(*_run(capsys, "validate", "-f", str(tmp_path / "m.yaml")))
    assert f"{tmp_path / 'm.yaml'}: SyncRule/rule: {field} in namespace 'default'" in err, err


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        (  # a second `spec:` replaced the first one silently
            "dup.yaml",
            "apiVersion: invsync.dev/v1alpha1\nkind: Warehouse\nmetadata: {name: wh}\n"
            "spec: {sourceRef: {name: src}, locationId: l1}\n"
            "spec: {sourceRef: {name: src}, locationId: l2}\n",
            "Warehouse/wh: spec: duplicate key (lines 4 and 5)",
        ),
        (
            "dup.yaml",
            "apiVersion: invsync.dev/v1alpha1\nkind: SyncRule\nmetadata: {name: r}\nspec:\n"
            "  stores: {names: [shop]}\n  warehouses:\n  - {name: wh, ratio: 50, ratio: 100}\n",
            "SyncRule/r: spec.warehouses[0].ratio: duplicate key (lines 7 and 7)",
        ),
        (  # JSON manifests go through the same loader
            "dup.json",
            '{"apiVersion": "invsync.dev/v1alpha1", "kind": "Warehouse", "metadata": {"name": "wh"},\n'
            ' "spec": {"sourceRef": {"name": "src"}, "locationId": "l1", "locationId": "l2"}}\n',
            "Warehouse/wh: spec.locationId: duplicate key (lines 2 and 2)",
        ),
    ],
)
def test_duplicate_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, text: str, expected: str
) -> None:
    (tmp_path / name).write_text(text)
    err = _one_line(*_run(capsys, "validate", "-f", str(tmp_path / name)))
    assert f"{tmp_path / name}: {expected}" in err, err


def test_missing_manifest_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert "/no/such.yaml: cannot read" in _one_line(*_run(capsys, "validate", "-f", "/no/such.yaml"))


# --------------------------------------------------------------------------- snapshots

INVENTORY_ROW = {
    "source": "wms",
    "location": "wh1",
    "sku": "EB-A",
    "available": 1,
    "continueSelling": False,
    "enabled": True,
}
LISTING_ROW = {
    "store": "tiktok-mw",
    "sku": "EB-A",
    "productId": "p",
    "skuId": "s",
    "channelWarehouseId": "7068517275539637001",
    "quantity": 1,
}

# (which file, JSON body or CSV text, expected row, expected field)
SNAPSHOT_CASES: list[tuple[str, str, str, str]] = [
    (
        "inventory",
        json.dumps({"inventory": [{**INVENTORY_ROW, "available": "lots"}]}),
        "inventory[0]",
        "available",
    ),
    (
        "inventory",
        json.dumps(
            {"inventory": [INVENTORY_ROW, {k: v for k, v in INVENTORY_ROW.items() if k != "available"}]}
        ),
        "inventory[1]",
        "available: required",
    ),
    ("inventory", json.dumps({"inventory": [{**INVENTORY_ROW, "sku": ""}]}), "inventory[0]", "sku: required"),
    (
        "inventory",
        json.dumps({"inventory": [{**INVENTORY_ROW, "source": "erp"}]}),
        "inventory[0]",
        "source: no InventorySource named 'erp'",
    ),
    (
        "inventory",
        json.dumps({"inventory": [{**INVENTORY_ROW, "enabled": "maybe"}]}),
        "inventory[0]",
        "enabled",
    ),
    (
        "inventory",
        json.dumps({"inventory": [{**INVENTORY_ROW, "continueSelling": 1}]}),
        "inventory[0]",
        "continueSelling",
    ),
    (
        "inventory",
        json.dumps({"inventory": [{**INVENTORY_ROW, "available": 1.5}]}),
        "inventory[0]",
        "available",
    ),
    ("inventory", json.dumps({"inventory": [INVENTORY_ROW, 7]}), "inventory[1]", "expected an object"),
    ("inventory", json.dumps([INVENTORY_ROW]), "inventory", 'expected {"inventory": [...]}'),
    (
        "inventory",
        json.dumps({"inventory": [{**INVENTORY_ROW, "qty": 3}]}),
        "inventory[0]",
        "qty: unknown field",
    ),
    ("inventory", '{"inventory": [\n  {"sku": }\n]}', "line 2", "not valid JSON"),
    (
        "inventory",
        json.dumps({"inventory": [{**INVENTORY_ROW, "location": 5}]}),
        "inventory[0]",
        "location: expected a string",
    ),
    (
        "listings",
        json.dumps({"listings": [{**LISTING_ROW, "quantity": -1}]}),
        "listings[0]",
        "quantity: must be >= 0",
    ),
    ("listings", json.dumps({"listings": [{**LISTING_ROW, "quantity": "x"}]}), "listings[0]", "quantity"),
    (
        "listings",
        json.dumps({"listings": [{**LISTING_ROW, "store": "tiktok-xx"}]}),
        "listings[0]",
        "store: no Store named 'tiktok-xx'",
    ),
    (
        "listings",
        json.dumps({"listings": [{k: v for k, v in LISTING_ROW.items() if k != "productId"}]}),
        "listings[0]",
        "productId: required",
    ),
    (
        "listings",
        json.dumps({"listings": [{**LISTING_ROW, "channelWarehouseId": ""}]}),
        "listings[0]",
        "channelWarehouseId: required",
    ),
    (
        "listings",
        json.dumps({"listings": [{**LISTING_ROW, "skuId": 123}]}),
        "listings[0]",
        "skuId: expected a string",
    ),
    ("listings", json.dumps({"inventory": []}), "listings", 'expected {"listings": [...]}'),
    ("inventory.csv", "source,location,sku,available\nwms,wh1,EB-A,abc\n", "line 2", "available"),
    ("inventory.csv", "source,location,sku\nwms,wh1,EB-A\n", "line 1", "available: missing column"),
    ("inventory.csv", "source,location,sku,available,enabled\nwms,wh1,EB-A,1,perhaps\n", "line 2", "enabled"),
    (
        "inventory.csv",
        "source,location,sku,available\nwms,wh1,EB-A,1\nwms,,EB-B,2\n",
        "line 3",
        "location: required",
    ),
    (
        "listings.csv",
        ",".join(LISTING_ROW) + "\ntiktok-mw,EB-A,p,s,c1,-2\n",
        "line 2",
        "quantity: must be >= 0",
    ),
    (
        "listings.csv",
        ",".join(LISTING_ROW) + "\ntiktok-mw,EB-A,p,s,c1,2,extra\n",
        "line 2",
        "more values than columns",
    ),
    # strict reading (issue 14): each of these changed a plan silently
    (
        "inventory.csv",
        "source,location,sku,available\nwms,wh1,EB-A,45\nwms,wh2,EB-A,1\nwms,wh1,EB-A,45\n",
        "line 4",
        "sku: duplicate row (source 'wms', location 'wh1', sku 'EB-A'), first at line 2",
    ),
    (
        "inventory",
        json.dumps({"inventory": [INVENTORY_ROW, {**INVENTORY_ROW, "available": 7}]}),
        "inventory[1]",
        "sku: duplicate row (source 'wms', location 'wh1', sku 'EB-A'), first at inventory[0]",
    ),
    (
        "listings",
        json.dumps({"listings": [LISTING_ROW, {**LISTING_ROW, "quantity": 3}]}),
        "listings[1]",
        "channelWarehouseId: duplicate row (store 'tiktok-mw', productId 'p', skuId 's', "
        "channelWarehouseId '7068517275539637001'), first at listings[0]",
    ),
    ("inventory.csv", "source,location,sku,available\nwms,wh1,EB-A,1_000\n", "line 2", "available"),
    ("inventory.csv", "source,location,sku,available\nwms,wh1,EB-A,\u0664\u0665\n", "line 2", "available"),
    ("listings.csv", ",".join(LISTING_ROW) + "\ntiktok-mw,EB-A,p,s,c1,\uff17\n", "line 2", "quantity"),
    (
        "inventory.csv",
        "source,location,sku,available\nwms,wh1, EB-A,1\n",
        "line 2",
        "sku: leading or trailing whitespace in ' EB-A'",
    ),
    (
        "listings",
        json.dumps({"listings": [{**LISTING_ROW, "sku": "EB-A\n| x | y"}]}),
        "listings[0]",
        "sku: control character U+000A",
    ),
    (
        "inventory",
        json.dumps({"inventory": [{**INVENTORY_ROW, "sku": "EB\u200b-A"}]}),
        "inventory[0]",
        "sku: control character U+200B",
    ),
    (
        "inventory",
        '{"inventory": [{"source": "wms", "location": "wh1", "sku": "EB-A", '
        '"available": 1, "available": 9}]}',
        "inventory[0]",
        "available: duplicate key",
    ),
    ("inventory", '{"inventory": [], "inventory": []}', "inventory", "duplicate key"),
    (
        "inventory.csv",
        "source,location,sku,available,sku\nwms,wh1,EB-A,1,EB-B\n",
        "line 1",
        "sku: duplicate column",
    ),
]


@pytest.mark.parametrize(
    ("which", "body", "row", "field"), SNAPSHOT_CASES, ids=[f"{c[0]}-{c[3]}"[:50] for c in SNAPSHOT_CASES]
)
def test_malformed_snapshot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], which: str, body: str, row: str, field: str
) -> None:
    bad = tmp_path / (which if which.endswith(".csv") else f"{which}.json")
    bad.write_text(body)
    files = {
        "inventory": str(EXAMPLES / "snapshots" / "inventory.json"),
        "listings": str(EXAMPLES / "snapshots" / "listings.json"),
    }
    files[which.removesuffix(".csv")] = str(bad)
    err = _one_line(
        *_run(
            capsys,
            "plan",
            "-f",
            str(EXAMPLES),
            "--inventory",
            files["inventory"],
            "--listings",
            files["listings"],
        )
    )
    assert f"{bad}: {row}" in err and field in err, err


def test_missing_snapshot_file(capsys: pytest.CaptureFixture[str]) -> None:
    err = _one_line(
        *_run(capsys, "plan", "-f", str(EXAMPLES), "--inventory", "/no/inv.json", "--listings", "x")
    )
    assert "/no/inv.json: cannot read" in err


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["plan"],
        ["plan", "-f", "x"],
        ["frobnicate"],
        ["plan", "-f", "x", "--inventory", "i", "--listings", "l", "-o", "xml"],
    ],
)
def test_usage_errors_are_one_line_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    assert "invsync" in _one_line(*_run(capsys, *argv))


def test_lists_stdin_and_other_kinds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    other = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}
    text = yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": [*BASE[1:], other]})
    monkeypatch.setattr("sys.stdin", io.StringIO(text))
    code, err = _run(capsys, "validate", "-f", "-")
    assert (code, err) == (0, "")
    (tmp_path / "notes.yaml").write_text("just: a config file\n")  # in a directory: not an object, skipped
    (tmp_path / "m.yaml").write_text(yaml.safe_dump_all(BASE))
    assert _run(capsys, "validate", "-f", str(tmp_path)) == (0, "")
    # named explicitly, the same file is an error
    err = _one_line(*_run(capsys, "validate", "-f", str(tmp_path / "notes.yaml")))
    assert "notes.yaml: document 1: apiVersion and kind are not set" in err
