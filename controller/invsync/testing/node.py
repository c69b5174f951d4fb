"""A real single Kubernetes node on this machine, beside the local control plane, with no Docker.

kube-controller-manager and kube-scheduler make and place Pods, the kubelet runs them through
containerd and runc, kube-proxy programs Services in iptables, CoreDNS answers cluster names; all
built from pinned modules by ``hack/build-control-plane.sh --node``. containerd, runc and the CNI
plugins are Debian's (``make node-packages``). Pods live on the bridge ``invsync0``
(``POD_CIDR``); the API server and CoreDNS listen on the bridge's own address, so pods reach
them and nothing listens beyond this machine.

Everything the node makes outside its work directory (the bridge, iptables chains, mounts,
network namespaces, cgroups, containerd's state, pod processes) is removed by ``clean_up``,
which also clears what a killed run left behind. Needs root.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from . import cluster
from .image import PAUSE_IMAGE

NODE_NAME = "invsync-node"
BRIDGE = "invsync0"
POD_CIDR = "10.88.0.0/16"
NODE_ADDRESS = "10.88.0.1"  # the bridge's address: the pods' gateway, the API server's and DNS's
CLUSTER_DOMAIN = "cluster.local"
ROOT = Path("/var/lib/invsync-node")  # containerd's images and snapshots, the kubelet's pods and volumes
RUN = Path("/run/invsync-node")  # containerd's socket, tasks and the pods' network namespaces
CONTAINERD_SOCKET = RUN / "containerd.sock"
NODE_BINARIES = ("kubelet", "kube-proxy", "kube-controller-manager", "kube-scheduler", "coredns")
CNI_BIN_DIR = Path("/usr/lib/cni")
SYSTEM_TOOLS = ("containerd", "runc", "ctr", "iptables", "ip")
READY_TIMEOUT = 180.0
_IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")
_SAVED_SYSCTL = ROOT.parent / "invsync-node.ip_forward"  # survives ROOT's removal until the bridge is gone
CGROUP_ROOT = Path("/sys/fs/cgroup")


class NodeError(cluster.ControlPlaneError):
    """The node could not be started or cleaned."""


def check_prerequisites(bin_dir: Path) -> None:
    """A clear error naming what is missing, before anything is started."""
    if os.geteuid() != 0:
        raise NodeError("the local node runs containers and programs iptables: run it as root")
    missing = [name for name in NODE_BINARIES if not os.access(bin_dir / name, os.X_OK)]
    if missing:
        raise NodeError(
            f"{', '.join(missing)} not found in {bin_dir}: run hack/build-control-plane.sh --node"
        )
    tools = [tool for tool in SYSTEM_TOOLS if shutil.which(tool) is None]
    plugins = [p for p in ("bridge", "host-local", "loopback") if not (CNI_BIN_DIR / p).exists()]
    if tools or plugins:
        lacking = tools + [f"{CNI_BIN_DIR}/{p}" for p in plugins]
        raise NodeError(f"{', '.join(lacking)} missing: run `make node-packages`")


def _run(argv: Sequence[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise NodeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return done


def create_bridge() -> None:
    """The pods' bridge with the node's address, up before the API server binds to it."""
    if _run(["ip", "link", "show", BRIDGE], check=False).returncode != 0:
        _run(["ip", "link", "add", BRIDGE, "type", "bridge"])
    prefix = POD_CIDR.split("/")[1]
    if NODE_ADDRESS not in _run(["ip", "-o", "addr", "show", "dev", BRIDGE]).stdout:
        _run(["ip", "addr", "add", f"{NODE_ADDRESS}/{prefix}", "dev", BRIDGE])
    _run(["ip", "link", "set", BRIDGE, "up"])
    # Service traffic DNATed to another pod on the bridge is routed back out of it.
    if not _SAVED_SYSCTL.exists():
        _SAVED_SYSCTL.parent.mkdir(parents=True, exist_ok=True)
        _SAVED_SYSCTL.write_text(_IP_FORWARD.read_text())
    _IP_FORWARD.write_text("1\n")


class Node:
    """The node's processes, started over a ``ControlPlane`` made with ``node_address=NODE_ADDRESS``."""

    def __init__(self, plane: cluster.ControlPlane) -> None:
        if plane.node_address != NODE_ADDRESS:
            raise NodeError(f"the control plane must serve on the node's address {NODE_ADDRESS}")
        self.plane = plane
        self.dir = plane.work_dir / "node"
        self._processes: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, images: Sequence[Path] = (), timeout: float = READY_TIMEOUT) -> None:
        """Start every process, import ``images`` (OCI archives, the pause image first) and wait
        until the node is Ready."""
        check_prerequisites(self.plane.bin_dir)
        deadline = time.monotonic() + timeout
        self.dir.mkdir(exist_ok=True)
        for path in (ROOT, RUN):
            path.mkdir(parents=True, exist_ok=True)
        try:
            self._spawn("containerd", ["containerd", "--config", str(self._containerd_config())])
            self._wait("containerd", lambda: _run(_ctr("version"), check=False).returncode == 0, deadline)
            for image in images:
                import_image(image)
            kubeconfig = str(self.plane.kubeconfig)
            self._spawn("coredns", [str(self.plane.bin_dir / "coredns"), "-conf", str(self._corefile())])
            self._spawn(
                "kube-controller-manager",
                [
                    str(self.plane.bin_dir / "kube-controller-manager"),
                    f"--kubeconfig={kubeconfig}",
                    f"--root-ca-file={self.plane.work_dir / 'ca.crt'}",
                    f"--service-account-private-key-file={self.plane.work_dir / 'sa-signer.key'}",
                    "--leader-elect=false",
                    "--secure-port=0",
                    "--controllers=*,-nodeipam",
                ],
            )
            self._spawn(
                "kube-scheduler",
                [
                    str(self.plane.bin_dir / "kube-scheduler"),
                    f"--kubeconfig={kubeconfig}",
                    "--leader-elect=false",
                    "--secure-port=0",
                ],
            )
            self._spawn(
                "kubelet",
                [
                    str(self.plane.bin_dir / "kubelet"),
                    f"--config={self._kubelet_config()}",
                    f"--kubeconfig={kubeconfig}",
                    f"--root-dir={ROOT / 'kubelet'}",
                    f"--hostname-override={NODE_NAME}",
                    f"--node-ip={NODE_ADDRESS}",
                ],
            )
            self._spawn(
                "kube-proxy", [str(self.plane.bin_dir / "kube-proxy"), f"--config={self._proxy_config()}"]
            )
            self._wait("node", self._ready, deadline)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the processes, then remove everything the node made (``clean_up``)."""
        for _name, proc in reversed(self._processes):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self._processes.clear()
        clean_up(self.plane.bin_dir)

    def failed_process(self) -> str | None:
        return next((name for name, proc in self._processes if proc.poll() is not None), None)

    # ------------------------------------------------------------------ processes

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = self.dir / f"{name}.log"
        with log.open("ab") as out:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=cluster._child_setup,
            )
        self._processes.append((name, proc))

    def _wait(self, what: str, ready: Any, deadline: float) -> None:
        while not ready():
            failed = self.failed_process()
            if failed:
                log = self.dir / f"{failed}.log"
                raise NodeError(f"{failed} exited; last lines of {log}:\n{cluster._log_tail(log)}")
            if time.monotonic() > deadline:
                raise NodeError(f"{what} not ready in time; logs in {self.dir}")
            time.sleep(0.5)

    def _ready(self) -> bool:
        done = self.plane.kubectl("get", "node", NODE_NAME, "-o", "json")
        if done.returncode != 0:
            return False
        conditions = json.loads(done.stdout).get("status", {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    # ------------------------------------------------------------------ configuration

    def _write(self, name: str, text: str) -> Path:
        path = self.dir / name
        path.write_text(text)
        return path

    def _containerd_config(self) -> Path:
        cni_dir = self.dir / "cni"
        cni_dir.mkdir(exist_ok=True)
        conflist = {
            "cniVersion": "0.4.0",
            "name": "invsync",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": BRIDGE,
                    "isGateway": True,
                    "ipMasq": False,  # pods talk to this machine only
                    "hairpinMode": True,  # a pod reaches itself through its Service
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": POD_CIDR, "gateway": NODE_ADDRESS}]],
                        # Services only, through the node: pods have no route beyond this machine
                        "routes": [{"dst": cluster.SERVICE_CIDR}],
                        "dataDir": str(ROOT / "cni"),
                    },
                }
            ],
        }
        (cni_dir / "10-invsync.conflist").write_text(json.dumps(conflist, indent=2))
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        return self._write(
            "containerd.toml",
            f"""version = 2
root = "{ROOT / "containerd"}"
state = "{RUN / "containerd"}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "{CONTAINERD_SOCKET}"
[plugins."io.containerd.internal.v1.opt"]
  path = "{ROOT / "opt"}"
[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  stream_server_address = "127.0.0.1"
  # the machine lacks CAP_SYS_RESOURCE: the kubelet's negative oom_score_adj would fail every sandbox
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"
[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false
[{cri}.cni]
  bin_dir = "{CNI_BIN_DIR}"
  conf_dir = "{cni_dir}"
""",
        )

    def _corefile(self) -> Path:
        kubeconfig = self.plane.kubeconfig
        return self._write(
            "Corefile",
            f""".:53 {{
    bind {NODE_ADDRESS}
    errors
    cache 5
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig} invsync
        pods insecure
    }}
}}
""",
        )

    def _kubelet_config(self) -> Path:
        config: dict[str, Any] = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": NODE_ADDRESS,
            "readOnlyPort": 0,
            "healthzPort": 0,
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": False},
                "x509": {"clientCAFile": str(self.plane.work_dir / "ca.crt")},
            },
            # only holders of a certificate of this cluster's CA get in: the API server and the admin
            "authorization": {"mode": "AlwaysAllow"},
            "cgroupDriver": "cgroupfs",
            "failCgroupV1": False,  # this machine has cgroup v1 controllers
            "failSwapOn": False,
            "containerRuntimeEndpoint": f"unix://{CONTAINERD_SOCKET}",
            "clusterDNS": [NODE_ADDRESS],
            "clusterDomain": CLUSTER_DOMAIN,
            "staticPodPath": "",
            # images come from archives, never a registry: none may be collected
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            # a busy shared disk is not this node's pressure; memory is
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
            },
            "serializeImagePulls": False,
        }
        return self._write("kubelet.yaml", yaml.safe_dump(config))

    def _proxy_config(self) -> Path:
        config = {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "clientConnection": {"kubeconfig": str(self.plane.kubeconfig)},
            "hostnameOverride": NODE_NAME,
            "mode": "iptables",
            "clusterCIDR": POD_CIDR,
            "bindAddress": NODE_ADDRESS,
            "healthzBindAddress": "127.0.0.1:10256",
            "metricsBindAddress": "127.0.0.1:10249",
            "conntrack": {"maxPerCore": 0},  # leave the machine's conntrack table size alone
        }
        return self._write("kube-proxy.yaml", yaml.safe_dump(config))


def running() -> bool:
    """Whether a node's containerd answers on this machine (one node per machine: the bridge, ROOT)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(CONTAINERD_SOCKET))
        except OSError:
            return False
    return True


def _ctr(*args: str) -> list[str]:
    return ["ctr", f"--address={CONTAINERD_SOCKET}", "--namespace=k8s.io", *args]


def import_image(archive: Path) -> None:
    """Load an OCI archive (testing/image.py) into the kubelet's containerd namespace, under the one
    name its index gives: no generated ``import-<date>`` reference beside it (it confuses the CRI's
    image cache)."""
    if not CONTAINERD_SOCKET.exists():
        raise NodeError(f"no local node running ({CONTAINERD_SOCKET} missing): run `make deploy` first")
    _run(_ctr("images", "import", str(archive)))
    generated = [
        name for name in _run(_ctr("images", "list", "--quiet")).stdout.split() if name.startswith("import-")
    ]
    if generated:
        _run(_ctr("images", "remove", *generated))


# ---------------------------------------------------------------------- clean-up


def clean_up(bin_dir: Path | None = None) -> list[str]:
    """Remove everything a node made outside its work directory, whether it stopped cleanly or was
    killed: pod processes and containerd's shims, mounts and network namespaces, cgroups, iptables
    chains, the bridge, containerd's and the kubelet's state. Returns what it removed, for the log."""
    removed: list[str] = []
    pids = _pod_processes() + _shims()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if pids:
        removed.append(f"{len(pids)} pod and shim processes")
        _wait_gone(pids)
    mounts = _mounts_under((ROOT, RUN))
    for mount in mounts:  # deepest first
        _run(["umount", "--lazy", mount], check=False)
    if mounts:
        removed.append(f"{len(mounts)} mounts")
    removed += _remove_cgroups()
    removed += _remove_iptables(bin_dir)
    if _run(["ip", "link", "show", BRIDGE], check=False).returncode == 0:
        _run(["ip", "link", "delete", BRIDGE])
        removed.append(f"bridge {BRIDGE}")
    if _SAVED_SYSCTL.exists():
        _IP_FORWARD.write_text(_SAVED_SYSCTL.read_text())
        _SAVED_SYSCTL.unlink()
    for path in (ROOT, RUN):
        if path.exists():
            shutil.rmtree(path, ignore_errors=True)
            removed.append(str(path))
    return removed


def leftovers() -> list[str]:
    """What of a node is still on this machine (empty after ``clean_up``)."""
    found = [f"process {pid}" for pid in _pod_processes() + _shims()]
    found += [f"mount {point}" for point in _mounts_under((ROOT, RUN))]
    found += [str(top) for top in CGROUP_ROOT.glob("*/kubepods")]
    found += [f"{tool} {table} chain {chain}" for tool, table, chain, _ in _kube_chains()]
    if _run(["ip", "link", "show", BRIDGE], check=False).returncode == 0:
        found.append(f"bridge {BRIDGE}")
    found += [str(path) for path in (ROOT, RUN, _SAVED_SYSCTL) if path.exists()]
    return found


def _pod_processes() -> list[int]:
    pids: set[int] = set()
    for procs in CGROUP_ROOT.glob("*/kubepods/**/cgroup.procs"):
        with contextlib.suppress(OSError, ValueError):
            pids.update(int(line) for line in procs.read_text().split())
    return sorted(pids)


def _shims() -> list[int]:
    """containerd's shims of this node (they outlive containerd by design)."""
    pids = []
    marker = str(CONTAINERD_SOCKET).encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                argv = (entry / "cmdline").read_bytes().split(b"\0")
                if argv and argv[0].endswith(b"containerd-shim-runc-v2") and marker in argv:
                    pids.append(int(entry.name))
    return pids


def _wait_gone(pids: Sequence[int], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while any(Path(f"/proc/{pid}").exists() for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)


def _mounts_under(roots: Sequence[Path]) -> list[str]:
    points = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            point = line.split()[4].replace("\\040", " ")
            if any(point == str(root) or point.startswith(f"{root}/") for root in roots):
                points.append(point)
    return sorted(set(points), key=lambda p: p.count("/"), reverse=True)


def _remove_cgroups() -> list[str]:
    removed = []
    for top in CGROUP_ROOT.glob("*/kubepods"):
        for directory in sorted(top.glob("**/"), key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                directory.rmdir()
        if not top.exists():
            removed.append(str(top))
    return removed


def _kube_chains() -> list[tuple[str, str, str, list[str]]]:
    """(tool, table, chain, the iptables-save lines of that table) of every KUBE-* chain."""
    chains = []
    for tool in ("iptables", "ip6tables"):
        if shutil.which(tool) is None:
            continue
        for table in ("filter", "nat", "mangle"):
            saved = _run([f"{tool}-save", "-t", table], check=False).stdout.splitlines()
            chains += [
                (tool, table, line[1:].split()[0], saved) for line in saved if line.startswith(":KUBE-")
            ]
    return chains


def _remove_iptables(bin_dir: Path | None) -> list[str]:
    """kube-proxy's own ``--cleanup`` first, then every remaining KUBE-* chain (the kubelet's) and the
    rules that jump to them."""
    if bin_dir is not None and (bin_dir / "kube-proxy").exists():
        _run([str(bin_dir / "kube-proxy"), "--cleanup"], check=False)
    by_table: dict[tuple[str, str], tuple[list[str], list[str]]] = {}
    for tool, table, chain, saved in _kube_chains():
        by_table.setdefault((tool, table), ([], saved))[0].append(chain)
    removed = []
    for (tool, table), (chains, saved) in by_table.items():
        for line in saved:
            words = shlex.split(line)
            jumps = any(f"-j {chain}" in line for chain in chains)
            if words[:1] == ["-A"] and not words[1].startswith("KUBE-") and jumps:
                _run([tool, "-t", table, "-D", *words[1:]], check=False)
        for chain in chains:
            _run([tool, "-t", table, "-F", chain], check=False)
        for chain in chains:
            _run([tool, "-t", table, "-X", chain], check=False)
        removed.append(f"{tool} {table}: {len(chains)} chains")
    return removed
