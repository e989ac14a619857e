"""The doors of `virnucpro.run` (one input's run), checked on the source as
test_boundaries.py checks the others: nothing outside the package imports one of its private
(underscore) names, and the run imports nothing of the daemon, the dashboard or the front end
(the daemon drives runs; a run never knows who drives it)."""

from __future__ import annotations

from tests.unit.test_boundaries import Graph, _within, build_graph, project_sources

RUN = "virnucpro.run"
RUN_MUST_NOT_IMPORT = ("virnucpro.daemon", "virnucpro.tui", "virnucpro.cli")


def private_uses(graph: Graph) -> list[str]:
    """Imports of a name of virnucpro.run.* that starts with an underscore (a private module
    or a private name in one; dunders such as `__init__` aside), from outside the package."""
    out = []
    for module in sorted(graph.modules):
        if _within(module, RUN):
            continue
        for name, line in graph.imports[module]:
            if not _within(name, RUN):
                continue
            parts = name[len(RUN):].lstrip(".").split(".") if name != RUN else []
            if any(p.startswith("_") and not p.startswith("__") for p in parts):
                out.append(f"{module} (line {line}) imports {name}")
    return out


def outward_imports(graph: Graph) -> list[str]:
    """Modules of virnucpro.run that import the daemon, the dashboard or the front end."""
    return [f"{module} (line {line}) imports {name}"
            for module in sorted(graph.modules) if _within(module, RUN)
            for name, line in graph.imports[module]
            if any(_within(name, banned) for banned in RUN_MUST_NOT_IMPORT)]


def test_the_scan_sees_the_run_package_and_its_drivers():
    graph = build_graph(project_sources())
    for module in ("virnucpro.run", "virnucpro.run.input_run", "virnucpro.run.feed",
                   "virnucpro.pipeline", "virnucpro.daemon.stream"):
        assert module in graph.modules, module
    # Both drivers come in through the run package's doors.
    for driver in ("virnucpro.pipeline", "virnucpro.daemon.stream"):
        assert any(_within(n, RUN) for n, _ in graph.imports[driver]), driver


def test_nothing_outside_the_run_package_imports_its_private_names():
    found = private_uses(build_graph(project_sources()))
    assert not found, "private names of virnucpro.run used outside it:\n" + "\n".join(found)


def test_the_run_package_never_imports_its_drivers_front_ends():
    found = outward_imports(build_graph(project_sources()))
    assert not found, "virnucpro.run must not know who drives it:\n" + "\n".join(found)


def test_the_checkers_report_synthetic_violations():
    graph = build_graph({
        "virnucpro.__init__": "", "virnucpro.run.__init__": "",
        "virnucpro.run.folder": "def _differs(): ...\nfrom virnucpro.run.inputs import _x\n",
        "virnucpro.run.input_run": "def f():\n    from virnucpro.daemon.jobs import JobRecord\n",
        "virnucpro.run.feed": ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                               "    from virnucpro.tui import app\n"),
        "virnucpro.run.report": "from ..cli.common import x\n",
        "virnucpro.pipeline": ("from virnucpro.run.folder import RunMode, _differs\n"
                               "from virnucpro.run import __doc__\n"),
        "virnucpro.daemon.__init__": "",
        "virnucpro.daemon.stream": "def f():\n    from ..run._private import thing\n",
        "virnucpro.daemon.ok": "from virnucpro.run.input_run import InputRun\n",
    })
    assert private_uses(graph) == [
        "virnucpro.daemon.stream (line 2) imports virnucpro.run._private",
        "virnucpro.daemon.stream (line 2) imports virnucpro.run._private.thing",
        "virnucpro.pipeline (line 1) imports virnucpro.run.folder._differs",
    ]  # a private name used inside the package is its own business; dunders are not private
    assert outward_imports(graph) == [
        "virnucpro.run.input_run (line 2) imports virnucpro.daemon.jobs",
        "virnucpro.run.input_run (line 2) imports virnucpro.daemon.jobs.JobRecord",
        "virnucpro.run.report (line 1) imports virnucpro.cli.common",
        "virnucpro.run.report (line 1) imports virnucpro.cli.common.x",
    ]  # the TYPE_CHECKING import of the dashboard never runs
