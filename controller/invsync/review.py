"""Reviewing a rule change against live data: `invsync snapshot`, and what `invsync diff --live` and
`--base-ref / --head-ref` read (docs/interfaces.md, "Command line" and "Snapshot files").

The live read goes through the providers the operator builds (operator/kube.py KubePorts), so it has
their page limits, rate limits and retries; it is all or nothing: any read that fails fails the
command, and a snapshot file appears only complete. The Kubernetes client is imported only here, when
one of these runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import ValidationError

from .api import InventorySource, Store, Warehouse
from .api.common import Resource
from .engine.records import Listing, StockRecord
from .errors import InputError
from .providers import ProviderError
from .snapshots import is_csv, write_inventory, write_listings, writing

if TYPE_CHECKING:
    from .operator.kube import Kube, KubePorts

R = TypeVar("R", bound=Resource)


# --------------------------------------------------------------------------- reading the cluster


@contextlib.contextmanager
def _api_errors(*, forbidden: str, failed: str, unreachable: str) -> Iterator[None]:
    """A refused or failed API server call as one line naming what was asked (imported late: the
    offline commands never load the Kubernetes client)."""
    import urllib3
    from kubernetes.client.exceptions import ApiException

    try:
        yield
    except ApiException as exc:
        if exc.status == 403:
            raise InputError(forbidden) from None
        raise InputError(f"{failed}: {exc.status} {exc.reason}") from None
    except urllib3.exceptions.HTTPError as exc:
        raise InputError(f"{unreachable}: {exc}") from None


def _objects(kube: Kube, model: type[R], namespace: str) -> list[R]:
    """The namespace's resources of one kind, parsed as the operator parses them (status left out)."""
    from .operator.kube import PLURALS

    kind, plural = model.__name__, PLURALS[model.__name__]
    with _api_errors(
        forbidden=f"cannot list {plural} in namespace {namespace}: forbidden "
        f"(the user needs list on {plural}.invsync.dev in {namespace})",
        failed=f"listing {plural} in namespace {namespace}",
        unreachable="cannot reach the Kubernetes API server",
    ):
        bodies = kube.list(kind, namespace)
    found = []
    for body in bodies:
        try:
            found.append(model.model_validate({k: v for k, v in body.items() if k != "status"}))
        except ValidationError as exc:
            error = exc.errors()[0]
            field = ".".join(str(p) for p in error["loc"])
            name = body.get("metadata", {}).get("name")
            raise InputError(f"{kind} {namespace}/{name}: {field}: {error['msg']}") from None
    return found


async def _secret(ports: KubePorts, namespace: str, name: str, owner: str) -> Mapping[str, str]:
    with _api_errors(
        forbidden=f"Secret {name} (credentials of {owner}): forbidden: the user needs get on secrets "
        f"in namespace {namespace}",
        failed=f"Secret {namespace}/{name}",
        unreachable=f"Secret {namespace}/{name}: cannot reach the Kubernetes API server",
    ):
        secret = await ports.read_secret(namespace, name)
    if secret is None:
        raise InputError(f"Secret {name} (credentials of {owner}) not found in namespace {namespace}")
    return secret


async def _stock(
    ports: KubePorts, src: InventorySource, warehouses: Sequence[Warehouse]
) -> list[StockRecord]:
    """Every record at the locations the source's Warehouses read; a Warehouse whose location the
    source does not know, or has inactive, fails the read (the operator would hold its slots)."""
    ref = src.spec.credentials_secret_ref
    owner = f"InventorySource {src.name}"
    secret = None if ref is None else await _secret(ports, src.namespace, ref.name, owner)
    try:
        provider = ports.source(src, secret)
    except ProviderError as exc:
        raise InputError(f"{owner}: {exc}") from None
    try:
        locations = {loc.id: loc for loc in await provider.list_locations()}
        for wh in warehouses:
            loc = locations.get(wh.spec.location_id)
            if locations and (loc is None or not loc.active):
                state = "not found" if loc is None else "inactive"
                raise InputError(f"Warehouse {wh.name}: location {wh.spec.location_id} {state} in {owner}")
        return await provider.read_stock(sorted({wh.spec.location_id for wh in warehouses}))
    except ProviderError as exc:
        raise InputError(f"{owner} could not be read: {exc}") from None
    finally:
        await provider.aclose()


async def _listings(ports: KubePorts, store: Store) -> list[Listing]:
    secret_name = store.spec.credentials_secret_ref.name
    secret = await _secret(ports, store.namespace, secret_name, f"Store {store.name}")
    try:
        channel = ports.channel(store, secret)
    except ProviderError as exc:
        raise InputError(f"Store {store.name}: {exc}") from None
    try:
        return await channel.list_listings()
    except ProviderError as exc:
        raise InputError(f"Store {store.name} could not be read: {exc}") from None
    finally:
        await channel.aclose()


async def _read(namespace: str) -> tuple[list[StockRecord], list[Listing]]:
    from .operator.kube import Kube, KubePorts, load_config

    kube = Kube(load_config())
    ports = KubePorts(kube)
    sources = await asyncio.to_thread(_objects, kube, InventorySource, namespace)
    warehouses = await asyncio.to_thread(_objects, kube, Warehouse, namespace)
    stores = await asyncio.to_thread(_objects, kube, Store, namespace)
    reads = [
        _stock(ports, src, used)
        for src in sources
        if (used := [w for w in warehouses if w.spec.source_ref.name == src.name])
    ]
    stock_reads, listing_reads = await asyncio.gather(
        asyncio.gather(*reads), asyncio.gather(*(_listings(ports, st) for st in stores))
    )
    stock = sorted((r for rs in stock_reads for r in rs), key=lambda r: (r.source, r.location, r.sku))
    slots = sorted(
        (x for xs in listing_reads for x in xs),
        key=lambda x: (x.store, x.product_id, x.sku_id, x.channel_warehouse_id),
    )
    return stock, slots


def read_live(namespace: str) -> tuple[list[StockRecord], list[Listing]]:
    """The namespace's live stock and channel slots, as `invsync snapshot` writes them."""
    return asyncio.run(_read(namespace))


# --------------------------------------------------------------------------- snapshot


def register_snapshot(sub: Any) -> None:
    p = sub.add_parser(
        "snapshot",
        help="write the namespace's live stock and listings as snapshot files",
        description="Reads the namespace's InventorySources, Warehouses, Stores and their Secrets with "
        "your kubeconfig, and the stock and listings through the providers the operator uses; writes "
        "DIR/inventory.json and DIR/listings.json (all or nothing).",
    )
    p.add_argument("-n", "--namespace", required=True)
    p.add_argument("--out", required=True, metavar="DIR", type=Path)
    p.add_argument("--format", choices=("json", "csv"), default="json")
    p.add_argument("--gzip", action="store_true", help="gzip-compress the files (a .gz name)")
    p.set_defaults(func=cmd_snapshot)


def cmd_snapshot(args: argparse.Namespace) -> int:
    stock, slots = read_live(args.namespace)
    suffix = f".{args.format}" + (".gz" if args.gzip else "")
    inventory, listings = args.out / f"inventory{suffix}", args.out / f"listings{suffix}"
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        with writing(inventory) as inv_out, writing(listings) as slot_out:  # both renamed, or neither
            write_inventory(inv_out, stock, is_csv(inventory))
            write_listings(slot_out, slots, is_csv(listings))
    except OSError as exc:
        raise InputError(f"{exc.filename or args.out}: cannot write: {exc.strerror}") from None
    print(f"{inventory}: {len(stock)} stock records\n{listings}: {len(slots)} listings")
    return 0


# --------------------------------------------------------------------------- manifests at a git ref


def _git(*argv: str, cwd: str | Path | None = None) -> bytes:
    done = subprocess.run(["git", *argv], cwd=cwd, capture_output=True, check=False)
    if done.returncode != 0:
        lines = done.stderr.decode(errors="replace").strip().splitlines() or [f"exit {done.returncode}"]
        raise InputError(f"git {argv[0]}: {lines[0]}")
    return done.stdout


@contextlib.contextmanager
def at_ref(ref: str, paths: Sequence[str], flag: str) -> Iterator[list[str]]:
    """`paths` (files or directories of the working tree's repository) as they are at git `ref`,
    copied into a temporary directory for as long as the block runs."""
    try:
        top = Path(_git("rev-parse", "--show-toplevel").decode().strip())
    except InputError as exc:
        raise InputError(f"{flag} {ref}: {exc}") from None
    except OSError:
        raise InputError(f"{flag} {ref}: git is not installed") from None
    try:
        _git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", cwd=top)
    except InputError:
        raise InputError(f"{flag} {ref}: no such commit in {top}") from None
    slug = "".join(c if c.isalnum() else "-" for c in ref)[:40]
    with tempfile.TemporaryDirectory(prefix=f"invsync-{slug}-") as tmp:
        copied = []
        for path in paths:
            rel = os.path.relpath(os.path.abspath(path), top)
            if rel.startswith(".."):
                raise InputError(f"{path}: outside the git repository {top}")
            listed = _git("ls-tree", "-r", "-z", "--full-name", ref, "--", rel, cwd=top).split(b"\0")
            entries = [entry.decode().split("\t", 1) for entry in listed if entry]
            blobs = [(meta.split()[2], name) for meta, name in entries if meta.split()[1] == "blob"]
            if not blobs:
                raise InputError(f"{path}: not in git ref {ref}")
            for sha, name in blobs:
                target = Path(tmp, name)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(_git("cat-file", "blob", sha, cwd=top))
            copied.append(str(Path(tmp, rel)))
        yield copied
