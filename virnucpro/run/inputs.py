"""The validated input: the first pass over every input of a command, before anything is
created or loaded (`validate_inputs`), and the output folder name each input gets.

A `ValidatedInput` is what a run starts from: where the input came from, its index (counts,
hash, stamp: `seqfile.FastaIndex`) and the output layout it is scored into.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from virnucpro.chunking import CHUNK_SIZES
from virnucpro.config import PredictConfig
from virnucpro.errors import InputError, VirNucProError
from virnucpro.layout import OutputLayout
from virnucpro.seqfile import FastaIndex, check_path, scan_fasta
from virnucpro.spool import spool_input

_FASTA_SUFFIXES = (".fasta", ".fas", ".fa", ".fna", ".ffn", ".fsa", ".seq", ".fastq", ".fq",
                   ".txt")
_COMPRESSION_SUFFIXES = (".gz", ".bz2", ".xz")


@dataclass(frozen=True)
class ValidatedInput:
    """One input after its first pass: `source` as given (a path or "-"), its folder `name`,
    its `index` and its output `layout`; `validate_s`, how long the pass took."""

    source: str
    name: str
    index: FastaIndex
    layout: OutputLayout
    validate_s: float = 0.0


def input_name(source: str) -> str:
    """Folder name for an input: the file name without FASTA and compression suffixes;
    `stdin` for `-`, `pipe-N` for a shell's process substitution (`<(zcat x.gz)` is
    /dev/fd/N, whose bare number would say nothing of where it came from)."""
    if source == "-":
        return "stdin"
    parent = os.path.dirname(os.path.normpath(source))
    if parent in ("/dev/fd", "/proc/self/fd") or re.fullmatch(r"/proc/\d+/fd", parent):
        return f"pipe-{Path(source).name}"
    name = Path(source).name
    lower = name.lower()
    for suffix in _COMPRESSION_SUFFIXES:
        if lower.endswith(suffix):
            name, lower = name[: -len(suffix)], lower[: -len(suffix)]
            break
    for suffix in _FASTA_SUFFIXES:
        if lower.endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
            break
    return name or "input"


def folder_names(sources: list[str]) -> list[str]:
    """Folder names, unique even on a case-insensitive file system."""
    names: list[str] = []
    for source in sources:
        base = input_name(source)
        if base in ("", ".", ".."):
            base = "input"
        name, n = base, 1
        while name.casefold() in {x.casefold() for x in names}:
            n += 1
            name = f"{base}_{n}"
        names.append(name)
    return names


def validate_inputs(config: PredictConfig, spool_dir: Path) -> list[ValidatedInput]:
    """The first pass over every input, before anything is created or loaded."""
    if config.chunk_size not in CHUNK_SIZES:
        raise VirNucProError(f"chunk size {config.chunk_size}: the published classifiers are for 300 and 500")
    if config.inputs.count("-") > 1:
        raise VirNucProError("standard input ('-') can be given only once")
    sources = list(config.inputs)
    names = folder_names(sources)
    items = []
    for source, name in zip(sources, names, strict=True):
        started = time.perf_counter()
        if source == "-":
            path = spool_input(spool_dir)
        else:
            path = check_path(source)  # no such file; a folder
            if not path.is_file():
                # A pipe, a device or process substitution (<(zcat x.gz)) can be read only once.
                try:
                    with open(path, "rb") as stream:
                        path = spool_input(spool_dir, stream, shown=source)
                except OSError as exc:
                    raise InputError(f"cannot read: {exc.strerror or exc}", path=source) from exc
        index = scan_fasta(path, rename_duplicates=config.rename_duplicates,
                           display_name="<stdin>" if source == "-" else source,
                           chunk_size=config.chunk_size, min_length=config.min_length)
        root = config.outdir if len(sources) == 1 else config.outdir / name
        items.append(ValidatedInput(source, name, index, OutputLayout(root),
                                    round(time.perf_counter() - started, 3)))
    return items
