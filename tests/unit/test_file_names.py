"""The output folder's file names are spelled once, in `virnucpro/layout.py`: checked on the
source, an AST walk over every .py file under virnucpro/, daemon/ and tui/, nothing imported
but the layout itself.

The names checked are `OutputLayout`'s (its upper-case text attributes, and each part of a
path among them such as `embeddings/index.tsv`), less those that are plain words (`shards`,
`staging`, `embeddings`: also the keys of counts and the parts of weight names). A string
constant is a finding when it is such a name, or a path with one as a part (`"*/run.json"`);
a sentence that mentions one (a message, a help text) is text for a person, like a docstring
or a comment, and is not. The tests at the end feed the checker small synthetic sources.
"""

from __future__ import annotations

import ast
from pathlib import Path

from virnucpro.layout import OutputLayout

REPO = Path(__file__).resolve().parents[2]
ROOTS = ("virnucpro", "daemon", "tui")
HOME = "virnucpro/layout.py"
ALLOWED: tuple[str, ...] = ()  # paths let off the check: none (the run package uses the layout)


def declared_names() -> set[str]:
    """The file and folder names the layout declares, less the plain words."""
    names = set()
    for key, value in vars(OutputLayout).items():
        if key.isupper() and isinstance(value, str):
            names.update(value.split("/"))
    return {n for n in names if not n.isalpha()}


def _docstrings(tree: ast.Module) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            first = node.body[0] if node.body else None
            if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                    and isinstance(first.value.value, str)):
                found.add(id(first.value))
    return found


def file_name_literals(source: str, names: set[str], filename: str = "<source>"
                       ) -> list[tuple[int, str]]:
    """(line, text) of each string constant of `source` that is one of `names`, or a path with
    one as a part; docstrings left out."""
    tree = ast.parse(source, filename=filename)
    skip = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                and id(node) not in skip and any(p in names for p in node.value.split("/"))):
            found.append((node.lineno, node.value))
    return sorted(found)


def _sources() -> list[str]:
    return sorted(p.relative_to(REPO).as_posix() for root in ROOTS
                  for p in (REPO / root).rglob("*.py"))


def test_no_module_but_the_layout_spells_an_output_file_name() -> None:
    names = declared_names()
    findings = [f"{path}:{line}: {text!r}" for path in _sources()
                if path != HOME and not path.startswith(ALLOWED)
                for line, text in file_name_literals((REPO / path).read_text(encoding="utf-8"),
                                                     names, path)]
    assert findings == [], "name these files through virnucpro.layout.OutputLayout:\n" + "\n".join(
        findings)


def test_the_checked_names_are_the_layouts_files_and_not_plain_words() -> None:
    names = declared_names()
    assert {"frames.tsv", "run.json", "report.html", "evaluation.json", "index.tsv",
            ".virnucpro", "checkpoint.json", "prediction_results_highestscore.csv",
            "viral.fastq"} <= names
    assert not {"embeddings", "shards", "staging"} & names
    assert set(OutputLayout.FILES) <= names


def test_the_allowed_paths_exist_or_are_the_coming_package() -> None:
    # An entry left behind after the merge is noticed: every file named still exists.
    for path in ALLOWED:
        assert path.endswith("/") or (REPO / path).is_file(), path


# -- the checker on synthetic sources --------------------------------------------------------


NAMES = {"frames.tsv", "run.json", "index.tsv"}


def test_a_name_in_code_is_reported_with_its_line() -> None:
    source = ('"""A module that mentions frames.tsv in its docstring."""\n'
              "import json\n"
              "def read(root):\n"
              '    """run.json of root."""\n'
              '    return json.loads((root / "run.json").read_text())  # run.json: fine here\n'
              "TABLES = {'frames.tsv': 1}\n")
    assert file_name_literals(source, NAMES) == [(5, "run.json"), (6, "frames.tsv")]


def test_paths_and_f_string_parts_are_reported() -> None:
    source = ("runs = root.glob('*/run.json')\n"
              "index = 'embeddings/index.tsv'\n"
              "path = f'{root}/frames.tsv'\n")
    assert [line for line, _ in file_name_literals(source, NAMES)] == [1, 2, 3]


def test_sentences_docstrings_and_other_names_are_not_reported() -> None:
    source = ('"""run.json and frames.tsv."""\n'
              "class A:\n"
              '    """Reads run.json."""\n'
              "message = 'frames.tsv is missing: the scores are read from it'\n"
              "help = 'Write OUTDIR/report.html at the end.'\n"
              "other = 'frames.tsv.gz'\n"
              "name = OutputLayout.RUN\n")
    assert file_name_literals(source, NAMES) == []
