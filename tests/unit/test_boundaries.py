"""The import boundaries, checked on the source: an AST walk, nothing is imported.

Every import statement of every .py file under virnucpro/, daemon/ and tui/ (mapped to module
names with pyproject's package-dir: virnucpro.daemon is daemon/, virnucpro.tui is tui/), at
module level or inside functions, relative ones resolved; imports under `if TYPE_CHECKING:`
never run and are left out. Literal `importlib.import_module("...")` calls count too.

- The core (virnucpro.*, except the front ends virnucpro.cli and virnucpro.__main__, and except
  virnucpro.daemon.* and virnucpro.tui.*) never imports the daemon or the dashboard, nor the
  front end (whose client verbs do); `virnucpro.cli.common`, shared by both command lines, imports
  only click, `virnucpro.errors` and the standard library.
- The dashboard and the daemon's client never load torch (nor esm, transformers, ray): the
  project's import graph is followed from them (importing a module runs its packages'
  __init__ too) and no module reached may import one of those.

- The tiny set (`virnucpro.models.tiny`, the test fixture in the real file formats) is built in
  one place: outside its package only `tiny.build` is imported, and only by the set resolution
  and the `models` command; the real loaders read what it writes and never import it.
- No circles: the graph of those imports (benchmarks/ included) has no cycle, each import
  counted as the module it names (a package's own __init__ importing its submodules is not a
  circle; `from pkg import x` is an import of pkg).
- No module of virnucpro/, daemon/, tui/ or benchmarks/ is over `MAX_MODULE_LINES` lines: one
  concept per module, most under 350.

The checkers take a graph built from sources, so the tests at the end feed them small
synthetic violations and show that each one is reported.
"""

from __future__ import annotations

import ast
import re
import sys
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "esm", "transformers", "ray")
CLIENT_ROOTS = ("virnucpro.daemon.client", "virnucpro.daemon.protocol", "virnucpro.daemon.paths",
                "virnucpro.daemon.jobs")
DASHBOARD = "virnucpro.tui"
NOT_CORE = ("virnucpro.cli", "virnucpro.__main__", "virnucpro.daemon", "virnucpro.tui")
CORE_MUST_NOT_IMPORT = ("virnucpro.daemon", "virnucpro.tui", "virnucpro.cli")
ENTRY_POINT = "virnucpro.__main__"  # `python -m virnucpro`: runs the front end, imports it
CLI_COMMON = "virnucpro.cli.common"
CLI_COMMON_MAY_IMPORT = ("click", "virnucpro.errors", "virnucpro")
TINY = "virnucpro.models.tiny"
TINY_DOOR = "virnucpro.models.tiny.build"
TINY_ENTERED_BY = ("virnucpro.models.sets", "virnucpro.cli.models")
SCANNED_FOLDERS = ("virnucpro", "daemon", "tui", "benchmarks")
MAX_MODULE_LINES = 450


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


# -- the graph ------------------------------------------------------------------------------


@dataclass
class Graph:
    """`imports[m]`: (absolute name, line) of each import in module m, as resolved from the
    statement (`from a import b` gives a and a.b: b may be a submodule); `modules`: the
    project's modules; `packages`: those that are packages (an __init__)."""

    imports: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    modules: set[str] = field(default_factory=set)
    packages: set[str] = field(default_factory=set)

    def loaded_by(self, name: str) -> list[str]:
        """The project modules that importing `name` runs: it and its parent packages."""
        parts = name.split(".")
        return [m for m in (".".join(parts[:i]) for i in range(1, len(parts) + 1))
                if m in self.modules]

    def edges(self, module: str) -> dict[str, int]:
        """Project modules that `module` imports (with a line), its own package included
        (line 0): it runs before the module does."""
        out: dict[str, int] = {}
        for parent in self.loaded_by(module)[-2:-1] if module in self.modules else []:
            out.setdefault(parent, 0)
        for name, line in self.imports.get(module, []):
            for m in self.loaded_by(name):
                if m != module:
                    out.setdefault(m, line)
        return out

    def external(self, module: str) -> dict[str, int]:
        """Top-level names of the non-project modules that `module` imports."""
        tops = {m.split(".")[0] for m in self.modules}
        out: dict[str, int] = {}
        for name, line in self.imports.get(module, []):
            top = name.split(".")[0]
            if top not in tops:
                out.setdefault(top, line)
        return out


def _type_checking(test: ast.expr) -> bool:
    return ((isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
            or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def _literal_import(node: ast.Call) -> str | None:
    """The module of `importlib.import_module("x")` / `import_module("x")` / `__import__("x")`."""
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if name in ("import_module", "__import__") and node.args:
        arg = node.args[0]
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value[:1] != ".":
            return arg.value
    return None


def imports_of(source: str, module: str, is_package: bool) -> list[tuple[str, int]]:
    """The absolute names that the import statements of `source` (module `module`) load."""
    package = module if is_package else module.rpartition(".")[0]
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking(node.test):
            for child in node.orelse:  # the body never runs; an else branch does
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".") if package else []
                if node.level - 1 > len(base) - 1 or not base:
                    raise ValueError(f"{module}:{node.lineno}: relative import beyond the top")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((target, node.lineno))
            found.extend((f"{target}.{alias.name}", node.lineno) for alias in node.names
                         if alias.name != "*")
        elif isinstance(node, ast.Call) and (name := _literal_import(node)):
            found.append((name, node.lineno))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(source, filename=module))
    return found


def build_graph(sources: dict[str, str]) -> Graph:
    """The graph of `sources`: module name -> source text; a package's name ends in
    `.__init__` (for example `virnucpro.models.__init__`)."""
    graph = Graph()
    parsed = []
    for key, text in sources.items():
        is_package = key.endswith(".__init__")
        module = key.removesuffix(".__init__")
        graph.modules.add(module)
        if is_package:
            graph.packages.add(module)
        parsed.append((module, text, is_package))
    for module, text, is_package in parsed:
        graph.imports[module] = imports_of(text, module, is_package)
    return graph


def package_dirs(repo: Path = REPO) -> dict[str, Path]:
    """pyproject's [tool.setuptools] package-dir: package -> its folder."""
    text = (repo / "pyproject.toml").read_text()
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: the one line is enough
        line = re.search(r"^package-dir\s*=\s*\{(.*)\}", text, re.M)
        assert line, "no package-dir in pyproject.toml"
        dirs = dict(re.findall(r'"([\w.]+)"\s*=\s*"([^"]+)"', line[1]))
    else:
        dirs = tomllib.loads(text)["tool"]["setuptools"]["package-dir"]
    return {pkg: (repo / d).resolve() for pkg, d in dirs.items()}


def project_sources(repo: Path = REPO, extra: dict[str, Path] | None = None) -> dict[str, str]:
    """Every .py file of the project's package folders (and of `extra`: package -> folder),
    keyed as `build_graph` wants."""
    dirs = {**package_dirs(repo), **(extra or {})}
    sources: dict[str, str] = {}
    for pkg, root in dirs.items():
        for path in sorted(root.rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            # A file belongs to the package whose folder is the deepest one holding it.
            owner = max((p for p, d in dirs.items() if path.is_relative_to(d)),
                        key=lambda p: len(dirs[p].parts))
            if owner != pkg:
                continue
            parts = path.relative_to(root).with_suffix("").parts
            sources[".".join((pkg, *parts))] = path.read_text()
    return sources


# -- the checks -----------------------------------------------------------------------------


def core_violations(graph: Graph) -> list[str]:
    """Core modules that import the daemon, the dashboard or the front end."""
    out = []
    for module in sorted(graph.modules):
        if not _within(module, "virnucpro") or any(_within(module, p) for p in NOT_CORE):
            continue
        for name, line in graph.imports[module]:
            for banned in CORE_MUST_NOT_IMPORT:
                if _within(name, banned) and not (module == ENTRY_POINT and banned ==
                                                  "virnucpro.cli"):
                    out.append(f"{module} (line {line}) imports {name}")
    return out


def cli_common_violations(graph: Graph) -> list[str]:
    """What `virnucpro.cli.common` imports beyond click, virnucpro.errors and the stdlib."""
    out = []
    for name, line in graph.imports.get(CLI_COMMON, []):
        top = name.split(".")[0]
        if top in sys.stdlib_module_names or top == "__future__":
            continue
        if name in CLI_COMMON_MAY_IMPORT or _within(name, "click"):
            continue
        if name.rpartition(".")[0] in CLI_COMMON_MAY_IMPORT[1:] and name not in graph.modules:
            continue  # `from virnucpro.errors import VirNucProError`: a name, not a module
        out.append(f"{CLI_COMMON} (line {line}) imports {name}")
    return out


def heavy_paths(graph: Graph, roots: list[str], heavy: tuple[str, ...] = HEAVY) -> list[str]:
    """For each module reachable from `roots` that imports a heavy module: the shortest path
    to it, `A -> B (line n) -> torch (line m)`."""
    # A root's own packages run first: `edges` lists them, so the walk reaches them.
    came_from: dict[str, tuple[str | None, int]] = {r: (None, 0) for r in roots
                                                    if r in graph.modules}
    todo = deque(came_from)
    while todo:
        module = todo.popleft()
        for target, line in graph.edges(module).items():
            if target not in came_from:
                came_from[target] = (module, line)
                todo.append(target)

    def path_to(module: str) -> str:
        steps = []
        seen = set()
        while module is not None and module not in seen:
            seen.add(module)
            parent, line = came_from[module]
            steps.append(f"{module} (line {line})" if parent and line else module)
            module = parent
        return " -> ".join(reversed(steps))

    out = []
    for module in sorted(came_from):
        for top, line in graph.external(module).items():
            if top in heavy:
                out.append(f"{path_to(module)} -> {top} (line {line})")
    return out


def light_roots(graph: Graph) -> list[str]:
    return sorted(m for m in graph.modules if _within(m, DASHBOARD)) + [
        m for m in CLIENT_ROOTS if m in graph.modules]


def tiny_violations(graph: Graph) -> list[str]:
    """Imports of the tiny set's package from outside it other than `tiny.build` from the set
    resolution or the `models` command."""
    out = []
    for module in sorted(graph.modules):
        if _within(module, TINY):
            continue
        for name, line in graph.imports.get(module, []):
            if not _within(name, TINY) or name == TINY:  # `from ...models.tiny import build`
                continue
            if not _within(name, TINY_DOOR) or module not in TINY_ENTERED_BY:
                out.append(f"{module} (line {line}) imports {name}")
    return out


def cycles(graph: Graph) -> list[str]:
    """Each circle of imports, as `a -> b (line n) -> a (line m)`: one per strongly connected
    group of modules, through its first module. An import counts as the module it names (the
    deepest project module of `a.b.c`), not as the parent packages that importing it runs."""
    named: dict[str, dict[str, int]] = {}
    for module in sorted(graph.modules):
        named[module] = {}
        for name, line in graph.imports.get(module, []):
            loaded = graph.loaded_by(name)
            if loaded and loaded[-1] != module:
                named[module].setdefault(loaded[-1], line)
    # Tarjan's strongly connected components, iteratively (no recursion limit to meet).
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    for start in sorted(named):
        if start in index:
            continue
        work = [(start, iter(sorted(named[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            module, targets = work[-1]
            target = next(targets, None)
            if target is not None:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(named.get(target, {})))))
                elif target in on_stack:
                    low[module] = min(low[module], index[target])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[module])
            if low[module] == index[module]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == module:
                        break
                if len(group) > 1 or module in named.get(module, {}):
                    groups.append(sorted(group))
    out = []
    for group in sorted(groups):
        # The shortest way from the group's first module back to it, inside the group.
        first, members = group[0], set(group)
        came_from: dict[str, tuple[str, int]] = {}
        todo = deque([first])
        while todo and first not in came_from:
            module = todo.popleft()
            for target, line in sorted(named[module].items()):
                if target in members and target not in came_from:
                    came_from[target] = (module, line)
                    todo.append(target)
        steps, module = [], first
        while True:
            parent, line = came_from[module]
            steps.append(f"{module} (line {line})")
            module = parent
            if module == first:
                break
        out.append(" -> ".join([first, *reversed(steps)]))
    return out


def module_sizes(repo: Path = REPO, folders: tuple[str, ...] = SCANNED_FOLDERS) -> dict[str, int]:
    """Lines of every .py file under `folders`, by path from the repository's root."""
    return {path.relative_to(repo).as_posix(): len(path.read_text().splitlines())
            for folder in folders for path in sorted((repo / folder).rglob("*.py"))
            if "__pycache__" not in path.parts}


def oversized(sizes: dict[str, int], limit: int = MAX_MODULE_LINES) -> list[str]:
    """The modules over `limit` lines, largest first."""
    return [f"{path}: {lines} lines (at most {limit})"
            for path, lines in sorted(sizes.items(), key=lambda item: (-item[1], item[0]))
            if lines > limit]


# -- on the project -------------------------------------------------------------------------


def _project_graph() -> Graph:
    return build_graph(project_sources())


def test_the_scan_sees_the_whole_project():
    graph = _project_graph()
    for module in (*CLIENT_ROOTS, "virnucpro.daemon.server", "virnucpro.tui.app",
                   "virnucpro.cli", "virnucpro.cli.root", "virnucpro.cli.common", "virnucpro.pool.worker"):
        assert module in graph.modules, module
    # Function-level imports are seen: the supervisor's worker pool imports torch in places.
    assert any(e in graph.external(m) for m in graph.modules for e in HEAVY)


def test_the_core_never_imports_the_daemon_the_dashboard_or_the_front_end():
    violations = core_violations(_project_graph())
    assert not violations, "the core must stay independent of its front ends:\n" + "\n".join(
        violations)


def test_the_two_command_lines_share_cli_common_and_not_each_other():
    graph = _project_graph()
    assert not cli_common_violations(graph), cli_common_violations(graph)
    daemon_cli = {n for n, _ in graph.imports["virnucpro.daemon.cli"]}
    front_end = {n for n in daemon_cli if _within(n, "virnucpro.cli")}
    assert front_end and all(_within(n, CLI_COMMON) for n in front_end), front_end
    # Importing virnucpro.cli.common runs the package's __init__ first: it must import nothing.
    assert graph.imports["virnucpro.cli"] == [], graph.imports["virnucpro.cli"]
    assert CLI_COMMON in {n for n, _ in graph.imports["virnucpro.cli.root"]}


def test_the_dashboard_and_the_client_never_load_torch():
    graph = _project_graph()
    roots = light_roots(graph)
    assert len(roots) > len(CLIENT_ROOTS), roots  # the dashboard's modules are among them
    paths = heavy_paths(graph, roots)
    assert not paths, "a light module reaches a heavy one:\n" + "\n".join(paths)


def test_the_tiny_set_is_built_in_one_place():
    graph = _project_graph()
    assert TINY_DOOR in graph.modules and f"{TINY}.dnabert" in graph.modules
    violations = tiny_violations(graph)
    assert not violations, "the tiny set is entered through tiny.build:\n" + "\n".join(violations)


def test_no_module_imports_itself_back_through_others():
    graph = build_graph(project_sources(extra={"benchmarks": (REPO / "benchmarks").resolve()}))
    assert "benchmarks.suite" in graph.modules
    found = cycles(graph)
    assert not found, "import circles (move what both need to a lower module):\n" + "\n".join(
        found)


def test_no_module_is_over_the_size_of_one_concept():
    sizes = module_sizes()
    assert "virnucpro/models/sets.py" in sizes and "benchmarks/__main__.py" in sizes
    assert any(path.startswith(("daemon/", "tui/")) for path in sizes)
    found = oversized(sizes)
    assert not found, "modules to split by concept:\n" + "\n".join(found)


# -- the checkers can fail ------------------------------------------------------------------


def test_core_violations_are_reported():
    graph = build_graph({
        "virnucpro.__init__": "",
        "virnucpro.a": "from virnucpro.daemon.client import Client\n",
        "virnucpro.b": "def f():\n    from .tui import app\n",
        "virnucpro.c": "import virnucpro.cli\n",
        "virnucpro.d": ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                        "    from virnucpro.daemon import jobs\nelse:\n    import virnucpro.tui\n"),
        "virnucpro.e": "from virnucpro import daemon\n",
        "virnucpro.models.__init__": "from ..daemon import paths\n",
        "virnucpro.ok": ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                         "    from virnucpro.daemon.jobs import JobRecord\n"
                         "from virnucpro import daemonic, errors\n"),
        "virnucpro.__main__": "from virnucpro.cli.root import main\n",
        "virnucpro.cli.__init__": "from virnucpro.daemon.client_cli import COMMANDS\n",
        "virnucpro.daemon.__init__": "", "virnucpro.tui.__init__": "import virnucpro.daemon\n",
    })
    found = core_violations(graph)
    assert "virnucpro.a (line 1) imports virnucpro.daemon.client" in found
    assert "virnucpro.b (line 2) imports virnucpro.tui" in found  # relative, in a function
    assert "virnucpro.c (line 1) imports virnucpro.cli" in found
    assert "virnucpro.d (line 5) imports virnucpro.tui" in found  # the else branch runs
    assert "virnucpro.e (line 1) imports virnucpro.daemon" in found
    assert "virnucpro.models (line 1) imports virnucpro.daemon" in found
    offenders = {v.split()[0] for v in found}
    assert offenders == {"virnucpro.a", "virnucpro.b", "virnucpro.c", "virnucpro.d",
                         "virnucpro.e", "virnucpro.models"}, found


def test_cli_common_violations_are_reported():
    ok = build_graph({"virnucpro.__init__": "", "virnucpro.errors": "",
                      "virnucpro.cli.common": ("from __future__ import annotations\nimport sys\n"
                                              "import click\n"
                                              "from virnucpro.errors import VirNucProError\n")})
    assert cli_common_violations(ok) == []
    bad = build_graph({"virnucpro.__init__": "", "virnucpro.errors": "", "virnucpro.cli": "",
                       "virnucpro.cli.common": ("import click\nfrom virnucpro.cli import x\n"
                                               "def f():\n    import rich\n")})
    assert cli_common_violations(bad) == [
        "virnucpro.cli.common (line 2) imports virnucpro.cli",
        "virnucpro.cli.common (line 2) imports virnucpro.cli.x",
        "virnucpro.cli.common (line 4) imports rich"]


def test_heavy_imports_are_reported_with_their_path():
    graph = build_graph({
        "virnucpro.__init__": "",
        "virnucpro.scoring": "import numpy\nimport torch.nn\n",
        "virnucpro.models.__init__": "from esm import pretrained\n",
        "virnucpro.models.sets": "",
        "virnucpro.ray_engine": "import importlib\nR = importlib.import_module('ray')\n",
        "virnucpro.daemon.__init__": "",
        "virnucpro.daemon.protocol": "import json\n",
        "virnucpro.daemon.client": ("from . import protocol\n"
                                    "def f():\n    from virnucpro.models.sets import x\n"),
        "virnucpro.tui.__init__": "",
        "virnucpro.tui.app": "from .state import S\n",
        "virnucpro.tui.state": ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                "    import transformers\n"
                                "def f():\n    from virnucpro import scoring\n"),
        "virnucpro.tui.other": "from virnucpro.ray_engine import RayEngine\n",
    })
    found = heavy_paths(graph, light_roots(graph))
    assert "virnucpro.tui.state -> virnucpro.scoring (line 5) -> torch (line 2)" in found
    assert "virnucpro.daemon.client -> virnucpro.models (line 3) -> esm (line 1)" in found
    assert "virnucpro.tui.other -> virnucpro.ray_engine (line 1) -> ray (line 2)" in found
    assert len(found) == 3, found  # transformers is only under TYPE_CHECKING
    assert heavy_paths(graph, ["virnucpro.daemon.protocol"]) == []
    assert heavy_paths(graph, ["virnucpro.tui.app"]) == [
        "virnucpro.tui.app -> virnucpro.tui.state (line 1) -> virnucpro.scoring (line 5)"
        " -> torch (line 2)"]


def test_a_heavy_package_init_above_a_root_is_reported():
    graph = build_graph({"virnucpro.__init__": "import torch\n", "virnucpro.daemon.__init__": "",
                         "virnucpro.daemon.paths": "import os\n"})
    assert heavy_paths(graph, ["virnucpro.daemon.paths"]) == [
        "virnucpro.daemon.paths -> virnucpro.daemon -> virnucpro -> torch (line 1)"]


def test_import_circles_are_reported_with_their_path():
    graph = build_graph({
        "virnucpro.__init__": "",
        "virnucpro.a": "from virnucpro.b import x\n",
        "virnucpro.b": "import os\ndef f():\n    from . import a\n",  # in a function: counts
        "virnucpro.c": "from virnucpro import d\n",
        "virnucpro.d": "import virnucpro.e\n",
        "virnucpro.e": "from .c import y\n",
        "virnucpro.f": "from virnucpro.g import G\n",
        "virnucpro.g": ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                        "    from virnucpro.f import F\n"),  # never runs: no circle
        "virnucpro.report.__init__": "from virnucpro.report.page import write\n",
        "virnucpro.report.page": "from virnucpro.report.data import read\n",
        "virnucpro.report.data": "import json\n",  # a package importing its parts: no circle
        "virnucpro.pkg.__init__": "from .inner import z\n",
        "virnucpro.pkg.inner": "from virnucpro.pkg import w\n",  # back into its package
    })
    assert cycles(graph) == [
        "virnucpro.a -> virnucpro.b (line 1) -> virnucpro.a (line 3)",
        "virnucpro.c -> virnucpro.d (line 1) -> virnucpro.e (line 1) -> virnucpro.c (line 1)",
        "virnucpro.pkg -> virnucpro.pkg.inner (line 1) -> virnucpro.pkg (line 1)",
    ]
    acyclic = build_graph({"virnucpro.__init__": "", "virnucpro.a": "from virnucpro import b\n",
                           "virnucpro.b": "import virnucpro.c\n", "virnucpro.c": ""})
    assert cycles(acyclic) == []


def test_modules_over_the_limit_are_reported_largest_first(tmp_path: Path):
    for rel, lines in (("virnucpro/small.py", 450), ("virnucpro/models/big.py", 451),
                       ("benchmarks/__main__.py", 600), ("tui/widgets/w.py", 10)):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x = 1\n" * lines)
    (tmp_path / "virnucpro" / "__pycache__").mkdir()
    (tmp_path / "virnucpro" / "__pycache__" / "big.py").write_text("x = 1\n" * 999)
    sizes = module_sizes(tmp_path, ("virnucpro", "tui", "benchmarks", "daemon"))
    assert sizes == {"benchmarks/__main__.py": 600, "tui/widgets/w.py": 10,
                     "virnucpro/models/big.py": 451, "virnucpro/small.py": 450}
    assert oversized(sizes) == ["benchmarks/__main__.py: 600 lines (at most 450)",
                                "virnucpro/models/big.py: 451 lines (at most 450)"]
    assert oversized(sizes, limit=600) == []


def test_the_tiny_sets_writers_imported_from_outside_are_reported():
    graph = build_graph({
        "virnucpro.__init__": "", "virnucpro.models.__init__": "",
        "virnucpro.models.tiny.__init__": "",
        "virnucpro.models.tiny.build": "def f():\n    from .dnabert import write_tiny_dnabert\n",
        "virnucpro.models.tiny.dnabert": "from virnucpro.models.dnabert_io import BIN_FILE\n",
        "virnucpro.models.sets": "from virnucpro.models.tiny.build import ensure_tiny\n",
        "virnucpro.models.dnabert_io": "def f():\n    from .tiny.dnabert import write_dnabert\n",
        "virnucpro.doctor": "from virnucpro.models.tiny import build\n",
    })
    assert tiny_violations(graph) == [
        "virnucpro.doctor (line 1) imports virnucpro.models.tiny.build",
        "virnucpro.models.dnabert_io (line 2) imports virnucpro.models.tiny.dnabert",
        "virnucpro.models.dnabert_io (line 2) imports virnucpro.models.tiny.dnabert.write_dnabert",
    ]
