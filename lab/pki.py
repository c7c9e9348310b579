"""The lab's small certificate authority: one CA, one certificate per lab host.

Production names the operator's own certificate files in the runtime inventory; the lab
has nobody to ask, so it makes them. Every certificate serves both ways (server and
client auth) because a lab host is both: Patroni is a server to HAProxy and a client of
etcd. Files are reused while they still cover the host's names and stay valid for
`RENEW_BEFORE`, so `lab up` does not re-key a running lab; deleting them (or
`issue(..., force=True)`) rotates them.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import os
import pwd
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_NAME = "tricenter lab CA"
CA_LIFETIME = dt.timedelta(days=3650)
CERT_LIFETIME = dt.timedelta(days=397)  # what public CAs may issue at most; the docs say how to rotate
RENEW_BEFORE = dt.timedelta(days=30)


@dataclass(frozen=True)
class CertFiles:
    """The three files a TLS service needs; the key is 0600."""

    ca: Path
    cert: Path
    key: Path


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _write_private(path: Path, data: bytes) -> None:
    """Write a key so it is never readable by others, not even for an instant."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(tmp, path)


def _write_public(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def signing_key(path: Path) -> Path:
    """An ECDSA P-256 private key (PEM, 0600) at `path`, made on first use: what etcd signs
    its JWT auth tokens with."""
    if not path.exists():
        _write_private(path, _key_pem(ec.generate_private_key(ec.SECP256R1())))
    return path


def _load_cert(path: Path) -> x509.Certificate | None:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return None


def _fresh(cert: x509.Certificate | None) -> bool:
    return cert is not None and cert.not_valid_after_utc - _now() > RENEW_BEFORE


class CertificateAuthority:
    """A CA kept in one directory: ca.crt (public) and ca.key (0600)."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.cert_file = directory / "ca.crt"
        self.key_file = directory / "ca.key"

    def ensure(self) -> "CertificateAuthority":
        """Make the CA unless a valid one is already there."""
        if _fresh(_load_cert(self.cert_file)) and self.key_file.exists():
            return self
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME)])
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + CA_LIFETIME)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True, crl_sign=True,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        _write_private(self.key_file, _key_pem(key))
        _write_public(self.cert_file, cert.public_bytes(serialization.Encoding.PEM))
        return self

    def _signing(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        cert = _load_cert(self.cert_file)
        if cert is None:
            raise FileNotFoundError(f"{self.cert_file}: no CA certificate; call ensure() first")
        key = serialization.load_pem_private_key(self.key_file.read_bytes(), password=None)
        return cert, key  # type: ignore[return-value]

    def issue(self, directory: Path, name: str, addresses: list[str], dns_names: tuple[str, ...] = (),
              force: bool = False) -> CertFiles:
        """A certificate for `name` covering its addresses and DNS names, in `directory`
        as `<name>.crt` / `<name>.key` (0600), reused while still valid for them."""
        files = CertFiles(ca=self.cert_file, cert=directory / f"{name}.crt", key=directory / f"{name}.key")
        wanted = _subject_alt_names(name, addresses, dns_names)
        current = _load_cert(files.cert)
        if not force and _fresh(current) and files.key.exists() and _covers(current, wanted) \
                and _issued_by(current, self) and not current.subject:
            return files
        return self._sign(files, wanted, [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH])

    def issue_client(self, directory: Path, name: str, force: bool = False) -> CertFiles:
        """A client-only certificate for a tool that connects from wherever it runs: named
        by a URI (`urn:tricenter:client:<name>`), with no address or DNS name, which etcd
        would check against the client's address."""
        files = CertFiles(ca=self.cert_file, cert=directory / f"{name}.crt", key=directory / f"{name}.key")
        wanted: list[x509.GeneralName] = [x509.UniformResourceIdentifier(f"urn:tricenter:client:{name}")]
        current = _load_cert(files.cert)
        if not force and _fresh(current) and files.key.exists() and _covers(current, wanted) \
                and _issued_by(current, self) and not current.subject:
            return files
        return self._sign(files, wanted, [ExtendedKeyUsageOID.CLIENT_AUTH])

    def _sign(self, files: CertFiles, alt_names: list[x509.GeneralName],
              usages: list[x509.ObjectIdentifier]) -> CertFiles:
        """Sign a certificate named only by its subject alternative names: its subject
        stays empty because etcd refuses any request to its JSON gateway (Patroni's way
        in) from a client certificate with a CommonName. RFC 5280 then wants the
        alternative names critical."""
        ca_cert, ca_key = self._signing()
        key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(min(now + CERT_LIFETIME, ca_cert.not_valid_after_utc))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .add_extension(x509.SubjectAlternativeName(alt_names), critical=True)
        )
        cert = builder.sign(ca_key, hashes.SHA256())
        _write_private(files.key, _key_pem(key))
        _write_public(files.cert, cert.public_bytes(serialization.Encoding.PEM))
        return files


def install(source: CertFiles, target: CertFiles, owner: str | None = None) -> CertFiles:
    """Copy certificate files where a service reads them, owned by its account: what a
    role's copy tasks do on a host (CA and certificate 0644, the key 0600, never wider)."""
    for kind in ("ca", "cert"):
        install_file(getattr(target, kind), getattr(source, kind).read_bytes(), owner)
    install_file(target.key, source.key.read_bytes(), owner, private=True)
    return target


def install_file(path: Path, data: bytes, owner: str | None = None, private: bool = False) -> None:
    """One file of key material for a service's account: 0600 if `private`, else 0644."""
    (_write_private if private else _write_public)(path, data)
    if owner is not None and os.geteuid() == 0:
        account = pwd.getpwnam(owner)
        os.chown(path, account.pw_uid, account.pw_gid)


def _subject_alt_names(name: str, addresses: list[str], dns_names: tuple[str, ...]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in dict.fromkeys([name, *dns_names])]
    names += [x509.IPAddress(ipaddress.ip_address(a)) for a in dict.fromkeys(addresses)]
    return names


def _covers(cert: x509.Certificate, wanted: list[x509.GeneralName]) -> bool:
    try:
        present = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    return set(wanted) <= set(present)


def _issued_by(cert: x509.Certificate, ca: CertificateAuthority) -> bool:
    ca_cert = _load_cert(ca.cert_file)
    return ca_cert is not None and cert.issuer == ca_cert.subject and _signature_ok(cert, ca_cert)


def _signature_ok(cert: x509.Certificate, ca_cert: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def expires(cert_file: Path) -> dt.datetime:
    """When a certificate stops being valid (what the expiry alert watches)."""
    cert = _load_cert(cert_file)
    if cert is None:
        raise ValueError(f"{cert_file}: not a PEM certificate")
    return cert.not_valid_after_utc
