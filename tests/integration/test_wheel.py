"""The wheel holds every module: built from a copy of the sources, unpacked, and each module of
the project imported from it in a child Python that cannot see the editable install.

An editable install maps whole folders (virnucpro/, daemon/, tui/), so a subpackage missing
from the wheel's package list still imports in the tests; only the wheel shows it. The child
takes the editable finders out (a .pth file installs them at start-up) and any path holding a
virnucpro package (the repository's root), puts the unpacked wheel first, and names each module
that does not import from there. The checks are shown to fail on a wheel missing a subpackage, both a wheel cut by hand
and one built from the hand-kept package list this project had before discovery.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.unit.test_boundaries import package_dirs

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

# Run in a child `python -I` (no cwd, no PYTHONPATH on sys.path): argv = wheel folder, module
# names; prints the JSON list of failures.
PROBE = r"""
import importlib, json, sys
from pathlib import Path

root, names = Path(sys.argv[1]).resolve(), sys.argv[2:]

def editable(obj):
    return str(getattr(obj, "__module__", "") or "").startswith("__editable__")

def holds_virnucpro(entry):  # the repository's root, say: a source of virnucpro but the wheel
    base = Path(entry or ".")
    return (base / "virnucpro").exists() or (base / "virnucpro.py").exists()

sys.meta_path[:] = [f for f in sys.meta_path if not editable(f)]
sys.path_hooks[:] = [h for h in sys.path_hooks if not editable(h)]
sys.path[:] = [str(root)] + [p for p in sys.path if not holds_virnucpro(p)]
sys.path_importer_cache.clear()
failures = []
for name in names:
    try:
        module = importlib.import_module(name)
    except Exception as exc:
        failures.append(f"{name}: {type(exc).__name__}: {exc}")
        continue
    where = Path(module.__file__).resolve()
    if root not in where.parents:
        failures.append(f"{name}: imported from {where}, not from the wheel")
print(json.dumps(failures))
"""


def project_modules(repo: Path = REPO) -> set[str]:
    """Every module of the sources, named as installed (package-dir maps the folders)."""
    names = set()
    for package, folder in package_dirs(repo).items():
        for path in folder.rglob("*.py"):
            if "__pycache__" in path.parts:
                continue
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            names.add(".".join((package, *parts)))
    return names


def copy_sources(dest: Path) -> Path:
    """What a build reads: pyproject.toml, setup.py, the README, the licence and the package
    folders."""
    dest.mkdir(parents=True)
    for name in ("pyproject.toml", "setup.py", "README.md", "LICENSE"):
        shutil.copy2(REPO / name, dest / name)
    for folder in package_dirs().values():
        shutil.copytree(folder, dest / folder.relative_to(REPO.resolve()),
                        ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def build_wheel(src: Path, out: Path) -> Path:
    """`pip wheel` of `src` without dependencies; without build isolation where setuptools is
    importable (no index needed), else with it."""
    try:
        import setuptools  # noqa: F401
    except ImportError:
        isolation = []
    else:
        isolation = ["--no-build-isolation"]
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps",
                           *isolation, "-w", str(out), "-q"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    [wheel] = out.glob("virnucpro-*.whl")
    return wheel


def unpack(wheel: Path, dest: Path) -> Path:
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(dest)
    return dest


def modules_in(root: Path) -> set[str]:
    """The modules an unpacked wheel holds, by name."""
    names = set()
    for path in root.rglob("*.py"):
        parts = path.relative_to(root).with_suffix("").parts
        names.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def import_failures(root: Path, names: set[str]) -> list[str]:
    """Each module of `names` that does not import from the unpacked wheel in `root`, with why."""
    done = subprocess.run([sys.executable, "-I", "-c", PROBE, str(root), *sorted(names)],
                          capture_output=True, text=True, timeout=600, cwd=root)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("wheel")
    wheel = build_wheel(copy_sources(base / "src"), base / "dist")
    return unpack(wheel, base / "unpacked")


def test_the_wheel_holds_every_module_and_the_dashboards_styles(unpacked: Path):
    expected = project_modules()
    assert {"virnucpro.models.tiny.build", "virnucpro.daemon.server",
            "virnucpro.tui.app"} <= expected
    missing = sorted(expected - modules_in(unpacked))
    assert not missing, "modules missing from the wheel: " + ", ".join(missing)
    assert (unpacked / "virnucpro" / "tui" / "app.tcss").is_file()


def test_every_module_imports_from_the_wheel_alone(unpacked: Path):
    failures = import_failures(unpacked, project_modules())
    assert not failures, "modules that do not import from the wheel:\n" + "\n".join(failures)


def test_a_subpackage_left_out_of_the_wheel_is_named(unpacked: Path, tmp_path: Path):
    cut = tmp_path / "cut"
    shutil.copytree(unpacked, cut)
    shutil.rmtree(cut / "virnucpro" / "models" / "tiny")
    tiny = {m for m in project_modules() if m.startswith("virnucpro.models.tiny")}
    assert "virnucpro.models.tiny" in (project_modules() - modules_in(cut))
    # The editable install would find them in the sources: hidden, each one is named.
    failures = import_failures(cut, tiny | {"virnucpro.models.sets", "virnucpro.errors"})
    named = {f.split(":")[0] for f in failures}
    assert named == tiny | {"virnucpro.models.sets"}, failures  # sets imports tiny.build
    assert all("ModuleNotFoundError" in f for f in failures), failures


def test_a_hand_kept_package_list_that_forgets_a_subpackage_is_caught(tmp_path: Path):
    src = copy_sources(tmp_path / "src")
    (src / "setup.py").unlink()  # the list of before: no virnucpro.models.tiny nor .run in it
    listed = ('packages = ["virnucpro", "virnucpro.models", "virnucpro.cli", "virnucpro.pool", '
              '"virnucpro.report", "virnucpro.training", "virnucpro.daemon", "virnucpro.tui", '
              '"virnucpro.tui.widgets", "virnucpro.tui.screens"]\n')
    text = (src / "pyproject.toml").read_text()
    assert "package-data = " in text
    (src / "pyproject.toml").write_text(text.replace("package-data = ", listed + "package-data = "))
    root = unpack(build_wheel(src, tmp_path / "dist"), tmp_path / "unpacked")
    absent = project_modules() - modules_in(root)
    assert absent == {m for m in project_modules()
                      if f"{m}.".startswith(("virnucpro.models.tiny.", "virnucpro.run."))}
    failures = import_failures(root, {"virnucpro.models.tiny.build"})
    assert failures and failures[0].startswith("virnucpro.models.tiny.build: ModuleNotFoundError")
