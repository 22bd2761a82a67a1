"""Throwaway credentials for a local Flower deployment (scripts/deploy_local.sh).

    python scripts/make_credentials.py DIR --nodes K [--extra-nodes M] [--host NAME_OR_IP ...]

Writes into DIR (created with mode 0700; every key file 0600):
- ``ca.crt`` / ``ca.key``: a self-signed CA, valid for one day;
- ``server.pem`` / ``server.key``: the SuperLink's TLS certificate, signed by the CA, with the
  subject alternative names 127.0.0.1, ::1, localhost and every ``--host``;
- ``node-<i>`` / ``node-<i>.pub`` for i < K + M: one EC (P-384) key pair per SuperNode in the OpenSSH
  format ``flower-supernode --auth-supernode-private-key`` and ``flwr supernode register`` read.

For a deployment across machines use certificates from your organisation's CA instead (docs/DEPLOYMENT.md).
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to a new file created with ``mode`` (never readable by others, not even briefly)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def _san(hosts: list[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def make_tls(out: Path, hosts: list[str], days: int = 1) -> None:
    """A CA and a server certificate for ``hosts`` signed by it."""
    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=days)
    ca_key = ec.generate_private_key(ec.SECP384R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fedfair local deployment CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(start).not_valid_after(end)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False, key_agreement=False,
                                       key_cert_sign=True, crl_sign=True, encipher_only=False,
                                       decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA384()))
    key = ec.generate_private_key(ec.SECP384R1())
    server = (x509.CertificateBuilder()
              .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
              .issuer_name(ca_name).public_key(key.public_key())
              .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
              .add_extension(_san(hosts), critical=False)
              .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
              .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
              .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                             critical=False)
              .sign(ca_key, hashes.SHA384()))
    pem = serialization.Encoding.PEM
    _write(out / "ca.key", _pem_key(ca_key), 0o600)
    _write(out / "ca.crt", ca.public_bytes(pem), 0o600)
    _write(out / "server.key", _pem_key(key), 0o600)
    _write(out / "server.pem", server.public_bytes(pem), 0o600)


def make_node_key(out: Path, name: str) -> None:
    """One SuperNode's EC key pair (OpenSSH format): ``<name>`` (private) and ``<name>.pub``."""
    key = ec.generate_private_key(ec.SECP384R1())
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    _write(out / name, private, 0o600)
    _write(out / f"{name}.pub", public + b"\n", 0o600)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", type=Path)
    parser.add_argument("--nodes", type=int, required=True, help="SuperNode key pairs node-0 .. node-(K-1)")
    parser.add_argument("--extra-nodes", type=int, default=0, help="further key pairs (not to be registered)")
    parser.add_argument("--host", action="append", default=[], help="another name or IP for the certificate")
    args = parser.parse_args()
    if args.nodes < 0 or args.extra_nodes < 0:
        parser.error("--nodes and --extra-nodes must be >= 0")
    args.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(args.dir, 0o700)
    make_tls(args.dir, ["127.0.0.1", "::1", "localhost", *args.host])
    for i in range(args.nodes + args.extra_nodes):
        make_node_key(args.dir, f"node-{i}")


if __name__ == "__main__":
    main()
