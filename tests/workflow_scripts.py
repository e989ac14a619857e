"""The Snakemake workflow's Python scripts (workflow/scripts/), imported without Snakemake.

They are plain files beside the Snakefile, not a package of ours (Snakemake runs them with its
own Python, or an image's), so the tests load each one from its path, once.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "workflow" / "scripts"


def load(name: str) -> ModuleType:
    """workflow/scripts/<name>.py as the module `virnucpro_workflow_<name>`."""
    qualified = f"virnucpro_workflow_{name}"
    if qualified not in sys.modules:
        spec = importlib.util.spec_from_file_location(qualified, SCRIPTS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[qualified] = module  # before running it: dataclasses look their module up
        spec.loader.exec_module(module)
    return sys.modules[qualified]


samples = load("samples")
settings = load("settings")
summarize = load("summarize")
