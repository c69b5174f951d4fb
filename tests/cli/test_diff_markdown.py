"""`invsync diff -o markdown` as a pull request shows it: the risks first (missed sales, pools over
100%, safety holds), each marked new or not, then the per-store summary and the rows, long tables
folded with their counts."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from small_world import WORLD

from invsync.cli import main
from invsync.render import FOLD_AFTER


def _rule(name: str, store: str, ratio: int = 100, extra: str = "") -> str:
    spec = f"stores: {{names: [{store}]}}\n  warehouses: [{{name: jkt, ratio: {ratio}}}]\n" + extra
    return f"apiVersion: invsync.dev/v1alpha1\nkind: SyncRule\nmetadata: {{name: {name}}}\nspec:\n  {spec}"


def _diff(
    tmp: Path,
    capsys: pytest.CaptureFixture[str],
    base_rules: list[str],
    head_rules: list[str],
    stock: dict[str, int],
    listings: list[tuple[str, str, int]],
    output: str,
) -> tuple[int, str]:
    """`invsync diff -o output` of two rule sets over one world and its snapshots."""
    for side, rules in (("base", base_rules), ("head", head_rules)):
        (tmp / side).mkdir(exist_ok=True)
        (tmp / side / "world.yaml").write_text(textwrap.dedent(WORLD))
        (tmp / side / "rules.yaml").write_text("\n---\n".join(rules))
    inventory = [{"source": "shop", "location": "jkt", "sku": k, "available": n} for k, n in stock.items()]
    slots = [
        {"store": s, "sku": k, "productId": f"p-{k}", "skuId": k, "channelWarehouseId": "c", "quantity": q}
        for s, k, q in listings
    ]
    (tmp / "inventory.json").write_text(json.dumps({"inventory": inventory}))
    (tmp / "listings.json").write_text(json.dumps({"listings": slots}))
    argv = ["diff", "--base", str(tmp / "base"), "--head", str(tmp / "head")]
    argv += ["--inventory", str(tmp / "inventory.json"), "--listings", str(tmp / "listings.json")]
    code = main([*argv, "-o", output])
    out, err = capsys.readouterr()
    assert err == ""
    return code, out


def test_missed_sales_lead_the_markdown_and_name_the_pool(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Head raises the threshold to 10: LOW (5 units) goes to 0 although jkt holds 5 of it; FIX is set
    # to 0 by hand (a deliberate zero) and NONE has no stock: neither is a missed sale.
    fixed = "  overrides: [{skus: [FIX], fixedQuantity: 0}]\n"
    stock = {"LOW": 5, "FIX": 50, "HIGH": 40}
    listings = [("s1", "LOW", 5), ("s1", "FIX", 0), ("s1", "HIGH", 40), ("s1", "NONE", 0)]
    base, head = (
        _rule("r1", "s1", extra=fixed),
        _rule("r1", "s1", extra=fixed + "  outOfStockThreshold: 10\n"),
    )
    code, md = _diff(tmp_path, capsys, [base], [head], {**stock, "NONE": 0}, listings, "markdown")
    assert code == 1
    risks_at = md.index("#### Risks to review first")
    missed_at = md.index("**1 listing(s) would show 0 while their pool has stock (missed sales)**")
    assert risks_at < missed_at < md.index("#### Per store") < md.index("#### 1 changed listing(s)")
    assert "| r1 | s1 | c | LOW | 5 | 5 | threshold | yes |" in md
    assert "| FIX |" not in md and "NONE" not in md
    assert "| s1 | 0 | 1 | 1 | 5 |" in md  # per store: 0 up, 1 down, 1 to zero, 5 units
    code, out = _diff(tmp_path, capsys, [base], [head], stock, listings, "json")
    assert json.loads(out)["risks"]["missedSales"] == [
        {
            "rule": "r1",
            "store": "s1",
            "channelWarehouseId": "c",
            "sku": "LOW",
            "before": 5,
            "pool": 5,
            "reason": "threshold",
            "introduced": True,
        }
    ]


def test_a_pool_over_100_percent_is_named_with_its_ratio_and_rules(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Base: s1 draws 60% of jkt. Head adds a rule giving s2 another 60%: jkt is offered at 120%.
    base = [_rule("r1", "s1", 60)]
    head = [*base, _rule("r2", "s2", 60)]
    listings = [("s1", "A", 6), ("s2", "A", 0)]
    code, md = _diff(tmp_path, capsys, base, head, {"A": 10}, listings, "markdown")
    assert code == 1
    assert "**1 pool(s) allocated over 100% across rules (oversell risk)**" in md
    assert "| warehouse | ratio | base ratio | rules | new |" in md
    assert "| jkt | 1.2 | 0.6 | r1, r2 | yes |" in md
    assert md.index("| jkt | 1.2 |") < md.index("#### Per store")
    code, out = _diff(tmp_path, capsys, base, head, {"A": 10}, listings, "table")
    assert code == 1 and "1 pool(s) allocated over 100% across rules" in out
    assert out.index("STORE") < out.index("WAREHOUSE  RATIO")  # the terminal reads the summary first


def test_a_plan_the_safety_hold_would_stop_is_shown_with_its_policy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Head's threshold of 1000 zeroes all three listings showing stock: over maxZeroFraction 0.5.
    policy = "  safety: {maxZeroFraction: 0.5, minListings: 3}\n"
    base = _rule("r1", "s1", extra=policy)
    head = _rule("r1", "s1", extra=policy + "  outOfStockThreshold: 1000\n")
    stock = {"A": 10, "B": 20, "C": 30}
    listings = [("s1", k, n) for k, n in stock.items()]
    code, md = _diff(tmp_path, capsys, [base], [head], stock, listings, "markdown")
    assert code == 1
    assert "**1 rule(s) the safety hold would stop (nothing of them pushed)**" in md
    assert "| rule | zeroing | of showing stock | max zero fraction | min listings | new |" in md
    assert "| r1 | 3 | 3 | 0.5 | 3 | yes |" in md
    assert "**3 listing(s) would show 0 while their pool has stock (missed sales)**" in md
    code, out = _diff(tmp_path, capsys, [base], [head], stock, listings, "json")
    [stop] = json.loads(out)["risks"]["safetyHolds"]
    assert stop == {
        "rule": "r1",
        "zeroing": 3,
        "of": 3,
        "maxZeroFraction": 0.5,
        "minListings": 3,
        "introduced": True,
    }
    # Two of three zeroed is within neither bound once minListings is 4: no hold.
    lenient = policy.replace("minListings: 3", "minListings: 4")
    base, head = (
        _rule("r1", "s1", extra=lenient),
        _rule("r1", "s1", extra=lenient + "  outOfStockThreshold: 1000\n"),
    )
    code, md = _diff(tmp_path, capsys, [base], [head], stock, listings, "markdown")
    assert code == 1 and "safety hold" not in md


def test_no_risk_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, md = _diff(
        tmp_path,
        capsys,
        [_rule("r1", "s1", 50)],
        [_rule("r1", "s1", 80)],
        {"A": 10},
        [("s1", "A", 5)],
        "markdown",
    )
    assert code == 1
    assert "No risks found" in md and "#### Risks" not in md
    assert "| s1 | c | A | 5 | 8 | +3 |" in md


def test_long_tables_fold_after_the_first_rows_with_their_count(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    skus = [f"S{n:03d}" for n in range(FOLD_AFTER + 12)]
    stock = dict.fromkeys(skus, 10)
    listings = [("s1", k, 5) for k in skus]
    code, md = _diff(
        tmp_path, capsys, [_rule("r1", "s1", 50)], [_rule("r1", "s1", 80)], stock, listings, "markdown"
    )
    assert code == 1
    assert f"#### {len(skus)} changed listing(s)" in md
    shown, _, folded = md.partition("<details><summary>12 more rows</summary>")
    assert folded.rstrip().endswith("</details>")
    row = "| s1 | c | {} | 5 | 8 | +3 |"
    assert all(row.format(k) in shown for k in skus[:FOLD_AFTER])
    assert all(row.format(k) in folded and row.format(k) not in shown for k in skus[FOLD_AFTER:])
    assert folded.count("| store | channel warehouse | sku | before | after | delta |") == 1
    code, md = _diff(
        tmp_path,
        capsys,
        [_rule("r1", "s1", 50)],
        [_rule("r1", "s1", 80)],
        stock,
        listings[:FOLD_AFTER],
        "markdown",
    )
    assert "<details>" not in md


def test_low_stock_zeroing_the_other_store_is_a_missed_sale_there(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Head keeps the last 8 units on s1 only: s2's slot goes to 0 over a pool of 8 (docs/rules.md, step 9).
    both = "stores: {names: [s1]}"
    low = "  lowStock: {threshold: 10, preferredStore: s1}\n"
    base = _rule("r1", "s1").replace(both, "stores: {names: [s1, s2]}")
    head = _rule("r1", "s1", extra=low).replace(both, "stores: {names: [s1, s2]}")
    listings = [("s1", "A", 8), ("s2", "A", 8)]
    code, md = _diff(tmp_path, capsys, [base], [head], {"A": 8}, listings, "markdown")
    assert code == 1
    assert "| r1 | s2 | c | A | 8 | 8 | lowStock | yes |" in md
    assert "| r1 | s1 |" not in md


def test_an_allocation_already_over_100_percent_is_shown_as_not_new(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Both sides offer jkt at 120%; head only changes s1's ratio from 60 to 70 (130%).
    base = [_rule("r1", "s1", 60), _rule("r2", "s2", 60)]
    head = [_rule("r1", "s1", 70), _rule("r2", "s2", 60)]
    listings = [("s1", "A", 6), ("s2", "A", 6)]
    code, md = _diff(tmp_path, capsys, base, head, {"A": 10}, listings, "markdown")
    assert code == 1
    assert "| jkt | 1.3 | 1.2 | r1, r2 | no |" in md
