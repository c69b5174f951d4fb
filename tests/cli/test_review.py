"""Reviewing a rule change against live data (docs/interfaces.md): `invsync snapshot` of examples/
applied to the local API server with the sandbox behind it, `invsync plan` on that snapshot against
what pushing the plan leaves on the channels, `invsync diff --base-ref/--head-ref` in a temporary git
repository, and the one line a user without access to a Secret gets."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from examples_world import EXAMPLES, SANDBOX, example_secrets

from invsync.api.loader import load_and_validate
from invsync.cli import main
from invsync.engine import World, compute_plan, push_batches
from invsync.providers import SalesChannel
from invsync.providers import build_channel as channel_of
from invsync.sandbox.server import Sandbox, SandboxThread
from invsync.snapshots import load_inventory, load_listings
from invsync.testing.cluster import ControlPlane, Kubectl

MANIFESTS = sorted(EXAMPLES.glob("*.yaml"))
INVSYNC = str(Path(sys.executable).parent / "invsync")  # the console script the package installs


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with SandboxThread(EXAMPLES / "sandbox.yaml") as sb:
        yield sb


@pytest.fixture
def live(sandbox: Sandbox, kubectl: Kubectl, namespace: str, tmp_path: Path) -> Path:
    """examples/ pointed at the test's sandbox, applied to the namespace; the directory of those
    manifests."""
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    for path in MANIFESTS:
        (manifests / path.name).write_text(path.read_text().replace(SANDBOX, sandbox.url))
    kubectl("apply", "-n", namespace, "-f", str(manifests), check=True)
    return manifests


def _snapshot(kubeconfig: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """`invsync snapshot` as a user runs it: its own process, KUBECONFIG naming the user's config
    (the Kubernetes client reads $KUBECONFIG once, when it is imported)."""
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    return subprocess.run([INVSYNC, "snapshot", *argv], env=env, capture_output=True, text=True, check=False)


def _sandbox_listings(sb: Sandbox, manifests: Path) -> set[tuple[str, str, str, str, str, int, str]]:
    """Every slot the sandbox's TikTok shops, Shopee shops and Lazada seller hold, from its admin state,
    by Store name."""
    stores = load_and_validate([str(manifests)]).stores
    by_cipher = {st.spec.shop_cipher: st.name for st in stores if st.spec.platform == "tiktok"}
    by_shop = {str(st.spec.shop_id): st.name for st in stores if st.spec.platform == "shopee"}
    [lazada_store] = [st.name for st in stores if st.spec.platform == "lazada"]
    state = httpx.get(f"{sb.url}/_sandbox/state").json()
    tiktok = {
        (by_cipher[shop], sku["seller_sku"], product["id"], sku["id"], inv["warehouse_id"], inv["quantity"],
         product["status"])
        for shop, data in state["tiktok"].items()
        if shop in by_cipher
        for product in data["products"]
        for sku in product["skus"]
        for inv in sku["inventory"]
    }  # fmt: skip
    shopee = {
        (by_shop[shop], m["model_sku"], str(item["item_id"]), str(m["model_id"]), location, stock,
         item["item_status"])
        for shop, data in state["shopee"].items()
        for item in data["items"]
        for m in item["models"]
        for location, stock in m["seller_stock"].items()
    }  # fmt: skip
    [seller] = state["lazada"].values()
    lazada = {
        (lazada_store, sku["SellerSku"], str(p["item_id"]), str(sku["SkuId"]), code, n, p["status"])
        for p in seller["products"]
        for sku in p["skus"]
        for code, n in sku["stock"].items()
    }
    return tiktok | shopee | lazada


@pytest.mark.parametrize(("fmt", "gz"), [("json", False), ("csv", True)])
def test_snapshot_of_the_examples_is_the_sandbox_state(
    live: Path, sandbox: Sandbox, kubeconfig: Path, namespace: str, tmp_path: Path, fmt: str, gz: bool
) -> None:
    out = tmp_path / "snap"
    argv = ["-n", namespace, "--out", str(out), "--format", fmt] + (["--gzip"] if gz else [])
    done = _snapshot(kubeconfig, *argv)
    assert done.returncode == 0, done.stderr
    suffix = f".{fmt}" + (".gz" if gz else "")
    assert sorted(p.name for p in out.iterdir()) == [f"inventory{suffix}", f"listings{suffix}"]
    slots = load_listings(str(out / f"listings{suffix}"))
    got = {
        (x.store, x.sku, x.product_id, x.sku_id, x.channel_warehouse_id, x.quantity, x.status) for x in slots
    }
    assert len(got) == len(slots)
    assert got == _sandbox_listings(sandbox, live)
    stock = load_inventory(str(out / f"inventory{suffix}"))
    erp = httpx.get(f"{sandbox.url}/_sandbox/state").json()["erp"]["wms"]["items"]
    assert {
        (r.sku, r.location, r.available, r.continue_selling, r.enabled) for r in stock if r.source == "wms"
    } == {(i["sku"], i["location"], i["available"], i["continueSelling"], i["enabled"]) for i in erp}
    # examples/snapshots is what the providers read from this sandbox (test_examples_live.py)
    assert sorted(map(repr, stock)) == sorted(
        map(repr, load_inventory(str(EXAMPLES / "snapshots" / "inventory.json")))
    )


async def _push_plan(manifests: Path, inventory: Path, listings: Path) -> None:
    """What a sync pushes: the engine's plan over the snapshot, in the engine's batches, through the
    providers the operator builds."""
    m = load_and_validate([str(manifests)])
    slots = load_listings(str(listings))
    plan = compute_plan(World(m.rules, m.stores, m.warehouses, load_inventory(str(inventory)), slots))
    secrets = example_secrets()  # the manifests' Secrets are examples/' own
    channels: dict[str, SalesChannel] = {
        st.name: channel_of(st, secrets[st.spec.credentials_secret_ref.name]) for st in m.stores
    }
    try:
        for rule in m.rules:
            for batch in push_batches(plan.rules[rule.name].rows, rule.spec.push.order, listings=slots):
                outcomes = await channels[batch.store].push(batch.product_id, batch.updates)
                assert all(o.ok for o in outcomes), outcomes
    finally:
        for channel in channels.values():
            await channel.aclose()


def test_plan_on_a_snapshot_is_what_a_push_leaves_on_the_channels(
    live: Path, kubeconfig: Path, namespace: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before, after = tmp_path / "before", tmp_path / "after"
    assert _snapshot(kubeconfig, "-n", namespace, "--out", str(before)).returncode == 0
    argv = ["plan", "-f", str(live), "--inventory", str(before / "inventory.json"), "--listings"]
    assert main([*argv, str(before / "listings.json"), "-o", "json"]) == 0
    planned = {
        (r["store"], r["channelWarehouseId"], r["sku"]): r
        for r in json.loads(capsys.readouterr().out)["rows"]
    }
    assert any(r["live"] != r["desired"] for r in planned.values())  # the examples start out of sync
    asyncio.run(_push_plan(live, before / "inventory.json", before / "listings.json"))
    assert _snapshot(kubeconfig, "-n", namespace, "--out", str(after)).returncode == 0
    pushed = {
        (x.store, x.channel_warehouse_id, x.sku): x.quantity
        for x in load_listings(str(after / "listings.json"))
    }
    assert {k: pushed[k] for k in planned} == {k: r["desired"] for k, r in planned.items()}
    untouched = {
        (x.store, x.channel_warehouse_id, x.sku): x.quantity
        for x in load_listings(str(before / "listings.json"))
    }
    assert {k: v for k, v in pushed.items() if k not in planned} == {
        k: v for k, v in untouched.items() if k not in planned
    }
    assert (after / "inventory.json").read_text() == (before / "inventory.json").read_text()


def test_snapshot_without_access_to_secrets_says_which_secret_in_one_line(
    live: Path, cluster: ControlPlane, kubectl: Kubectl, namespace: str, tmp_path: Path
) -> None:
    kubectl("create", "-n", namespace, "serviceaccount", "reviewer", check=True)
    kubectl(
        "create", "-n", namespace, "role", "reviewer", "--verb=get,list",
        "--resource=stores.invsync.dev,inventorysources.invsync.dev,warehouses.invsync.dev", check=True,
    )  # fmt: skip
    kubectl(
        "create", "-n", namespace, "rolebinding", "reviewer", "--role=reviewer",
        f"--serviceaccount={namespace}:reviewer", check=True,
    )  # fmt: skip
    config = cluster.write_service_account_kubeconfig(namespace, "reviewer", tmp_path / "reviewer.kubeconfig")
    out = tmp_path / "snap"
    done = _snapshot(config, "-n", namespace, "--out", str(out))
    err = done.stderr
    assert done.returncode == 2, err
    assert err.count("\n") == 1, err
    assert (
        err.startswith("invsync: error: Secret ") and f"needs get on secrets in namespace {namespace}" in err
    )
    assert "-creds (credentials of " in err
    assert not out.exists() or not list(out.iterdir())


def test_a_failed_read_leaves_the_previous_snapshot_alone(
    live: Path, kubeconfig: Path, kubectl: Kubectl, namespace: str, tmp_path: Path
) -> None:
    out = tmp_path / "snap"
    assert _snapshot(kubeconfig, "-n", namespace, "--out", str(out)).returncode == 0
    files = {p.name: p.read_bytes() for p in out.iterdir()}
    patch = json.dumps({"stringData": {"access_token": "revoked"}})
    kubectl("patch", "-n", namespace, "secret", "shopify-main-creds", "-p", patch, check=True)
    done = _snapshot(kubeconfig, "-n", namespace, "--out", str(out))
    err = done.stderr
    assert done.returncode == 2, err
    assert err.count("\n") == 1 and "InventorySource shopify-main" in err and "revoked" not in err, err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == files  # no temporary file left either


# --------------------------------------------------------------------------- diff at git refs


def _git(repo: Path, *argv: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *argv], cwd=repo, check=True,
        capture_output=True,
    )  # fmt: skip


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: Any) -> Path:
    """A git repository whose base commit holds examples/ under manifests/, with the working tree
    changing the EasyBoss rule's execution ratio from 90 to 80; the working directory."""
    repo = tmp_path / "repo"
    shutil.copytree(
        EXAMPLES, repo / "manifests", ignore=shutil.ignore_patterns("snapshots", "sandbox.yaml", "*.md")
    )
    shutil.copytree(EXAMPLES / "snapshots", repo / "snapshots")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "base")
    rules = repo / "manifests" / "40-rules.yaml"
    rules.write_text(rules.read_text().replace("executionRatio: 90", "executionRatio: 80"))
    monkeypatch.chdir(repo)
    return repo


# 100 x 80% x 50% = 40 (was 45); EB-B: 40 -> 16 (was 18), 20 -> 8 (was 9); nothing else moves
CHANGED = [
    {"store": "tiktok-mw", "channelWarehouseId": f"706851727553963700{w}", "sku": sku,
     "before": b, "after": a, "delta": a - b}
    for w, sku, b, a in [(1, "EB-A", 45, 40), (1, "EB-B", 18, 16), (2, "EB-B", 9, 8)]
]  # fmt: skip
DATA = ["--inventory", "snapshots/inventory.json", "--listings", "snapshots/listings.json"]


def _diff(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    capsys.readouterr()
    code = main(["diff", *argv, *DATA, "-o", "json"])
    captured = capsys.readouterr()
    return code, json.loads(captured.out) if code != 2 else captured.err


def test_diff_against_a_git_ref_shows_the_rule_change(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, diff = _diff(capsys, "--base-ref", "main", "--head", "manifests")
    assert code == 1
    assert sorted(diff["rows"], key=lambda r: (r["channelWarehouseId"], r["sku"])) == CHANGED
    assert diff["stores"] == {"tiktok-mw": {"up": 0, "down": 3, "toZero": 0, "unitsMoved": 8}}
    # the same as --base on a second checkout of the base commit
    base = repo.parent / "base"
    subprocess.run(["git", "worktree", "add", "-q", "--detach", str(base), "main"], cwd=repo, check=True)
    assert _diff(capsys, "--base", str(base / "manifests"), "--head", "manifests") == (code, diff)
    # one file of the directory, from a subdirectory, with the head from a ref too
    _git(repo, "commit", "-q", "-am", "lower the execution ratio")
    _git(repo, "checkout", "-q", "main~1", "--", ".")  # the working tree back at the base
    assert _diff(capsys, "--base-ref", "main~1", "--head", "manifests") == (0, {"stores": {}, "rows": []})
    assert _diff(capsys, "--base-ref", "main~1", "--head-ref", "main", "--head", "manifests") == (code, diff)


def test_diff_git_ref_errors_are_one_line(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _diff(capsys, "--base-ref", "no-such-branch", "--head", "manifests")
    assert code == 2 and err == f"invsync: error: --base-ref no-such-branch: no such commit in {repo}\n"
    code, err = _diff(capsys, "--base-ref", "main", "--head", "manifests", "snapshots/new-rules")
    assert code == 2 and err == "invsync: error: snapshots/new-rules: not in git ref main\n"
    code, err = _diff(capsys, "--base-ref", "main", "--head", "/")
    assert code == 2 and err == f"invsync: error: /: outside the git repository {repo}\n"


def test_the_ci_script_validates_diffs_and_posts_the_markdown(repo: Path, tmp_path: Path) -> None:
    """examples/ci/invsync-review.sh on the repository, as a CI job runs it: origin/main is the base."""
    _git(repo, "update-ref", "refs/remotes/origin/main", "main")
    post = tmp_path / "post.sh"
    post.write_text('cp "$1" "$(dirname "$0")/posted.md"\n')
    env = {**os.environ, "INVSYNC": INVSYNC, "POST_CMD": f"sh {post}"}
    script = str(EXAMPLES / "ci" / "invsync-review.sh")
    done = subprocess.run(["sh", script], cwd=repo, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    markdown = (repo / "invsync-diff.md").read_text()
    assert (tmp_path / "posted.md").read_text() == markdown and markdown in done.stdout
    assert markdown.startswith("### invsync diff: 3 listing(s) change\n")
    for row in CHANGED:
        cells = [row["store"], row["channelWarehouseId"], row["sku"], row["before"], row["after"]]
        assert "| " + " | ".join(map(str, cells)) + f" | {row['delta']:+d} |" in markdown.splitlines()
    rules = repo / "manifests" / "40-rules.yaml"
    rules.write_text(rules.read_text().replace("executionRatio: 80", "executionRatio: 180"))
    (tmp_path / "posted.md").unlink()
    done = subprocess.run(["sh", script], cwd=repo, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 2 and "executionRatio" in done.stderr, done.stderr
    assert not (tmp_path / "posted.md").exists()


def test_diff_live_reads_the_namespace_as_snapshot_does(
    live: Path, kubeconfig: Path, namespace: str, repo: Path
) -> None:
    """The cluster's stock and listings are examples/' snapshots, so the rows are those of the files."""
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    argv = [
        INVSYNC,
        "diff",
        "--base-ref",
        "main",
        "--head",
        "manifests",
        "--live",
        "-n",
        namespace,
        "-o",
        "json",
    ]
    done = subprocess.run(argv, cwd=repo, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 1, done.stderr
    rows = json.loads(done.stdout)["rows"]
    assert sorted(rows, key=lambda r: (r["channelWarehouseId"], r["sku"])) == CHANGED


def test_an_unreachable_api_server_is_one_line(kubeconfig: Path, tmp_path: Path) -> None:
    config = yaml.safe_load(kubeconfig.read_text())
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = f"https://127.0.0.1:{port}"
    unreachable = tmp_path / "unreachable.kubeconfig"
    unreachable.write_text(yaml.safe_dump(config))
    done = _snapshot(unreachable, "-n", "default", "--out", str(tmp_path / "snap"))
    assert done.returncode == 2
    assert done.stderr.startswith("invsync: error: cannot reach the Kubernetes API server: ")
    assert done.stderr.count("\n") == 1, done.stderr
    assert not (tmp_path / "snap").exists()


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_gzipped_snapshots_plan_as_the_plain_ones(
    fmt: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plans = []
    for compress in (False, True):
        paths = []
        for kind in ("inventory", "listings"):
            data = (EXAMPLES / "snapshots" / f"{kind}.{fmt}").read_bytes()
            path = tmp_path / f"{kind}.{fmt}" if not compress else tmp_path / f"{kind}.{fmt}.gz"
            path.write_bytes(gzip.compress(data) if compress else data)
            paths.append(str(path))
        assert (
            main(["plan", "-f", str(EXAMPLES), "--inventory", paths[0], "--listings", paths[1], "-o", "json"])
            == 0
        )
        plans.append(json.loads(capsys.readouterr().out))
    assert plans[0] == plans[1] and plans[0]["rows"]


def test_a_corrupt_gzip_snapshot_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    listings = str(EXAMPLES / "snapshots" / "listings.json")
    whole = gzip.compress((EXAMPLES / "snapshots" / "inventory.csv").read_bytes())
    cases = {"plain.json.gz": b"{}", "cut.csv.gz": whole[: len(whole) // 2]}
    expected = {"plain.json.gz": "not a gzip file", "cut.csv.gz": "truncated or corrupt gzip data"}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        assert (
            main(["plan", "-f", str(EXAMPLES), "--inventory", str(tmp_path / name), "--listings", listings])
            == 2
        )
        err = capsys.readouterr().err
        assert err.startswith(f"invsync: error: {tmp_path / name}: {expected[name]}") and err.count("\n") == 1
