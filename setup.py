"""The package list, discovered rather than kept by hand.

pyproject.toml's `[tool.setuptools] package-dir` maps each import root to its folder (virnucpro/,
and the top-level daemon/ and tui/ as virnucpro.daemon and virnucpro.tui: the product's layout
keeps them beside the library). Every folder with an __init__.py under those roots is a package
of the wheel; everything else about the build is in pyproject.toml. A hand-kept list let a new
subpackage go missing from the wheel while the editable install, which maps whole folders, hid
it (tests/integration/test_wheel.py builds the wheel and imports every module from it).
"""

from __future__ import annotations

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent


def package_dirs() -> dict[str, str]:
    """pyproject's package-dir: import root -> folder (relative to this file)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: setuptools' own reader
        from setuptools.config.pyprojecttoml import load_file

        config = load_file(HERE / "pyproject.toml")
    else:
        config = tomllib.loads((HERE / "pyproject.toml").read_text())
    return config["tool"]["setuptools"]["package-dir"]


def discovered_packages(dirs: dict[str, str], base: Path = HERE) -> list[str]:
    """Each mapped root and every package found in its folder, named under that root."""
    found = set()
    for root, folder in dirs.items():
        found.add(root)
        found.update(f"{root}.{sub}" for sub in find_packages(str(base / folder)))
    return sorted(found)


setup(packages=discovered_packages(package_dirs()))
