"""Small helpers shared by tests (data files, running the CLI)."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

DATA = Path(__file__).parent / "data"


def read_first_sequence(name: str) -> str:
    lines = (DATA / name).read_text().splitlines()
    seq = []
    for line in lines[1:]:
        if line.startswith(">"):
            break
        seq.append(line.strip())
    return "".join(seq).upper()


def read_table(path: Path) -> list[dict[str, str]]:
    lines = path.read_text().splitlines()
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"), strict=True)) for line in lines[1:]]


def columns(frames) -> tuple[list[str], list[str]]:
    """The nucleotides and proteins of frames (translation.Frame), as the scorer takes them."""
    return [f.nucleotides for f in frames], [f.protein for f in frames]


@contextlib.contextmanager
def mounted_tmpfs(mount: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` (mount's syntax: 64m, 300k) at `mount`, unmounted after: a file system
    whose free space a test knows. Root only (CI runs as root): skips otherwise."""
    import pytest

    mount.mkdir(parents=True, exist_ok=True)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (not root)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def ten_times_viral(tmp_path: Path) -> Path:
    """The bundled viral FASTA ten times over, ids made unique (40 sequences, 360 chunks)."""
    records = (DATA / "viral_reference.fasta").read_text().split(">")[1:]
    path = tmp_path / "viral10.fasta"
    with open(path, "w") as fh:
        for k in range(10):
            for rec in records:
                head, _, seq = rec.partition("\n")
                fh.write(f">c{k}_{head.split()[0]}\n{seq}")
    return path
