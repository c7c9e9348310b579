"""The lab's CA: certificates that verify, keys nobody else can read, reuse and rotation."""
import datetime
import ssl
import stat

from cryptography import x509

from lab import pki


def test_host_certificate_verifies_against_the_ca_for_its_address(tmp_path):
    ca = pki.CertificateAuthority(tmp_path / "ca").ensure()
    files = ca.issue(tmp_path / "hosts", "main-db", ["127.0.1.1"], ("pg-main",))
    context = ssl.create_default_context(cafile=str(files.ca))
    context.load_cert_chain(str(files.cert), str(files.key))  # the key matches the certificate
    cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(files.ca.read_bytes()))
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(a) for a in sans.get_values_for_type(x509.IPAddress)] == ["127.0.1.1"]
    assert set(sans.get_values_for_type(x509.DNSName)) == {"main-db", "pg-main"}


def test_private_keys_are_0600(tmp_path):
    ca = pki.CertificateAuthority(tmp_path / "ca").ensure()
    files = ca.issue(tmp_path / "hosts", "dr-db", ["127.0.3.1"])
    for key in (ca.key_file, files.key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_a_valid_certificate_is_reused_and_a_new_address_reissues_it(tmp_path):
    ca = pki.CertificateAuthority(tmp_path / "ca").ensure()
    first = ca.issue(tmp_path, "h", ["127.0.1.1"]).cert.read_bytes()
    assert ca.issue(tmp_path, "h", ["127.0.1.1"]).cert.read_bytes() == first
    assert pki.CertificateAuthority(tmp_path / "ca").ensure().cert_file.read_bytes() == ca.cert_file.read_bytes()
    assert ca.issue(tmp_path, "h", ["127.0.1.2"]).cert.read_bytes() != first


def test_a_new_ca_reissues_host_certificates(tmp_path):
    old = pki.CertificateAuthority(tmp_path / "old").ensure()
    first = old.issue(tmp_path, "h", ["127.0.1.1"]).cert.read_bytes()
    new = pki.CertificateAuthority(tmp_path / "new").ensure()
    assert new.issue(tmp_path, "h", ["127.0.1.1"]).cert.read_bytes() != first


def test_expiry_is_within_the_lifetime(tmp_path):
    ca = pki.CertificateAuthority(tmp_path / "ca").ensure()
    files = ca.issue(tmp_path, "h", ["127.0.1.1"])
    left = pki.expires(files.cert) - pki._now()
    assert pki.CERT_LIFETIME - left < datetime.timedelta(minutes=1)
