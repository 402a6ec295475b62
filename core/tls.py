"""Which certificate authorities to trust when calling Microsoft.

OUTLOOK_CA_BUNDLE names an *extra* authority (a TLS-inspecting proxy, the sandbox). requests
takes one bundle file for `verify`, so the extra one is appended to the usual bundle in a file
of its own, written once per distinct content.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from functools import cache
from pathlib import Path

import certifi
from django.conf import settings


def outlook_verify() -> str | bool:
    """The `verify` argument for requests sent to Microsoft."""
    extra = settings.OUTLOOK_CA_BUNDLE
    return combined_bundle(extra) if extra else True


@cache
def combined_bundle(extra: str) -> str:
    try:
        extra_pem = Path(extra).read_bytes()
    except OSError as error:
        raise OSError(f"OUTLOOK_CA_BUNDLE cannot be read: {extra} ({error.strerror})") from error
    content = Path(certifi.where()).read_bytes() + b"\n" + extra_pem
    digest = hashlib.sha256(content).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"formations-ca-{digest}.pem"
    if not path.exists():
        # A temporary file of each writer's own: threads and processes starting together each
        # write theirs, and the last rename wins with the same content.
        handle, partial = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
        with os.fdopen(handle, "wb") as file:
            file.write(content)
        os.replace(partial, path)
    return str(path)
