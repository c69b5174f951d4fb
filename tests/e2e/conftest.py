"""The operator end-to-end world shared by test_operator*.py: sandbox + `invsync run` in a fresh namespace."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from operator_env import Env, env_fixture, sandbox_config

from invsync.testing.cluster import Kubectl


@pytest.fixture
def env(namespace: str, kubectl: Kubectl, kubeconfig: Path, tmp_path: Path) -> Iterator[Env]:
    yield from env_fixture(namespace, kubectl, kubeconfig, tmp_path, sandbox_config)
