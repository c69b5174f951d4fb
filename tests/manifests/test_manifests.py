"""manifests/ is what users `kubectl apply -k`: rendered by the real kubectl's kustomize, admitted by
the real API server (dry run), and its RBAC enforced by it for the operator's ServiceAccount."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from invsync import metrics
from invsync.testing.cluster import ControlPlane, Kubectl, binary_dir

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
NAMESPACE = "invsync-system"
MONITORING_CRDS = Path(__file__).with_name("monitoring-crds.yaml")

Doc = dict[str, Any]


@pytest.fixture(scope="module")
def rendered() -> list[Doc]:
    """`kubectl kustomize manifests/`: exactly what `kubectl apply -k manifests/` sends."""
    done = subprocess.run(
        [str(binary_dir() / "kubectl"), "kustomize", str(MANIFESTS)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


@pytest.fixture(scope="module")
def find(rendered: list[Doc]) -> Callable[[str], Doc]:
    def one(kind: str) -> Doc:
        matches = [d for d in rendered if d["kind"] == kind]
        assert len(matches) == 1, f"expected one {kind}, got {len(matches)}"
        return matches[0]

    return one


def test_base_has_every_part_in_one_namespace(rendered: list[Doc]) -> None:
    kinds = sorted(d["kind"] for d in rendered)
    assert kinds == sorted(
        [
            "Namespace",
            *["CustomResourceDefinition"] * 4,
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
            "StatefulSet",
            "Service",
            "NetworkPolicy",
            "ConfigMap",
            "ServiceMonitor",
            "PrometheusRule",
        ]
    )
    cluster_scoped = {"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"}
    for doc in rendered:
        if doc["kind"] not in cluster_scoped:
            assert doc["metadata"]["namespace"] == NAMESPACE, doc["metadata"]["name"]
    crds = {d["metadata"]["name"] for d in rendered if d["kind"] == "CustomResourceDefinition"}
    assert crds == {f"{p}.invsync.dev" for p in ("inventorysources", "warehouses", "stores", "syncrules")}


def test_statefulset_discovers_its_shards_with_probes_and_a_restricted_context(
    find: Callable[[str], Doc],
) -> None:
    """Shard count and peers come from the StatefulSet itself (docs/operations.md, "Sharding"): no
    hand-kept count or peer list, so `kubectl scale` is all it takes."""
    sts = find("StatefulSet")
    pod = sts["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in container["env"]}
    assert env == {"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace"}
    assert container["args"][0] == "run"
    assert f"--statefulset=$(POD_NAMESPACE)/{sts['metadata']['name']}" in container["args"]
    assert "--replica=$(POD_NAME)" in container["args"]
    assert not any(a.startswith(("--shard", "--peers")) for a in container["args"])
    assert "--metrics-port=8080" in container["args"] and "--webhook-port=8081" in container["args"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"metrics": 8080, "webhooks": 8081}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    ctx = container["securityContext"]
    assert ctx["runAsNonRoot"] is True and ctx["readOnlyRootFilesystem"] is True
    assert ctx["allowPrivilegeEscalation"] is False and ctx["capabilities"] == {"drop": ["ALL"]}
    assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["serviceAccountName"] == find("ServiceAccount")["metadata"]["name"]
    service = find("Service")
    assert sts["spec"]["serviceName"] == service["metadata"]["name"]
    assert service["spec"]["clusterIP"] == "None"  # stable per-pod names


def test_image_runs_as_the_user_and_ports_the_manifests_expect(find: Callable[[str], Doc]) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    pod = find("StatefulSet")["spec"]["template"]["spec"]
    uid = pod["securityContext"]["runAsUser"]
    assert re.search(rf"^USER {uid}:{pod['securityContext']['runAsGroup']}$", dockerfile, re.M)
    assert re.search(r"^EXPOSE 8080 8081$", dockerfile, re.M)
    assert re.search(r'^ENTRYPOINT \["invsync"\]$', dockerfile, re.M)
    assert pod["containers"][0]["image"] == "invsync:0.1.0"


def test_rbac_is_least_privilege(find: Callable[[str], Doc]) -> None:
    rules = find("ClusterRole")["rules"]
    granted = {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert not any("*" in entry for entry in granted)
    kinds = ("inventorysources", "warehouses", "stores", "syncrules")
    expected = {
        *{("invsync.dev", k, v) for k in kinds for v in ("get", "list", "watch", "patch")},
        *{("invsync.dev", f"{k}/status", "patch") for k in kinds},
        *{(g, "events", v) for g in ("", "events.k8s.io") for v in ("create", "patch")},
        ("", "namespaces", "list"),
        ("", "namespaces", "watch"),
        *{("apiextensions.k8s.io", "customresourcedefinitions", v) for v in ("get", "list", "watch")},
    }
    assert granted == expected
    binding = find("ClusterRoleBinding")
    assert binding["roleRef"]["name"] == find("ClusterRole")["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "invsync", "namespace": NAMESPACE}]
    # Sharding, in the operator's namespace only: its own StatefulSet by name, its pods, its Leases.
    shards = find("Role")
    assert shards["metadata"]["namespace"] == NAMESPACE
    assert {(g, r, v, tuple(rule.get("resourceNames", ()))) for rule in shards["rules"]
            for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]} == {
        ("apps", "statefulsets", "get", ("invsync",)),
        ("", "pods", "list", ()),
        *{("coordination.k8s.io", "leases", v, ()) for v in ("list", "create", "update", "patch", "delete")},
    }  # fmt: skip
    role_binding = find("RoleBinding")
    assert role_binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": shards["metadata"]["name"],
    }
    assert role_binding["subjects"] == binding["subjects"]


def test_service_monitor_and_network_policy_reach_the_pods(find: Callable[[str], Doc]) -> None:
    pod_labels = find("StatefulSet")["spec"]["template"]["metadata"]["labels"]
    service = find("Service")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert {(p["name"], p["port"]) for p in service["spec"]["ports"]} == {
        ("metrics", 8080),
        ("webhooks", 8081),
    }
    monitor = find("ServiceMonitor")["spec"]
    assert monitor["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert [e["port"] for e in monitor["endpoints"]] == ["metrics"]
    # The job label comes from the Service's label; InvsyncOperatorAbsent matches job="invsync".
    assert service["metadata"]["labels"][monitor["jobLabel"]] == "invsync"
    policy = find("NetworkPolicy")["spec"]
    assert policy["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert {p["port"] for rule in policy["ingress"] for p in rule["ports"]} == {"metrics", "webhooks"}
    # A verified webhook delivery is relayed to the other replicas (docs/operations.md, "Sharding").
    (to_peers,) = [rule for rule in policy["egress"] if rule.get("to")]
    assert to_peers["to"] == [{"podSelector": policy["podSelector"]}]
    assert to_peers["ports"] == [{"port": "webhooks", "protocol": "TCP"}]


def test_prometheusrule_is_generated_from_the_rule_file(find: Callable[[str], Doc]) -> None:
    rules = yaml.safe_load((MANIFESTS / "monitoring" / "invsync.rules.yaml").read_text())
    assert find("PrometheusRule")["spec"] == rules
    spec = importlib.util.spec_from_file_location("prometheusrule", ROOT / "hack" / "prometheusrule.py")
    assert spec and spec.loader
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    on_disk = (MANIFESTS / "monitoring" / "prometheusrule.yaml").read_text()
    assert on_disk == generator.render(), "prometheusrule.yaml is stale: run `make manifests`"


def _dashboard(find: Callable[[str], Doc]) -> Doc:
    config_map = find("ConfigMap")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    (text,) = config_map["data"].values()
    dashboard: Doc = json.loads(text)
    return dashboard


def _expressions(dashboard: Doc) -> list[str]:
    return [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]


def test_dashboard_queries_are_valid_promql(find: Callable[[str], Doc], tmp_path: Path) -> None:
    """promtool parses each panel's query (Grafana's variables replaced as Grafana would)."""
    exprs = [
        e.replace("$__rate_interval", "5m").replace("$namespace", ".*").replace("$rule", ".*")
        for e in _expressions(_dashboard(find))
    ]
    rules = {
        "groups": [
            {"name": "dashboard", "rules": [{"record": f"q:{i}", "expr": e} for i, e in enumerate(exprs)]}
        ]
    }
    path = tmp_path / "dashboard.rules.yaml"
    path.write_text(yaml.safe_dump(rules))
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not installed: run `make prometheus`"
    done = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_dashboard_shows_every_metric_the_operator_exports(find: Callable[[str], Doc]) -> None:
    """Every invsync series name a panel queries exists, and every exported family is on a panel:
    drift per store, listings by state, pushes, sync duration, last success, change-to-push latency."""
    dashboard = _dashboard(find)
    queried = {name for e in _expressions(dashboard) for name in re.findall(r"\binvsync_[a-z_]+", e)}
    metrics.record_sync(
        "ns", "r", result="success", duration_seconds=1, stores={"s": metrics.StoreResult()}, finished_at=1
    )
    metrics.set_rule_interval("ns", "r", 60)
    metrics.set_rule_conditions("ns", "r", {"Ready": "True"})
    metrics.set_pool_allocation("ns", {"w": 1})
    metrics.PLATFORM_REQUESTS.labels("tiktok", "inventory_update", "200").inc()
    metrics.CHANGE_TO_PUSH.labels("tiktok").observe(1)
    try:
        families = list(text_string_to_metric_families(generate_latest(metrics.REGISTRY).decode()))
    finally:
        metrics.forget_rule("ns", "r")
        metrics.set_pool_allocation("ns", {})
        metrics.PLATFORM_REQUESTS.remove("tiktok", "inventory_update", "200")
        metrics.CHANGE_TO_PUSH.remove("tiktok")
    exported = {s.name for f in families for s in f.samples}
    assert queried <= exported, queried - exported
    for family in families:
        assert any(name.startswith(family.name) for name in queried), f"no panel shows {family.name}"
    assert dashboard["uid"] == "invsync"
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])


def test_apply_dry_run_server_is_admitted(cluster: ControlPlane, kubectl: Kubectl) -> None:
    """What a user's `kubectl apply -k manifests/` does, up to persisting it. The namespace is
    created for real first: a server dry run of a namespace does not let later objects use it."""
    cluster.apply_crds(MONITORING_CRDS)
    kubectl("apply", "-f", str(MANIFESTS / "core" / "namespace.yaml"), check=True)
    done = kubectl("apply", "-k", str(MANIFESTS), "--dry-run=server")
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr, done.stderr  # e.g. PodSecurity "restricted" violations
    for kind in ("statefulset.apps/invsync", "clusterrole.rbac.authorization.k8s.io/invsync"):
        assert f"{kind} " in done.stdout
    assert done.stdout.count("(server dry run)") == 16


def test_service_account_has_exactly_the_granted_access(
    cluster: ControlPlane, kubectl: Kubectl, tmp_path: Path, namespace: str
) -> None:
    """The API server enforces manifests/ RBAC for the operator's own token: what it needs is
    allowed, anything more (creating or deleting Secrets, deleting rules, other resources) is forbidden."""
    kubectl("apply", "-k", str(MANIFESTS / "core"), check=True)
    as_operator = cluster.write_service_account_kubeconfig(NAMESPACE, "invsync", tmp_path / "sa.kubeconfig")

    def can(verb: str, resource: str, *extra: str) -> bool:
        done = kubectl("auth", "can-i", verb, resource, "-n", namespace, *extra, kubeconfig=as_operator)
        assert done.stdout.startswith(("yes", "no")), done.stdout + done.stderr
        return done.stdout.startswith("yes")

    for resource in ("syncrules.invsync.dev", "stores.invsync.dev", "warehouses", "inventorysources"):
        assert can("watch", resource) and can("patch", resource), resource
        assert can("patch", resource, "--subresource=status"), resource
        assert not can("delete", resource) and not can("create", resource), resource
    # No Secret of a namespace that granted nothing, and never a list or watch (docs/security.md).
    assert not any(can(verb, "secrets") for verb in ("get", "list", "watch", "patch", "create", "delete"))
    assert can("create", "events") and can("create", "events.events.k8s.io")
    assert can("list", "namespaces") and not can("create", "namespaces")
    # Cluster-wide, as the StatefulSet runs it (--all-namespaces), but no Secret there.
    assert can("watch", "syncrules.invsync.dev", "--all-namespaces")
    assert not can("list", "secrets", "--all-namespaces") and not can("get", "secrets", "--all-namespaces")
    # A tenant's grant (manifests/tenant/): get and patch its Secrets by name, still no list or watch.
    kubectl("apply", "-k", str(MANIFESTS / "tenant"), "-n", namespace, check=True)
    assert can("get", "secrets") and can("patch", "secrets")  # patch: a refreshed TikTok token pair
    assert not any(can(verb, "secrets") for verb in ("list", "watch", "create", "update", "delete"))
    assert not can("get", "configmaps") and not can("get", "pods") and not can("list", "pods")
    assert not can("create", "leases.coordination.k8s.io")

    # In its own namespace: the Leases of its shards, its pods (the peers), its StatefulSet by name.
    def here(verb: str, resource: str, *extra: str) -> bool:
        return can(verb, resource, "-n", NAMESPACE, *extra)

    for verb in ("list", "create", "update", "patch", "delete"):
        assert here(verb, "leases.coordination.k8s.io"), verb
    assert here("list", "pods") and not here("get", "pods") and not here("delete", "pods")
    assert here("get", "statefulsets.apps/invsync") and not here("get", "statefulsets.apps/other")
    assert not here("patch", "statefulsets.apps/invsync")
