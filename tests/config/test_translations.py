"""The English catalogue is complete, and the committed .mo files match their .po sources."""

from __future__ import annotations

import ast
import gettext
from pathlib import Path

import pytest

LOCALE = Path(__file__).resolve().parents[2] / "locale"


def _po_entries(path: Path) -> dict[str, str]:
    """msgid -> msgstr of a .po file (plural forms joined by NUL), without the header."""
    entries = {}
    for block in path.read_text(encoding="utf-8").split("\n\n"):
        fields: dict[str, str] = {}
        key = ""
        for line in block.splitlines():
            if line.startswith("#"):
                continue
            if not line.startswith('"'):
                key, _, line = line.partition(" ")
                fields[key] = ""
            fields[key] += ast.literal_eval(line)
        if fields.get("msgid"):
            entries[fields["msgid"]] = "\x00".join(
                value for name, value in sorted(fields.items()) if name.startswith("msgstr")
            )
    return entries


@pytest.mark.parametrize("language", ["en", "fr"])
def test_compiled_catalogue_matches_its_source(language):
    po = _po_entries(LOCALE / language / "LC_MESSAGES" / "django.po")
    with (LOCALE / language / "LC_MESSAGES" / "django.mo").open("rb") as mo:
        compiled = gettext.GNUTranslations(mo)
    translated = {k: v for k, v in po.items() if v.strip("\x00")}
    for msgid, msgstr in translated.items():
        first = msgstr.split("\x00")[0]
        key = msgid if "\x00" not in msgstr else (msgid, 0)
        assert compiled._catalog.get(key) == first, f"{language}: recompile for {msgid!r}"


def test_every_message_has_an_english_translation():
    po = _po_entries(LOCALE / "en" / "LC_MESSAGES" / "django.po")
    assert len(po) > 50
    untranslated = [msgid for msgid, msgstr in po.items() if not all(msgstr.split("\x00"))]
    assert untranslated == []
