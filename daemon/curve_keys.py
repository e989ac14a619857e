"""CurveZMQ key files for a tcp endpoint, written in the format `zmq.auth.load_certificate`
reads. A secret file is created with mode 0600 (`os.open`), so it is never readable by others,
not even between its creation and a chmod. Rejected: `zmq.auth.create_certificates`, which
writes the secret with the umask's mode (0644 as a rule).
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path

_HEADER = ("#   ****  Generated on {now} by virnucpro-daemon keygen  ****\n"
           "#   ZeroMQ CURVE {kind} Certificate\n{warning}\n")


def _key_file(kind: str, public: str, secret: str | None = None) -> str:
    warning = ("#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.\n"
               if secret else "#   Exchange securely, or use a secure mechanism to verify the "
               "contents\n#   of this file after exchange. Store public certificates in your "
               "home\n#   directory, in the .curve subdirectory.\n")
    text = _HEADER.format(now=datetime.datetime.now(), kind=kind, warning=warning)
    text += f'metadata\ncurve\n    public-key = "{public}"\n'
    if secret:
        text += f'    secret-key = "{secret}"\n'
    return text


def write_key_pair(folder: Path, name: str) -> bool:
    """`NAME.key` and `NAME.key_secret` in `folder`, made now (True), or kept when the secret
    exists (False; an existing one of ours left 0644 by an earlier keygen is made 0600)."""
    import zmq

    from virnucpro.daemon.paths import tighten

    secret_file = folder / f"{name}.key_secret"
    if secret_file.exists():
        tighten(secret_file, 0o600)
        return False
    public, secret = (k.decode() for k in zmq.curve_keypair())
    fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(_key_file("**Secret**", public, secret))
    (folder / f"{name}.key").write_text(_key_file("Public", public), encoding="utf-8")
    return True
