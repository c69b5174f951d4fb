"""The operator under its own ServiceAccount's token and manifests/core RBAC, which grants no Secret
anywhere (docs/security.md, "Granting access"): a namespace that granted nothing gets a condition on
each Store and InventorySource naming the missing grant; once the tenant applies manifests/tenant/,
the rules sync without a restart or an edit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from operator_env import Env, converged, env_fixture, sandbox_config, seed_manifests, wait_for

from invsync.testing.cluster import REPO_ROOT, ControlPlane, Kubectl

pytestmark = pytest.mark.e2e

MANIFESTS = REPO_ROOT / "manifests"


@pytest.fixture
def env(cluster: ControlPlane, namespace: str, kubectl: Kubectl, tmp_path: Path) -> Iterator[Env]:
    kubectl("apply", "-k", str(MANIFESTS / "core"), check=True)
    as_operator = cluster.write_service_account_kubeconfig(
        "invsync-system", "invsync", tmp_path / "sa.kubeconfig"
    )
    yield from env_fixture(namespace, kubectl, as_operator, tmp_path, sandbox_config)


def test_a_namespace_that_granted_no_secrets_is_named_and_syncs_once_granted(env: Env) -> None:
    env.apply(seed_manifests(env.sandbox.url))

    def denied(kind: str, name: str) -> dict[str, str] | None:
        ready = env.condition(kind, name)
        return ready if ready and ready["reason"] == "SecretAccessDenied" else None

    for kind, name, secret in (("Store", "tiktok-mw", "tiktok-mw"), ("InventorySource", "wms", "wms-creds")):
        ready = wait_for(lambda k=kind, n=name: denied(k, n), what=f"{kind} {name} SecretAccessDenied")
        assert ready["status"] == "False"
        assert ready["message"].startswith(f"Secret {secret} (credentials of {kind} {name}): ")
        assert (
            f"namespace {env.namespace} has not granted ServiceAccount invsync-system/invsync"
            in (ready["message"])
        )
        assert "manifests/tenant/" in ready["message"], ready["message"]
    rule = env.condition("SyncRule", "easyboss")
    assert rule is not None and rule["status"] == "False"
    assert env.writes() == 0  # nothing pushed from what could not be read

    env.kubectl("apply", "-k", str(MANIFESTS / "tenant"), "-n", env.namespace, check=True)
    wait_for(lambda: converged(env), what="the seed quantities once the namespace granted its Secrets")
    for kind, name in (("Store", "tiktok-mw"), ("InventorySource", "wms")):
        wait_for(
            lambda k=kind, n=name: (env.condition(k, n) or {}).get("status") == "True",
            what=f"{kind} {name} Ready",
        )
