"""A real Kubernetes control plane (etcd + kube-apiserver) on loopback, started the way envtest does.

End-to-end tests and ``make cluster-up`` both run it, so admission (schemas, CEL), status
subresources, watches, RBAC and ServiceAccount tokens are the API server's own, never a mock.
There is no controller-manager: namespaces are never deleted and no Pods run. With ``--node``
(``make deploy``) a real node joins it and Pods run (testing/node.py).

    python -m invsync.testing.cluster up|down|status [--node] [--state-dir .invsync]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import ctypes
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import httpx
import yaml

from . import pki

REPO_ROOT = Path(__file__).resolve().parents[3]
BUILD_SCRIPT = REPO_ROOT / "hack" / "build-control-plane.sh"
BINARIES = ("etcd", "kube-apiserver", "kubectl")
ADMIN_USER = "invsync-admin"
START_TIMEOUT = 180.0  # ~3 s on an idle machine; far longer on a busy 2-core one
_PORT_RACE_ATTEMPTS = 3
_TEMP_PREFIX = "invsync-control-plane-"
SERVICE_CIDR = "10.0.0.0/24"


class ControlPlaneError(RuntimeError):
    """The control plane could not be built, started or reached."""


class Kubectl(Protocol):
    """The signature of ``ControlPlane.kubectl`` (the tests' ``kubectl`` fixture)."""

    def __call__(
        self,
        *args: str,
        input: str | None = None,
        kubeconfig: Path | None = None,
        check: bool = False,
        timeout: float = 120.0,
    ) -> subprocess.CompletedProcess[str]: ...


def built_path(script: Path, *args: str) -> Path:
    """The path a hack/build-*.sh script prints last: it builds its binaries once, then prints the
    cached ones (its progress goes to stderr)."""
    built = subprocess.run([str(script), *args], stdout=subprocess.PIPE, text=True, check=False)
    if built.returncode != 0 or not built.stdout.strip():
        raise ControlPlaneError(f"{script} failed (exit {built.returncode}); see its output above")
    return Path(built.stdout.strip().splitlines()[-1])


def binary_dir(node: bool = False) -> Path:
    """The directory holding etcd, kube-apiserver and kubectl (and with ``node`` the local node's
    binaries): ``$INVSYNC_BIN_DIR`` when set, else whatever hack/build-control-plane.sh prints (it
    builds them once, then reuses the cache)."""
    configured = os.environ.get("INVSYNC_BIN_DIR")
    if configured and not node:
        path = Path(configured)
    else:
        path = built_path(BUILD_SCRIPT, *(["--node"] if node else []))
    missing = [name for name in BINARIES if not os.access(path / name, os.X_OK)]
    if missing:
        raise ControlPlaneError(
            f"{', '.join(missing)} not found in {path}: run hack/build-control-plane.sh "
            "(or unset INVSYNC_BIN_DIR to build them)"
        )
    return path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _child_setup() -> None:
    """Runs in the child before exec: undo a blocked signal mask inherited from ``serve`` and have
    the kernel kill the child when the process that started it dies, so a crashed or SIGKILLed test
    run leaves no API server behind."""
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    if sys.platform == "linux":
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def _sweep_orphaned_work_dirs() -> None:
    """Remove work directories of runs that were SIGKILLed (their processes died with them, but no
    code ran to delete the files)."""
    for owner in Path(tempfile.gettempdir()).glob(f"{_TEMP_PREFIX}*/owner.pid"):
        with contextlib.suppress(OSError, ValueError):
            if not Path(f"/proc/{int(owner.read_text())}").exists():
                shutil.rmtree(owner.parent, ignore_errors=True)


def _log_tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


class _ProcessExited(ControlPlaneError):
    def __init__(self, name: str, log: Path) -> None:
        self.log = log
        super().__init__(f"{name} exited during start-up; last lines of {log}:\n{_log_tail(log)}")

    @property
    def port_taken(self) -> bool:
        return "address already in use" in _log_tail(self.log, 200)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class ControlPlane:
    """etcd and kube-apiserver as child processes, with a fresh PKI and an admin kubeconfig.

    Use as a context manager (or call ``start``/``stop``); ``stop`` kills both processes and removes
    the work directory. Start it from the thread that will outlive it: the children die with it.
    """

    def __init__(
        self,
        bin_dir: Path,
        work_dir: Path | None = None,
        kubeconfig: Path | None = None,
        node_address: str | None = None,
    ) -> None:
        """``node_address``: serve on this address of the local node (testing/node.py) instead of the
        loopback, so its pods reach the API server, and admit Pods as a cluster with a
        controller-manager does (ServiceAccount admission, kubelet client credentials)."""
        self.bin_dir = bin_dir
        self.node_address = node_address
        self.address = node_address or "127.0.0.1"
        self._given_work_dir = work_dir
        self._kubeconfig = kubeconfig
        self._dir: Path | None = None
        self._processes: list[tuple[str, subprocess.Popen[bytes]]] = []
        self._apiserver_argv: list[str] = []
        self.server = ""

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def work_dir(self) -> Path:
        if self._dir is None:
            raise ControlPlaneError("the control plane is not started")
        return self._dir

    @property
    def kubeconfig(self) -> Path:
        """Admin kubeconfig (user in group system:masters) with the certificates embedded."""
        return self._kubeconfig or self.work_dir / "kubeconfig"

    def start(self, timeout: float = START_TIMEOUT) -> None:
        if self._given_work_dir is not None:
            shutil.rmtree(self._given_work_dir, ignore_errors=True)  # left by a killed run
            self._given_work_dir.mkdir(parents=True, mode=0o700)
            self._dir = self._given_work_dir
        else:
            _sweep_orphaned_work_dirs()
            self._dir = Path(tempfile.mkdtemp(prefix=_TEMP_PREFIX))
            (self._dir / "owner.pid").write_text(str(os.getpid()))
        try:
            self._write_pki()
            deadline = time.monotonic() + timeout
            for attempt in range(1, _PORT_RACE_ATTEMPTS + 1):
                try:
                    self._start_processes(deadline)
                    break
                except _ProcessExited as exited:  # another process took a port between probe and bind
                    self._stop_processes()
                    if not exited.port_taken or attempt == _PORT_RACE_ATTEMPTS:
                        raise
            self._write_admin_kubeconfig()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Idempotent; safe after a failed or partial start."""
        self._stop_processes()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
        if self._kubeconfig is not None:
            self._kubeconfig.unlink(missing_ok=True)

    def failed_process(self) -> str | None:
        """Name of a control-plane process that has exited, if any."""
        return next((name for name, proc in self._processes if proc.poll() is not None), None)

    def _write_pki(self) -> None:
        serving_ips = [self.address]
        if self.node_address is not None:  # pods reach it as the first address of the Service range
            serving_ips.append(str(next(ipaddress.ip_network(SERVICE_CIDR).hosts())))
        material = pki.generate(ADMIN_USER, serving_ips=serving_ips)
        for name, data in {
            "ca.crt": material.ca_cert,
            "apiserver.crt": material.serving_cert,
            "apiserver.key": material.serving_key,
            "admin.crt": material.admin_cert,
            "admin.key": material.admin_key,
            "sa-signer.key": material.service_account_key,
            "sa-signer.pub": material.service_account_public_key,
        }.items():
            path = self.work_dir / name
            path.write_bytes(data)
            path.chmod(0o600)

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = self.work_dir / f"{name}.log"
        with log.open("ab") as out:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a terminal's Ctrl-C reaches us, and we stop them in order
                preexec_fn=_child_setup,
            )
        self._processes.append((name, proc))
        return proc

    def _start_processes(self, deadline: float) -> None:
        d = self.work_dir
        etcd_url = f"http://127.0.0.1:{_free_port()}"
        etcd_data = d / "etcd"
        shutil.rmtree(etcd_data, ignore_errors=True)
        etcd_data.mkdir(mode=0o700)
        member = f"invsync-{d.name}"  # told apart from another run's etcd that might hold the port
        etcd = self._spawn(
            "etcd",
            [
                str(self.bin_dir / "etcd"),
                f"--name={member}",
                f"--data-dir={etcd_data}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{_free_port()}",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
        )
        with httpx.Client(base_url=etcd_url, timeout=2.0) as client:
            self._wait_ready(
                "etcd",
                etcd,
                lambda: member in client.post("/v3/cluster/member/list", json={}).text,
                deadline,
            )

        port = _free_port()
        self.server = f"https://{self.address}:{port}"
        self._apiserver_argv = [
            str(self.bin_dir / "kube-apiserver"),
            f"--etcd-servers={etcd_url}",
            f"--cert-dir={d}",
            f"--tls-cert-file={d / 'apiserver.crt'}",
            f"--tls-private-key-file={d / 'apiserver.key'}",
            f"--client-ca-file={d / 'ca.crt'}",
            f"--bind-address={self.address}",
            f"--advertise-address={self.address}",
            f"--secure-port={port}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--allow-privileged=true",
            "--authorization-mode=RBAC",
            f"--service-account-issuer={self.server}/",
            f"--service-account-key-file={d / 'sa-signer.pub'}",
            f"--service-account-signing-key-file={d / 'sa-signer.key'}",
        ]
        if self.node_address is None:
            # as envtest: no controller-manager creates the default ServiceAccount Pods would need
            self._apiserver_argv.append("--disable-admission-plugins=ServiceAccount")
        else:
            self._apiserver_argv += [
                # logs, exec and port-forward reach the kubelet by address: the node's name is in no DNS
                "--kubelet-preferred-address-types=InternalIP",
                f"--kubelet-client-certificate={d / 'admin.crt'}",
                f"--kubelet-client-key={d / 'admin.key'}",
            ]
        self._start_apiserver(deadline)

    def _start_apiserver(self, deadline: float) -> None:
        apiserver = self._spawn("kube-apiserver", self._apiserver_argv)
        with self._admin_client(timeout=2.0) as client:  # only our API server has a cert of our CA
            self._wait_ready(
                "kube-apiserver", apiserver, lambda: client.get("/readyz").status_code == 200, deadline
            )

    def stop_apiserver(self) -> None:
        """Kill kube-apiserver alone (etcd keeps every object): clients see the API vanish mid-request,
        as when its node dies. SIGKILL, since a graceful stop drains watches for a minute."""
        for name, proc in list(self._processes):
            if name == "kube-apiserver":
                proc.kill()
                proc.wait()
                self._processes.remove((name, proc))

    def start_apiserver(self, timeout: float = START_TIMEOUT) -> None:
        """Start kube-apiserver again on the same address, over the same etcd."""
        self._start_apiserver(time.monotonic() + timeout)

    def _wait_ready(
        self, name: str, proc: subprocess.Popen[bytes], ready: Callable[[], bool], deadline: float
    ) -> None:
        while True:
            if proc.poll() is not None:
                raise _ProcessExited(name, self.work_dir / f"{name}.log")
            with contextlib.suppress(httpx.TransportError):
                if ready():
                    return
            if time.monotonic() > deadline:
                log = self.work_dir / f"{name}.log"
                raise ControlPlaneError(f"{name} not ready in time; last lines of {log}:\n{_log_tail(log)}")
            time.sleep(0.25)

    def _stop_processes(self) -> None:
        # kube-apiserver first: it would otherwise spin on a vanished etcd while shutting down
        for _name, proc in reversed(self._processes):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self._processes.clear()

    # ------------------------------------------------------------------ clients

    def _admin_client(self, timeout: float = 30.0) -> httpx.Client:
        d = self.work_dir
        context = ssl.create_default_context(cafile=str(d / "ca.crt"))
        context.load_cert_chain(str(d / "admin.crt"), str(d / "admin.key"))
        return httpx.Client(base_url=self.server, verify=context, timeout=timeout)

    def _kubeconfig_for(self, user: dict[str, str]) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "invsync",
                    "cluster": {
                        "server": self.server,
                        "certificate-authority-data": _b64((self.work_dir / "ca.crt").read_bytes()),
                    },
                }
            ],
            "users": [{"name": "user", "user": user}],
            "contexts": [{"name": "invsync", "context": {"cluster": "invsync", "user": "user"}}],
            "current-context": "invsync",
        }

    def _write_admin_kubeconfig(self) -> None:
        config = self._kubeconfig_for(
            {
                "client-certificate-data": _b64((self.work_dir / "admin.crt").read_bytes()),
                "client-key-data": _b64((self.work_dir / "admin.key").read_bytes()),
            }
        )
        _write_private(self.kubeconfig, yaml.safe_dump(config, sort_keys=False))

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        kubeconfig: Path | None = None,
        check: bool = False,
        timeout: float = 120.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run the real kubectl against this control plane (admin unless ``kubeconfig`` is given)."""
        argv = [
            str(self.bin_dir / "kubectl"),
            f"--kubeconfig={kubeconfig or self.kubeconfig}",
            # discovery cached per control plane: never a stale one from an earlier run on the same port
            f"--cache-dir={self.work_dir / 'kubectl-cache'}",
            *args,
        ]
        done = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout, check=False)
        if check and done.returncode != 0:
            raise ControlPlaneError(f"kubectl {' '.join(args)} failed ({done.returncode}): {done.stderr}")
        return done

    def apply_crds(self, directory: Path, timeout: float = 60.0) -> list[str]:
        """``kubectl apply`` every CRD in ``directory`` and wait until each is Established; returns
        their resource names (``customresourcedefinition.apiextensions.k8s.io/…``)."""
        names = self.kubectl("apply", "-f", str(directory), "-o", "name", check=True).stdout.split()
        self.kubectl("wait", "--for=condition=Established", f"--timeout={int(timeout)}s", *names, check=True)
        return names

    def request_token(self, namespace: str, service_account: str, expiration_seconds: int = 3600) -> str:
        """A ServiceAccount token minted by the TokenRequest API (the ServiceAccount must exist)."""
        with self._admin_client() as client:
            response = client.post(
                f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token",
                json={
                    "apiVersion": "authentication.k8s.io/v1",
                    "kind": "TokenRequest",
                    "spec": {"expirationSeconds": expiration_seconds},
                },
            )
        if response.status_code != 201:
            raise ControlPlaneError(
                f"TokenRequest for serviceaccount {namespace}/{service_account} failed: "
                f"HTTP {response.status_code} {response.json().get('message', '')}"
            )
        token: str = response.json()["status"]["token"]
        return token

    def write_service_account_kubeconfig(
        self, namespace: str, service_account: str, path: Path, expiration_seconds: int = 3600
    ) -> Path:
        """A kubeconfig that authenticates as the ServiceAccount, so a process runs under exactly
        the RBAC granted to it (as the operator does in a real cluster)."""
        token = self.request_token(namespace, service_account, expiration_seconds)
        config = self._kubeconfig_for({"token": token})
        config["contexts"][0]["context"]["namespace"] = namespace
        _write_private(path, yaml.safe_dump(config, sort_keys=False))
        return path


def _write_private(path: Path, text: str) -> None:
    """Kubeconfigs hold keys or tokens: readable by their owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


# ---------------------------------------------------------------------- command line (make cluster-up/down)


class _State:
    """Files of a background control plane under the state directory (.invsync by default)."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir.resolve()
        self.file = self.dir / "control-plane.json"
        self.log = self.dir / "control-plane.log"
        self.kubeconfig = self.dir / "kubeconfig"
        self.work_dir = self.dir / "control-plane"

    def read(self) -> dict[str, Any] | None:
        """The recorded state if its supervisor process is still alive."""
        try:
            state: dict[str, Any] = json.loads(self.file.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        return state if _alive(int(state.get("pid", 0))) else None


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return False
    return b"invsync.testing.cluster" in cmdline  # not a recycled pid


def _serve(state: _State, with_node: bool) -> int:
    """Run the control plane (and the local node) in this process until SIGTERM/SIGINT/SIGHUP, then
    tear it down."""
    from . import image, node  # they build on this module

    stop_signals = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    bin_dir = binary_dir(node=with_node)
    address = node.NODE_ADDRESS if with_node else None
    plane = ControlPlane(bin_dir, work_dir=state.work_dir, kubeconfig=state.kubeconfig, node_address=address)
    local_node: node.Node | None = None
    if with_node:  # before anything is started, so that the clean-up below never touches another node
        node.check_prerequisites(bin_dir)
        if node.running():
            raise node.NodeError(
                f"a local node is already running ({node.CONTAINERD_SOCKET}): `make deploy-down` first"
            )
    try:
        if with_node:
            node.clean_up(bin_dir)  # what a killed run left
            node.create_bridge()
        plane.start()
        if with_node:
            pause = image.build_pause_image(bin_dir / "pause", plane.work_dir / "pause.oci.tar")
            local_node = node.Node(plane)
            local_node.start(images=[plane.work_dir / "pause.oci.tar"])
            print(f"node {node.NODE_NAME} Ready (pod sandboxes from {pause})", flush=True)
        _write_private(
            state.file, json.dumps({"pid": os.getpid(), "server": plane.server, "node": with_node})
        )
        print(f"control plane ready at {plane.server}", flush=True)
        while signal.sigtimedwait(stop_signals, 2.0) is None:
            failed = plane.failed_process() or (local_node.failed_process() if local_node else None)
            if failed:
                print(f"{failed} exited; stopping", flush=True)
                return 1
        return 0
    finally:
        if local_node is not None:
            local_node.stop()
        plane.stop()
        if with_node:
            removed = node.clean_up(bin_dir)
            print(f"node removed: {', '.join(removed) or 'nothing left'}", flush=True)
        state.file.unlink(missing_ok=True)


def _up(state: _State, timeout: float, with_node: bool) -> int:
    running = state.read()
    if running:
        if with_node and not running.get("node"):
            print("a control plane without a node is running: `make cluster-down` first", file=sys.stderr)
            return 1
        print(f"control plane already running at {running['server']}; KUBECONFIG={state.kubeconfig}")
        return 0
    env = {**os.environ, "INVSYNC_BIN_DIR": str(binary_dir(node=with_node))}  # builds here, in the foreground
    state.dir.mkdir(parents=True, exist_ok=True)
    state.file.unlink(missing_ok=True)
    serve = [sys.executable, "-m", "invsync.testing.cluster", "serve", "--state-dir", str(state.dir)]
    with state.log.open("wb") as log:
        supervisor = subprocess.Popen(
            [*serve, "--node"] if with_node else serve,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # outlives this command and its terminal
        )
    deadline = time.monotonic() + timeout
    while (running := state.read()) is None:
        if supervisor.poll() is not None or time.monotonic() > deadline:
            supervisor.kill()
            supervisor.wait()
            shutil.rmtree(state.work_dir, ignore_errors=True)
            print(f"control plane failed to start; {state.log}:\n{_log_tail(state.log)}", file=sys.stderr)
            return 1
        time.sleep(0.5)
    print(f"control plane running at {running['server']} (pid {running['pid']}, log {state.log})")
    print(f"  export KUBECONFIG={state.kubeconfig}")
    return 0


def _down(state: _State, timeout: float, with_node: bool) -> int:
    """Stop the supervisor; with ``with_node`` (or when it ran a node) also remove whatever a node
    left on this machine, even after a killed run."""
    running = state.read()
    if running:
        pid = int(running["pid"])
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid):
            if time.monotonic() > deadline:  # its children die with it (PR_SET_PDEATHSIG)
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)
        print("control plane stopped")
    else:
        print(f"no control plane running (state in {state.dir})")
    if with_node or (running and running.get("node")):
        from . import node

        removed = node.clean_up(binary_dir())
        print(f"node: {'removed ' + ', '.join(removed) if removed else 'nothing left to remove'}")
    shutil.rmtree(state.work_dir, ignore_errors=True)
    state.kubeconfig.unlink(missing_ok=True)
    return 0


def _status(state: _State) -> int:
    running = state.read()
    if not running:
        print("control plane: not running")
        return 1
    readyz = subprocess.run(
        [str(binary_dir() / "kubectl"), f"--kubeconfig={state.kubeconfig}", "get", "--raw", "/readyz"],
        capture_output=True,
        text=True,
        check=False,
    )
    health = readyz.stdout.strip() or readyz.stderr.strip()
    print(f"control plane: running at {running['server']} (pid {running['pid']}), readyz: {health}")
    print(f"  export KUBECONFIG={state.kubeconfig}")
    return 0 if readyz.returncode == 0 else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m invsync.testing.cluster", description="The local Kubernetes control plane."
    )
    parser.add_argument("command", choices=["up", "down", "status", "serve"])
    parser.add_argument("--state-dir", type=Path, default=Path(".invsync"), help="default: .invsync")
    parser.add_argument("--timeout", type=float, help="seconds to wait (default: 180, 360 with --node)")
    parser.add_argument(
        "--node", action="store_true", help="with a real node that runs Pods (testing/node.py; root)"
    )
    args = parser.parse_args(argv)
    state = _State(args.state_dir)
    timeout = args.timeout or (2 * START_TIMEOUT if args.node else START_TIMEOUT)
    try:
        if args.command == "up":
            return _up(state, timeout, args.node)
        if args.command == "down":
            return _down(state, timeout, args.node)
        if args.command == "status":
            return _status(state)
        return _serve(state, args.node)
    except ControlPlaneError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    # the package's own module, not this __main__ copy: testing/node.py's errors derive from its classes
    from invsync.testing import cluster

    raise SystemExit(cluster.main())
