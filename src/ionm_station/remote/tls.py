"""TLS for SDC: every station and supervisor holds a certificate signed by the site's own CA.

A certificate folder holds three PEM files: ``ca.pem`` (the CA certificate every peer must be
signed by), ``cert.pem`` (this machine's certificate) and ``key.pem`` (its private key). Both
directions verify (``CERT_REQUIRED``): a station refuses a supervisor, and a supervisor a
station, whose certificate its CA did not sign. Host names are not checked — the CA is the
trust; issue certificates only to machines that may take part. How to make them:
``docs/remote.md``. Plain HTTP (``--insecure``) exists for tests on one machine.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from sdc11073.certloader import SSLContextContainer

from ionm_station.errors import IonmError, input_problem

CA_FILE, CERT_FILE, KEY_FILE = "ca.pem", "cert.pem", "key.pem"


class TlsError(IonmError):
    """A certificate folder that cannot be used; one line naming the file."""


def _context(purpose: int, cert: Path, key: Path, ca: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(purpose)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    try:
        ctx.load_cert_chain(certfile=cert, keyfile=key)
    except ssl.SSLError as exc:
        raise TlsError(f"{cert}, {key}: not a certificate and its private key "
                       f"({exc.reason or exc})") from None
    try:
        ctx.load_verify_locations(cafile=ca)
    except ssl.SSLError as exc:
        raise TlsError(f"{ca}: not a CA certificate ({exc.reason or exc})") from None
    return ctx


def ssl_contexts(folder: Path | None) -> SSLContextContainer | None:
    """The client and server contexts from a certificate folder; None (plain HTTP) for None.

    Raises:
        TlsError: a missing or unreadable file, a key that does not match the certificate, a
            CA file that holds no certificate.
    """
    if folder is None:
        return None
    folder = Path(folder)
    if not folder.is_dir():
        what = "not a folder" if folder.exists() else "no such folder"
        raise TlsError(f"{folder}: {what} (a certificate folder holds {CA_FILE}, {CERT_FILE} "
                       f"and {KEY_FILE})")
    files = [folder / name for name in (CERT_FILE, KEY_FILE, CA_FILE)]
    for path in files:
        problem = input_problem(path)
        if problem:
            raise TlsError(f"{path}: {problem} (see docs/remote.md: certificates)")
    cert, key, ca = files
    return SSLContextContainer(client_context=_context(ssl.PROTOCOL_TLS_CLIENT, cert, key, ca),
                               server_context=_context(ssl.PROTOCOL_TLS_SERVER, cert, key, ca))
