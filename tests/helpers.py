"""Small helpers shared by tests (data files, running the CLI)."""

from __future__ import annotations

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
