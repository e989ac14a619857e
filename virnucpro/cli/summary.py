"""The one line `predict` and `rescore` print per input on stderr when they finish, counted
in words that agree with their numbers ("1 viral region (1 provirus)")."""

from __future__ import annotations


def plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def summary_line(s: dict, *, unscored: bool = True) -> str:
    """`s`: an input's counts (run.json's `counts`) with its `input` and `outdir`."""
    parts = [plural(s.get("sequences", 0), "sequence", "sequences"),
             f"{s.get('sequences_virus', 0)} viral"]
    if unscored:
        parts += [f"{s.get('sequences_others', 0)} non-viral",
                  f"{s.get('sequences_unscored', 0)} unscored"]
    regions = plural(s.get("regions", 0), "viral region", "viral regions")
    proviruses = plural(s.get("regions_provirus", 0), "provirus", "proviruses")
    return f"{s['input']}: {', '.join(parts)}, {regions} ({proviruses}) -> {s['outdir']}"
