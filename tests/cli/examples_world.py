"""What tests of examples/ share: where it is, where its sandbox listens, and its credentials."""

from pathlib import Path
from typing import Any

import yaml

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SANDBOX = "http://127.0.0.1:18090"  # the endpoint examples/ manifests name


def example_secrets() -> dict[str, dict[str, str]]:
    """Secret name -> stringData of every Secret in examples/."""
    docs: list[Any] = [d for p in EXAMPLES.glob("*.yaml") for d in yaml.safe_load_all(p.read_text())]
    return {
        d["metadata"]["name"]: d["stringData"]
        for d in docs
        if isinstance(d, dict) and d.get("kind") == "Secret"
    }
