"""The operator's image without Docker or a registry: an OCI image written from Debian packages and wheels.

The base layer is Debian bookworm (its Python 3.11) made by mmdebstrap and cached outside the work tree,
keyed by everything that goes into it; the app layer is this checkout's wheel and its dependencies from
PyPI, installed by the image's own pip, cached beside it keyed by the base and this checkout's
sources. The config matches the Dockerfile (user, entrypoint, command, environment, ports;
tests/deploy/test_image.py keeps the two in step). The pause image of the local
node's pod sandboxes is written the same way around hack/pause.

    python -m invsync.testing.image build --tag dev --output invsync-dev.oci.tar
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[3]
SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-pip", "ca-certificates")
# Files no one reads in a container: left out of the base layer (mmdebstrap's dpkg path-exclude).
BASE_EXCLUDES = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*", "/usr/share/locale/*")
_BASE_FORMAT = 1  # bump when the way the base layer is made changes, so cached ones are not reused
IMAGE_REPOSITORY = "docker.io/library/invsync"  # what the kubelet makes of the manifests' `image: invsync`
PAUSE_IMAGE = "localhost/invsync-pause:1"

# The Dockerfile's runtime settings, which this image repeats.
USER = "65532:65532"
ENTRYPOINT = ("invsync",)
CMD = ("run", "--all-namespaces")
ENV = ("PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1")
# The Dockerfile's user 65532 has a name: Python's home-directory lookups fail for a uid with none.
USER_COMMANDS = (
    ("groupadd", "--gid", "65532", "nonroot"),
    (
        "useradd",
        "--uid",
        "65532",
        "--gid",
        "65532",
        "--no-create-home",
        "--home-dir",
        "/home/nonroot",
        "--shell",
        "/usr/sbin/nologin",
        "nonroot",
    ),
)
EXPOSED_PORTS = ("8080/tcp", "8081/tcp")

_LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar"
_MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
_CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"


class ImageError(RuntimeError):
    """The image could not be built."""


def cache_dir() -> Path:
    """Beside the control plane's binaries (hack/build-control-plane.sh's cache root)."""
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(os.environ.get("INVSYNC_CACHE") or f"{xdg}/invsync") / "image"


def _log(message: str) -> None:
    print(f"[image] {message}", file=sys.stderr, flush=True)


def _run(argv: Sequence[str], **kwargs: Any) -> None:
    done = subprocess.run(list(argv), check=False, **kwargs)
    if done.returncode != 0:
        raise ImageError(f"{argv[0]} failed (exit {done.returncode}): {' '.join(argv)}")


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as data:
        while chunk := data.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def base_key() -> str:
    """What the base layer is made of: a change to any of it makes a new one."""
    version = subprocess.run(["mmdebstrap", "--version"], capture_output=True, text=True, check=False).stdout
    inputs = {
        "suite": SUITE,
        "packages": sorted(BASE_PACKAGES),
        "excludes": BASE_EXCLUDES,
        "mmdebstrap": version.strip(),
        "format": _BASE_FORMAT,
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]


def base_layer() -> Path:
    """The Debian root filesystem as an uncompressed layer tar, built once per ``base_key``."""
    if shutil.which("mmdebstrap") is None:
        raise ImageError("mmdebstrap is needed to build the image's base: run `make node-packages`")
    path = cache_dir() / f"base-{SUITE}-{base_key()}.tar"
    if path.exists():
        _log(f"base layer: cached at {path}")
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    _log(f"base layer: building Debian {SUITE} with {', '.join(BASE_PACKAGES)} (about a minute)")
    partial = path.with_suffix(".partial.tar")
    _run(
        [
            "mmdebstrap",
            "--variant=minbase",
            "--mode=root",
            "--format=tar",
            "--skip=output/dev",
            f"--include={','.join(BASE_PACKAGES)}",
            *(f"--dpkgopt=path-exclude={pattern}" for pattern in BASE_EXCLUDES),
            SUITE,
            str(partial),
        ],
        stdout=sys.stderr,
    )
    partial.rename(path)
    _log(f"base layer: {path} ({path.stat().st_size >> 20} MiB)")
    return path


def _app_sources() -> list[Path]:
    """What the Dockerfile copies into its build: the wheel is made of these and nothing else."""
    tree = [
        path
        for path in (REPO_ROOT / "controller").rglob("*")
        if path.is_file()
        and "__pycache__" not in path.parts
        and not any(part.endswith(".egg-info") for part in path.parts)
    ]
    return [REPO_ROOT / "pyproject.toml", REPO_ROOT / "README.md", *sorted(tree)]


def app_key(base: Path) -> str:
    """The base layer and this checkout's sources: the key of a cached app layer. As Docker's layer
    cache does for `RUN pip install`, dependencies resolved once are reused until an input changes
    (pyproject.toml's requirements among them)."""
    digest = hashlib.sha256(base.name.encode())
    for path in _app_sources():
        digest.update(str(path.relative_to(REPO_ROOT)).encode() + b"\0")
        digest.update(_sha256_file(path).encode())
    return digest.hexdigest()[:16]


def cached_app_layer(base: Path) -> Path:
    """The app layer over ``base`` for this checkout, built once per ``app_key``; only the newest is kept."""
    path = cache_dir() / f"app-{app_key(base)}.tar"
    if path.exists():
        _log(f"app layer: cached at {path}")
        return path
    with tempfile.TemporaryDirectory(prefix="invsync-image-") as work:
        built = app_layer(base, Path(work))
        for older in cache_dir().glob("app-*.tar"):
            older.unlink()
        shutil.move(built, path)
    return path


def build_wheels(directory: Path, work: Path) -> None:
    """This checkout's wheel and its dependencies' wheels (from PyPI, through pip's cache), built from a
    copy of what the Dockerfile copies, so the work tree gets no build/ directory."""
    _log("wheels: this checkout and its dependencies")
    source = work / "source"
    for path in _app_sources():  # the files the app layer's cache key is made of, and only those
        copy = source / path.relative_to(REPO_ROOT)
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, copy)
    _run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(directory), str(source)],
        stdout=sys.stderr,
    )


def app_layer(base: Path, work: Path) -> Path:
    """The wheels installed by the image's own pip into /usr/local, as a layer over ``base``."""
    root = work / "rootfs"
    root.mkdir()
    with tarfile.open(base) as tar:
        tar.extractall(root, filter="fully_trusted")  # our own mmdebstrap output: devices and owners as built
    wheels = root / "wheels"
    wheels.mkdir()
    build_wheels(wheels, work)
    names = sorted(p.name for p in wheels.glob("*.whl"))
    project = next((n for n in names if n.startswith("invsync-")), None)
    if project is None:
        raise ImageError(f"pip wheel made no invsync wheel in {wheels}")
    _log(f"app layer: installing {len(names)} wheels")
    _run(
        [
            shutil.which("chroot") or "/usr/sbin/chroot",
            str(root),
            "python3",
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-index",
            "--no-cache-dir",
            "--break-system-packages",
            "--root-user-action=ignore",
            "--find-links=/wheels",
            f"/wheels/{project}",
        ],
        stdout=sys.stderr,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/root", "LANG": "C.UTF-8"},
    )
    for command in USER_COMMANDS:
        _run([shutil.which("chroot") or "/usr/sbin/chroot", str(root), *command], stdout=sys.stderr)
    layer = work / "app.tar"
    with tarfile.open(layer, "w", format=tarfile.PAX_FORMAT) as tar:
        tar.add(root / "usr" / "local", arcname="usr/local", filter=_owned_by_root)
        for account_file in ("etc/passwd", "etc/group", "etc/shadow", "etc/gshadow"):
            tar.add(root / account_file, arcname=account_file)
    return layer


def _owned_by_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def pause_layer(binary: Path, work: Path) -> Path:
    layer = work / "pause.tar"
    with tarfile.open(layer, "w", format=tarfile.PAX_FORMAT) as tar:
        info = tar.gettarinfo(str(binary), arcname="pause")
        info.mode = 0o755
        with binary.open("rb") as data:
            tar.addfile(_owned_by_root(info), data)
    return layer


@dataclass
class ImageConfig:
    """The parts of an OCI image config invsync sets."""

    entrypoint: Sequence[str]
    cmd: Sequence[str] = ()
    user: str = ""
    env: Sequence[str] = ()
    exposed_ports: Sequence[str] = ()
    labels: dict[str, str] = field(default_factory=dict)


def write_oci_archive(name: str, layers: Sequence[Path], config: ImageConfig, output: Path) -> str:
    """An OCI image layout as a tar (what `ctr images import` reads), the image named ``name`` by the
    annotation containerd reads, so the import adds that one reference and no generated one.
    Returns the manifest digest."""
    diff_ids = [f"sha256:{_sha256_file(layer)}" for layer in layers]
    image_config = {
        "created": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "User": config.user,
            "Entrypoint": list(config.entrypoint),
            "Cmd": list(config.cmd),
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", *config.env],
            "ExposedPorts": {port: {} for port in config.exposed_ports},
            "Labels": config.labels,
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    config_blob = json.dumps(image_config, sort_keys=True).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": _MANIFEST_TYPE,
        "config": {"mediaType": _CONFIG_TYPE, "digest": _digest(config_blob), "size": len(config_blob)},
        "layers": [
            {"mediaType": _LAYER_TYPE, "digest": diff_id, "size": layer.stat().st_size}
            for diff_id, layer in zip(diff_ids, layers, strict=True)
        ],
    }
    manifest_blob = json.dumps(manifest, sort_keys=True).encode()
    tag = name.rsplit(":", 1)[1]
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": _MANIFEST_TYPE,
                "digest": _digest(manifest_blob),
                "size": len(manifest_blob),
                "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": tag},
            }
        ],
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    with tarfile.open(partial, "w") as tar:
        _add_bytes(tar, "oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode())
        _add_bytes(tar, "index.json", json.dumps(index).encode())
        _add_bytes(tar, f"blobs/sha256/{_digest(config_blob)[7:]}", config_blob)
        _add_bytes(tar, f"blobs/sha256/{_digest(manifest_blob)[7:]}", manifest_blob)
        for diff_id, layer in zip(diff_ids, layers, strict=True):
            tar.add(str(layer), arcname=f"blobs/sha256/{diff_id[7:]}")
    partial.rename(output)
    return _digest(manifest_blob)


def _digest(blob: bytes) -> str:
    return f"sha256:{hashlib.sha256(blob).hexdigest()}"


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def operator_config(tag: str) -> ImageConfig:
    return ImageConfig(
        entrypoint=ENTRYPOINT,
        cmd=CMD,
        user=USER,
        env=ENV,
        exposed_ports=EXPOSED_PORTS,
        labels={"org.opencontainers.image.title": "invsync", "org.opencontainers.image.version": tag},
    )


def build_operator_image(tag: str, output: Path) -> str:
    """The operator image ``invsync:<tag>`` written to ``output``; returns its full name."""
    name = f"{IMAGE_REPOSITORY}:{tag}"
    base = base_layer()
    digest = write_oci_archive(name, [base, cached_app_layer(base)], operator_config(tag), output)
    _log(f"{name}: {output} ({digest})")
    return name


def build_pause_image(binary: Path, output: Path) -> str:
    """The pod sandbox image: hack/pause's static binary alone, run as nobody."""
    with tempfile.TemporaryDirectory(prefix="invsync-image-") as work:
        layer = pause_layer(binary, Path(work))
        write_oci_archive(
            PAUSE_IMAGE, [layer], ImageConfig(entrypoint=("/pause",), user="65535:65535"), output
        )
    return PAUSE_IMAGE


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m invsync.testing.image", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="the operator image as an OCI archive")
    build.add_argument("--tag", default="dev")
    build.add_argument("--output", type=Path, required=True)
    pause = sub.add_parser("pause", help="the pause image as an OCI archive")
    pause.add_argument("--binary", type=Path, required=True)
    pause.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            print(build_operator_image(args.tag, args.output))
        else:
            print(build_pause_image(args.binary, args.output))
    except ImageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
