"""The CRDs against the real kube-apiserver and kubectl: installation, examples, printer columns,
field docs, the status subresource and ServiceAccount tokens (README, "Local control plane")."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from invsync.api.kinds import KINDS, SyncRuleSpec, WarehouseSelection
from invsync.testing.cluster import REPO_ROOT, ControlPlane, Kubectl

pytestmark = pytest.mark.e2e


def _objects(path: Path) -> list[dict[str, Any]]:
    """The Kubernetes objects in a YAML file."""
    docs = yaml.safe_load_all(path.read_text())
    return [d for d in docs if isinstance(d, dict) and "apiVersion" in d and "kind" in d]


EXAMPLES = sorted((REPO_ROOT / "examples").glob("*.yaml"))

SYNC_RULE = """
apiVersion: invsync.dev/v1alpha1
kind: SyncRule
metadata: {name: rule}
spec:
  stores: {names: [tiktok-id]}
  warehouses: [{name: jakarta-main, ratio: %(ratio)d}]
"""


def _running(pid: int) -> bool:
    """Alive and not a zombie (an exited process has an empty command line)."""
    try:
        return bool(Path(f"/proc/{pid}/cmdline").read_bytes())
    except FileNotFoundError:
        return False


def _get(kubectl: Kubectl, namespace: str, *args: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(
        kubectl("get", "-n", namespace, *args, "-o", "json", check=True).stdout
    )
    return result


def test_crds_are_established(kubectl: Kubectl) -> None:
    applied = kubectl("apply", "-f", str(REPO_ROOT / "crds"), "-o", "name", check=True).stdout.split()
    assert len(applied) == len(KINDS)
    kubectl("wait", "--for=condition=Established", "--timeout=60s", *applied, check=True)
    crds = json.loads(kubectl("get", "crd", "-o", "json", check=True).stdout)["items"]
    established = {
        c["spec"]["names"]["kind"]
        for c in crds
        if c["spec"]["group"] == "invsync.dev"
        and any(x["type"] == "Established" and x["status"] == "True" for x in c["status"]["conditions"])
    }
    assert established == set(KINDS)
    resources = kubectl("api-resources", "--api-group=invsync.dev", "-o", "wide", check=True).stdout
    for short in ("isrc", "wh", "store", "sr"):
        assert f" {short} " in resources


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_is_accepted(example: Path, kubectl: Kubectl, namespace: str) -> None:
    manifest = yaml.safe_dump_all(_objects(example))
    applied = kubectl("apply", "-n", namespace, "-f", "-", input=manifest)
    assert applied.returncode == 0, applied.stderr
    stored = json.loads(
        kubectl("get", "-n", namespace, "-f", "-", "-o", "json", input=manifest, check=True).stdout
    )
    for item in stored.get("items", [stored]):
        if item["apiVersion"].startswith("invsync.dev/"):
            KINDS[item["kind"]].model_validate(item)  # what the server stored, defaults included, reads back


def test_examples_directory_applies_whole(kubectl: Kubectl, namespace: str) -> None:
    """As a user runs it: `kubectl apply -f examples/`, every file, nothing refused."""
    applied = kubectl("apply", "-n", namespace, "-f", str(REPO_ROOT / "examples"), "-o", "name")
    assert applied.returncode == 0, applied.stderr
    names = applied.stdout.split()
    assert "configmap/invsync-sandbox" in names
    assert sum(n.startswith("syncrule.invsync.dev/") for n in names) >= 3


def test_printer_columns(kubectl: Kubectl, namespace: str) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", input=SYNC_RULE % {"ratio": 50}, check=True)
    kubectl(
        "patch", "-n", namespace, "syncrule", "rule", "--subresource=status", "--type=merge", "-p",
        json.dumps({"status": {
            "summary": {"listings": 12, "inSync": 10, "drifted": 2},
            "conditions": [{
                "type": "Ready", "status": "False", "reason": "SourceUnavailable",
                "message": "inventorysource shopify-main unreachable", "observedGeneration": 1,
                "lastTransitionTime": "2026-01-01T00:00:00Z",
            }],
        }}),
        check=True,
    )  # fmt: skip
    table = kubectl("get", "-n", namespace, "sr", check=True).stdout.splitlines()
    assert table[0].split() == ["NAME", "LISTINGS", "IN-SYNC", "DRIFTED", "READY", "REASON", "AGE"]
    assert table[1].split()[:6] == ["rule", "12", "10", "2", "False", "SourceUnavailable"]
    wide = kubectl("get", "-n", namespace, "sr", "-o", "wide", check=True).stdout
    assert "MESSAGE" in wide and "inventorysource shopify-main unreachable" in wide

    kubectl("create", "-n", namespace, "-f", "-", check=True, input="""
apiVersion: invsync.dev/v1alpha1
kind: Warehouse
metadata: {name: jakarta-main}
spec: {sourceRef: {name: shopify-main}, locationId: "gid://shopify/Location/1"}
""")  # fmt: skip
    category = kubectl("get", "-n", namespace, "invsync", check=True).stdout
    assert "syncrule.invsync.dev/rule" in category and "warehouse.invsync.dev/jakarta-main" in category
    assert "SOURCE" in category and "TYPE" in category and "SelfOwned" in category  # Warehouse columns


def test_explain_teaches_the_fields(kubectl: Kubectl, crds: list[str]) -> None:
    deadline = time.monotonic() + 30  # the OpenAPI document follows Established by a moment
    while (
        explain := kubectl("explain", "syncrule.spec.warehouses")
    ).returncode and time.monotonic() < deadline:
        time.sleep(0.5)
    assert explain.returncode == 0, explain.stderr
    explained = explain.stdout
    text = " ".join(explained.split())
    assert " ".join((SyncRuleSpec.model_fields["warehouses"].description or "").split()) in text
    for field in ("name", "ratio", "selector"):
        description = WarehouseSelection.model_fields[field].description or ""
        assert field in explained and " ".join(description.split()) in text


def test_status_is_a_subresource_with_generation_semantics(kubectl: Kubectl, namespace: str) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", input=SYNC_RULE % {"ratio": 50}, check=True)
    assert _get(kubectl, namespace, "sr", "rule")["metadata"]["generation"] == 1

    status = {"status": {"observedGeneration": 1, "summary": {"listings": 7}}}
    patch = ("patch", "-n", namespace, "sr", "rule", "--type=merge", "-p", json.dumps(status))
    kubectl(*patch, "--subresource=status", check=True)
    rule = _get(kubectl, namespace, "sr", "rule")
    assert rule["metadata"]["generation"] == 1, "a status write must not bump generation"
    assert rule["status"]["observedGeneration"] == 1 and rule["status"]["summary"]["listings"] == 7

    # status through the main resource is ignored by the API server
    kubectl(*patch[:-1], json.dumps({"status": {"observedGeneration": 99}}), check=True)
    assert _get(kubectl, namespace, "sr", "rule")["status"]["observedGeneration"] == 1

    # a user's spec change (kubectl apply, as GitOps does) bumps generation and keeps status
    kubectl("apply", "-n", namespace, "-f", "-", input=SYNC_RULE % {"ratio": 60}, check=True)
    rule = _get(kubectl, namespace, "sr", "rule")
    assert rule["spec"]["warehouses"][0]["ratio"] == 60
    assert rule["metadata"]["generation"] == 2
    assert rule["status"]["observedGeneration"] == 1 and rule["status"]["summary"]["listings"] == 7

    # metadata-only changes (the operator's annotations) do not bump generation
    kubectl("annotate", "-n", namespace, "sr", "rule", "invsync.dev/requested-at=now", check=True)
    assert _get(kubectl, namespace, "sr", "rule")["metadata"]["generation"] == 2


def test_service_account_token_runs_under_its_rbac(
    cluster: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    kubectl = cluster.kubectl
    kubectl("create", "-n", namespace, "serviceaccount", "operator", check=True)
    kubectl(
        "create", "-n", namespace, "role", "read-rules", "--verb=get,list", "--resource=syncrules", check=True
    )
    kubectl(
        "create", "-n", namespace, "rolebinding", "read-rules", "--role=read-rules",
        f"--serviceaccount={namespace}:operator", check=True,
    )  # fmt: skip
    config = cluster.write_service_account_kubeconfig(namespace, "operator", tmp_path / "sa.kubeconfig")
    assert config.stat().st_mode & 0o077 == 0, "a kubeconfig with a token is private"

    whoami = json.loads(kubectl("auth", "whoami", "-o", "json", kubeconfig=config, check=True).stdout)
    assert whoami["status"]["userInfo"]["username"] == f"system:serviceaccount:{namespace}:operator"
    assert kubectl("get", "syncrules", kubeconfig=config).returncode == 0  # context namespace is set
    denied = kubectl("get", "secrets", kubeconfig=config)
    assert denied.returncode != 0 and "forbidden" in denied.stderr
    elsewhere = kubectl("get", "syncrules", "-n", "default", kubeconfig=config)
    assert elsewhere.returncode != 0 and "forbidden" in elsewhere.stderr


def test_make_cluster_up_and_down(cluster: ControlPlane, tmp_path: Path) -> None:
    """What a newcomer runs: make cluster-up, kubectl get ns with that kubeconfig, make cluster-down."""
    state = tmp_path / "state"
    env = {**os.environ, "INVSYNC_BIN_DIR": str(cluster.bin_dir)}

    def make(target: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["make", "-C", str(REPO_ROOT), target, f"INVSYNC_STATE_DIR={state}"],
            env=env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip

    up = make("cluster-up")
    assert up.returncode == 0, up.stdout + up.stderr
    assert f"KUBECONFIG={state / 'kubeconfig'}" in up.stdout
    try:
        recorded = json.loads((state / "control-plane.json").read_text())
        namespaces = cluster.kubectl("get", "ns", kubeconfig=state / "kubeconfig", check=True).stdout
        assert "kube-system" in namespaces
        again = make("cluster-up")
        assert again.returncode == 0 and "already running" in again.stdout
    finally:
        down = make("cluster-down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert not _running(recorded["pid"])
    with pytest.raises(ConnectionRefusedError):  # the API server is gone too
        socket.create_connection(("127.0.0.1", int(recorded["server"].rsplit(":", 1)[1])), timeout=5)
    assert not (state / "kubeconfig").exists() and not (state / "control-plane").exists()
    stopped = subprocess.run(
        [sys.executable, "-m", "invsync.testing.cluster", "status", "--state-dir", str(state)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert stopped.returncode == 1 and "not running" in stopped.stdout


def _processes_using(path: Path) -> list[int]:
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            if str(path).encode() in cmdline.read_bytes():
                pids.append(int(cmdline.parent.name))
    return pids


def test_teardown_leaves_no_processes_or_files(cluster: ControlPlane) -> None:
    """Also when the test run is SIGKILLed: its servers die with it, its files go at the next start."""
    script = (
        "import time\n"
        "from invsync.testing.cluster import ControlPlane, binary_dir\n"
        "plane = ControlPlane(binary_dir())\n"
        "plane.start()\n"
        "print(plane.work_dir, flush=True)\n"
        "time.sleep(600)\n"
    )
    killed = subprocess.Popen(
        [sys.executable, "-c", script],
        env={**os.environ, "INVSYNC_BIN_DIR": str(cluster.bin_dir)}, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert killed.stdout is not None
    orphan = Path(killed.stdout.readline().strip())
    assert orphan.is_dir() and len(_processes_using(orphan)) == 2
    killed.kill()
    killed.wait()
    deadline = time.monotonic() + 20
    while _processes_using(orphan) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _processes_using(orphan), "etcd and kube-apiserver must die with the process that started them"

    with ControlPlane(cluster.bin_dir) as plane:
        work_dir = plane.work_dir
        assert not orphan.exists(), "a new start removes the files of a killed run"
        assert plane.kubectl("get", "--raw", "/readyz").stdout == "ok"
    assert not work_dir.exists() and not _processes_using(work_dir)


def _pinned(module_dir: str, module: str) -> str:
    """The version hack/<module_dir>/go.mod pins for ``module``."""
    for line in (REPO_ROOT / "hack" / module_dir / "go.mod").read_text().splitlines():
        words = line.split()
        if len(words) >= 2 and words[-2] == module:
            return words[-1]
    raise AssertionError(f"{module} not pinned in hack/{module_dir}/go.mod")


def test_binaries_report_their_pinned_versions(cluster: ControlPlane) -> None:
    versions = json.loads(cluster.kubectl("version", "-o", "json", check=True).stdout)
    staging = _pinned("kubectl", "k8s.io/kubectl")  # staging modules v0.X.Y ship in Kubernetes v1.X.Y
    assert versions["clientVersion"]["gitVersion"] == staging.replace("v0.", "v1.", 1)
    assert versions["serverVersion"]["gitVersion"] == _pinned("kube-apiserver", "k8s.io/kubernetes")
    etcd = subprocess.run(
        [str(cluster.bin_dir / "etcd"), "--version"], capture_output=True, text=True, check=True
    )
    assert f"etcd Version: {_pinned('etcd', 'go.etcd.io/etcd/server/v3').removeprefix('v')}" in etcd.stdout
