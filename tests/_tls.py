"""A throwaway CA and a certificate for 127.0.0.1, as files servers can load."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import trustme
from _servers import HOST
from cryptography.hazmat.primitives import serialization


class TLSFiles(NamedTuple):
    ca: Path
    cert: Path  # the certificate chain
    key: Path  # PKCS#8, the one format every server here loads (granian needs it)


def write_tls_files(directory: Path) -> TLSFiles:
    ca = trustme.CA()
    cert = ca.issue_cert(HOST)
    files = TLSFiles(directory / "ca.pem", directory / "cert.pem", directory / "key.pem")
    ca.cert_pem.write_to_path(str(files.ca))
    cert.private_key_and_cert_chain_pem.write_to_path(str(files.cert))
    key = serialization.load_pem_private_key(cert.private_key_pem.bytes(), password=None)
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return files
