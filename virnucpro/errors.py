"""Errors raised by the library, one base class and a few that carry their fields.

Library code raises these; only the CLI (and later the daemon's dispatch) turns them into exit
codes or error replies. Each class fixes the exit code the command line uses for it, and the
`code` that `--json` names it by.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


class VirNucProError(Exception):
    """Base of every error this project raises on purpose."""

    exit_code = 1
    code = "error"


class InputError(VirNucProError):
    """The input FASTA or FASTQ is unusable: format, alphabet, duplicates, binary data."""

    exit_code = 3
    code = "input"

    def __init__(self, message: str, *, path: str | Path | None = None,
                 record_id: str | None = None, line: int | None = None) -> None:
        where = []
        if path is not None:
            where.append(str(path))
        if line is not None:
            where.append(f"line {line}")
        if record_id is not None:
            where.append(f"record {record_id!r}")
        super().__init__(f"{': '.join([', '.join(where), message]) if where else message}")
        self.path = str(path) if path is not None else None
        self.record_id = record_id
        self.line = line
        self.reason = message


class DuplicateIdError(InputError):
    """Several records share an id; all the duplicated ids are named. `hint`, when the input
    tells why (paired mates sharing their first word), replaces the generic way out."""

    def __init__(self, ids: Iterable[str], *, path: str | Path | None = None,
                 hint: str | None = None) -> None:
        self.ids = sorted(set(ids))
        self.hint = hint
        shown = ", ".join(repr(i) for i in self.ids[:20])
        more = f" and {len(self.ids) - 20} more" if len(self.ids) > 20 else ""
        super().__init__(
            f"duplicate sequence ids: {shown}{more} "
            f"({hint or 'use --rename-duplicates to suffix them instead'})",
            path=path,
        )


class InputChangedError(VirNucProError):
    """The input file changed while the run read it (appended to, truncated, rewritten): the
    results would mix two versions, so none are published. `change` says what differs."""

    exit_code = 12
    code = "input_changed"

    def __init__(self, path: str | Path, change: str, *, when: str = "while the run read it"
                 ) -> None:
        super().__init__(f"{path}: the input changed {when} ({change}); its results would mix "
                         "two versions of it, so none were published: run again once the "
                         "file no longer changes (copy it first if something still writes it)")
        self.path = str(path)
        self.change = change


class ModelError(VirNucProError):
    """A model set or one of its files is missing, corrupt or does not match."""

    exit_code = 4
    code = "models"

    def __init__(self, message: str, *, path: str | Path | None = None) -> None:
        super().__init__(f"{path}: {message}" if path is not None else message)
        self.path = str(path) if path is not None else None


class StateDictError(ModelError):
    """Weights do not fit the architecture: lists the missing and unexpected keys."""

    def __init__(self, model: str, *, missing: Iterable[str] = (),
                 unexpected: Iterable[str] = (), mismatched: Iterable[str] = (),
                 path: str | Path | None = None) -> None:
        self.missing = sorted(missing)
        self.unexpected = sorted(unexpected)
        self.mismatched = sorted(mismatched)
        parts = []
        if self.missing:
            parts.append("missing keys: " + ", ".join(self.missing))
        if self.unexpected:
            parts.append("unexpected keys: " + ", ".join(self.unexpected))
        if self.mismatched:
            parts.append("shape mismatches: " + ", ".join(self.mismatched))
        super().__init__(f"{model} weights do not fit: " + "; ".join(parts), path=path)


class ChecksumError(ModelError):
    """A file's hash is not the one expected."""

    def __init__(self, path: str | Path, *, expected: str, actual: str) -> None:
        super().__init__(f"checksum mismatch (expected {expected}, got {actual})", path=path)
        self.expected = expected
        self.actual = actual


class FetchError(ModelError):
    """A model file could not be downloaded."""

    def __init__(self, message: str, *, url: str, hint: str | None = None) -> None:
        super().__init__(f"{message} ({url})" + (f". {hint}" if hint else ""))
        self.url = url
        self.reason = message


class OutputError(VirNucProError):
    """The output folder cannot be used as asked (exists, not writable, not resumable)."""

    exit_code = 5
    code = "output"

    def __init__(self, message: str, *, path: str | Path | None = None) -> None:
        super().__init__(f"{path}: {message}" if path is not None else message)
        self.path = str(path) if path is not None else None


class NoSpaceError(OutputError):
    """The file system of the output (or of the spool) is full: the finished shards are kept,
    and `--resume` goes on once there is space."""

    exit_code = 13
    code = "no_space"
