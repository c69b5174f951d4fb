"""``make deploy``: the local cluster with its node, the operator's image, manifests/overlays/local.

The operator runs as the StatefulSet of manifests/core from the image built here (testing/image.py),
the sandbox as a Deployment of the same image in invsync-demo, and examples/ in invsync-demo pointed
at it. Waits until every SyncRule is Ready. ``make deploy-down`` removes all of it. tests/deploy/
run the same steps. With ``--installer helm`` (``make deploy INSTALLER=helm``) the operator is the
release ``invsync`` of charts/invsync instead of manifests/core, as docs/deploy.md ("Helm") installs it.

    python -m invsync.testing.deploy up|down|image [--tag dev] [--installer kustomize|helm]
                                     [--state-dir .invsync]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from . import cluster, image, node

OVERLAY = cluster.REPO_ROOT / "manifests" / "overlays" / "local"
DEMO = OVERLAY / "demo"
CRDS = cluster.REPO_ROOT / "manifests" / "crds"
NAMESPACE_MANIFEST = cluster.REPO_ROOT / "manifests" / "core" / "namespace.yaml"
CHART = cluster.REPO_ROOT / "charts" / "invsync"
HELM_BUILD_SCRIPT = cluster.REPO_ROOT / "hack" / "build-helm.sh"
RELEASE = "invsync"
INSTALLERS = ("kustomize", "helm")
OPERATOR_NAMESPACE = "invsync-system"
DEMO_NAMESPACE = "invsync-demo"
SANDBOX_PORT = 18090
READY_TIMEOUT = 300.0


def _log(message: str) -> None:
    print(f"[deploy] {message}", file=sys.stderr, flush=True)


def helm_binary() -> Path:
    """``$INVSYNC_HELM`` when set (make sets it), else what hack/build-helm.sh builds or has cached."""
    configured = os.environ.get("INVSYNC_HELM")
    path = Path(configured) if configured else cluster.built_path(HELM_BUILD_SCRIPT)
    if not os.access(path, os.X_OK):
        raise cluster.ControlPlaneError(f"helm not found at {path}: run make helm (or unset INVSYNC_HELM)")
    return path


class Deployment:
    """kubectl against the cluster of ``kubeconfig`` (the node's, .invsync/kubeconfig by default)."""

    def __init__(self, kubeconfig: Path, bin_dir: Path | None = None) -> None:
        self.kubeconfig = kubeconfig
        self.bin_dir = bin_dir or cluster.binary_dir()

    def kubectl(self, *args: str, check: bool = True, timeout: float = 120.0) -> str:
        done = subprocess.run(
            [str(self.bin_dir / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise cluster.ControlPlaneError(f"kubectl {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json"))

    def load_image(self, tag: str) -> str:
        """Build ``invsync:<tag>`` and import it into the node."""
        archive = image.cache_dir() / f"invsync-{tag}.oci.tar"
        name = image.build_operator_image(tag, archive)
        node.import_image(archive)
        archive.unlink()
        return name

    def helm(self, *args: str, timeout: float = READY_TIMEOUT) -> str:
        """helm against the same cluster, in the operator's namespace."""
        done = subprocess.run(
            [str(helm_binary()), f"--kubeconfig={self.kubeconfig}", "-n", OPERATOR_NAMESPACE, *args],
            capture_output=True,
            text=True,
            timeout=timeout + 30,
            check=False,
        )
        if done.returncode != 0:
            raise cluster.ControlPlaneError(f"helm {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

    def apply(self, installer: str = "kustomize", tag: str = "dev") -> None:
        """The CRDs first (the custom resources of examples/ need them established), then the overlay,
        or with helm the chart's release and then the overlay's demo/ (the sandbox and examples/)."""
        if installer == "helm":
            self.kubectl("apply", "-f", str(NAMESPACE_MANIFEST))  # helm keeps its release there
            self.helm(
                "install", RELEASE, str(CHART), "--wait", f"--timeout={int(READY_TIMEOUT)}s",
                "--set", f"image.tag={tag}", "--set", "image.pullPolicy=Never",
            )  # fmt: skip
            crds = [
                f"customresourcedefinition/{yaml.safe_load(path.read_text())['metadata']['name']}"
                for path in sorted((CHART / "crds").glob("*.yaml"))
            ]
            self.kubectl("wait", "--for=condition=Established", "--timeout=60s", *crds)
            self.kubectl("apply", "-k", str(DEMO))
            return
        crds = self.kubectl("apply", "-k", str(CRDS), "-o", "name").split()
        self.kubectl("wait", "--for=condition=Established", "--timeout=60s", *crds)
        self.kubectl("apply", "-k", str(OVERLAY))

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """The StatefulSet and the sandbox rolled out, every SyncRule Ready."""
        seconds = f"--timeout={int(timeout)}s"
        self.kubectl(
            "rollout",
            "status",
            "-n",
            DEMO_NAMESPACE,
            "deployment/invsync-sandbox",
            seconds,
            timeout=timeout + 10,
        )
        self.kubectl(
            "rollout",
            "status",
            "-n",
            OPERATOR_NAMESPACE,
            "statefulset/invsync",
            seconds,
            timeout=timeout + 10,
        )
        self.wait_rules_ready(timeout)

    def wait_rules_ready(self, timeout: float = READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while True:
            rules = self.get("syncrules", "-n", DEMO_NAMESPACE)["items"]
            waiting = [r["metadata"]["name"] for r in rules if not _ready(r)]
            if rules and not waiting:
                return
            if time.monotonic() > deadline:
                raise cluster.ControlPlaneError(
                    f"SyncRules not Ready in {int(timeout)}s: {', '.join(waiting)}"
                )
            time.sleep(1)

    def sandbox_url(self) -> str:
        """The in-cluster sandbox through its Service (kube-proxy's rules reach it from this machine)."""
        service = self.get("service", "-n", DEMO_NAMESPACE, "invsync-sandbox")
        return f"http://{service['spec']['clusterIP']}:{SANDBOX_PORT}"


def _ready(resource: dict[str, Any]) -> bool:
    conditions = (resource.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _up(state_dir: Path, tag: str, installer: str) -> int:
    if installer == "helm":
        helm_binary()  # built (or found) before the cluster starts, not after
    started = cluster.main(["up", "--node", "--state-dir", str(state_dir)])
    if started != 0:
        return started
    deployment = Deployment((state_dir / "kubeconfig").resolve())
    _log(f"image invsync:{tag}: {deployment.load_image(tag)}")
    if installer == "helm":
        chart, demo = CHART.relative_to(cluster.REPO_ROOT), DEMO.relative_to(cluster.REPO_ROOT)
        _log(f"helm install {RELEASE} {chart}, then {demo}")
    else:
        _log(f"applying {OVERLAY.relative_to(cluster.REPO_ROOT)}")
    deployment.apply(installer, tag)
    _log("waiting for the operator, the sandbox and every SyncRule to be Ready")
    deployment.wait_ready()
    kubectl = deployment.bin_dir / "kubectl"
    upgrade = (
        f"{helm_binary()} upgrade {RELEASE} {CHART} -n {OPERATOR_NAMESPACE} --reuse-values "
        "--set image.tag=dev2"
        if installer == "helm"
        else f"{kubectl} set image -n {OPERATOR_NAMESPACE} statefulset/invsync operator=invsync:dev2"
    )
    print(
        f"""
invsync runs on the local node: the StatefulSet invsync in {OPERATOR_NAMESPACE}, the sandbox and
examples/ in {DEMO_NAMESPACE}.

  export KUBECONFIG={deployment.kubeconfig}
  Watch it:      {kubectl} get invsync -n {DEMO_NAMESPACE}
                 {kubectl} get pods -n {OPERATOR_NAMESPACE} -o wide
  Logs:          {kubectl} logs -n {OPERATOR_NAMESPACE} invsync-0 -f
  The channel:   curl -s {deployment.sandbox_url()}/_sandbox/state | python3 -m json.tool
  Change stock:  curl -s -XPOST {deployment.sandbox_url()}/_sandbox/stock \\
                   -d '{{"source": "wms", "location": "wh1", "sku": "EB-A", "available": 40}}'
  Upgrade:       {sys.executable} -m invsync.testing.deploy image --tag dev2 &&
                 {upgrade}
  Remove it all: make deploy-down
"""
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m invsync.testing.deploy", description="The local deployment of `make deploy`."
    )
    parser.add_argument("command", choices=["up", "down", "image"])
    parser.add_argument("--tag", default="dev", help="the image tag (default: dev)")
    parser.add_argument(
        "--installer", choices=INSTALLERS, default="kustomize",
        help="the operator from manifests/core (default) or the Helm chart charts/invsync",
    )  # fmt: skip
    parser.add_argument("--state-dir", type=Path, default=Path(".invsync"), help="default: .invsync")
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            return _up(args.state_dir, args.tag, args.installer)
        if args.command == "image":
            Deployment(args.state_dir / "kubeconfig").load_image(args.tag)
            return 0
        return cluster.main(["down", "--node", "--state-dir", str(args.state_dir)])
    except (cluster.ControlPlaneError, image.ImageError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
