"""Fixtures of the sandbox's tests that need a sandbox of their own (its store changed by the
test, its listings' memory fresh)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from sandbox.core import Options, Sandbox


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return tmp_path_factory.mktemp("sandbox")  # one certificate authority for the module


@pytest.fixture
def own_sandbox(state_dir: Any) -> Iterator[Sandbox]:
    sandbox = Sandbox(Options(seed=5, events=30, state_dir=state_dir)).start("127.0.0.1")
    yield sandbox
    sandbox.stop()
