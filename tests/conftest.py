"""Shared fixtures: one real control plane (etcd + kube-apiserver) per test session.

Every test that uses the ``cluster`` fixture (directly or through ``kubectl``, ``crds`` or
``namespace``) is marked ``e2e``; ``pytest -m 'not e2e'`` runs the rest without a control plane.
The binaries come from ``$INVSYNC_BIN_DIR`` (set by ``make test``) or are built once by
hack/build-control-plane.sh: there is no skipping for lack of them.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from invsync.testing.cluster import REPO_ROOT, ControlPlane, Kubectl, binary_dir


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def cluster(pytestconfig: pytest.Config) -> Iterator[ControlPlane]:
    """A started control plane for the whole session, stopped (processes and files) at its end,
    also after a failure or Ctrl-C."""
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():  # a first build shows its progress, not a hang
        bin_dir = binary_dir()
    with ControlPlane(bin_dir) as plane:
        yield plane


@pytest.fixture(scope="session")
def kubeconfig(cluster: ControlPlane) -> Path:
    """Admin kubeconfig of the session's control plane."""
    return cluster.kubeconfig


@pytest.fixture(scope="session")
def kubectl(cluster: ControlPlane) -> Kubectl:
    return cluster.kubectl


@pytest.fixture(scope="session")
def crds(cluster: ControlPlane) -> list[str]:
    """crds/ applied once per session and Established; their resource names."""
    return cluster.apply_crds(REPO_ROOT / "crds")


@pytest.fixture
def namespace(cluster: ControlPlane, crds: list[str], request: pytest.FixtureRequest) -> str:
    """A fresh namespace named after the test (never deleted: no controller-manager would finish it)."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:48].strip("-")
    name = f"{slug}-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", name, check=True)
    return name
