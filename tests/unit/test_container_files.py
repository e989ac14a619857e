"""The Containerfile against the project: its version label follows pyproject.toml, and every
file it copies is let through .dockerignore (an allow-list, so a new COPY needs a line there;
the build would fail, but only where podman or docker runs)."""

from __future__ import annotations

import fnmatch
import re
import shlex
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONTAINERFILE = (REPO / "Containerfile").read_text()


def copied_sources() -> list[str]:
    """The context paths of every COPY without --from."""
    found = []
    for line in re.findall(r"^COPY\s+(.+)$", CONTAINERFILE, re.MULTILINE):
        words = shlex.split(line)
        if any(w.startswith("--from") for w in words):
            continue
        found += [w for w in words[:-1] if not w.startswith("--")]
    return found


def admitted(path: str, rules: list[str]) -> bool:
    """.dockerignore's verdict: the last matching rule wins; `!` lets a path through; a rule
    matching a folder covers what is inside it."""
    keep = True
    parts = path.rstrip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for rule in rules:
        negate = rule.startswith("!")
        pattern = rule.lstrip("!").rstrip("/")
        if any(fnmatch.fnmatch(prefix, pattern) for prefix in prefixes):
            keep = negate
    return keep


def ignore_rules() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_the_version_label_follows_pyproject():
    from virnucpro import __version__ as version  # the installed metadata: pyproject's
    assert re.search(rf"^ARG VERSION={re.escape(version)}$", CONTAINERFILE, re.MULTILINE)


def test_every_copied_path_exists_and_passes_the_ignore_file():
    sources = copied_sources()
    assert {"pyproject.toml", "LICENSE", "virnucpro", "daemon", "tui", "container/wheels/",
            "tests/data/viral_reference.fasta"} <= set(sources)
    rules = ignore_rules()
    for source in sources:
        assert (REPO / source).exists(), source
        assert admitted(source, rules), f"{source} is left out of the build by .dockerignore"
    # and what the build does not need stays out: the venvs, the tests, git
    for kept_out in (".venv/bin/python", ".git/HEAD", "tests/unit/test_container_files.py"):
        assert not admitted(kept_out, rules), kept_out


def test_the_ignore_check_sees_a_copy_that_the_file_would_drop():
    assert not admitted("docs/container.md", ignore_rules())
    assert not admitted("virnucpro/x.py", ["*", "!daemon/"])
    assert admitted("virnucpro/x.py", ["*", "!virnucpro/"])
