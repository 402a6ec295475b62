from __future__ import annotations

from pathlib import Path

import certifi
import pytest

from core.tls import combined_bundle, outlook_verify


def test_without_an_extra_authority_requests_use_their_own_bundle(settings):
    settings.OUTLOOK_CA_BUNDLE = ""
    assert outlook_verify() is True


def test_extra_authority_is_added_to_the_usual_ones(settings, tmp_path):
    extra = tmp_path / "proxy-ca.pem"
    extra.write_text("-----BEGIN CERTIFICATE-----\nMIIBextra\n-----END CERTIFICATE-----\n")
    settings.OUTLOOK_CA_BUNDLE = str(extra)
    bundle = Path(outlook_verify())
    content = bundle.read_bytes()
    assert content.startswith(Path(certifi.where()).read_bytes())
    assert content.endswith(extra.read_bytes())
    assert combined_bundle(str(extra)) == str(bundle)


def test_unreadable_extra_authority_names_the_setting(settings, tmp_path):
    settings.OUTLOOK_CA_BUNDLE = str(tmp_path / "missing.pem")
    with pytest.raises(OSError, match="OUTLOOK_CA_BUNDLE cannot be read"):
        outlook_verify()


def test_the_bundle_can_be_written_by_many_threads_at_once(tmp_path):
    import threading
    import uuid

    extra = tmp_path / "proxy-ca.pem"
    extra.write_text(f"-----BEGIN CERTIFICATE-----\n{uuid.uuid4()}\n-----END CERTIFICATE-----\n")
    write = combined_bundle.__wrapped__  # past the cache: every thread writes
    results, errors = [], []
    start = threading.Barrier(8)

    def first_call():
        start.wait()
        try:
            results.append(write(str(extra)))
        except OSError as error:
            errors.append(error)

    threads = [threading.Thread(target=first_call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(set(results)) == 1
    assert Path(results[0]).read_bytes().endswith(extra.read_bytes())
    Path(results[0]).unlink()
