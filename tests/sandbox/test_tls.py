from __future__ import annotations

import stat

from cryptography import x509

from sandbox.tls import ensure_certificates


def _sans(path):
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(name.value) for name in names}


def test_authority_is_made_once_and_kept(tmp_path):
    first = ensure_certificates(tmp_path, hosts=["127.0.0.1"])
    authority = first.ca.read_bytes()
    second = ensure_certificates(tmp_path, hosts=["127.0.0.1"])
    assert second.ca.read_bytes() == authority
    assert second.cert.read_bytes() == first.cert.read_bytes()


def test_server_certificate_is_reissued_for_new_host_names(tmp_path):
    first = ensure_certificates(tmp_path, hosts=["127.0.0.1"])
    before = first.cert.read_bytes()
    second = ensure_certificates(tmp_path, hosts=["127.0.0.1", "sandbox.local"])
    assert second.cert.read_bytes() != before
    assert {"127.0.0.1", "sandbox.local"} <= _sans(second.cert)


def test_private_keys_are_readable_by_their_owner_only(tmp_path):
    paths = ensure_certificates(tmp_path, hosts=["localhost"])
    for key in (paths.key, tmp_path / "ca-key.pem"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
