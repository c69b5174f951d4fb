"""How `invsync plan` and `invsync diff` show the engine's results: a terminal table, JSON, or
PR-ready markdown (docs/interfaces.md, "Command line"). Nothing here decides a quantity."""

from __future__ import annotations

import json
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

from .engine import Diff, Plan, Risks, World, explain
from .errors import InputError


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(c) for c in header], *[[str(c) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells)


def _markdown(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def cell(value: object) -> str:
        # A seller SKU may hold a pipe; loaders refuse control characters, but a cell never breaks its row
        text = str(value).replace("\\", "\\\\").replace("|", "\\|")
        return "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in text)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _ratio(value: Fraction) -> float:
    return round(float(value), 4)


def _summary(plan: Plan) -> dict[str, Any]:
    rules: dict[str, Any] = {}
    totals = dict.fromkeys(
        ("listings", "inSync", "drifted", "unmatched", "held", "conflicted", "notWritable"), 0
    )
    for name, rp in plan.rules.items():
        stores = {
            store: {
                "listings": c.listings,
                "inSync": c.in_sync,
                "drifted": c.drifted,
                "unmatched": c.unmatched,
                "held": c.held,
                "conflicted": c.conflicted,
                "notWritable": c.not_writable,
            }
            for store, c in rp.counts().items()
        }
        rule_totals = {k: sum(s[k] for s in stores.values()) for k in totals}
        for k, v in rule_totals.items():
            totals[k] += v
        rules[name] = {
            **rule_totals,
            "stores": stores,
            "conflicts": [{"store": c.store, "owner": c.owner, "count": c.count} for c in rp.conflicts],
            "oversellRisk": {w: _ratio(v) for w, v in rp.oversell_risk.items()},
            "held": [
                {"store": h.store, "count": h.count, "cause": h.cause, "why": h.message} for h in rp.holds
            ],
            "notWritable": [{"store": n.store, "count": n.count, "why": n.reason} for n in rp.not_writable],
            "duplicateSkus": {store: list(skus) for store, skus in rp.duplicate_skus.items()},
            "selectsNothing": list(rp.selection.empty_selectors),
        }
    return {
        **totals,
        "rules": rules,
        "allocation": {w: _ratio(v) for w, v in sorted(plan.allocation.items())},
    }


def render_plan(plan: Plan, output: str) -> str:
    summary = _summary(plan)
    if output == "json":
        rows = [
            {
                "rule": r.rule,
                "store": r.store,
                "channelWarehouseId": r.channel_warehouse_id,
                "sku": r.sku,
                "live": r.live,
                "desired": r.desired,
                "reason": r.reason,
            }
            for rp in plan.rules.values()
            for r in rp.rows
        ]
        return json.dumps({"rows": rows, "summary": summary}, indent=2)
    header = ("RULE", "STORE", "CHANNEL WAREHOUSE", "SKU", "LIVE", "DESIRED", "REASON")
    table = [
        (r.rule, r.store, r.channel_warehouse_id, r.sku, r.live, r.desired, r.reason)
        for rp in plan.rules.values()
        for r in rp.rows
    ]
    notes = []
    for name, s in summary["rules"].items():
        notes.append(
            f"{name}: {s['listings']} listings, {s['inSync']} in sync, {s['drifted']} to push, "
            f"{s['unmatched']} unmatched, {s['held']} held, {s['conflicted']} conflicted"
        )
        notes += [
            f"{name}: Conflict: {c['count']} listings of {c['store']} owned by {c['owner']}"
            for c in s["conflicts"]
        ]
        notes += [
            f"{name}: OversellRisk: warehouse {w} allocation ratio {v}" for w, v in s["oversellRisk"].items()
        ]
        notes += [
            f"{name}: OversellRisk: seller SKUs on more than one product of {store}: {', '.join(skus)}"
            for store, skus in s["duplicateSkus"].items()
        ]
        notes += [f"{name}: held: {h['why']}" for h in s["held"]]
        notes += [
            f"{name}: not managed: {n['count']} listings of {n['store']}: {n['why']}"
            for n in s["notWritable"]
        ]
        notes += [f"{name}: selects nothing: {what}" for what in s["selectsNothing"]]
    if output == "markdown":
        return _markdown([h.lower() for h in header], table) + "\n\n" + "\n".join(f"- {n}" for n in notes)
    return _table(header, table) + "\n\n" + "\n".join(notes)


def render_explanations(world: World, sku: str, output: str) -> str:
    found = [e for rule in world.rules for e in explain(world, rule.name, sku)]
    if not found:
        raise InputError(f"--explain: {sku!r}: no listing of this SKU in a store selected by a SyncRule")
    if output == "json":
        return json.dumps(
            [
                {
                    "rule": e.rule,
                    "store": e.store,
                    "channelWarehouseId": e.channel_warehouse_id,
                    "sku": e.sku,
                    "live": e.live,
                    "desired": e.desired,
                    "reason": e.reason,
                    "steps": list(e.steps),
                }
                for e in found
            ],
            indent=2,
        )
    bullet = "- " if output == "markdown" else "  "
    return "\n\n".join(
        f"SyncRule {e.rule}, store {e.store}, channel warehouse {e.channel_warehouse_id}, SKU {e.sku}:\n"
        + "\n".join(bullet + step for step in e.steps)
        for e in found
    )


FOLD_AFTER = 50  # markdown rows shown before the rest fold into <details>


def _risk_lists(found: Risks) -> dict[str, list[tuple[object, ...]]]:
    """The risks as table rows, newly introduced ones first (the order a reviewer reads them)."""

    def new(introduced: bool) -> str:
        return "yes" if introduced else "no"

    missed = sorted(found.missed_sales, key=lambda m: not m.introduced)
    over = sorted(found.over_allocated, key=lambda o: not o.introduced)
    stops = sorted(found.safety_stops, key=lambda h: not h.introduced)
    return {
        "missedSales": [
            (m.rule, m.store, m.channel_warehouse_id, m.sku, m.before, m.pool, m.reason, new(m.introduced))
            for m in missed
        ],
        "overAllocated": [
            (o.warehouse, _ratio(o.ratio), _ratio(o.base_ratio), ", ".join(o.rules), new(o.introduced))
            for o in over
        ],
        "safetyHolds": [
            (h.rule, h.hold.zeroing, h.hold.of, h.max_zero_fraction, h.min_listings, new(h.introduced))
            for h in stops
        ],
    }


RISK_HEADERS = {
    "missedSales": ("RULE", "STORE", "CHANNEL WAREHOUSE", "SKU", "BEFORE", "POOL", "REASON", "NEW"),
    "overAllocated": ("WAREHOUSE", "RATIO", "BASE RATIO", "RULES", "NEW"),
    "safetyHolds": ("RULE", "ZEROING", "OF SHOWING STOCK", "MAX ZERO FRACTION", "MIN LISTINGS", "NEW"),
}
RISK_TITLES = {
    "missedSales": "listing(s) would show 0 while their pool has stock (missed sales)",
    "overAllocated": "pool(s) allocated over 100% across rules (oversell risk)",
    "safetyHolds": "rule(s) the safety hold would stop (nothing of them pushed)",
}


def _folded(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A markdown table whose rows after the first FOLD_AFTER fold into a <details> with their count."""
    shown = _markdown(header, rows[:FOLD_AFTER])
    rest = rows[FOLD_AFTER:]
    if not rest:
        return shown
    return (
        f"{shown}\n\n<details><summary>{len(rest)} more rows</summary>\n\n"
        f"{_markdown(header, rest)}\n\n</details>"
    )


def render_diff(diff: Diff, found: Risks, output: str) -> str:
    stores = [(s, c.up, c.down, c.to_zero, c.units_moved) for s, c in diff.stores.items()]
    rows = [(r.store, r.channel_warehouse_id, r.sku, r.before, r.after, f"{r.delta:+d}") for r in diff.rows]
    lists = _risk_lists(found)
    if output == "json":
        doc: dict[str, Any] = {
            "stores": {s: {"up": u, "down": d, "toZero": z, "unitsMoved": m} for s, u, d, z, m in stores},
            "rows": [
                {"store": s, "channelWarehouseId": c, "sku": k, "before": b, "after": a, "delta": a - b}
                for s, c, k, b, a, _ in rows
            ],
        }
        if rows:  # as in the text outputs: a change that moves nothing has no risks to review
            doc["risks"] = {
                "missedSales": [
                    {
                        "rule": m.rule,
                        "store": m.store,
                        "channelWarehouseId": m.channel_warehouse_id,
                        "sku": m.sku,
                        "before": m.before,
                        "pool": m.pool,
                        "reason": m.reason,
                        "introduced": m.introduced,
                    }
                    for m in found.missed_sales
                ],
                "overAllocated": [
                    {
                        "warehouse": o.warehouse,
                        "ratio": _ratio(o.ratio),
                        "baseRatio": _ratio(o.base_ratio),
                        "rules": list(o.rules),
                        "introduced": o.introduced,
                    }
                    for o in found.over_allocated
                ],
                "safetyHolds": [
                    {
                        "rule": h.rule,
                        "zeroing": h.hold.zeroing,
                        "of": h.hold.of,
                        "maxZeroFraction": h.max_zero_fraction,
                        "minListings": h.min_listings,
                        "introduced": h.introduced,
                    }
                    for h in found.safety_stops
                ],
            }
        return json.dumps(doc, indent=2)
    if not rows:  # the change moves nothing: the risks the rules already had are not its to review
        return "### invsync diff: no listing changes" if output == "markdown" else "no listing changes"
    summary_header = ("STORE", "UP", "DOWN", "TO ZERO", "UNITS MOVED")
    rows_header = ("STORE", "CHANNEL WAREHOUSE", "SKU", "BEFORE", "AFTER", "DELTA")
    present = {key: found_rows for key, found_rows in lists.items() if found_rows}
    if output == "markdown":
        parts = [f"### invsync diff: {len(rows)} listing(s) change"]
        if present:
            parts.append("#### Risks to review first")
            parts += [
                f"**{len(found_rows)} {RISK_TITLES[key]}**\n\n"
                + _folded([h.lower() for h in RISK_HEADERS[key]], found_rows)
                for key, found_rows in present.items()
            ]
        else:
            parts.append("No risks found: no missed sale, no pool over 100%, no safety hold.")
        parts += [
            "#### Per store",
            _markdown([h.lower() for h in summary_header], stores),
            f"#### {len(rows)} changed listing(s)",
            _folded([h.lower() for h in rows_header], rows),
        ]
        return "\n\n".join(parts)
    risk_tables = [
        f"{len(found_rows)} {RISK_TITLES[key]}:\n" + _table(RISK_HEADERS[key], found_rows)
        for key, found_rows in present.items()
    ]
    # A terminal reads from the top: the summary leads, the risks follow the rows (markdown leads with them)
    return "\n\n".join([_table(summary_header, stores), _table(rows_header, rows), *risk_tables])
