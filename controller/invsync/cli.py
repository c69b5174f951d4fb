"""`invsync` (also the kubectl plugin `kubectl-invsync`): one register function per verb.

A verb is added by appending its register function to VERBS: it adds a subparser and sets
``func(args) -> exit code``. Bad input anywhere raises InputError: one line on stderr, exit 2.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from .api.loader import Manifests, load_and_validate
from .engine import Risks, World, compute_plan, diff_plans, risks
from .engine.selection import selection
from .errors import InputError
from .render import render_diff, render_explanations, render_plan
from .review import at_ref, read_live, register_snapshot
from .snapshots import load_inventory, load_listings

OUTPUTS = ("table", "json", "markdown")


class _Parser(argparse.ArgumentParser):
    """Usage errors are bad input too: one line, exit 2, no usage dump."""

    def error(self, message: str) -> NoReturn:
        raise InputError(f"{self.prog}: {message}")


# --------------------------------------------------------------------------- shared helpers


def _one_line(text: str) -> str:
    """An error names what the user wrote, which may hold line breaks or control characters (a field
    named '\\x85'): shown escaped, the error stays one line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def _load(paths: Sequence[str]) -> Manifests:
    """The manifests, checked as `invsync validate` checks them: schemas, references, and what each
    rule selects as the engine sees it (a selector matching nothing, a location read twice)."""
    m = load_and_validate(paths)
    for r in m.rules:
        sel = selection(r, m.stores, m.warehouses)
        for text in sel.empty_selectors:
            field, _, what = text.partition(" matches ")
            raise InputError(f"{m.where(r)}: spec.{field}: matches {what} in namespace {r.namespace!r}")
        for where, names in sel.duplicate_locations:
            source, _, location = where.partition("/")
            raise InputError(
                f"{m.where(r)}: spec.warehouses: Warehouses {names[0]!r} and {names[1]!r} both read "
                f"location {location!r} of InventorySource {source!r}; a location is counted once per "
                "rule, so the slots they feed would be held"
            )
    return m


def _world(manifests: Manifests, inventory: str, listings: str, all_names: Sequence[Manifests] = ()) -> World:
    """The world of `manifests` over the snapshot files (names checked against every manifest set)."""
    sets = [manifests, *all_names]
    stock = load_inventory(inventory, {s.name for m in sets for s in m.sources})
    slots = load_listings(listings, {s.name for m in sets for s in m.stores})
    return World(manifests.rules, manifests.stores, manifests.warehouses, stock, slots)


# --------------------------------------------------------------------------- validate


def register_validate(sub: Any) -> None:
    p = sub.add_parser("validate", help="check manifests offline: CRD schemas and cross-resource references")
    p.add_argument(
        "-f", "--filename", dest="files", action="extend", nargs="+", required=True, metavar="PATH"
    )
    p.set_defaults(func=cmd_validate)


def cmd_validate(args: argparse.Namespace) -> int:
    m = _load(args.files)
    print(
        f"ok: {len(m.sources)} InventorySource(s), {len(m.warehouses)} Warehouse(s), "
        f"{len(m.stores)} Store(s), {len(m.rules)} SyncRule(s)"
    )
    return 0


# --------------------------------------------------------------------------- plan


def register_plan(sub: Any) -> None:
    p = sub.add_parser("plan", help="compute every listing's desired quantity offline")
    p.add_argument(
        "-f", "--filename", dest="files", action="extend", nargs="+", required=True, metavar="PATH"
    )
    p.add_argument("--inventory", required=True, metavar="FILE", help="inventory snapshot (JSON or .csv)")
    p.add_argument("--listings", required=True, metavar="FILE", help="listings snapshot (JSON or .csv)")
    p.add_argument("-o", "--output", choices=OUTPUTS, default="table")
    p.add_argument("--explain", metavar="SKU", help="explain, step by step, the quantity of one seller SKU")
    p.set_defaults(func=cmd_plan)


def cmd_plan(args: argparse.Namespace) -> int:
    world = _world(_load(args.files), args.inventory, args.listings)
    if args.explain:
        print(render_explanations(world, args.explain, args.output))
    else:
        print(render_plan(compute_plan(world), args.output))
    return 0


# --------------------------------------------------------------------------- diff


def register_diff(sub: Any) -> None:
    p = sub.add_parser(
        "diff",
        help="what a rule change does to every listing (exit 0 same, 1 changes, 2 error)",
        description="Before: what --base plans (the live quantity where it manages nothing). After: what "
        "--head plans (unchanged where it manages nothing). Both over the same snapshots.",
    )
    base = p.add_mutually_exclusive_group(required=True)
    base.add_argument("--base", action="extend", nargs="+", metavar="PATH")
    base.add_argument("--base-ref", metavar="REF", help="the base is --head's PATHs as they are at git REF")
    p.add_argument("--head", action="extend", nargs="+", required=True, metavar="PATH")
    p.add_argument("--head-ref", metavar="REF", help="take --head's PATHs from git REF, not the working tree")
    p.add_argument("--inventory", metavar="FILE")
    p.add_argument("--listings", metavar="FILE")
    p.add_argument("--live", action="store_true", help="read stock and listings from the cluster (-n)")
    p.add_argument("-n", "--namespace", help="with --live: the namespace to read")
    p.add_argument("-o", "--output", choices=OUTPUTS, default="table")
    p.set_defaults(func=cmd_diff)


def cmd_diff(args: argparse.Namespace) -> int:
    snapshots = (args.inventory, args.listings)
    if not (
        args.namespace and snapshots == (None, None) if args.live else not args.namespace and all(snapshots)
    ):
        raise InputError("diff: give --inventory FILE and --listings FILE, or --live -n NS")
    with contextlib.ExitStack() as refs:
        base_paths = args.base or refs.enter_context(at_ref(args.base_ref, args.head, "--base-ref"))
        head_paths = (
            refs.enter_context(at_ref(args.head_ref, args.head, "--head-ref")) if args.head_ref else args.head
        )
        base, head = _load(base_paths), _load(head_paths)
    if args.live:
        stock, slots = read_live(args.namespace)
        base_world = World(base.rules, base.stores, base.warehouses, stock, slots)
    else:
        base_world = _world(base, args.inventory, args.listings, [head])
    head_world = World(head.rules, head.stores, head.warehouses, base_world.stock, base_world.listings)
    base_plan, head_plan = compute_plan(base_world), compute_plan(head_world)
    diff = diff_plans(base_plan, head_plan)
    found = risks(base_plan, head_plan, head_world) if diff.changed else Risks([], [], [])
    print(render_diff(diff, found, args.output))
    return 1 if diff.changed else 0


# --------------------------------------------------------------------------- entry point

# --------------------------------------------------------------------------- sandbox


def register_sandbox(sub: Any) -> None:
    p = sub.add_parser("sandbox", help="serve TikTok Shop, Shopify and ERP fakes on loopback")
    p.add_argument("--config", required=True, metavar="FILE", help="sandbox YAML")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port (printed at start)")
    p.set_defaults(func=cmd_sandbox)


def cmd_sandbox(args: argparse.Namespace) -> int:
    from .sandbox import server  # aiohttp only for this verb

    return server.main(["--config", args.config, "--host", args.host, "--port", str(args.port)])


# --------------------------------------------------------------------------- operator


def register_operator(sub: Any) -> None:
    """`run`, `sync` and `status`: kopf and the Kubernetes client are imported only when they run."""
    from .operator.commands import add_commands

    add_commands(sub)


VERBS: list[Callable[[Any], None]] = [
    register_validate,
    register_plan,
    register_diff,
    register_snapshot,
    register_sandbox,
    register_operator,
]


def main(argv: Sequence[str] | None = None) -> int:
    parser = _Parser(
        prog="invsync", description="Keep sales-channel stock equal to what warehouses can sell."
    )
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB", parser_class=_Parser)
    for register in VERBS:
        register(sub)
    try:
        args = parser.parse_args(argv)
        return int(args.func(args))
    except InputError as exc:
        print(f"invsync: error: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    except Exception as exc:
        if os.environ.get("INVSYNC_DEBUG"):
            raise
        # A bug, not bad input; still one line (INVSYNC_DEBUG=1 shows the traceback).
        print(
            f"invsync: internal error: {type(exc).__name__}: {exc} (INVSYNC_DEBUG=1 for details)",
            file=sys.stderr,
        )
        return 2
