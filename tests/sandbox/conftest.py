from __future__ import annotations

from collections.abc import Iterator

import pytest

from calendars.sandbox.core import Options, Sandbox


@pytest.fixture(scope="session")
def sandbox_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """One sandbox for the session, on free loopback ports; see `sandbox` for a clean one."""
    options = Options(seed=7, events=60, state_dir=tmp_path_factory.mktemp("sandbox"))
    server = Sandbox(options).start("127.0.0.1")
    yield server
    server.stop()


@pytest.fixture
def sandbox(sandbox_server: Sandbox) -> Iterator[Sandbox]:
    """The running sandbox, with no fault rules and zeroed counters for each test."""
    sandbox_server.clear_faults()
    sandbox_server.reset_counters()
    yield sandbox_server
    sandbox_server.clear_faults()
