"""Least privilege drills (issue 9): after an end-to-end run of the examples (token refresh, webhooks
and a refused credential included) no credential value is found in the operator's logs (debug on),
Events, the status of any resource or /metrics; and a reference resolves only in its own namespace,
even when an object of that name exists in another namespace the same operator watches."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from drill_env import drill_manifests, drill_sandbox, live, matches_plan
from operator_env import (
    EXAMPLES,
    Env,
    Operator,
    env_fixture,
    example_manifests,
    examples_sandbox,
    ready,
    resource,
    secret,
    wait_for,
)

from invsync.providers.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign_generic
from invsync.testing.cluster import ControlPlane, Kubectl

pytestmark = pytest.mark.e2e
REFRESH_TOKEN = "tt-id-refresh-token-value"
RULES = ("easyboss-multi-warehouse", "aftership-all-locations", "aftership-specific-location")


def refreshing_sandbox(op: Operator) -> dict[str, Any]:
    """The examples' sandbox, with the single-warehouse shop's access token expired: the operator
    must refresh it, so a token the Secret never held is in play too."""
    config = examples_sandbox(op)
    shop = next(s for s in config["tiktok"]["shops"] if s["cipher"] == "ROW_id")
    shop.update({"refresh_token": REFRESH_TOKEN, "accessTokenExpired": True})
    return config


@pytest.fixture
def examples_env(namespace: str, kubectl: Kubectl, kubeconfig: Path, tmp_path: Path) -> Iterator[Env]:
    yield from env_fixture(namespace, kubectl, kubeconfig, tmp_path, refreshing_sandbox, args=("-v",))


def credentials() -> set[str]:
    """Every value of every Secret in examples/00-secrets.yaml."""
    docs = yaml.safe_load_all((EXAMPLES / "00-secrets.yaml").read_text())
    return {v for d in docs if d and d["kind"] == "Secret" for v in d["stringData"].values()}


def everything_visible(env: Env) -> dict[str, str]:
    """What an operator of the cluster (or anyone with read access to it) can see, by where."""
    seen = {"operator log": env.operator.log.read_text(errors="replace")}
    seen["events"] = json.dumps(env.events())
    for kind in ("syncrules", "stores", "warehouses", "inventorysources"):
        out = env.kubectl("get", "-n", env.namespace, kind, "-o", "json", check=True).stdout
        seen[f"{kind} status"] = json.dumps([item.get("status") for item in json.loads(out)["items"]])
    seen["/metrics"] = httpx.get(f"http://127.0.0.1:{env.operator.metrics_port}/metrics", timeout=5).text
    seen["invsync status"] = env.invsync("status").stdout
    return seen


def test_no_credential_in_logs_events_status_or_metrics(examples_env: Env) -> None:
    env = examples_env
    docs = example_manifests(env.sandbox.url)
    for d in docs:
        if d["kind"] == "Secret" and d["metadata"]["name"] == "tiktok-id-creds":
            d["stringData"]["refresh_token"] = REFRESH_TOKEN
    wrong = "wrong-access-token-value"
    docs += [
        secret(
            "wrong-creds",
            {"app_key": "sandbox-app-key", "app_secret": "sandbox-app-secret", "access_token": wrong},
        ),
        resource(
            "Store",
            "refused",
            {
                "platform": "tiktok",
                "endpoint": env.sandbox.url,
                "shopCipher": "ROW_id",
                "credentialsSecretRef": {"name": "wrong-creds"},
            },
        ),
    ]
    env.apply(docs)
    wait_for(lambda: all(ready(env, r) for r in RULES), what="every example rule Ready")
    shop = env.sandbox.state.tiktok["ROW_id"]
    assert shop.access_token != "tt-id-token" and "tt-id-token" in shop.stale_tokens  # refreshed

    # Webhooks of both formats, and a forged one.
    for source, sku in (("wms", "EB-A"), ("main", "AS-PCT-1")):
        location = "wh1" if source == "wms" else "gid://shopify/Location/1"
        answer = env.admin(
            "POST", "stock", {"source": source, "location": location, "sku": sku, "available": 77}
        )
        assert answer["webhook"]["status"] == 202, answer
    body = b'{"items": [{"sku": "EB-A", "location": "wh1", "available": 1}]}'
    forged = httpx.post(
        f"http://127.0.0.1:{env.operator.webhook_port}/webhooks/{env.namespace}/wms",
        content=body,
        headers={SIGNATURE_HEADER: sign_generic(body, "guessed"), TIMESTAMP_HEADER: str(int(time.time()))},
        timeout=10,
    )
    assert forged.status_code == 401
    cond = wait_for(lambda: env.condition("Store", "refused"), what="the refused Store's condition")
    assert cond is not None and cond["reason"] == "AuthFailed"

    secrets = credentials() | {wrong, REFRESH_TOKEN, shop.access_token, *shop.stale_tokens}
    seen = everything_visible(env)
    assert "easyboss-multi-warehouse" in seen["/metrics"] and "token_refresh" in seen["/metrics"]
    assert "AuthFailed" in seen["stores status"] and seen["events"] != "[]"
    leaks = [(where, value) for where, text in seen.items() for value in secrets if shows(text, value)]
    assert not leaks, f"credentials found: {leaks}"


def shows(text: str, value: str) -> bool:
    """Whether `text` holds the credential `value`. A numeric one (Shopee's partner_id 2001, Lazada's
    app_key 3001) counts only as a token of its own: inside a longer number (port 23001, a metric's
    0.0020013) or a hex digest (a request's sign ...12d3001a7...) it is another value."""
    if not value.isdigit():
        return value in text
    return re.search(rf"(?<![0-9A-Za-z.]){value}(?![0-9A-Za-z]|\.[0-9])", text) is not None


# --------------------------------------------------------------------------- namespaces


@pytest.fixture
def two_namespaces(
    namespace: str, cluster: ControlPlane, kubectl: Kubectl, kubeconfig: Path, tmp_path: Path
) -> Iterator[tuple[Env, str]]:
    other = f"{namespace}-b"
    cluster.kubectl("create", "namespace", other, check=True)
    for env in env_fixture(namespace, kubectl, kubeconfig, tmp_path, drill_sandbox, args=("-n", other)):
        yield env, other


def test_references_resolve_only_in_their_own_namespace(
    two_namespaces: tuple[Env, str], tmp_path: Path
) -> None:
    env, other = two_namespaces
    url = env.sandbox.url
    mine = drill_manifests(url, url)
    rule = mine[-1]
    rule["spec"]["warehouses"].append({"name": "only-elsewhere"})
    mine += [
        resource(
            "Store",
            "borrowed-secret",
            {
                "platform": "tiktok",
                "endpoint": url,
                "shopCipher": "ROW_drill",
                "credentialsSecretRef": {"name": "secret-elsewhere"},
            },
        ),
        resource(
            "Warehouse", "borrowed-source", {"sourceRef": {"name": "source-elsewhere"}, "locationId": "L1"}
        ),
    ]
    # The other namespace: the same names with other contents (w1 reads L2, so a leak would show in
    # the quantities), and the objects this namespace names but does not have.
    theirs = [d for d in drill_manifests(url, url) if d["kind"] != "SyncRule"]
    next(d for d in theirs if d["metadata"]["name"] == "w1")["spec"]["locationId"] = "L2"
    theirs += [
        resource("Warehouse", "only-elsewhere", {"sourceRef": {"name": "erp"}, "locationId": "L1"}),
        resource(
            "InventorySource",
            "source-elsewhere",
            {"provider": "http", "endpoint": f"{url}/erp/erp", "credentialsSecretRef": {"name": "drill-erp"}},
        ),
        secret(
            "secret-elsewhere",
            {
                "app_key": "drill-app-key",
                "app_secret": "drill-app-secret",
                "access_token": "drill-access-token",
            },
        ),
    ]
    env.kubectl("apply", "-n", other, "-f", "-", input=yaml.safe_dump_all(theirs), check=True)
    before = live(env)
    env.apply(mine)

    def named() -> str | None:
        cond = env.condition("SyncRule", "drill")
        return cond["message"] if cond and "Warehouse only-elsewhere not found" in cond["message"] else None

    wait_for(named, what="the rule naming the Warehouse that exists only in the other namespace")
    reasons = {
        ("Store", "borrowed-secret"): "SecretNotFound",
        ("Warehouse", "borrowed-source"): "SourceNotFound",
    }
    for (kind, name), reason in reasons.items():

        def refused(kind: str = kind, name: str = name, reason: str = reason) -> bool:
            cond = env.condition(kind, name)
            return cond is not None and (cond["status"], cond["reason"]) == ("False", reason)

        wait_for(refused, what=f"{kind} {name} Ready=False {reason}")
    # Every slot is what this namespace's own w1 (L1) and w2 give, not the other namespace's w1 (L2):
    # the plan of this namespace's world without the names it cannot resolve (they feed no slot).
    valid = drill_manifests(url, url)
    wait_for(lambda: matches_plan(env, valid, tmp_path / "plan", before), what="the plan of this namespace")
    assert env.status("Warehouse", "w1")["available"] != 0
    # A webhook addressed to this namespace for the other namespace's source is not found either.
    body = b'{"items": []}'
    headers = {SIGNATURE_HEADER: sign_generic(body, "x"), TIMESTAMP_HEADER: str(int(time.time()))}
    hook = f"http://127.0.0.1:{env.operator.webhook_port}/webhooks/{env.namespace}/source-elsewhere"
    assert httpx.post(hook, content=body, headers=headers, timeout=10).status_code == 404
