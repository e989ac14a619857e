"""The docs and the command line agree, both ways.

Forward: every long flag (`--something`) that README.md or a docs/*.md page gives to
`virnucpro`, `virnucpro-daemon` or `virnucpro-tui` in a command, in a code block or in inline
code, exists on the click command it is given to (`virnucpro rescore --in-place`: `--in-place`
of `rescore`), and every subcommand named there exists. Flags of other tools in the same pages
(pip, ray, pytest, git, systemctl...) are not ours and are not looked at: only the words after
one of our programs, up to the end of its command (`|`, `;`, `&`, `)`, a `#` comment), count.

Backward: every flag of every command of the three programs (hidden ones, `--help` and
`--version` aside) is named in the docs for that command: in a command that invokes it, or as
inline code (or a code block's comment) in a section (the text under one heading) that invokes
that command, as the options table under the README's `virnucpro predict` examples does.

The programs are those of pyproject's [project.scripts], loaded as the installed commands load
them, so the test follows a module renamed there.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import click
import pytest

REPO = Path(__file__).resolve().parents[2]
PROGRAMS = ("virnucpro", "virnucpro-daemon", "virnucpro-tui")
NOT_CHECKED = {"--help", "--version"}

# One of our programs as a command word: not part of a longer name or a path component
# (`.../bin/virnucpro-daemon start` is one, `/shared/virnucpro/.venv`, `virnucpro.daemon`,
# `'virnucpro[ray]'` and `/tmp/virnucpro-USER` are not).
PROGRAM_RE = re.compile(r"(?<![\w.\-$])(virnucpro-daemon|virnucpro-tui|virnucpro)(?=\s|$)")
# Where a shell command ends.
COMMAND_END_RE = re.compile(r"\|\||&&|[|;&)]")
FLAG_RE = re.compile(r"--[A-Za-z0-9][A-Za-z0-9_-]*")
WORD_RE = re.compile(r"[a-z][a-z0-9-]*")
FENCE_RE = re.compile(r"^\s*(```|~~~)")
HEADING_RE = re.compile(r"^#{1,6}\s")
INLINE_CODE_RE = re.compile(r"`([^`]+)`")


@dataclass(frozen=True)
class Use:
    """A flag given to one of our commands in the docs."""

    doc: str
    line: int
    command: tuple[str, ...]
    flag: str

    def where(self) -> str:
        return f"{self.doc}:{self.line}: {' '.join(self.command)} {self.flag}"


@dataclass
class Scan:
    uses: list[Use] = field(default_factory=list)
    unknown_commands: list[str] = field(default_factory=list)
    # (command path, flag) pairs the docs name, by invocation or in a section about the command.
    named: set[tuple[tuple[str, ...], str]] = field(default_factory=set)


def load_programs() -> dict[str, click.Command]:
    """Our three programs' click commands, from pyproject's [project.scripts]."""
    try:
        import tomllib
    except ImportError:  # Python 3.10: the installed entry points say the same
        from importlib.metadata import entry_points

        targets = {ep.name: ep.value for ep in entry_points(group="console_scripts")}
    else:
        pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
        targets = pyproject["project"]["scripts"]
    programs = {}
    for name in PROGRAMS:
        module, _, attr = targets[name].partition(":")
        command = getattr(importlib.import_module(module), attr)
        assert isinstance(command, click.Command), f"{name} is not a click command"
        programs[name] = command
    return programs


def doc_texts() -> list[tuple[str, str]]:
    paths = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    return [(str(p.relative_to(REPO)), p.read_text()) for p in paths]


def pieces(text: str):
    """(section, line, kind, text) for every piece of a markdown page that can hold a command:
    each logical line of a code block (backslash continuations joined; kind "code") and each
    inline code span of the prose (kind "inline", possibly over a line break). A section is
    the number of headings above the piece."""
    section = 0
    lines = text.splitlines()
    i = 0
    paragraph: list[str] = []
    paragraph_start = 0

    def spans():
        joined = "\n".join(paragraph).replace("\\|", "|")
        for m in INLINE_CODE_RE.finditer(joined):
            line = paragraph_start + joined.count("\n", 0, m.start()) + 1
            yield section, line, "inline", m.group(1).replace("\n", " ")

    while i < len(lines):
        line = lines[i]
        if FENCE_RE.match(line):
            yield from spans()
            paragraph = []
            i += 1
            while i < len(lines) and not FENCE_RE.match(lines[i]):
                start = i
                logical = lines[i]
                while logical.rstrip().endswith("\\") and i + 1 < len(lines):
                    i += 1
                    logical = logical.rstrip()[:-1] + " " + lines[i]
                yield section, start + 1, "code", logical
                i += 1
            i += 1  # the closing fence
            continue
        if not line.strip() or HEADING_RE.match(line):
            yield from spans()
            paragraph = []
            if HEADING_RE.match(line):
                section += 1
                paragraph, paragraph_start = [line], i
                yield from spans()
                paragraph = []
        else:
            if not paragraph:
                paragraph_start = i
            paragraph.append(line)
        i += 1
    yield from spans()


def split_comment(code: str) -> tuple[str, str]:
    """A code line's command and its `#` comment (a `#` at the start or after a space)."""
    m = re.search(r"(^|\s)#", code)
    return (code, "") if m is None else (code[: m.start()], code[m.start() :])


def invocations(text: str, programs: dict[str, click.Command]):
    """Each command of ours in `text`: (path, [(path at the flag, flag)...], unknown words)."""
    for m in PROGRAM_RE.finditer(text):
        rest = text[m.end() :]
        end = COMMAND_END_RE.search(rest)
        words = (rest[: end.start()] if end else rest).split()
        path = (m.group(1),)
        command = programs[m.group(1)]
        flags, unknown = [], []
        for word in words:
            word = word.strip("'\"[],")
            flag = FLAG_RE.match(word)
            if flag:
                flags.append((path, flag.group(0)))
            elif isinstance(command, click.Group) and WORD_RE.fullmatch(word):
                sub = command.commands.get(word)
                if sub is None:
                    unknown.append(" ".join((*path, word)))
                    break
                command, path = sub, (*path, word)
        yield path, flags, unknown


def scan(docs: list[tuple[str, str]], programs: dict[str, click.Command]) -> Scan:
    result = Scan()
    for doc, text in docs:
        invoked: dict[int, set[tuple[str, ...]]] = {}
        mentioned: dict[int, set[str]] = {}
        for section, line, kind, piece in pieces(text):
            command_text, comment = split_comment(piece) if kind == "code" else (piece, "")
            found = False
            for path, flags, unknown in invocations(command_text, programs):
                found = True
                invoked.setdefault(section, set()).add(path)
                result.unknown_commands += [f"{doc}:{line}: {u}" for u in unknown]
                for at, flag in flags:
                    result.uses.append(Use(doc, line, at, flag))
                    result.named.add((at, flag))
            if kind == "inline" and not found:
                mentioned.setdefault(section, set()).update(FLAG_RE.findall(piece))
            if comment:
                mentioned.setdefault(section, set()).update(FLAG_RE.findall(comment))
        for section, paths in invoked.items():
            for path in paths:
                result.named.update((path, flag) for flag in mentioned.get(section, ()))
    return result


def commands(programs: dict[str, click.Command]):
    """(path, command) for every command and subcommand of our programs."""
    stack = [((name,), command) for name, command in programs.items()]
    while stack:
        path, command = stack.pop()
        yield path, command
        if isinstance(command, click.Group):
            stack += [((*path, n), c) for n, c in command.commands.items()]


def option_names(command: click.Command) -> set[str]:
    names = set(command.context_settings.get("help_option_names", ["--help"]))
    for param in command.params:
        if isinstance(param, click.Option):
            names.update(param.opts, param.secondary_opts)
    return names


def wrong_flags(result: Scan, programs: dict[str, click.Command]) -> list[str]:
    """The documented uses of a flag that the command given it does not have."""
    by_path = dict(commands(programs))
    wrong = [u.where() for u in result.uses if u.flag not in option_names(by_path[u.command])]
    return wrong + [f"{u} (no such command)" for u in result.unknown_commands]


def undocumented_flags(result: Scan, programs: dict[str, click.Command]) -> list[str]:
    """`command --flag` for every flag of our commands that the docs do not name for it."""
    missing = []
    for path, command in commands(programs):
        for param in command.params:
            if not isinstance(param, click.Option) or param.hidden:
                continue
            for name in (*param.opts, *param.secondary_opts):
                if (
                    name.startswith("--")
                    and name not in NOT_CHECKED
                    and (path, name) not in result.named
                ):
                    missing.append(f"{' '.join(path)} {name}")
    return sorted(missing)


@pytest.fixture(scope="module")
def programs() -> dict[str, click.Command]:
    return load_programs()


@pytest.fixture(scope="module")
def docs_scan(programs) -> Scan:
    return scan(doc_texts(), programs)


def test_every_documented_flag_exists_on_its_command(docs_scan, programs):
    assert len(docs_scan.uses) > 50  # the pages were read
    assert wrong_flags(docs_scan, programs) == []


def test_every_flag_of_every_command_is_documented(docs_scan, programs):
    assert undocumented_flags(docs_scan, programs) == []


SYNTHETIC = """# A page

```bash
virnucpro predict in.fa -o out/ --chunk-size 300 --made-up-flag 3   # --also-made-up
pip install --made-up-pip-flag virnucpro      # another tool's flag: not ours
ray start --head && virnucpro-daemon start --persistent-models --not-a-daemon-flag
virnucpro modles list
/opt/venv/bin/virnucpro-daemon stop \\
    --no-such-timeout 5
```

Prose: `virnucpro rescore
--in-plaice` and `--threshold` alone, `docker run --rm`.
"""


def test_a_made_up_flag_in_a_command_is_reported(programs):
    result = scan([("synthetic.md", SYNTHETIC)], programs)
    assert sorted(wrong_flags(result, programs)) == [
        "synthetic.md:12: virnucpro rescore --in-plaice",
        "synthetic.md:4: virnucpro predict --made-up-flag",
        "synthetic.md:6: virnucpro-daemon start --not-a-daemon-flag",
        "synthetic.md:7: virnucpro modles (no such command)",
        "synthetic.md:8: virnucpro-daemon stop --no-such-timeout",
    ]


def test_flags_the_docs_leave_out_are_reported(programs):
    result = scan([("synthetic.md", SYNTHETIC)], programs)
    missing = undocumented_flags(result, programs)
    assert "virnucpro predict --threshold" not in missing  # in prose, in a section running predict
    assert "virnucpro predict --chunk-size" not in missing
    assert "virnucpro-daemon start --persistent-models" not in missing
    assert "virnucpro predict --resume" in missing
    assert "virnucpro rescore --in-place" in missing  # only misspelt there
    assert "virnucpro-tui --endpoint" in missing
