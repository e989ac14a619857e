"""What `virnucpro submit` checks and rewrites in the client, before a job exists: inputs as
`predict` would refuse them, paths made absolute, a model set folder given relative to here.
"""

from __future__ import annotations

from pathlib import Path

from virnucpro.errors import VirNucProError


def check_inputs(inputs: tuple[str, ...], *, rename_duplicates: bool) -> None:
    """What `predict` would refuse, before a job exists, with its messages: a folder, a
    missing, empty, binary or protein file, an over-long id (the first bytes of any file); and
    for files of up to 64 MB, the whole first pass (duplicate ids...). Larger files are read
    whole when the job starts. A pipe or a device (/dev/zero, `<(cmd)`) is refused unread: the
    daemon opens inputs later, by path, and an upload sends a file's size in bytes, so neither
    could read it. Refused as the daemon would refuse it (`invalid`, exit 7)."""
    from virnucpro.daemon.client import ClientError
    from virnucpro.seqfile import check_fasta

    for path in inputs:
        given = Path(path).expanduser()
        if given.exists() and not given.is_dir() and not given.is_file():
            raise ClientError("invalid", f"{path}: not a regular file (a pipe, a device or a "
                              "process substitution): the daemon reads inputs later, by path, "
                              "so save it to a file first, or use `virnucpro predict`, which "
                              "reads a stream")
        try:
            check_fasta(given, display_name=path, rename_duplicates=rename_duplicates)
        except VirNucProError as exc:
            raise ClientError("invalid", str(exc)) from None


def absolute(path: str) -> str:
    """The path made absolute here, where it was typed, as the file system reads it: `..`
    after a link is the link target's parent (`paths.real_path`; `normpath` would drop the
    link and its `..` both). The last part is kept (an input's name names its subfolder)."""
    from virnucpro.daemon.paths import real_path

    return real_path(path, keep_name=True)


def models_spec_of(spec: str) -> str:
    """A model set folder given relative to here becomes absolute (the daemon has another cwd);
    names keep their meaning, with the daemon's precedence: an imported set beats a folder."""
    if spec in ("tiny", "published"):
        return spec
    if "/" not in spec and not spec.startswith((".", "~")):
        from virnucpro.models.cache import sets_dir

        if (sets_dir() / spec).is_dir():
            return spec
    folder = Path(spec).expanduser()
    return str(folder.absolute()) if folder.is_dir() else spec
