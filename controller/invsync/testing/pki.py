"""Certificates and keys for the local control plane, generated fresh for every start.

ECDSA P-256 throughout: as good as RSA for a loopback test cluster and a hundred times faster to
generate on a busy 2-core machine.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=365)


@dataclass(frozen=True)
class ControlPlanePki:
    """PEM bytes of everything the API server and its clients need."""

    ca_cert: bytes
    serving_cert: bytes
    serving_key: bytes
    admin_cert: bytes
    admin_key: bytes
    service_account_key: bytes
    service_account_public_key: bytes


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def _certificate(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    usage: x509.ObjectIdentifier | None = None,
    alt_names: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    """A CA certificate when ``usage`` is None, else a leaf for that extended key usage."""
    ca = usage is None
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def generate(admin_user: str, serving_ips: Sequence[str] = ("127.0.0.1",)) -> ControlPlanePki:
    """A CA, the API server's serving pair (for ``serving_ips``: the loopback, or the local node's
    address and the ``kubernetes`` Service's where pods reach it), an admin client pair (group
    system:masters, which RBAC lets do anything) and the ServiceAccount token signing key."""
    ca_key = _new_key()
    ca_name = _name("invsync-test-ca")
    ca = _certificate(ca_name, ca_key, ca_name, ca_key)
    serving_key = _new_key()
    serving = _certificate(
        _name("kube-apiserver"),
        serving_key,
        ca_name,
        ca_key,
        ExtendedKeyUsageOID.SERVER_AUTH,
        [
            *(x509.IPAddress(ipaddress.ip_address(ip)) for ip in serving_ips),
            x509.DNSName("localhost"),
            x509.DNSName("kubernetes.default.svc"),
        ],
    )
    admin_key = _new_key()
    admin = _certificate(
        _name(admin_user, "system:masters"), admin_key, ca_name, ca_key, ExtendedKeyUsageOID.CLIENT_AUTH
    )
    sa_key = _new_key()
    pem = serialization.Encoding.PEM
    return ControlPlanePki(
        ca_cert=ca.public_bytes(pem),
        serving_cert=serving.public_bytes(pem),
        serving_key=_key_pem(serving_key),
        admin_cert=admin.public_bytes(pem),
        admin_key=_key_pem(admin_key),
        service_account_key=_key_pem(sa_key),
        service_account_public_key=sa_key.public_key().public_bytes(
            pem, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )
