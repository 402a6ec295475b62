"""Running Python in a fresh process, for what only a new interpreter shows (settings read at
start-up, modules loaded by django.setup())."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_python(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`python *args` at the repository's root, with this environment less DATABASE_URL and
    DEBUG (the settings' own defaults), plus `env`."""
    environment = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "DEBUG"}}
    environment.update(env)
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
