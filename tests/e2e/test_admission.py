"""Admission by the real API server (docs/operations.md): every malformed manifest in admission/reject/
is refused with a message naming the field (its ``# expect:`` lines), every boundary case in
admission/accept/ is admitted unchanged and reads back as a valid model. The offline check of
`invsync validate` must refuse the same manifests for the same field. Tests using the cluster are
marked e2e by tests/conftest.py."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from invsync.api.kinds import KINDS
from invsync.api.loader import load, validate
from invsync.errors import InputError
from invsync.testing.cluster import Kubectl

CORPUS = Path(__file__).parent / "admission"
REJECT = sorted((CORPUS / "reject").glob("*.yaml"))
ACCEPT = sorted((CORPUS / "accept").glob("*.yaml"))
FIELD_PATH = re.compile(r"\bspec(\.[A-Za-z]+(\[\d+\])?)*\b")


def _expected(path: Path) -> list[str]:
    prefix = "# expect:"
    return [line[len(prefix) :].strip() for line in path.read_text().splitlines() if line.startswith(prefix)]


def _contains(stored: Any, submitted: Any) -> bool:
    """Every value submitted is stored as given (the server may add defaults around it)."""
    if isinstance(submitted, dict):
        return isinstance(stored, dict) and all(
            k in stored and _contains(stored[k], v) for k, v in submitted.items()
        )
    if isinstance(submitted, list):
        return (
            isinstance(stored, list)
            and len(stored) == len(submitted)
            and all(_contains(a, b) for a, b in zip(stored, submitted, strict=True))
        )
    return bool(stored == submitted)


def test_corpus_covers_section_11() -> None:
    assert len(REJECT) >= 30
    for path in REJECT:
        expected = _expected(path)
        assert expected and FIELD_PATH.search(expected[0]), f"{path.name}: name the field first"
    names = " ".join(p.stem for p in REJECT)
    topics = ("ratio", "negative", "unknown", "stores-empty", "name-and-selector", "neither", "duplicate")
    for topic in topics:
        assert topic in names, f"no reject case about {topic}"
    assert "interval" in names and "settle" in names, "no bad-duration case"


@pytest.mark.parametrize("manifest", REJECT, ids=[p.stem for p in REJECT])
def test_offline_validation_agrees(manifest: Path) -> None:
    match = FIELD_PATH.search(_expected(manifest)[0])
    assert match
    with pytest.raises(InputError, match=re.escape(match.group())):
        validate(load([str(manifest)]))


@pytest.mark.parametrize("manifest", REJECT, ids=[p.stem for p in REJECT])
def test_rejected_with_the_field_named(manifest: Path, kubectl: Kubectl, namespace: str) -> None:
    result = kubectl("apply", "-n", namespace, "-f", str(manifest))
    assert result.returncode != 0, f"{manifest.name} was admitted"
    for fragment in _expected(manifest):
        assert fragment in result.stderr
    assert kubectl("get", "-n", namespace, "-f", str(manifest)).returncode != 0, "nothing may be stored"


@pytest.mark.parametrize("manifest", ACCEPT, ids=[p.stem for p in ACCEPT])
def test_boundary_case_admitted(manifest: Path, kubectl: Kubectl, namespace: str) -> None:
    submitted = yaml.safe_load(manifest.read_text())
    applied = kubectl("apply", "-n", namespace, "-f", str(manifest))
    assert applied.returncode == 0, applied.stderr
    stored = json.loads(kubectl("get", "-n", namespace, "-f", str(manifest), "-o", "json", check=True).stdout)
    assert _contains(stored["spec"], submitted["spec"]), f"stored spec differs: {stored['spec']}"
    KINDS[stored["kind"]].model_validate(stored)  # the operator reads what the server stored


def test_an_object_admitted_before_a_bound_still_gets_its_status(
    kubectl: Kubectl, namespace: str, tmp_path: Path
) -> None:
    """After an upgrade adds a bound, an object stored before it keeps taking status writes (the API
    server ratchets unchanged fields), so the operator can put a condition on it naming its field
    (docs/operations.md, Upgrade). Checked on a copy of the SyncRule CRD in a group of its own, so the
    session's CRDs never change."""
    import copy
    import time

    from invsync.api import crdgen

    group = "ratchet.invsync.dev"
    strict = crdgen.crd("SyncRule")
    strict["metadata"]["name"], strict["spec"]["group"] = f"syncrules.{group}", group
    loose = copy.deepcopy(strict)
    spec = loose["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    del spec["properties"]["interval"]["x-kubernetes-validations"]

    def apply_crd(crd: dict[str, Any]) -> None:
        (tmp_path / "crd.yaml").write_text(yaml.safe_dump(crd))
        kubectl("apply", "-f", str(tmp_path / "crd.yaml"), check=True)
        kubectl("wait", "--for=condition=Established", f"crd/syncrules.{group}", check=True)

    def rule(name: str) -> Path:
        body = {
            "apiVersion": f"{group}/v1alpha1",
            "kind": "SyncRule",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"stores": {"names": ["s"]}, "warehouses": [{"name": "w"}], "interval": "0s"},
        }
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(body))
        return tmp_path / f"{name}.yaml"

    try:
        apply_crd(loose)
        kubectl("apply", "-f", str(rule("before")), check=True)
        apply_crd(strict)
        deadline = time.monotonic() + 60
        while kubectl("apply", "-f", str(rule("after"))).returncode == 0:  # the new schema takes over
            kubectl("delete", "-f", str(rule("after")))
            assert time.monotonic() < deadline, "the bound never took effect"
            time.sleep(0.5)
        condition = {"type": "Ready", "status": "False", "reason": "InvalidSpec", "message": "spec.interval",
                     "lastTransitionTime": "2026-01-01T00:00:00Z"}  # fmt: skip
        patched = kubectl(
            "patch", f"syncrules.{group}", "before", "-n", namespace, "--subresource=status",
            "--type=merge", "-p", json.dumps({"status": {"conditions": [condition]}}),
        )  # fmt: skip
        assert patched.returncode == 0, patched.stderr
        assert (
            "spec.interval" in patched.stderr and "must be between 1s and 720h" in patched.stderr
        )  # a warning
    finally:
        kubectl("delete", "crd", f"syncrules.{group}", "--wait=false")
