"""What the submit dialog sends, and the checks made before sending it.

`check_submission` turns the dialog's raw fields into a `Submission` or raises `FormError` with
every problem at once (a person fixes them in one go). It checks what can be checked here:
files exist and start like FASTA or FASTQ (`virnucpro.seqfile.sniff_fasta`, shared with
`virnucpro submit` and the daemon), the chunk size is one the published model has, the priority
is a number. The daemon checks again and may still refuse (model set missing, queue full); the
dialog then shows its error.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
from dataclasses import dataclass, field
from pathlib import Path

from virnucpro.chunking import CHUNK_SIZES as _SIZES

FASTA_SUFFIXES = (".fasta", ".fas", ".fa", ".fna", ".ffn", ".fsa", ".seq")
FASTQ_SUFFIXES = (".fastq", ".fq")
COMPRESSED = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
CHUNK_SIZES = tuple(sorted(_SIZES, reverse=True))  # the dialog offers 500 first


class FormError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Submission:
    inputs: tuple[str, ...]
    options: dict = field(default_factory=dict)
    outdir: str | None = None
    name: str | None = None
    priority: int = 0
    upload: bool = False  # a remote daemon: send the files' content

    def client_kwargs(self) -> dict:
        return {"outdir": self.outdir, "name": self.name, "priority": self.priority,
                "options": self.options, "upload": self.upload}


def absolute(path: str) -> Path:
    """`~` expanded and `..` resolved as the file system does (`link/..` is the link target's
    parent; `abspath` would say otherwise), the last part kept: `paths.real_path`."""
    from virnucpro.daemon.paths import real_path

    return Path(real_path(path, keep_name=True))


def is_fasta_name(path: Path) -> bool:
    """Whether the name is a FASTA or FASTQ one, plain or compressed (what the file tree shows;
    the content decides what the file is)."""
    name = path.name.lower()
    for suffix in COMPRESSED:
        name = name.removesuffix(suffix)
    return name.endswith(FASTA_SUFFIXES + FASTQ_SUFFIXES)


def fasta_problem(path: Path) -> str | None:
    """Why `path` cannot be a FASTA or FASTQ input, or None: `virnucpro.seqfile.sniff_fasta`, the
    check of its first bytes that `virnucpro submit` and the daemon make too, with predict's
    words (a folder, missing, empty, binary, no '>' or '@' header, a malformed FASTQ record, a
    protein, an over-long id)."""
    from virnucpro.errors import InputError
    from virnucpro.seqfile import sniff_fasta

    try:
        sniff_fasta(path)
    except InputError as exc:
        return str(exc)
    return None


def check_submission(inputs: list[str], *, chunk_size: object, models: str, outdir: str,
                     priority: str, name: str, local: bool = True) -> Submission:
    problems: list[str] = []
    paths: list[str] = []
    for raw in inputs:
        path = absolute(raw)
        problem = fasta_problem(path)
        if problem:
            problems.append(problem)
        elif str(path) not in paths:
            paths.append(str(path))
    if not inputs:
        problems.append("choose at least one FASTA or FASTQ file")
    try:
        size = int(str(chunk_size))
    except ValueError:
        size = 0
    if size not in CHUNK_SIZES:
        problems.append("chunk size must be 300 or 500")
    models = models.strip()
    if not models or any(c.isspace() for c in models):
        problems.append("model set: a name such as 'published'")
    try:
        prio = int(priority.strip() or "0")
    except ValueError:
        problems.append(f"priority must be a whole number, not {priority!r}")
        prio = 0
    out = outdir.strip() or None
    if out is not None:
        if local:
            target = absolute(out)
            if target.exists() and not target.is_dir():
                problems.append(f"{target}: exists and is not a folder")
            out = str(target)
        elif not out.startswith("/"):
            problems.append("output folder: an absolute path on the daemon's machine")
    if problems:
        raise FormError(problems)
    return Submission(inputs=tuple(paths), options={"chunk_size": size, "models": models},
                      outdir=out, name=name.strip() or None, priority=prio, upload=not local)
