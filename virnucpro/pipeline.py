"""The one-shot prediction job: `PredictConfig` in, output folders out.

Order of work: every input is validated first (nothing is created for a bad one); the models
load once, on the first input that has work; each input is then scored shard by shard through
a `ShardFeed` (feed.py: each finished shard on disk, so `--resume` picks up after the last one,
and its rows staged in the tables as it comes in); at the end the tables move into place.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from virnucpro import __version__
from virnucpro.chunking import CHUNK_SIZES
from virnucpro.config import TABLE_SETTINGS, PredictConfig, option_flag
from virnucpro.errors import InputError, NoSpaceError, OutputError, VirNucProError
from virnucpro.feed import ShardFeed
from virnucpro.layout import OutputLayout, existing_ancestor, write_json_atomic
from virnucpro.logs import NOTE
from virnucpro.models.sets import human_size
from virnucpro.seqfile import SHORT_SEQUENCE_BP, FastaIndex, check_path, scan_fasta
from virnucpro.spool import spool_input

if TYPE_CHECKING:
    from virnucpro.engine import Engine

log = logging.getLogger(__name__)

_FASTA_SUFFIXES = (".fasta", ".fas", ".fa", ".fna", ".ffn", ".fsa", ".seq", ".fastq", ".fq",
                   ".txt")
_COMPRESSION_SUFFIXES = (".gz", ".bz2", ".xz")


@dataclass
class InputJob:
    source: str  # as given: a path or "-"
    name: str
    index: FastaIndex
    layout: OutputLayout
    timings: dict = field(default_factory=dict)
    last_result_at: float | None = None  # perf_counter() when its last scored shard came in


def input_name(source: str) -> str:
    """Folder name for an input: the file name without FASTA and compression suffixes;
    `stdin` for `-`, `pipe-N` for a shell's process substitution (`<(zcat x.gz)` is
    /dev/fd/N, whose bare number would say nothing of where it came from)."""
    if source == "-":
        return "stdin"
    parent = os.path.dirname(os.path.normpath(source))
    if parent in ("/dev/fd", "/proc/self/fd") or re.fullmatch(r"/proc/\d+/fd", parent):
        return f"pipe-{Path(source).name}"
    name = Path(source).name
    lower = name.lower()
    for suffix in _COMPRESSION_SUFFIXES:
        if lower.endswith(suffix):
            name, lower = name[: -len(suffix)], lower[: -len(suffix)]
            break
    for suffix in _FASTA_SUFFIXES:
        if lower.endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
            break
    return name or "input"


def _unique_names(sources: list[str]) -> list[str]:
    """Folder names, unique even on a case-insensitive file system."""
    names: list[str] = []
    for source in sources:
        base = input_name(source)
        if base in ("", ".", ".."):
            base = "input"
        name, n = base, 1
        while name.casefold() in {x.casefold() for x in names}:
            n += 1
            name = f"{base}_{n}"
        names.append(name)
    return names


def validate_inputs(config: PredictConfig, spool_dir: Path) -> list[InputJob]:
    """The first pass over every input, before anything is created or loaded."""
    if config.chunk_size not in CHUNK_SIZES:
        raise VirNucProError(f"chunk size {config.chunk_size}: the published classifiers are for 300 and 500")
    if config.inputs.count("-") > 1:
        raise VirNucProError("standard input ('-') can be given only once")
    sources = list(config.inputs)
    names = _unique_names(sources)
    jobs = []
    for source, name in zip(sources, names, strict=True):
        started = time.perf_counter()
        if source == "-":
            path = spool_input(spool_dir)
        else:
            path = check_path(source)  # no such file; a folder
            if not path.is_file():
                # A pipe, a device or process substitution (<(zcat x.gz)) can be read only once.
                try:
                    with open(path, "rb") as stream:
                        path = spool_input(spool_dir, stream, shown=source)
                except OSError as exc:
                    raise InputError(f"cannot read: {exc.strerror or exc}", path=source) from exc
        index = scan_fasta(path, rename_duplicates=config.rename_duplicates,
                           display_name="<stdin>" if source == "-" else source,
                           chunk_size=config.chunk_size, min_length=config.min_length)
        root = config.outdir if len(sources) == 1 else config.outdir / name
        job = InputJob(source, name, index, OutputLayout(root))
        job.timings["validate_s"] = round(time.perf_counter() - started, 3)
        jobs.append(job)
    return jobs


def _fingerprint(index: FastaIndex) -> dict:
    return {"sha256": index.sha256, "size": index.size, "records": index.n_records}


def model_fingerprint(model_set, chunk_size: int, precision: str = "float32") -> dict:
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


def resume_key(job: InputJob, config: PredictConfig, models: dict) -> dict:
    return {"input": _fingerprint(job.index), "parameters": config.result_key(), "models": models}


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


def prepare_folder(job: InputJob, config: PredictConfig, models: dict) -> str:
    """Decide what to do with the output folder: 'fresh', 'resume' or 'done'.

    A folder is resumed (or taken as done) only when the input, the parameters that shape
    the shards and the model files are the same as those of the run that left it.
    """
    layout = job.layout
    root = layout.root
    state = _read_json(layout.state)
    run = _read_json(layout.run_json)
    expected = resume_key(job, config, models)
    # run.json is written last: a completed one means a finished run, even when a kill right
    # after it left the work folder (reuse_finished removes it).
    if config.resume and run and run.get("status") == "completed":
        if why := _differs(run.get("resume_key") or {}, expected):
            raise OutputError(f"holds a finished run of {why}; use --force to start over", path=root)
        return "done"
    if config.resume and state:
        if why := _differs(state, expected):
            raise OutputError(f"holds an unfinished run of {why}; use --force to start over",
                              path=root)
        return "resume"
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
        raise (no_space(exc, root, job.index.total_bp)
               or OutputError(f"cannot be used: {exc.strerror or exc}", path=root)) from exc
    return "fresh"


def check_output_folder(outdir: str | Path, sources: list[str], *, force: bool = False,
                        resume: bool = False) -> str:
    """The checks a submission's output folder gets before any job is queued, with the
    messages of `prepare_folder` (OutputError): it is (or can be made) a writable folder, and,
    without `force`, each input's folder in it is empty or holds an unfinished run to resume
    ('resume'), not a finished run or other files ('fresh' otherwise). Reads a few names only."""
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
        return "fresh"
    roots = [root] if len(sources) == 1 else [root / name for name in _unique_names(sources)]
    mode = "fresh"
    for folder in roots:
        layout = OutputLayout(folder)
        try:
            if not folder.is_dir() or not any(folder.iterdir()):
                continue
        except OSError as exc:
            raise OutputError(f"cannot be used: {exc.strerror or exc}", path=folder) from exc
        if layout.state.exists():  # an unfinished run: the job resumes it (or says why not)
            mode = "resume"
            continue
        done = (_read_json(layout.run_json) or {}).get("status") == "completed"
        if done and resume:  # taken up by the job: its table-only settings applied
            mode = "resume"
            continue
        what = " (it holds a finished run; --resume applies other table settings to it)" \
            if done else ""
        raise OutputError(f"is not empty{what}; use --force to overwrite", path=folder)
    return mode


def _read_json(path: Path) -> dict | None:
    import json

    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def score_input(job: InputJob, config: PredictConfig, engine: Engine,
                progress: Callable[[int, int, int], None]) -> ShardFeed:
    """Score every shard not yet on disk, the tables written as the shards come in; the
    feed, complete (its tables staged, to be published by `finish_input`)."""
    feed = ShardFeed(job, config, config.batch_tokens or default_batch_tokens(engine.devices),
                     progress)
    try:
        for task, scores in engine.map(feed):
            feed.done(task, scores)
            if feed.input_change is not None:  # no more device time on a changed input
                raise feed.input_change
    except BaseException:
        feed.abandon()  # the staged tables stay: --resume goes on from their checkpoint
        raise
    if not feed.complete:
        feed.abandon()
        raise OutputError("the engine stopped before every shard was scored", path=job.layout.root)
    return feed


def _add_report(job: InputJob, info: dict) -> None:
    """Write the HTML report of a finished input and list it in run.json.

    After run.json, because the report reads the finished run back; a report that cannot be
    drawn costs a warning, not the run: the tables are complete and `virnucpro report` can
    try again.
    """
    from virnucpro.report import REPORT_NAME, write_report

    t0 = time.perf_counter()
    try:
        write_report(job.layout.root, writer="virnucpro predict")
    except Exception as exc:  # noqa: BLE001 (hours of scoring must not be lost to a plot)
        log.error("%s: no report written (%s); the tables are complete: run `virnucpro report %s` to retry",
                    job.source, exc, job.layout.root, exc_info=log.isEnabledFor(logging.DEBUG))
        return
    info["timings"]["report_s"] = round(time.perf_counter() - t0, 3)
    info["outputs"][REPORT_NAME] = REPORT_NAME
    write_json_atomic(job.layout.run_json, info)


def reuse_finished(job: InputJob, config: PredictConfig,
                   say: Callable[[str], None] | None = None) -> dict:
    """A finished run found by --resume (the input, models and shard settings are the same):
    what a kill after its run.json left is removed, the table-only settings that differ are
    applied from the stored scores, a missing report is written; its run.json, as it now is.
    What was done is logged as a NOTE, and also given to `say` (the daemon's job log)."""
    layout = job.layout

    def note(message: str) -> None:
        log.log(NOTE, "%s: %s", job.source, message)
        if say is not None:
            say(f"{job.name}: {message}")

    info = _read_json(layout.run_json) or {}
    if layout.work.exists():
        size = sum(p.stat().st_size for p in layout.work.rglob("*") if p.is_file())
        shutil.rmtree(layout.work, ignore_errors=True)
        note(f"removed what the finished run left in {layout.work} ({human_size(size)})")
    params = info.get("parameters", {})
    defaults = PredictConfig(inputs=(), outdir=layout.root)
    changed = {k: (params.get(k, getattr(defaults, k)), getattr(config, k))
               for k in TABLE_SETTINGS if params.get(k, getattr(defaults, k)) != getattr(config, k)}
    if changed:
        from virnucpro.rescore import RescoreSettings, rescore_folder

        settings = RescoreSettings(
            threshold=config.threshold, region_gap=config.region_gap,
            region_min_p="call" if config.region_min_p is None else config.region_min_p,
            min_region_length=config.min_region_length)
        info = rescore_folder(layout.root, layout.root, settings, report=config.report)
        note(f"already complete in {layout.root}; its tables rewritten from the stored scores "
             "with " + ", ".join(f"{option_flag(k)} {new} (was {old})"
                                 for k, (old, new) in changed.items()))
        return info
    if config.report and not (layout.root / layout.REPORT).is_file():
        info.setdefault("timings", {})
        _add_report(job, info)
        write_json_atomic(layout.run_json, info)
        note(f"already complete in {layout.root}; its missing report written")
        return info
    note(f"already complete in {layout.root} (nothing to resume)")
    return info


RESUME_WAY_ON = "then run the same command with --resume (the finished shards are kept)"
SPOOL_WAY_ON = ("then run it again, or set TMPDIR to a larger disk (the copy of a pipe is made "
                "there)")


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


def default_batch_tokens(devices: list[str]) -> int:
    # On CPU large batches only add padding work; on a GPU they fill the device. One value
    # for all workers: batches are cut from the input alone, whatever device takes them.
    return 4096 if all(d == "cpu" for d in devices) else 32768


def run_predict(config: PredictConfig, *, reporter=None, engine: Engine | None = None) -> list[dict]:
    """Run the whole job; return each input's run.json content. An `engine` given by the
    caller (models already loaded) is used and left open; else one is made and closed."""
    import tempfile

    from virnucpro.devices import parse_devices
    from virnucpro.engine import make_engine
    from virnucpro.models.sets import resolve_model_set

    started_at = datetime.now(timezone.utc)
    with tempfile.TemporaryDirectory(prefix="virnucpro-") as spool:
        try:
            jobs = validate_inputs(config, Path(spool))
        except OSError as exc:  # a pipe's copy that filled the temporary folder
            if (full := no_space(exc, Path(spool), then=SPOOL_WAY_ON)) is not None:
                raise full from exc
            raise
        model_set = resolve_model_set(config.models, progress=config.progress)
        if model_set.is_tiny:
            log.warning("model set 'tiny' has seeded random weights: its calls mean nothing "
                        "(for tests, demos and CI only)")
        model_set.classifier_path(config.chunk_size)  # fail before any work if absent
        if config.engine.engine == "ray":  # the actors' devices, from the cluster's resources
            devices = config.engine.cluster_devices()
        else:
            devices = parse_devices(config.device)
        precision = config.engine.effective_precision(devices)
        models_key = model_fingerprint(model_set, config.chunk_size, precision)
        # Every folder is checked (and claimed) before any scoring: a refusal for the last
        # input must not come after hours spent on the first.
        modes = [prepare_folder(job, config, models_key) for job in jobs]
        own = engine is None
        if own:
            engine = make_engine(config.engine, model_set, devices, config.chunk_size)
        try:
            results = []
            for job, mode in zip(jobs, modes, strict=True):
                try:
                    results.append(run_input(job, mode, config, engine, model_set, models_key,
                                             started_at, reporter))
                except OSError as exc:
                    if (full := no_space(exc, job.layout.root, job.index.total_bp)) is not None:
                        raise full from exc
                    raise
            return results
        finally:
            if own:
                engine.close()


def run_input(job: InputJob, mode: str, config: PredictConfig, engine: Engine, model_set,
              models_key: dict, started_at: datetime, reporter) -> dict:
    if mode == "done":
        return reuse_finished(job, config)
    if mode == "resume":
        log.log(NOTE, "%s: resuming in %s", job.source, job.layout.root)
    t0 = time.perf_counter()
    if reporter is not None:
        reporter.start(job.name, job.index.n_records, job.index.n_chunks)
    update = reporter.update if reporter is not None else (lambda *counts: None)
    try:
        feed = score_input(job, config, engine, update)
    finally:
        if reporter is not None:
            reporter.finish()
    job.timings["score_s"] = round(time.perf_counter() - t0, 3)
    if engine.load_seconds is not None:  # before end_input, which may unload the models
        job.timings["load_models_s"] = round(engine.load_seconds, 3)
    engine.end_input()
    return finish_input(job, mode, config, engine, model_set, models_key, started_at, feed)


def finish_input(job: InputJob, mode: str, config: PredictConfig, engine: Engine, model_set,
                 models_key: dict, started_at: datetime, feed: ShardFeed) -> dict:
    """Once every shard of an input is merged: close the tables, move them into place, write
    run.json and the report."""
    if engine.load_seconds is not None:
        job.timings["load_models_s"] = round(engine.load_seconds, 3)
    if (change := feed.check_input()) is not None:
        # Nothing may claim to be complete: the staged tables stay, unpublished, and a
        # --resume finds a different input and says so.
        feed.abandon()
        raise change
    t1 = time.perf_counter()
    writer = feed.writer
    writer.close()
    info = {
        "virnucpro_version": __version__,
        "status": "completed",
        "started": started_at.isoformat(timespec="seconds"),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": sys.argv,
        "input": {"source": job.source, "name": job.name, "path": str(job.index.path) if job.source != "-" else "-",
                  "compression": job.index.compression, **_fingerprint(job.index),
                  "bases": job.index.total_bp},
        "parameters": {**config.parameters(), "outdir": str(config.outdir), "inputs": list(config.inputs),
                       "resumed": mode == "resume", "shards_scored_now": feed.scored},
        "engine": {"name": engine.name, "devices": engine.devices,
                   "persistent_models": config.engine.persistent,
                   "model_loads_so_far": engine.model_loads, "worker_deaths": engine.worker_deaths},
        "models": model_set.describe(),
        "tiny": model_set.is_tiny,
        "resume_key": resume_key(job, config, models_key),
        "counts": writer.counts,
        "timings": job.timings,
        "outputs": {name: name for name in writer.published}
        | ({"embeddings": "embeddings/index.tsv"} if config.save_embeddings else {}),
    }
    writer.publish()
    now = time.perf_counter()
    job.timings["write_s"] = round(now - t1, 3)  # what is left of the tables after scoring
    if job.last_result_at is not None:  # how long the tables took once the devices were done
        job.timings["tables_after_last_shard_s"] = round(now - job.last_result_at, 4)
    write_json_atomic(job.layout.run_json, info)  # last: a run.json means a finished run
    shutil.rmtree(job.layout.work, ignore_errors=True)
    if config.report:
        _add_report(job, info)
    if writer.counts["short_sequences"]:
        log.warning("%s: %d sequence(s) shorter than %d bp, flagged 'short': the model was "
                    "trained on %d bp chunks", job.source, writer.counts["short_sequences"],
                    SHORT_SEQUENCE_BP, config.chunk_size)
    if writer.counts["frames_failed"]:
        log.warning("%s: %d frame(s) could not be scored (see the status column of frames.tsv)",
                    job.source, writer.counts["frames_failed"])
    return info
