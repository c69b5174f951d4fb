"""``make deploy`` on the real local node: the operator's StatefulSet from the image built here, the
sandbox and examples/ in invsync-demo; then a stock change, a pod deleted mid-sync, a rolling
upgrade to another image and scaling 2 -> 3 -> 1, after each of which every rule is Ready, the channel
equals `invsync plan` and the sandbox saw each changed product written once (docs/deploy.md, "Locally")."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
from deploy_env import EB_A_JAKARTA, Deployed

from invsync.testing import deploy, image, node

pytestmark = pytest.mark.e2e  # the real control plane, and a node


def test_the_operator_runs_from_the_local_image_as_65532_on_a_read_only_root(deployed: Deployed) -> None:
    statefulset = deployed.get("statefulset", "-n", deploy.OPERATOR_NAMESPACE, "invsync")
    assert statefulset["status"]["readyReplicas"] == statefulset["spec"]["replicas"] == 2
    for pod in deployed.operator_pods():
        [container] = pod["status"]["containerStatuses"]
        assert container["ready"] and container["image"] == f"{image.IMAGE_REPOSITORY}:dev"
        name = pod["metadata"]["name"]
        uid = deployed.kubectl("exec", "-n", deploy.OPERATOR_NAMESPACE, name, "--", "id", "-u")
        assert uid.strip() == "65532"
        done = subprocess.run(
            [str(deployed.bin_dir / "kubectl"), f"--kubeconfig={deployed.kubeconfig}", "exec", "-n",
             deploy.OPERATOR_NAMESPACE, name, "--", "touch", "/probe"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode != 0 and "Read-only file system" in done.stderr


def test_the_examples_rules_are_ready_and_the_channel_equals_the_plan(
    deployed: Deployed, tmp_path: Path
) -> None:
    deployed.wait_rules_ready(timeout=60)
    channel = deployed.channel_follows_plan(tmp_path)
    assert channel[EB_A_JAKARTA] == 45  # examples/README.md: wms wh1 100 x 90% x 50%


def test_a_stock_change_in_the_in_cluster_sandbox_reaches_the_channel(
    deployed: Deployed, tmp_path: Path
) -> None:
    report = deployed.change_wms_stock(40)
    assert report["webhook"]["status"] < 300, report  # delivered through the Service, by cluster DNS
    channel = deployed.channel_follows_plan(tmp_path, timeout=60)
    assert channel[EB_A_JAKARTA] == 18
    deployed.written_once()


def test_a_pod_deleted_mid_sync_leaves_every_rule_ready_and_no_slot_written_twice(
    deployed: Deployed, tmp_path: Path
) -> None:
    deployed.change_wms_stock(60)
    deployed.kubectl(
        "delete",
        "pod",
        "-n",
        deploy.OPERATOR_NAMESPACE,
        "-l",
        "app.kubernetes.io/name=invsync",
        "--wait=false",
    )
    deployed.wait_ready()
    channel = deployed.channel_follows_plan(tmp_path)
    assert channel[EB_A_JAKARTA] == 27
    deployed.written_once()


def test_a_rolling_upgrade_to_another_image_leaves_every_rule_ready_and_no_slot_written_twice(
    deployed: Deployed, tmp_path: Path
) -> None:
    deployed.load_image("dev2")  # the same code under another tag and version label: another image id
    before = {
        p["metadata"]["name"]: p["status"]["containerStatuses"][0]["imageID"]
        for p in deployed.operator_pods()
    }
    deployed.kubectl(
        "set", "image", "-n", deploy.OPERATOR_NAMESPACE, "statefulset/invsync", "operator=invsync:dev2"
    )
    deployed.change_wms_stock(80)  # while the pods are replaced one by one
    deployed.wait_ready()
    pods = deployed.operator_pods()
    for pod in pods:
        [container] = pod["status"]["containerStatuses"]
        assert container["image"] == f"{image.IMAGE_REPOSITORY}:dev2"
        assert container["imageID"] not in before.values()
    # a webhook that reached a pod on its way out is not lost: the rule is synced on request
    deployed.sync_now("easyboss-multi-warehouse")
    channel = deployed.channel_follows_plan(tmp_path)
    assert channel[EB_A_JAKARTA] == 36
    deployed.written_once()


def test_scaling_2_3_1_re_shards_with_every_rule_held_once_and_no_slot_written_twice(
    deployed: Deployed, tmp_path: Path
) -> None:
    """`kubectl scale` re-shards (docs/deploy.md, "Scaling"): after each step every rule is Ready and
    claimed by exactly one running replica (its Lease), the channel equals `invsync plan`, and a
    change is written once."""
    for replicas, available in ((3, 20), (1, 100)):
        deployed.kubectl(
            "scale", "-n", deploy.OPERATOR_NAMESPACE, "statefulset/invsync", f"--replicas={replicas}"
        )
        deployed.wait_ready()
        assert len(deployed.running_pods()) == replicas
        deployed.wait_claims_held_once()
        report = deployed.change_wms_stock(available)
        assert report["webhook"]["status"] < 300, report
        channel = deployed.channel_follows_plan(tmp_path)
        assert channel[EB_A_JAKARTA] == available * 9 // 20
        deployed.written_once()


def test_deploy_down_after_a_killed_run_leaves_nothing_of_the_node(deployed: Deployed) -> None:
    """Last: the supervisor of the cluster and node SIGKILLed (its processes die with it, the pods and
    containerd's shims do not), then `make deploy-down` removes every trace."""
    supervisor = json.loads((deployed.state_dir / "control-plane.json").read_text())["pid"]
    os.kill(supervisor, signal.SIGKILL)
    assert node.leftovers(), "a killed node leaves pods, mounts and chains for deploy-down to remove"
    assert deploy.main(["down", "--state-dir", str(deployed.state_dir)]) == 0
    assert node.leftovers() == []
