"""Claiming an input's output folder: what a run does there (`RunMode`: fresh, resume or
done), decided from what an earlier run left and the resume key, and the same checks made
cheaply for a submission (`check_output_folder`). A full disk is said as one line
(`no_space`) wherever a run writes.

A folder is resumed (or taken as done) only when the input, the settings that shape the
shards and the model files are those of the run that left it (`resume_key`).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

from virnucpro.config import PredictConfig, option_flag
from virnucpro.errors import NoSpaceError, OutputError
from virnucpro.layout import OutputLayout, existing_ancestor, write_json_atomic
from virnucpro.models.sets import human_size
from virnucpro.run.inputs import ValidatedInput, folder_names
from virnucpro.run_record import RunRecord

if TYPE_CHECKING:
    from virnucpro.models.sets import ModelSet
    from virnucpro.seqfile import FastaIndex

RESUME_WAY_ON = "then run the same command with --resume (the finished shards are kept)"
SPOOL_WAY_ON = ("then run it again, or set TMPDIR to a larger disk (the copy of a pipe is made "
                "there)")


class RunMode(str, Enum):
    """What a run does in its folder: score from the start, go on from the shards and staged
    tables an unfinished run left, or take up a finished run (`--resume`)."""

    FRESH = "fresh"
    RESUME = "resume"
    DONE = "done"


def read_state(path: Path) -> dict | None:
    """An unfinished run's state.json (its resume key); None if missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def input_fingerprint(index: FastaIndex) -> dict:
    return {"sha256": index.sha256, "size": index.size, "records": index.n_records}


def model_fingerprint(model_set: ModelSet, chunk_size: int, precision: str = "float32") -> dict:
    """What identifies the computation behind a run's scores: the precision, and the
    manifest's sha256 of each weights file read (size and modification time for a folder
    without a manifest)."""
    from virnucpro.models.manifest import read_manifest

    recorded = read_manifest(model_set.root).get("files", {})
    weights = [p for p in model_set.files() if p.suffix in (".bin", ".safetensors", ".pt", ".pth")
               and "contact-regression" not in p.name and "_model." not in p.name]
    key = {}
    for path in [*weights, model_set.classifier_path(chunk_size)]:
        rel = path.relative_to(model_set.root).as_posix()
        stat = path.stat()
        key[rel] = recorded.get(rel, {}).get("sha256") or f"{stat.st_size}:{stat.st_mtime_ns}"
    return {"files": key, "precision": precision}


def resume_key(item: ValidatedInput, config: PredictConfig, models: dict) -> dict:
    return {"input": input_fingerprint(item.index), "parameters": config.result_key(),
            "models": models}


def _differs(old: dict, new: dict) -> str:
    for part in ("input", "parameters", "models"):
        if old.get(part) != new[part]:
            if part == "parameters":  # name them: --chunk-size 300, not "other parameters"
                theirs, ours = old.get(part) or {}, new[part]
                named = [f"{option_flag(k)} {theirs.get(k)} (now {ours.get(k)})"
                         for k in sorted(set(theirs) | set(ours)) if theirs.get(k) != ours.get(k)]
                return "other settings that shape its shards: " + ", ".join(named)
            return {"input": "a different input",
                    "models": "other model files or precision"}[part]
    return ""


def prepare_folder(item: ValidatedInput, config: PredictConfig, models: dict, *,
                   then: str = RESUME_WAY_ON) -> RunMode:
    """Decide what to do with the output folder, and claim it: a fresh one is made (or, with
    `force`, emptied of what a run owns) and its resume key written. `models`: the model
    fingerprint; `then`: the way on after a full disk (`no_space`)."""
    layout = item.layout
    root = layout.root
    state = read_state(layout.state)
    run = RunRecord.find(layout.run_json)
    expected = resume_key(item, config, models)
    # run.json is written last: a completed one means a finished run, even when a kill right
    # after it left the work folder (taking it up removes that).
    if config.resume and run is not None and run.completed:
        if why := _differs(run.resume_key or {}, expected):
            raise OutputError(f"holds a finished run of {why}; use --force to start over", path=root)
        return RunMode.DONE
    if config.resume and state:
        if why := _differs(state, expected):
            raise OutputError(f"holds an unfinished run of {why}; use --force to start over",
                              path=root)
        return RunMode.RESUME
    try:
        if root.exists() and not root.is_dir():
            raise OutputError("exists and is not a folder", path=root)
        if root.exists() and any(root.iterdir()):
            if not config.force:
                hint = " or --resume to continue it" if state else ""
                raise OutputError(f"is not empty; use --force to overwrite{hint}", path=root)
            layout.remove_owned()
        root.mkdir(parents=True, exist_ok=True)
        if not os.access(root, os.W_OK):
            raise OutputError("is not writable", path=root)
        layout.work.mkdir(exist_ok=True)
        write_json_atomic(layout.state, expected)
    except OSError as exc:
        raise (no_space(exc, root, item.index.total_bp, then=then)
               or OutputError(f"cannot be used: {exc.strerror or exc}", path=root)) from exc
    return RunMode.FRESH


def check_output_folder(outdir: str | Path, sources: list[str], *, force: bool = False,
                        resume: bool = False) -> RunMode:
    """The checks a submission's output folder gets before any job is queued, with the
    messages of `prepare_folder` (OutputError): it is (or can be made) a writable folder, and,
    without `force`, each input's folder in it is empty or holds an unfinished run to resume
    (RESUME), not a finished run or other files (FRESH otherwise). Reads a few names only."""
    root = Path(outdir)
    if root.exists() and not root.is_dir():
        raise OutputError("exists and is not a folder", path=root)
    existing = existing_ancestor(root)
    if not existing.is_dir():
        raise OutputError(f"cannot be created: {existing} is not a folder", path=root)
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "is not writable" if existing == root else f"cannot be created: {existing} is not writable"
        raise OutputError(where, path=root)
    if force or not root.exists():
        return RunMode.FRESH
    roots = [root] if len(sources) == 1 else [root / name for name in folder_names(sources)]
    mode = RunMode.FRESH
    for folder in roots:
        layout = OutputLayout(folder)
        try:
            if not folder.is_dir() or not any(folder.iterdir()):
                continue
        except OSError as exc:
            raise OutputError(f"cannot be used: {exc.strerror or exc}", path=folder) from exc
        if layout.state.exists():  # an unfinished run: the job resumes it (or says why not)
            mode = RunMode.RESUME
            continue
        done = (record := RunRecord.find(layout.run_json)) is not None and record.completed
        if done and resume:  # taken up by the job: its table-only settings applied
            mode = RunMode.RESUME
            continue
        what = " (it holds a finished run; --resume applies other table settings to it)" \
            if done else ""
        raise OutputError(f"is not empty{what}; use --force to overwrite", path=folder)
    return mode


def no_space(exc: BaseException, root: Path, bases: int | None = None, *,
             then: str = RESUME_WAY_ON) -> NoSpaceError | None:
    """The error to give for a full file system under `root`, or None if `exc` is another.
    `bases`: the input's size, for the estimate of what a run needs (its tables, FASTA outputs
    and shards: about 2 bytes a base); `then`: the way on, after freeing space."""
    if not (isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)):
        return None
    try:
        free = f"{human_size(shutil.disk_usage(existing_ancestor(root)).free)} free"
    except OSError:
        free = "free space unknown"
    needs = f"; a run of this input needs about {human_size(2 * bases)}" if bases else ""
    return NoSpaceError(f"no space left on its file system ({free}{needs}): free some space, "
                        f"{then}", path=root)
