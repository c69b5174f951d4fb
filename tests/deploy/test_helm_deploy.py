"""The operator installed as the Helm release of charts/invsync on the real local node (``make deploy
INSTALLER=helm``; docs/deploy.md, "Helm"): `helm install` runs it from the image built here and the
examples' rules become Ready; `helm upgrade` to another image and 3 replicas rolls it with every rule
held once and no slot written twice; `helm uninstall` removes the operator and keeps the sellers' CRDs
and rules. `helm lint` and the chart's render against manifests/core: tests/manifests/test_helm.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from deploy_env import EB_A_JAKARTA, Deployed

from invsync.testing import deploy, image

pytestmark = pytest.mark.e2e  # the real control plane, and a node

INSTALLER = "helm"  # conftest.py: the operator from the chart, not manifests/core


def release(deployed: Deployed) -> dict[str, Any]:
    status: dict[str, Any] = json.loads(deployed.helm("status", deploy.RELEASE, "-o", "json"))
    return status


def images(deployed: Deployed) -> dict[str, tuple[str, str]]:
    """pod -> (image, image id) of every running operator pod."""
    return {
        p["metadata"]["name"]: (p["status"]["containerStatuses"][0]["image"],
                                p["status"]["containerStatuses"][0]["imageID"])
        for p in deployed.operator_pods()
        if p["metadata"].get("deletionTimestamp") is None
    }  # fmt: skip


def test_helm_install_runs_the_operator_from_the_chart_and_the_rules_become_ready(
    deployed: Deployed, tmp_path: Path
) -> None:
    installed = release(deployed)
    assert (installed["info"]["status"], installed["version"]) == ("deployed", 1)
    statefulset = deployed.get("statefulset", "-n", deploy.OPERATOR_NAMESPACE, "invsync")
    assert statefulset["metadata"]["annotations"]["meta.helm.sh/release-name"] == deploy.RELEASE
    assert statefulset["status"]["readyReplicas"] == statefulset["spec"]["replicas"] == 2  # values.yaml
    assert {name for name, _ in images(deployed).values()} == {f"{image.IMAGE_REPOSITORY}:dev"}
    deployed.wait_rules_ready(timeout=60)
    deployed.wait_claims_held_once()
    assert deployed.channel_follows_plan(tmp_path)[EB_A_JAKARTA] == 45  # wms wh1 100 x 90% x 50%
    report = deployed.change_wms_stock(40)
    assert report["webhook"]["status"] < 300, report
    assert deployed.channel_follows_plan(tmp_path, timeout=60)[EB_A_JAKARTA] == 18
    deployed.written_once()


def test_helm_upgrade_to_another_image_and_3_replicas_keeps_every_rule_held_once(
    deployed: Deployed, tmp_path: Path
) -> None:
    deployed.load_image("dev2")  # the same code under another tag and version label: another image id
    before = {image_id for _, image_id in images(deployed).values()}
    deployed.helm(
        "upgrade", deploy.RELEASE, str(deploy.CHART), "--reuse-values",
        "--set", "image.tag=dev2", "--set", "replicas=3",
    )  # fmt: skip
    deployed.change_wms_stock(80)  # while the pods are replaced one by one
    deployed.wait_ready()
    upgraded = release(deployed)
    assert (upgraded["info"]["status"], upgraded["version"]) == ("deployed", 2)
    assert upgraded["config"] == {"image": {"tag": "dev2", "pullPolicy": "Never"}, "replicas": 3}
    now = images(deployed)
    assert len(now) == 3
    for name, image_id in now.values():
        assert name == f"{image.IMAGE_REPOSITORY}:dev2" and image_id not in before
    deployed.wait_claims_held_once()
    deployed.sync_now("easyboss-multi-warehouse")  # a webhook that reached a pod on its way out
    assert deployed.channel_follows_plan(tmp_path)[EB_A_JAKARTA] == 36
    deployed.written_once()
    report = deployed.change_wms_stock(20)  # and the upgraded release follows the next change by itself
    assert report["webhook"]["status"] < 300, report
    assert deployed.channel_follows_plan(tmp_path, timeout=60)[EB_A_JAKARTA] == 9
    deployed.written_once()


def test_helm_uninstall_removes_the_operator_and_keeps_the_crds_and_the_rules(deployed: Deployed) -> None:
    """Helm never deletes what it installed from crds/: uninstalling loses no seller's rules."""

    def names(*args: str) -> set[str]:
        return set(deployed.kubectl("get", *args, "--ignore-not-found", "-o", "name").split())

    rules = names("syncrules", "-n", deploy.DEMO_NAMESPACE)
    assert len(rules) >= 3
    deployed.helm("uninstall", deploy.RELEASE, "--wait")
    ours = ("statefulset/invsync", "serviceaccount/invsync", "service/invsync")
    assert names(*ours, "-n", deploy.OPERATOR_NAMESPACE) == set()
    assert names("clusterrole/invsync", "clusterrolebinding/invsync") == set()
    assert {c.split("/")[1] for c in names("customresourcedefinitions") if c.endswith(".invsync.dev")} == {
        "stores.invsync.dev", "warehouses.invsync.dev", "inventorysources.invsync.dev",
        "syncrules.invsync.dev",
    }  # fmt: skip
    assert names("syncrules", "-n", deploy.DEMO_NAMESPACE) == rules
