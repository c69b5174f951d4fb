"""The image built without Docker (controller/invsync/testing/image.py) and the Dockerfile agree in what
a cluster sees: user, named user, entrypoint, command, environment, ports; and both deployments the
image serves run it on a read-only root."""

from __future__ import annotations

import json
import shlex
import tarfile
from pathlib import Path
from typing import Any

import yaml

from invsync.testing import image
from invsync.testing.cluster import REPO_ROOT

DOCKERFILE = REPO_ROOT / "Dockerfile"


def final_stage() -> dict[str, list[str]]:
    """The Dockerfile's last stage as {instruction: [arguments, ...]}, continuation lines joined."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    stages: list[dict[str, list[str]]] = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        instruction, _, rest = line.strip().partition(" ")
        if instruction.upper() == "FROM":
            stages.append({})
        stages[-1].setdefault(instruction.upper(), []).append(rest.strip())
    return stages[-1]


def test_the_dockerfile_and_the_built_image_set_the_same_runtime() -> None:
    stage = final_stage()
    config = image.operator_config("dev")
    assert stage["USER"] == [config.user]
    assert json.loads(stage["ENTRYPOINT"][0]) == list(config.entrypoint)
    assert json.loads(stage["CMD"][0]) == list(config.cmd)
    assert shlex.split(stage["ENV"][0]) == list(config.env)
    assert [f"{port}/tcp" for port in stage["EXPOSE"][0].split()] == list(config.exposed_ports)
    # the same named user, made by the same commands
    runs = " && ".join(stage["RUN"])
    for command in image.USER_COMMANDS:
        assert " ".join(command) in " ".join(runs.split()), f"Dockerfile lacks RUN {' '.join(command)}"


def test_the_oci_archive_holds_that_config_under_its_one_name(tmp_path: Path) -> None:
    layer = tmp_path / "layer.tar"
    with tarfile.open(layer, "w") as tar:
        tar.add(DOCKERFILE, arcname="Dockerfile")
    archive = tmp_path / "image.oci.tar"
    digest = image.write_oci_archive(
        f"{image.IMAGE_REPOSITORY}:t1", [layer], image.operator_config("t1"), archive
    )
    with tarfile.open(archive) as tar:

        def blob(name: str) -> Any:
            member = tar.extractfile(name)
            assert member is not None
            return json.loads(member.read())

        index = blob("index.json")
        assert blob("oci-layout") == {"imageLayoutVersion": "1.0.0"}
        [entry] = index["manifests"]
        assert entry["digest"] == digest
        assert entry["annotations"]["io.containerd.image.name"] == "docker.io/library/invsync:t1"
        manifest = blob(f"blobs/sha256/{digest[7:]}")
        config = blob(f"blobs/sha256/{manifest['config']['digest'][7:]}")
        assert config["config"]["User"] == "65532:65532"
        assert config["config"]["Entrypoint"] == ["invsync"]
        assert config["config"]["Labels"]["org.opencontainers.image.version"] == "t1"
        [layer_entry] = manifest["layers"]
        assert config["rootfs"]["diff_ids"] == [layer_entry["digest"]]
        assert tar.getmember(f"blobs/sha256/{layer_entry['digest'][7:]}").size == layer.stat().st_size


def test_every_container_of_the_image_runs_as_65532_on_a_read_only_root() -> None:
    documents = [
        REPO_ROOT / "manifests" / "core" / "statefulset.yaml",
        REPO_ROOT / "manifests" / "overlays" / "local" / "demo" / "sandbox.yaml",
    ]
    workloads = [
        doc
        for path in documents
        for doc in yaml.safe_load_all(path.read_text())
        if doc and doc["kind"] in ("StatefulSet", "Deployment")
    ]
    assert len(workloads) == 2
    for workload in workloads:
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsUser"] == 65532
        for container in pod["containers"]:
            assert container["image"] == "invsync"
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
