"""crds/ must be exactly what the models generate: a stale CRD would admit what the operator rejects.
manifests/crds/ holds the same files for the kustomize base, which may not load from outside its root,
and charts/invsync/crds/ for the Helm chart."""

from pathlib import Path

import pytest
import yaml

from invsync.api import crdgen

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("directory", ["crds", "manifests/crds", "charts/invsync/crds"])
def test_crds_are_generated_from_the_models(directory: str) -> None:
    rendered = crdgen.render()
    on_disk = {
        p.name: p.read_text() for p in (ROOT / directory).glob("*.yaml") if p.name != "kustomization.yaml"
    }
    assert set(on_disk) == set(rendered), "run `make crds`"
    for name, text in rendered.items():
        assert on_disk[name] == text, f"{directory}/{name} is stale: run `make crds`"


def test_kustomize_base_lists_every_crd() -> None:
    kustomization = yaml.safe_load((ROOT / "manifests/crds/kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(crdgen.render())
