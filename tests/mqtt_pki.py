"""A throwaway certificate authority for the tests' Mosquitto (tests/mqtt_broker.py): a CA, a server certificate for
127.0.0.1 and client certificates whose common name is the MQTT identity (``use_identity_as_username``).

Made with the ``openssl`` command line (the ``cryptography`` package is not in the project's environment); EC P-256
keys, so a certificate costs milliseconds. Valid two days: nothing here outlives a test run."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

OPENSSL = shutil.which("openssl")
DAYS = "2"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def need_openssl() -> str:
    if OPENSSL is None:
        pytest.skip("no openssl command on this machine: the TLS tests of mosquitto need it to make certificates")
    return OPENSSL


class ThrowawayCA:
    """``folder/ca.pem`` (+ its key) signing a server certificate and client certificates on demand."""

    def __init__(self, folder: Path):
        self.exe = need_openssl()
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.ca_file, self._ca_key = self.folder / "ca.pem", self.folder / "ca.key"
        self._run("req", "-x509", *self._new_key(self._ca_key), "-days", DAYS, "-out", str(self.ca_file),
                  "-subj", "/CN=emoedge test CA", "-addext", "basicConstraints=critical,CA:TRUE",
                  "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        self._issued: dict[str, tuple[Path, Path]] = {}

    def _run(self, *args: str) -> None:
        done = subprocess.run([self.exe, *args], capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"openssl {args[0]} failed: {done.stderr[-800:]}")

    @staticmethod
    def _new_key(key: Path) -> list[str]:
        return ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key)]

    def _issue(self, stem: str, cn: str, extensions: list[str]) -> tuple[Path, Path]:
        cert, key, csr = (self.folder / f"{stem}.{ext}" for ext in ("pem", "key", "csr"))
        ext_file = self.folder / f"{stem}.ext"
        ext_file.write_text("\n".join(["basicConstraints=critical,CA:FALSE", "subjectKeyIdentifier=hash",
                                       "authorityKeyIdentifier=keyid", *extensions]) + "\n")
        self._run("req", *self._new_key(key), "-out", str(csr), "-subj", f"/CN={cn}")
        self._run("x509", "-req", "-in", str(csr), "-CA", str(self.ca_file), "-CAkey", str(self._ca_key),
                  "-CAcreateserial", "-days", DAYS, "-out", str(cert), "-extfile", str(ext_file))
        return cert, key

    def server_cert(self, host: str = "127.0.0.1") -> tuple[Path, Path]:
        """(cert, key) for a broker on ``host`` (an IP address in the subject alternative name)."""
        return self._issue("server", host, ["keyUsage=critical,digitalSignature,keyEncipherment",
                                            "extendedKeyUsage=serverAuth", f"subjectAltName=IP:{host}"])

    def client_cert(self, name: str) -> tuple[Path, Path]:
        """(cert, key) of a client whose certificate's common name is ``name`` (made once, then the same files)."""
        if not _NAME.fullmatch(name):
            raise ValueError(f"client name {name!r}: letters, digits, . _ - only")
        if name not in self._issued:
            self._issued[name] = self._issue(f"client-{name}", name, [
                "keyUsage=critical,digitalSignature", "extendedKeyUsage=clientAuth"])
        return self._issued[name]
