"""charts/invsync renders the same objects as the kustomize bases (manifests/core, manifests/tenant,
manifests/policy), by the real helm built from its pinned module (hack/build-helm.sh), and passes
`helm lint`; its render is admitted by the real API server. The chart leaves out the Namespace (helm
needs it to exist before an install, docs/deploy.md "Helm"), and its CRDs lack the base's
`app.kubernetes.io/part-of` label (helm installs crds/ untemplated, as `make crds` writes them)."""

from __future__ import annotations

import copy
import re
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml

from invsync.testing.cluster import Kubectl, binary_dir
from invsync.testing.deploy import helm_binary

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "invsync"
NAMESPACE = "invsync-system"

Doc = dict[str, Any]
Key = tuple[str, str, str]


@pytest.fixture(scope="module")
def helm() -> Path:
    return helm_binary()


def _run(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"{' '.join(argv)}: {done.stderr}"
    return done.stdout


def _by_key(docs: Iterable[Doc]) -> dict[Key, Doc]:
    found: dict[Key, Doc] = {}
    for doc in docs:
        key = (doc["kind"], doc["metadata"].get("namespace", ""), doc["metadata"]["name"])
        assert key not in found, f"{key} rendered twice"
        found[key] = doc
    return found


def template(helm: Path, *values: str) -> dict[Key, Doc]:
    argv = [str(helm), "template", "invsync", str(CHART), "-n", NAMESPACE, "--include-crds"]
    for value in values:
        argv += ["--set", value]
    return _by_key(d for d in yaml.safe_load_all(_run(argv)) if d)


def kustomize(directory: str, namespace: str | None = None) -> dict[Key, Doc]:
    docs = [
        d
        for d in yaml.safe_load_all(_run([str(binary_dir() / "kubectl"), "kustomize", str(ROOT / directory)]))
        if d
    ]
    for doc in docs:
        if namespace is not None:
            doc["metadata"]["namespace"] = namespace
        if doc["kind"] == "CustomResourceDefinition":  # helm installs crds/ as they are, untemplated
            del doc["metadata"]["labels"]["app.kubernetes.io/part-of"]
            if not doc["metadata"]["labels"]:
                del doc["metadata"]["labels"]
    return _by_key(d for d in docs if d["kind"] != "Namespace")


def test_helm_lint_passes(helm: Path) -> None:
    _run([str(helm), "lint", "--strict", str(CHART)])
    _run([str(helm), "lint", "--strict", str(CHART), "--set", "endpointPolicy.enabled=true",
          "--set", "grantedNamespaces={shop}"])  # fmt: skip


def test_default_values_render_the_kustomize_base(helm: Path) -> None:
    rendered, base = template(helm), kustomize("manifests/core")
    assert rendered.keys() == base.keys()
    for key, doc in base.items():
        assert rendered[key] == doc, key


def test_values_set_replicas_image_resources_env_granted_namespaces_and_the_endpoint_policy(
    helm: Path,
) -> None:
    resources = {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "1536Mi"}}
    rendered = template(
        helm,
        "replicas=3",
        "image.repository=registry.example/invsync",
        "image.tag=0.2.0",
        "image.pullPolicy=Always",
        "resources.requests.cpu=500m",
        "resources.requests.memory=1Gi",
        "resources.limits.memory=1536Mi",
        "grantedNamespaces={shop,outlet}",
        "env[0].name=HTTPS_PROXY",
        "env[0].value=http://proxy.example:3128",
        "endpointPolicy.enabled=true",
        "endpointPolicy.allowedHosts={open-api.tiktokglobalshop.com,partner.shopeemobile.com,openplatform.shopee.cn,openplatform.shopee.com.br,api.lazada.sg,api.lazada.co.th,api.lazada.com.my,api.lazada.vn,api.lazada.com.ph,api.lazada.co.id,*.myshopify.com}",
    )
    expected = copy.deepcopy(kustomize("manifests/core"))
    sts = expected[("StatefulSet", NAMESPACE, "invsync")]
    sts["spec"]["replicas"] = 3
    (container,) = sts["spec"]["template"]["spec"]["containers"]
    container.update(image="registry.example/invsync:0.2.0", imagePullPolicy="Always", resources=resources)
    container["env"].append({"name": "HTTPS_PROXY", "value": "http://proxy.example:3128"})
    for tenant in ("shop", "outlet"):
        expected |= kustomize("manifests/tenant", namespace=tenant)
    expected |= kustomize("manifests/policy")  # the shipped hosts are the chart's default ones
    assert rendered.keys() == expected.keys()
    for key, doc in expected.items():
        assert rendered[key] == doc, key


def test_the_render_is_admitted_by_the_api_server(helm: Path, kubectl: Kubectl, namespace: str) -> None:
    """A server dry run of the chart's render with every option on, as `helm install` would send it."""
    kubectl("apply", "-f", str(ROOT / "manifests" / "core" / "namespace.yaml"), check=True)
    on = ("--set", "endpointPolicy.enabled=true", "--set", f"grantedNamespaces={{{namespace}}}")
    argv = [str(helm), "template", "invsync", str(CHART), "-n", NAMESPACE, "--include-crds", *on]
    render = _run(argv)
    docs = [d for d in yaml.safe_load_all(render) if d]
    done = kubectl("apply", "--dry-run=server", "-f", "-", input=render)
    assert done.returncode == 0 and "Warning" not in done.stderr, done.stderr
    # Created, or unchanged where an earlier test of the session applied the kustomize base.
    verbs = dict(re.findall(r"^(\S+) (created|unchanged|configured) \(server dry run\)$", done.stdout, re.M))
    assert len(verbs) == len(docs), done.stdout
    assert verbs["statefulset.apps/invsync"] in ("created", "unchanged"), done.stdout
