"""A finished run's record: its run.json (`run_info`, a `RunRecord` built in one place), its HTML report
(`add_report`), and a finished run found again by `--resume` (`take_up_finished`).

run.json is written last, after the tables are in place: a run.json with status completed
means a finished run. The report comes after it, because it reads the finished run back.
"""

from __future__ import annotations

import logging
import shutil
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from virnucpro import __version__
from virnucpro.config import TABLE_SETTINGS, PredictConfig, option_flag
from virnucpro.layout import OutputLayout
from virnucpro.models.sets import human_size
from virnucpro.run.folder import input_fingerprint, resume_key
from virnucpro.run.inputs import ValidatedInput
from virnucpro.run_record import RunRecord

if TYPE_CHECKING:
    from virnucpro.engine import Engine
    from virnucpro.models.sets import ModelSet

log = logging.getLogger(__name__)


def run_info(item: ValidatedInput, config: PredictConfig, model_set: ModelSet, models_key: dict,
             engine: Engine, *, started: datetime, resumed: bool, shards_scored_now: int,
             counts: dict, timings: dict, published: list[str],
             workers: list[dict] | None = None) -> RunRecord:
    """The record (run.json) of a run that has just finished: what was run, how, with what
    models, what it counted and took, and the files it published. `timings` is kept as the
    same dict: what the run times after this (writing, the report) goes into the record.
    `workers`: what each worker that scored shards of this run said of itself (device,
    precision, weights' bytes, batch budget, peak memory; none for a run found on disk)."""
    return RunRecord(
        virnucpro_version=__version__,
        status="completed",
        started=started.isoformat(timespec="seconds"),
        finished=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        command=sys.argv,
        input={"source": item.source, "name": item.name,
               "path": str(item.index.path) if item.source != "-" else "-",
               "compression": item.index.compression, **input_fingerprint(item.index),
               "bases": item.index.total_bp},
        parameters={**config.parameters(), "outdir": str(config.outdir),
                    "inputs": list(config.inputs), "resumed": resumed,
                    "shards_scored_now": shards_scored_now},
        engine={"name": engine.name, "devices": engine.devices,
                "persistent_models": config.engine.persistent,
                "model_loads_so_far": engine.model_loads, "worker_deaths": engine.worker_deaths,
                "workers": workers or []},
        models=model_set.describe(),
        tiny=model_set.is_tiny,
        resume_key=resume_key(item, config, models_key),
        counts=counts,
        timings=timings,
        outputs={name: name for name in published}
        | ({OutputLayout.EMBEDDINGS: OutputLayout.EMBEDDING_INDEX} if config.save_embeddings
           else {}),
    )


def add_report(item: ValidatedInput, record: RunRecord) -> None:
    """Write the HTML report of a finished input and list it in run.json.

    After run.json, because the report reads the finished run back; a report that cannot be
    drawn costs a warning, not the run: the tables are complete and `virnucpro report` can
    try again.
    """
    from virnucpro.report import write_report

    t0 = time.perf_counter()
    try:
        write_report(item.layout.root, writer="virnucpro predict")
    except Exception as exc:  # noqa: BLE001 (hours of scoring must not be lost to a plot)
        log.error("%s: no report written (%s); the tables are complete: run `virnucpro report %s` to retry",
                  item.source, exc, item.layout.root, exc_info=log.isEnabledFor(logging.DEBUG))
        return
    record.timings["report_s"] = round(time.perf_counter() - t0, 3)
    record.outputs[OutputLayout.REPORT] = OutputLayout.REPORT
    record.write(item.layout.run_json)


def take_up_finished(item: ValidatedInput, config: PredictConfig,
                     note: Callable[[str], None]) -> dict:
    """A finished run found by --resume (the input, models and shard settings are the same):
    what a kill after its run.json left is removed, the table-only settings that differ are
    applied from the stored scores, a missing report is written; its run.json, as it now is.
    What was done is said to `note`."""
    layout = item.layout
    record = RunRecord.find(layout.run_json) or RunRecord()
    if layout.work.exists():
        size = sum(p.stat().st_size for p in layout.work.rglob("*") if p.is_file())
        shutil.rmtree(layout.work, ignore_errors=True)
        note(f"removed what the finished run left in {layout.work} ({human_size(size)})")
    params = record.parameters
    defaults = PredictConfig(inputs=(), outdir=layout.root)
    changed = {k: (params.get(k, getattr(defaults, k)), getattr(config, k))
               for k in TABLE_SETTINGS if params.get(k, getattr(defaults, k)) != getattr(config, k)}
    if changed:
        from virnucpro.rescore import RescoreSettings, rescore_run

        settings = RescoreSettings(
            threshold=config.threshold, region_gap=config.region_gap,
            region_min_p="call" if config.region_min_p is None else config.region_min_p,
            min_region_length=config.min_region_length)
        record = rescore_run(layout.root, layout.root, settings, report=config.report)
        note(f"already complete in {layout.root}; its tables rewritten from the stored scores "
             "with " + ", ".join(f"{option_flag(k)} {new} (was {old})"
                                 for k, (old, new) in changed.items()))
        return record.to_json()
    if config.report and not layout.report.is_file():
        add_report(item, record)
        note(f"already complete in {layout.root}; its missing report written")
        return record.to_json()
    note(f"already complete in {layout.root} (nothing to resume)")
    return record.to_json()
