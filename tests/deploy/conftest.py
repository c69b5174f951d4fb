"""One ``make deploy`` for each module of tests/deploy/ that needs it (testing/deploy.py), removed at the
end of that module. A module's ``INSTALLER`` ("kustomize" unless set) says how the operator is installed:
manifests/core, or the chart's release (``make deploy INSTALLER=helm``).

The node is one per machine (the bridge invsync0, /var/lib/invsync-node): a deployment already running
(``make deploy``) is refused with a clear error rather than replaced.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from deploy_env import Deployed

from invsync.testing import cluster, deploy, node


@pytest.fixture(scope="module")  # gone before the rest of the suite: the node's pods cost CPU
def deployed(
    request: pytest.FixtureRequest, pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployed]:
    if node.running():
        raise cluster.ControlPlaneError(
            f"a local node is already running ({node.CONTAINERD_SOCKET}): `make deploy-down` first"
        )
    installer = getattr(request.module, "INSTALLER", "kustomize")
    state_dir = tmp_path_factory.mktemp(f"deploy-{installer}")
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")
    try:
        with capture.global_and_fixture_disabled():  # a first build shows its progress, not a hang
            assert deploy.main(["up", "--installer", installer, "--state-dir", str(state_dir)]) == 0, (
                "make deploy failed (output above)"
            )
        yield Deployed(state_dir)
    finally:
        with capture.global_and_fixture_disabled():
            deploy.main(["down", "--state-dir", str(state_dir)])
        # make deploy-down leaves nothing of the node on the machine
        assert node.leftovers() == []
