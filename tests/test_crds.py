"""crds/ must be exactly what the models generate: a stale CRD would admit what the operator rejects."""

from pathlib import Path

from invsync.api import crdgen

CRDS = Path(__file__).resolve().parents[1] / "crds"


def test_crds_are_generated_from_the_models() -> None:
    rendered = crdgen.render()
    on_disk = {p.name: p.read_text() for p in CRDS.glob("*.yaml")}
    assert set(on_disk) == set(rendered), "run `make crds`"
    for name, text in rendered.items():
        assert on_disk[name] == text, f"crds/{name} is stale: run `make crds`"
