"""Verify by loading: a model set's files opened by the loaders `predict` uses, weights unread.

`load_problems(model_set)` checks the DNABERT-S config and tokenizer (a probe encoding), both
checkpoints' keys and shapes against their architectures built on the meta device (checkpoints
mapped, not read: a published-shaped set costs a few hundred MB, not its 6 GB), and loads each
classifier against the feature width the two models give. Each problem names its file.
The daemon never imports torch: it runs this module as `python -m virnucpro.models.loadcheck
ROOT` through `problems_in_subprocess`, which remembers verdicts while the files are unchanged.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading

from virnucpro.errors import ModelError
from virnucpro.models.modelset import ModelSet, scan_set_folder

log = logging.getLogger(__name__)

SUBPROCESS_TIMEOUT_S = 300.0


def load_problems(model_set: ModelSet) -> list[str]:
    """What would fail when `predict` loads this set; empty when every file loads."""
    from virnucpro.models.classifier_io import load_classifier
    from virnucpro.models.dnabert_io import check_dnabert
    from virnucpro.models.esm_io import check_esm

    problems: list[str] = []
    dims: list[int] = []
    for check, folder in ((lambda p: check_dnabert(p).hidden_size, model_set.dnabert_dir),
                          (check_esm, model_set.esm_checkpoint)):
        try:
            dims.append(check(folder))
        except ModelError as exc:
            problems.append(str(exc))
    # Without both widths the classifiers are still read, only not held to a feature width.
    input_dim = sum(dims) if len(dims) == 2 else None
    for chunk_size in sorted(model_set.classifiers):
        try:
            load_classifier(model_set.classifiers[chunk_size], input_dim=input_dim)
        except ModelError as exc:
            problems.append(str(exc))
    return problems


def check_loadable(model_set: ModelSet) -> None:
    """Raise ModelError naming every `load_problems` of the set."""
    problems = load_problems(model_set)
    if problems:
        raise ModelError(f"model set {model_set.name!r} would not load: " + "; ".join(problems),
                         path=model_set.root)


# -- from a process without torch (the daemon) ------------------------------------------------

_verdicts: dict[tuple, list[str]] = {}
_lock = threading.Lock()


def _signature(model_set: ModelSet) -> tuple:
    """The set's files as the file system sees them now: any change asks for a new check."""
    out: list[tuple] = [str(model_set.root)]
    for path in model_set.files():
        st = path.stat()  # follows a trained set's links: its base files count
        out.append((str(path), st.st_size, st.st_mtime_ns, st.st_ino))
    return tuple(out)


def problems_in_subprocess(model_set: ModelSet, *, timeout: float = SUBPROCESS_TIMEOUT_S
                           ) -> list[str]:
    """`load_problems` run in a child Python (torch is imported there, not here); the verdict
    is kept while none of the set's files changes."""
    try:
        key = _signature(model_set)
    except OSError as exc:  # a file gone since the set was found (a broken link...)
        return [f"{exc.filename}: {exc.strerror or exc}"]
    with _lock:  # one check of a set at a time; the others wait for its verdict
        if key in _verdicts:
            return _verdicts[key]
        cmd = [sys.executable, "-m", "virnucpro.models.loadcheck", str(model_set.root), "--json"]
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                                  env=env, check=False)
        except subprocess.TimeoutExpired:
            return [f"{model_set.root}: checking that the set loads took over {timeout:.0f} s"]
        try:
            problems = json.loads(done.stdout)["problems"]
        except (ValueError, KeyError, TypeError):
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            return [f"{model_set.root}: the load check failed (exit {done.returncode}): {tail}"]
        _verdicts[key] = problems
        return problems


def main(argv: list[str] | None = None) -> int:
    """`python -m virnucpro.models.loadcheck ROOT [--json]`: exit 4 when the set would not load."""
    args = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in args
    roots = [a for a in args if a != "--json"]
    if len(roots) != 1:
        print("usage: python -m virnucpro.models.loadcheck ROOT [--json]", file=sys.stderr)
        return 2
    try:
        problems = load_problems(scan_set_folder(roots[0]))
    except ModelError as exc:
        problems = [str(exc)]
    if as_json:
        print(json.dumps({"root": roots[0], "problems": problems}))
    else:
        print("\n".join(problems) or f"ok: {roots[0]} loads")
    return ModelError.exit_code if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
