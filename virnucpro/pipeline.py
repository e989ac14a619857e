"""The one-shot prediction job: `PredictConfig` in, output folders out.

Order of work: every input is validated first (nothing is created for a bad one); the model
set is resolved and every input's folder claimed before any scoring; then each input's run
(`run.input_run.InputRun`: each finished shard on disk, so `--resume` picks up after the last
one, and its rows staged in the tables as it comes in) is driven through one engine, one run
after another; the models load once, on the first input that has work.
"""

from __future__ import annotations

import logging
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from virnucpro.config import PredictConfig
from virnucpro.logs import NOTE
from virnucpro.run.events import RunListener
from virnucpro.run.folder import SPOOL_WAY_ON, RunMode, no_space
from virnucpro.run.input_run import InputRun, RunModels, claim_runs
from virnucpro.run.inputs import validate_inputs

if TYPE_CHECKING:
    from virnucpro.engine import Engine
    from virnucpro.run.inputs import ValidatedInput

log = logging.getLogger(__name__)


class _Shown(RunListener):
    """What predict shows of a run: a resume in the log, its progress on the bar. Notes are
    logged by the run itself; failures rise as errors (their exit codes)."""

    def __init__(self, reporter) -> None:
        self.reporter = reporter

    def started(self, run: InputRun) -> None:
        if run.mode is RunMode.RESUME:
            log.log(NOTE, "%s: resuming in %s", run.item.source, run.root)
        if self.reporter is not None:
            self.reporter.start(run.item.name, run.item.index.n_records, run.item.index.n_chunks)

    def progress(self, run: InputRun, sequences: int, chunks: int, scored: int) -> None:
        if self.reporter is not None:
            self.reporter.update(sequences, chunks, scored)


def run_predict(config: PredictConfig, *, reporter=None, engine: Engine | None = None) -> list[dict]:
    """Run the whole job; return each input's run.json content. An `engine` given by the
    caller (models already loaded) is used and left open; else one is made and closed."""
    from virnucpro.devices import parse_devices
    from virnucpro.engine import make_engine
    from virnucpro.models.sets import resolve_model_set

    started = datetime.now(timezone.utc)
    with tempfile.TemporaryDirectory(prefix="virnucpro-") as spool:
        items = _validate(config, Path(spool))
        model_set = resolve_model_set(config.models, progress=config.progress)
        if model_set.is_tiny:
            log.warning("model set 'tiny' has seeded random weights: its calls mean nothing "
                        "(for tests, demos and CI only)")
        model_set.classifier_path(config.chunk_size)  # fail before any work if absent
        if config.engine.engine == "ray":  # the actors' devices, from the cluster's resources
            devices = config.engine.cluster_devices()
        else:
            devices = parse_devices(config.device)
        models = RunModels.of(model_set, config.chunk_size,
                              config.engine.effective_precision(devices))
        runs = claim_runs(items, config, models, listener=_Shown(reporter), started=started)
        own = engine is None
        if own:
            engine = make_engine(config.engine, model_set, devices, config.chunk_size)
        try:
            return [_drive(run, engine, reporter) for run in runs]
        finally:
            if own:
                engine.close()


def _validate(config: PredictConfig, spool: Path) -> list[ValidatedInput]:
    try:
        return validate_inputs(config, spool)
    except OSError as exc:  # a pipe's copy that filled the temporary folder
        if (full := no_space(exc, spool, then=SPOOL_WAY_ON)) is not None:
            raise full from exc
        raise


def _drive(run: InputRun, engine: Engine, reporter) -> dict:
    """One run through the engine to its tables; a full disk said as one line (NoSpaceError)
    wherever it comes from, the engine included."""
    try:
        if run.mode is RunMode.DONE:
            return run.take_up()
        try:
            for task, scores in engine.map(run.tasks(engine)):
                run.done(task, scores)
        except BaseException:
            run.abandon()  # the staged tables stay: --resume goes on from their checkpoint
            raise
        finally:
            if reporter is not None:
                reporter.finish()
        engine.end_input()
        return run.finish()
    except OSError as exc:
        if (full := no_space(exc, run.root, run.item.index.total_bp)) is not None:
            raise full from exc
        raise
