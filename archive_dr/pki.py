"""IPsec PKI for the site gateways, generated once into Ansible Vault.

Secret kinds for ``secrets_required`` (registered in ``archive_dr.secrets``):

  ipsec_ca    ``<name>`` -> ``<name>_key`` (ECDSA P-256, PEM) and ``<name>_cert``
              (self-signed CA, ``CN=archive-dr IPsec CA``, 10 years)
  ipsec_cert  ``<prefix>_cert_<site>`` -> ``<name>`` (certificate PEM) and
              ``<name>_key``; signed by the CA ``<prefix>_ca`` that must come
              earlier in ``secrets_required``. The identity is the site, not the
              host: ``CN=<site>.gateway.archive-dr`` with the same DNS
              subjectAltName, so a rebuilt gateway keeps its identity.
              Validity 825 days (cert expiry is exported as a metric).
  gpg_signing ``<name>`` -> ``<name>`` (armored ed25519 OpenPGP secret key) and
              ``<name>_pub``: the package depot's signing key.

Example (inventory group_vars/all/tunnel.yml)::

    secrets_required:
      - {name: site_gateway_ipsec_ca, kind: ipsec_ca}
      - {name: site_gateway_ipsec_cert_geo, kind: ipsec_cert}
      - {name: site_gateway_ipsec_cert_miyun, kind: ipsec_cert}
"""
from __future__ import annotations

import datetime as dt
import subprocess
import tempfile
from pathlib import Path

CERT_DAYS = 825
CA_DAYS = 3650
IDENTITY_SUFFIX = ".gateway.archive-dr"


class PkiError(ValueError):
    pass


def identity(site: str) -> str:
    return f"{site}{IDENTITY_SUFFIX}"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def _key_pem(key) -> str:
    from cryptography.hazmat.primitives import serialization

    # SEC1 "EC PRIVATE KEY": what swanctl loads from /etc/swanctl/ecdsa/.
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption()).decode()


def _cert_pem(cert) -> str:
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM).decode()


def make_ca(common_name: str = "archive-dr IPsec CA", days: int = CA_DAYS) -> tuple[str, str]:
    """Return (key_pem, cert_pem) of a new ECDSA P-256 CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "archive-dr"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = _now()
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True, crl_sign=True,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return _key_pem(key), _cert_pem(cert)


def make_cert(ca_key_pem: str, ca_cert_pem: str, site: str, days: int = CERT_DAYS) -> tuple[str, str]:
    """Return (key_pem, cert_pem) of a gateway certificate for ``site`` signed by the CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    ca_key = serialization.load_pem_private_key(ca_key_pem.encode(), password=None)
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem.encode())
    key = ec.generate_private_key(ec.SECP256R1())
    ident = identity(site)
    now = _now()
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "archive-dr"),
                                     x509.NameAttribute(NameOID.COMMON_NAME, ident)]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(ident)]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    return _key_pem(key), _cert_pem(cert)


def gen_ipsec_ca(name: str, existing: dict) -> dict:
    key, cert = make_ca()
    return {f"{name}_key": key, f"{name}_cert": cert}


def gen_ipsec_cert(name: str, existing: dict) -> dict:
    if "_cert_" not in name:
        raise PkiError(f"ipsec_cert secret {name!r} must be named <prefix>_cert_<site>")
    prefix, site = name.rsplit("_cert_", 1)
    ca = f"{prefix}_ca"
    if f"{ca}_key" not in existing or f"{ca}_cert" not in existing:
        raise PkiError(f"ipsec_cert {name!r} needs the CA {ca!r} (kind ipsec_ca) listed before it")
    key, cert = make_cert(existing[f"{ca}_key"], existing[f"{ca}_cert"], site)
    return {name: cert, f"{name}_key": key}


def gen_gpg_signing(name: str, existing: dict) -> dict:
    """An ed25519 OpenPGP signing key: ``<name>`` (armored secret key) and ``<name>_pub``."""
    with tempfile.TemporaryDirectory(prefix="archive-dr-gpg-") as home:
        Path(home).chmod(0o700)
        base = ["gpg", "--homedir", home, "--batch", "--quiet", "--pinentry-mode", "loopback", "--passphrase", ""]
        subprocess.run(base + ["--quick-gen-key", f"archive-dr package depot ({name}) <depot@archive-dr.invalid>",
                               "ed25519", "sign", "never"], check=True, capture_output=True)
        private = subprocess.run(base + ["--armor", "--export-secret-keys"], check=True, capture_output=True,
                                 text=True).stdout
        public = subprocess.run(base + ["--armor", "--export"], check=True, capture_output=True, text=True).stdout
        # gpg started an agent for this home; it must not outlive the temporary directory
        subprocess.run(["gpgconf", "--homedir", home, "--kill", "gpg-agent"], check=False, capture_output=True)
    return {name: private, f"{name}_pub": public}


GENERATORS = {"ipsec_ca": gen_ipsec_ca, "ipsec_cert": gen_ipsec_cert, "gpg_signing": gen_gpg_signing}
