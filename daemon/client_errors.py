"""The client's two errors, below `client.py` and `follow.py`, which both raise them:
`ClientError` (the daemon answered with an error, exit 7) and `DaemonUnavailable` (nobody
answered, or no local daemon runs, exit 8). `virnucpro.daemon.client` exports both."""

from __future__ import annotations

from virnucpro.errors import VirNucProError


class ClientError(VirNucProError):
    """The daemon answered with an error."""

    exit_code = 7

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class DaemonUnavailable(VirNucProError):
    exit_code = 8
