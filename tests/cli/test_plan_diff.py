"""`invsync plan`, `diff` and `validate` run on files as a user runs them, on examples/ and on the
worked examples of docs/rules.md."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from small_world import WORLD

from invsync.cli import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
INVENTORY = str(EXAMPLES / "snapshots" / "inventory.json")
LISTINGS = str(EXAMPLES / "snapshots" / "listings.json")

SEEDS = {
    # EasyBoss: 100 x 90% x 50% = 45 in warehouse 1's slot; warehouses 2/3 are disabled for EB-A.
    ("tiktok-mw", "7068517275539637001", "EB-A"): (45, "ratio"),
    ("tiktok-mw", "7068517275539637002", "EB-A"): (0, "noSource"),
    ("tiktok-mw", "7068517275539637003", "EB-A"): (0, "noSource"),
    ("tiktok-mw", "7068517275539637001", "EB-B"): (18, "ratio"),
    ("tiktok-mw", "7068517275539637002", "EB-B"): (9, "ratio"),
    ("tiktok-mw", "7068517275539637003", "EB-B"): (0, "threshold"),
    # AfterShip: 90% of 100; threshold 5 with 5 and 6 available; continue selling; all vs specific locations.
    ("tiktok-id", "7100000000000000001", "AS-PCT-1"): (90, "ratio"),
    ("tiktok-id", "7100000000000000001", "AS-THR-5"): (0, "threshold"),
    ("tiktok-id", "7100000000000000001", "AS-THR-6"): (5, "ratio"),
    ("tiktok-id", "7100000000000000001", "AS-CS-1"): (99999, "continueSelling"),
    ("tiktok-id", "7100000000000000001", "AS-ALL-1"): (90, "ratio"),
    ("tiktok-id", "7100000000000000001", "AS-SPEC-1"): (54, "ratio"),
    # One pool, three channels: a third of wh-sea on TikTok, Shopee and Lazada each (3 x 33% <= 100%).
    **{
        (store, slot, sku): seed
        for store, slot in (
            ("tiktok-sea", "7200000000000000001"),
            ("shopee-sg", "SGZ"),
            ("lazada-sg", "dropshipping"),
        )
        for sku, seed in (("SEA-1", (33, "ratio")), ("SEA-2", (3, "ratio")), ("SEA-3", (0, "threshold")))
    },
}


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _plan_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    code, out, err = _run(capsys, "plan", *argv, "-o", "json")
    assert (code, err) == (0, "")
    return dict(json.loads(out))


def _desired(doc: dict[str, Any]) -> dict[tuple[str, str, str], tuple[int, str]]:
    return {(r["store"], r["channelWarehouseId"], r["sku"]): (r["desired"], r["reason"]) for r in doc["rows"]}


def test_examples_show_every_seed_number(capsys: pytest.CaptureFixture[str]) -> None:
    doc = _plan_json(capsys, "-f", str(EXAMPLES), "--inventory", INVENTORY, "--listings", LISTINGS)
    assert _desired(doc) == SEEDS
    assert set(doc["rows"][0]) == {"rule", "store", "channelWarehouseId", "sku", "live", "desired", "reason"}
    summary = doc["summary"]
    assert (summary["listings"], summary["unmatched"], summary["conflicted"]) == (21, 1, 0)
    assert summary["rules"]["aftership-all-locations"]["unmatched"] == 1  # AS-GHOST is in no source
    assert summary["allocation"]["shop-jkt"] == 0.9 and "shop-fbt" not in summary["allocation"]
    assert summary["allocation"]["wh-sea"] == 0.99  # three stores at 33%: no OversellRisk


def test_csv_snapshots_give_the_same_plan(capsys: pytest.CaptureFixture[str]) -> None:
    csv_doc = _plan_json(
        capsys,
        "-f",
        str(EXAMPLES),
        "--inventory",
        str(EXAMPLES / "snapshots" / "inventory.csv"),
        "--listings",
        str(EXAMPLES / "snapshots" / "listings.csv"),
    )
    assert _desired(csv_doc) == SEEDS


def test_table_and_markdown(capsys: pytest.CaptureFixture[str]) -> None:
    code, table, _ = _run(
        capsys, "plan", "-f", str(EXAMPLES), "--inventory", INVENTORY, "--listings", LISTINGS
    )
    assert code == 0
    assert table.splitlines()[0].split() == [
        "RULE",
        "STORE",
        "CHANNEL",
        "WAREHOUSE",
        "SKU",
        "LIVE",
        "DESIRED",
        "REASON",
    ]
    assert any(line.split()[-3:] == ["10", "45", "ratio"] for line in table.splitlines())
    assert "easyboss-multi-warehouse: 6 listings, 0 in sync, 6 to push" in table
    code, md, _ = _run(
        capsys,
        "plan",
        "-f",
        str(EXAMPLES),
        "--inventory",
        INVENTORY,
        "--listings",
        LISTINGS,
        "-o",
        "markdown",
    )
    assert md.startswith("| rule | store | channel warehouse | sku | live | desired | reason |\n|---|")
    assert (
        "| aftership-all-locations | tiktok-id | 7100000000000000001 | AS-CS-1 | 0 | 99999 "
        "| continueSelling |" in md
    )


def test_explain_sku(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(
        capsys,
        "plan",
        "-f",
        str(EXAMPLES),
        "--inventory",
        INVENTORY,
        "--listings",
        LISTINGS,
        "--explain",
        "EB-A",
    )
    assert code == 0
    assert "raw = (100 x 50% = 50) x 90% - safetyStock 0 = 45" in out
    assert out.count("SyncRule easyboss-multi-warehouse, store tiktok-mw") == 3
    code, out, _ = _run(
        capsys,
        "plan",
        "-f",
        str(EXAMPLES),
        "--inventory",
        INVENTORY,
        "--listings",
        LISTINGS,
        "--explain",
        "AS-THR-5",
        "-o",
        "json",
    )
    [explained] = [e for e in json.loads(out) if e["rule"] == "aftership-all-locations"]
    assert explained["desired"] == 0 and "5. pool = 5 <= outOfStockThreshold 5: 0" in explained["steps"]
    code, _, err = _run(
        capsys,
        "plan",
        "-f",
        str(EXAMPLES),
        "--inventory",
        INVENTORY,
        "--listings",
        LISTINGS,
        "--explain",
        "NOPE",
    )
    assert code == 2 and "'NOPE'" in err


def _world_files(
    tmp: Path, rules: str, stock: list[dict[str, Any]], listings: list[dict[str, Any]]
) -> list[str]:
    (tmp / "world.yaml").write_text(textwrap.dedent(WORLD))
    (tmp / "rules.yaml").write_text(textwrap.dedent(rules))
    (tmp / "inventory.json").write_text(json.dumps({"inventory": stock}))
    (tmp / "listings.json").write_text(json.dumps({"listings": listings}))
    return [
        "-f",
        str(tmp / "world.yaml"),
        str(tmp / "rules.yaml"),
        "--inventory",
        str(tmp / "inventory.json"),
        "--listings",
        str(tmp / "listings.json"),
    ]


def _stock(sku: str, available: int, continue_selling: bool = False) -> dict[str, Any]:
    return {
        "source": "shop",
        "location": "jkt",
        "sku": sku,
        "available": available,
        "continueSelling": continue_selling,
    }


def _listing(store: str, sku: str) -> dict[str, Any]:
    return {
        "store": store,
        "sku": sku,
        "productId": "p",
        "skuId": sku,
        "channelWarehouseId": "c",
        "quantity": 0,
    }


def test_worked_examples_of_section_2_on_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = """\
        apiVersion: invsync.dev/v1alpha1
        kind: SyncRule
        metadata: {name: aftership}
        spec:
          stores: {names: [s1]}
          warehouses: [{name: jkt, ratio: 90}]
          outOfStockThreshold: 5
          continueSelling: {honor: true, quantity: 99999}
        """
    stock = [_stock("P", 100), _stock("T5", 5), _stock("T6", 6), _stock("CS", 0, True)]
    argv = _world_files(tmp_path, rules, stock, [_listing("s1", k) for k in ("P", "T5", "T6", "CS")])
    assert _desired(_plan_json(capsys, *argv)) == {
        ("s1", "c", "P"): (90, "ratio"),
        ("s1", "c", "T5"): (0, "threshold"),
        ("s1", "c", "T6"): (5, "ratio"),
        ("s1", "c", "CS"): (99999, "continueSelling"),
    }


def test_two_stores_at_60_report_oversell_risk(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = """\
        apiVersion: invsync.dev/v1alpha1
        kind: SyncRule
        metadata: {name: r1}
        spec: {stores: {names: [s1]}, warehouses: [{name: jkt, ratio: 60}]}
        ---
        apiVersion: invsync.dev/v1alpha1
        kind: SyncRule
        metadata: {name: r2}
        spec: {stores: {names: [s2]}, warehouses: [{name: jkt, ratio: 60}]}
        """
    argv = _world_files(tmp_path, rules, [_stock("A", 10)], [_listing("s1", "A"), _listing("s2", "A")])
    doc = _plan_json(capsys, *argv)
    assert doc["summary"]["allocation"] == {"jkt": 1.2}
    assert (
        doc["summary"]["rules"]["r1"]["oversellRisk"]
        == {"jkt": 1.2}
        == doc["summary"]["rules"]["r2"]["oversellRisk"]
    )
    assert [r["desired"] for r in doc["rows"]] == [6, 6]
    code, table, _ = _run(capsys, "plan", *argv)
    assert code == 0 and "r1: OversellRisk: warehouse jkt allocation ratio 1.2" in table


def test_manifests_from_stdin(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import io

    text = "\n---\n".join(p.read_text() for p in sorted(EXAMPLES.glob("[0-9]*.yaml")))
    monkeypatch.setattr(sys, "stdin", io.StringIO(text))
    assert _desired(_plan_json(capsys, "-f", "-", "--inventory", INVENTORY, "--listings", LISTINGS)) == SEEDS


def test_validate_examples(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "validate", "-f", str(EXAMPLES))
    assert code == 0
    assert out.strip() == "ok: 2 InventorySource(s), 7 Warehouse(s), 5 Store(s), 4 SyncRule(s)"


# --------------------------------------------------------------------------- diff


def _head(tmp_path: Path, execution_ratio: int) -> Path:
    head = tmp_path / "head"
    head.mkdir()
    for p in EXAMPLES.glob("*.yaml"):
        text = p.read_text()
        if p.name == "40-rules.yaml":
            text = text.replace("executionRatio: 90", f"executionRatio: {execution_ratio}")
        (head / p.name).write_text(text)
    return head


def _diff_argv(head: Path) -> list[str]:
    """`invsync diff` of examples/ against `head`, on the example snapshots."""
    return [
        "diff",
        "--base",
        str(EXAMPLES),
        "--head",
        str(head),
        "--inventory",
        INVENTORY,
        "--listings",
        LISTINGS,
    ]


def test_diff_no_change_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    head = _head(tmp_path, 90)
    code, out, _ = _run(capsys, *_diff_argv(head))
    assert (code, out.strip()) == (0, "no listing changes")


def test_diff_changes_exit_1_markdown_summary_then_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    head = _head(tmp_path, 50)  # EasyBoss execution ratio 90 -> 50
    argv = _diff_argv(head)
    code, md, _ = _run(capsys, *argv, "-o", "markdown")
    assert code == 1
    summary_at = md.index("| store | up | down | to zero | units moved |")
    rows_at = md.index("| store | channel warehouse | sku | before | after | delta |")
    assert summary_at < rows_at
    assert "| tiktok-mw | 0 | 3 | 0 | 32 |" in md  # 45 -> 25, 18 -> 10, 9 -> 5
    assert "| tiktok-mw | 7068517275539637001 | EB-A | 45 | 25 | -20 |" in md
    code, out, _ = _run(capsys, *argv, "-o", "json")
    doc = json.loads(out)
    assert code == 1 and doc["stores"]["tiktok-mw"] == {"up": 0, "down": 3, "toZero": 0, "unitsMoved": 32}
    assert {r["sku"] for r in doc["rows"]} == {"EB-A", "EB-B"}
    code, table, _ = _run(capsys, *argv)
    assert code == 1 and table.splitlines()[0].split() == [
        "STORE",
        "UP",
        "DOWN",
        "TO",
        "ZERO",
        "UNITS",
        "MOVED",
    ]


def test_diff_bad_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    head = _head(tmp_path, 150)
    code, _, err = _run(capsys, *_diff_argv(head))
    assert code == 2 and "40-rules.yaml: SyncRule/easyboss-multi-warehouse: spec.executionRatio" in err


def test_installed_console_script(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("invsync")
    argv = ["plan", "-f", str(EXAMPLES), "--inventory", INVENTORY, "--listings", LISTINGS, "-o", "json"]
    done = subprocess.run([str(script), *argv], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert _desired(json.loads(done.stdout)) == SEEDS
    bad = subprocess.run(
        [str(script), "validate", "-f", str(tmp_path / "none.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr


def test_markdown_cells_keep_their_row(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A pipe or a backslash in a seller SKU is escaped: the markdown table keeps seven columns."""
    sku = "EB-|A\\"
    for name in ("inventory.json", "listings.json"):
        text = (EXAMPLES / "snapshots" / name).read_text()
        (tmp_path / name).write_text(text.replace('"EB-A"', json.dumps(sku)))
    code, md, _ = _run(
        capsys,
        "plan",
        "-f",
        str(EXAMPLES),
        "--inventory",
        str(tmp_path / "inventory.json"),
        "--listings",
        str(tmp_path / "listings.json"),
        "-o",
        "markdown",
    )
    assert code == 0
    rows = [line for line in md.splitlines() if line.startswith("| ") and "EB-" in line]
    assert any("| EB-\\|A\\\\ |" in row for row in rows), rows
    for row in rows:
        cells = row.replace("\\\\", "").replace("\\|", "").split("|")
        assert len(cells) == 9, row  # 7 cells between 8 pipes


def _rule_r(*warehouses: str) -> str:
    """SyncRule r: Store s1 from `warehouses`, each at 100%."""
    entries = ", ".join(f"{{name: {w}}}" for w in warehouses)
    return textwrap.dedent(f"""\
        apiVersion: invsync.dev/v1alpha1
        kind: SyncRule
        metadata: {{name: r}}
        spec: {{stores: {{names: [s1]}}, warehouses: [{entries}]}}
        """)


def test_plan_refuses_two_warehouses_on_one_location_and_names_both(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Offline the mistake is an error (the operator, which cannot refuse an object, holds the slots:
    tests/operator/test_reconcile.py); either way 100 real units never show as 200."""
    copy = textwrap.dedent("""\
        apiVersion: invsync.dev/v1alpha1
        kind: Warehouse
        metadata: {name: jkt-copy}
        spec: {sourceRef: {name: shop}, locationId: jkt}
        ---
        """)
    argv = _world_files(
        tmp_path, copy + _rule_r("jkt", "jkt-copy"), [_stock("A", 100)], [_listing("s1", "A")]
    )
    code, out, err = _run(capsys, "plan", *argv)
    assert code == 2 and out == "" and "Warehouses 'jkt' and 'jkt-copy' both read location 'jkt'" in err


def test_plan_gives_every_product_of_a_duplicated_seller_sku_its_quantity_and_names_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    second = {**_listing("s1", "A"), "productId": "p2"}
    argv = _world_files(tmp_path, _rule_r("jkt"), [_stock("A", 9)], [_listing("s1", "A"), second])
    doc = _plan_json(capsys, *argv)
    assert [r["desired"] for r in doc["rows"]] == [9, 9]
    assert doc["summary"]["rules"]["r"]["duplicateSkus"] == {"s1": ["A"]}
    code, table, _ = _run(capsys, "plan", *argv)
    assert code == 0 and "r: OversellRisk: seller SKUs on more than one product of s1: A" in table
