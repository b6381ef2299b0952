"""The local cluster's keys and certificates, made on the spot at every ``housing cluster up``.

One CA signs the API server's serving certificate (for 127.0.0.1, localhost and the in-cluster
names) and one client certificate per identity: the admin (``system:masters``), the
controller-manager, the scheduler and kwok (the node stand-in, also ``system:masters``, as kwokctl
runs it). The ServiceAccount token signing key is a separate EC key. EC P-256 throughout: a key takes
well under a millisecond, where RSA-2048 takes ~50 ms.

Example::

    pki = make_pki(home / "pki")
    write_kubeconfig(home / "kubeconfig", "https://127.0.0.1:6443", pki, "admin")
"""

from __future__ import annotations

import base64
import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Who each client certificate says it is: (common name, organisation or None).
CLIENTS: dict[str, tuple[str, str | None]] = {
    "admin": ("kubernetes-admin", "system:masters"),
    "controller-manager": ("system:kube-controller-manager", None),
    "scheduler": ("system:kube-scheduler", None),
    "kwok": ("kwok-controller", "system:masters"),
}
# The first address of the Service CIDR (data only: nothing connects to it).
KUBERNETES_SERVICE_IP = "10.96.0.1"
VALID_FOR = timedelta(days=30)


@dataclass(frozen=True)
class Pki:
    """The files: ``ca.{crt,key}``, ``apiserver.{crt,key}``, ``NAME.{crt,key}``, ``sa.{key,pub}``."""

    folder: Path

    @property
    def ca(self) -> Path:
        return self.folder / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.folder / "ca.key"

    @property
    def service_account_key(self) -> Path:
        return self.folder / "sa.key"

    @property
    def service_account_public_key(self) -> Path:
        # The API server reads only public keys from --service-account-key-file.
        return self.folder / "sa.pub"

    def cert(self, name: str) -> Path:
        return self.folder / f"{name}.crt"

    def key(self, name: str) -> Path:
        return self.folder / f"{name}.key"


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    path.chmod(0o600)


def _name(common_name: str, organisation: str | None = None) -> x509.Name:
    parts = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organisation:
        parts.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation))
    return x509.Name(parts)


def _builder(
    subject: x509.Name, issuer: x509.Name, public: ec.EllipticCurvePublicKey
) -> x509.CertificateBuilder:
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + VALID_FOR)
    )


def make_pki(folder: Path) -> Pki:
    """A fresh CA, serving and client certificates and the ServiceAccount signing key in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    pki = Pki(folder)
    ca_key = _key()
    ca_name = _name("housing-local-ca")
    ca_cert = (
        _builder(ca_name, ca_name, ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(ca_key, hashes.SHA256())
    )
    pki.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    _write_key(pki.ca_key, ca_key)

    def issue(
        name: str, subject: x509.Name, usage: x509.ObjectIdentifier, sans: list[x509.GeneralName]
    ) -> None:
        key = _key()
        builder = _builder(subject, ca_name, key.public_key()).add_extension(
            x509.ExtendedKeyUsage([usage]), critical=False
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        pki.cert(name).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(pki.key(name), key)

    dns = ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"]
    dns.append("kubernetes.default.svc.cluster.local")
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in ("127.0.0.1", KUBERNETES_SERVICE_IP)]
    issue("apiserver", _name("kube-apiserver"), ExtendedKeyUsageOID.SERVER_AUTH, sans)
    for name, (common_name, organisation) in CLIENTS.items():
        issue(name, _name(common_name, organisation), ExtendedKeyUsageOID.CLIENT_AUTH, [])
    signing = _key()
    _write_key(pki.service_account_key, signing)
    pki.service_account_public_key.write_bytes(
        signing.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return pki


def kubeconfig(
    server: str, ca: bytes, user: dict[str, str], name: str = "housing-local"
) -> dict[str, object]:
    """A one-context kubeconfig; ``user`` holds client-certificate-data/client-key-data or a token."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": name,
                "cluster": {"server": server, "certificate-authority-data": base64.b64encode(ca).decode()},
            }
        ],
        "users": [{"name": name, "user": user}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
    }


def write_kubeconfig(path: Path, server: str, pki: Pki, client: str) -> Path:
    """A kubeconfig for ``client`` (a key of CLIENTS) with its certificate embedded; mode 0600."""
    user = {
        "client-certificate-data": base64.b64encode(pki.cert(client).read_bytes()).decode(),
        "client-key-data": base64.b64encode(pki.key(client).read_bytes()).decode(),
    }
    path.write_text(yaml.safe_dump(kubeconfig(server, pki.ca.read_bytes(), user)))
    path.chmod(0o600)
    return path


def write_token_kubeconfig(path: Path, server: str, ca: Path, token: str) -> Path:
    """A kubeconfig that authenticates with a bearer token (a ServiceAccount's TokenRequest token)."""
    path.write_text(yaml.safe_dump(kubeconfig(server, ca.read_bytes(), {"token": token})))
    path.chmod(0o600)
    return path
