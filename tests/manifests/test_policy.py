"""manifests/policy/: the ValidatingAdmissionPolicy that limits Store and InventorySource endpoints to
the hosts the platform team allows (docs/security.md, "Endpoint policy"), enforced by the real API
server. The shipped binding applies cluster-wide; here the same policy is bound to the test's namespace
only, with its parameter ConfigMap there, so the session's other tests keep their sandbox endpoints."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from invsync.testing.cluster import Kubectl

POLICY = Path(__file__).resolve().parents[2] / "manifests" / "policy"
API = "invsync.dev/v1alpha1"


def _docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((POLICY / name).read_text()) if d]


@pytest.fixture
def bound(kubectl: Kubectl, namespace: str) -> str:
    """The shipped policy and its parameter, bound to `namespace` only; returns the ConfigMap's name."""
    policy, binding = (copy.deepcopy(d) for d in _docs("endpoint-policy.yaml"))
    (params,) = _docs("allowed-endpoints.yaml")
    name = f"invsync-endpoints-{namespace}"
    policy["metadata"]["name"] = binding["metadata"]["name"] = binding["spec"]["policyName"] = name
    params["metadata"]["namespace"] = binding["spec"]["paramRef"]["namespace"] = namespace
    binding["spec"]["matchResources"] = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
    }
    kubectl("apply", "-f", "-", input=yaml.safe_dump_all([params, policy, binding]), check=True)
    return str(params["metadata"]["name"])


def store(name: str, endpoint: str | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"platform": "tiktok", "shopCipher": "ROW", "credentialsSecretRef": {"name": "c"}}
    if endpoint is not None:
        spec["endpoint"] = endpoint
    return {"apiVersion": API, "kind": "Store", "metadata": {"name": name}, "spec": spec}


def source(name: str, endpoint: str) -> dict[str, Any]:
    spec = {"provider": "http", "endpoint": endpoint}
    return {"apiVersion": API, "kind": "InventorySource", "metadata": {"name": name}, "spec": spec}


def _apply(kubectl: Kubectl, namespace: str, doc: dict[str, Any]) -> tuple[bool, str]:
    done = kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(doc))
    return done.returncode == 0, done.stderr


def test_the_shipped_policy_is_admitted(kubectl: Kubectl) -> None:
    """`kubectl apply -k manifests/policy/` as a user runs it, up to persisting it. (Its CEL compiles:
    a policy that does not fails closed, and the tests below see listed hosts admitted.)"""
    kubectl("apply", "-f", str(POLICY.parent / "core" / "namespace.yaml"), check=True)
    done = kubectl("apply", "-k", str(POLICY), "--dry-run=server")
    assert done.returncode == 0 and "Warning" not in done.stderr, done.stderr
    assert done.stdout.count("(server dry run)") == 3, done.stdout


def test_an_endpoint_elsewhere_is_refused_naming_the_field(
    kubectl: Kubectl, namespace: str, bound: str
) -> None:
    """A Store pointed at a host not listed is refused by admission, with a message naming spec.endpoint,
    the host and where the list lives; listed hosts (exact, any case, or under a `*.` entry) pass."""
    deadline = time.monotonic() + 30
    while True:  # the API server's policy informer picks the new binding up within a moment
        ok, err = _apply(kubectl, namespace, store("elsewhere", "https://collector.example.net/tiktok"))
        if not ok or time.monotonic() > deadline:
            break
        kubectl("delete", "store", "elsewhere", "-n", namespace, check=True)
        time.sleep(0.5)
    assert not ok, "a Store pointed at an unlisted host was admitted"
    assert "spec.endpoint: host collector.example.net is not one the platform team allows for Store" in err, (
        err
    )
    assert "allowed: open-api.tiktokglobalshop.com, partner.shopeemobile.com, " in err, err
    assert "ConfigMap invsync-system/invsync-allowed-endpoints" in err, err

    assert _apply(kubectl, namespace, store("default", None))[0]  # the CRD's default endpoint
    assert _apply(kubectl, namespace, store("upper", "https://OPEN-API.tiktokglobalshop.com:443"))[0]
    ok, err = _apply(kubectl, namespace, store("default", "https://open-api.tiktokglobalshop.com.evil.io"))
    assert not ok and "host open-api.tiktokglobalshop.com.evil.io is not one" in err, err  # an update too

    assert _apply(kubectl, namespace, source("shop", "https://main.myshopify.com"))[0]
    for refused in (
        "https://myshopify.com",
        "https://main.myshopify.com.example.org",
        "http://erp.internal:8080",
    ):
        ok, err = _apply(kubectl, namespace, source("erp", refused))
        assert not ok and "for InventorySource endpoints" in err, (refused, err)


def test_editing_the_allowed_hosts_takes_effect_without_a_restart(
    kubectl: Kubectl, namespace: str, bound: str
) -> None:
    patch = {"data": {"hosts": "open-api.tiktokglobalshop.com, *.myshopify.com, erp.internal"}}
    kubectl("patch", "configmap", bound, "-n", namespace, "--type=merge", "-p", json.dumps(patch), check=True)
    deadline = time.monotonic() + 30
    while not (ok := _apply(kubectl, namespace, source("erp", "http://erp.internal:8080"))[0]):
        assert time.monotonic() < deadline, "the edited ConfigMap never took effect"
        time.sleep(0.5)
    kubectl("delete", "configmap", bound, "-n", namespace, check=True)
    deadline = time.monotonic() + 30
    while (ok := _apply(kubectl, namespace, source("erp2", "http://erp.internal:8080"))[0]) and (
        time.monotonic() < deadline
    ):
        kubectl("delete", "inventorysource", "erp2", "-n", namespace, check=True)
        time.sleep(0.5)
    assert not ok, "without its ConfigMap the policy must refuse, not allow everything"
