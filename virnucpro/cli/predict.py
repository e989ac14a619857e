"""`virnucpro predict`: parse the options into a `PredictConfig` (with its `EngineConfig`) and
run the pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import click

from virnucpro.chunking import CHUNK_SIZES
from virnucpro.cli.common import json_errors, stop_cleanly_on_sigterm


def _json_errors(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    # Errors as JSON too: a script reading stdout learns why (exit 12: the input changed).
    if value:
        json_errors(ctx, lambda exc: {"code": exc.code, "message": str(exc)})
    return value


@click.command()
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.option("-o", "--outdir", required=True, type=click.Path(path_type=Path),
              help="Output folder (one subfolder per input when several are given).")
@click.option("--chunk-size", type=click.Choice([str(c) for c in CHUNK_SIZES]), default="500", show_default=True,
              help="Chunk length; picks the matching published classifier.")
@click.option("--models", "models_spec", default="published", show_default=True, metavar="NAME|PATH",
              help="Model set: published, tiny, an imported name, or a folder.")
@click.option("--devices", "device", default="auto", show_default=True,
              help="auto (every GPU, else the CPU), cpu, cuda:N, or a list: cuda:0,cuda:1 (cpu,cpu too).")
@click.option("--engine", type=click.Choice(["auto", "local", "pool", "ray"]), default="auto",
              show_default=True, help="local: this process, one device; pool: one worker "
              "process per device; ray: Ray actors on a cluster (pip install 'virnucpro[ray]'). "
              "auto: local for one device, pool for several.")
@click.option("--ray-address", default=None, metavar="auto|HOST:PORT",
              help="Ray cluster to join (auto: the one this node belongs to) [default: start a "
              "local Ray instance].")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Ray actors, each with its own models [default: every GPU of the cluster "
              "divided by --gpus-per-worker, else one per node].")
@click.option("--gpus-per-worker", type=click.FloatRange(min=0), default=None,
              help="GPUs per Ray actor [default: 1 when the cluster has GPUs, else 0].")
@click.option("--persistent-models/--no-persistent-models", default=False, show_default=True,
              help="Keep workers and their models loaded across the inputs of this command "
              "(faster for many inputs) instead of loading them per input (less memory held).")
@click.option("--cache-clear-interval", type=click.IntRange(min=0), default=50, show_default=True,
              help="Free the GPU allocator cache every N shards in a worker (0: never).")
@click.option("--worker-timeout", type=click.FloatRange(min=1), default=600.0, show_default=True,
              help="Seconds a worker may take to load its models before the run gives up.")
@click.option("--batch-tokens", type=click.IntRange(min=16), default=None,
              help="Padded tokens per model batch [default: 4096 on CPU, 32768 on GPU].")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="Torch CPU threads.")
@click.option("--precision", type=click.Choice(["auto", "float32", "bfloat16"]), default="auto",
              show_default=True, help="auto: bfloat16 autocast on GPUs (the fast path; "
              "features and classifier stay float32), float32 on the CPU.")
@click.option("--threshold", type=click.FloatRange(0.0, 1.0), default=0.5, show_default=True,
              help="Share of scored chunks that must be viral for a sequence to be called viral.")
@click.option("--min-length", type=click.IntRange(min=1), default=1, show_default=True,
              help="Shorter sequences get an unscored row instead of a score.")
@click.option("--region-gap", type=click.IntRange(min=0), default=1, show_default=True,
              metavar="N", help="Viral regions: bridge runs of at most N non-viral or unscored "
              "chunks between viral ones.")
@click.option("--region-min-p", type=click.FloatRange(0.0, 1.0), default=None, metavar="F",
              help="Viral regions: a chunk counts as viral when its max P(virus) is at least F "
              "[default: its call].")
@click.option("--min-region-length", type=click.IntRange(min=1), default=1000,
              show_default=True, metavar="BP",
              help="Viral regions shorter than this are dropped (a whole-sequence one is kept).")
@click.option("--save-embeddings", is_flag=True, help="Also write the per-frame features.")
@click.option("--rename-duplicates", is_flag=True,
              help="Suffix repeated sequence ids (_2, _3...) instead of refusing the input.")
@click.option("--force", is_flag=True, help="Overwrite a non-empty output folder.")
@click.option("--resume", is_flag=True, help="Continue an interrupted run in OUTDIR.")
@click.option("--shard-frames", type=click.IntRange(min=1), default=None, hidden=True,
              help="Frames per shard (the unit of resume); for tests and tuning.")
@click.option("--report/--no-report", "write_report", default=True, show_default=True,
              help="Write OUTDIR/report.html (one per input folder) at the end of the run.")
@click.option("--json", "as_json", is_flag=True, callback=_json_errors,
              help='Print a JSON summary on stdout; an error as {"error": {"code", "exit", '
              '"message"}}.')
@click.option("-q", "--quiet", is_flag=True, help="No progress bar, only errors.")
@click.option("-v", "--verbose", count=True, help="More log lines (-vv for debug).")
def predict(inputs: tuple[str, ...], outdir: Path, chunk_size: str, models_spec: str, device: str,
            batch_tokens: int | None, threads: int | None, precision: str, threshold: float,
            min_length: int, region_gap: int, region_min_p: float | None,
            min_region_length: int,
            save_embeddings: bool, rename_duplicates: bool, force: bool, resume: bool,
            shard_frames: int | None, engine: str, persistent_models: bool,
            cache_clear_interval: int, worker_timeout: float, as_json: bool, quiet: bool,
            verbose: int, write_report: bool, ray_address: str | None, workers: int | None,
            gpus_per_worker: float | None) -> None:
    """Score the sequences of INPUT (FASTA or FASTQ; plain, .gz, .bz2, .xz; '-' for stdin)."""
    from virnucpro.cli.progress import ProgressReporter
    from virnucpro.config import PredictConfig
    from virnucpro.engine_config import EngineConfig
    from virnucpro.logs import setup_logging as _setup_logging
    from virnucpro.pipeline import run_predict
    from virnucpro.ray_cluster import check_ray_options

    _setup_logging(-1 if quiet else verbose)
    stop_cleanly_on_sigterm()
    if force and resume:
        raise click.UsageError("--force and --resume exclude each other")
    if problem := check_ray_options(engine, ray_address, workers, gpus_per_worker, device):
        raise click.UsageError(problem)
    engine_config = EngineConfig(
        engine=engine, threads=threads, worker_timeout=worker_timeout,
        cache_clear_interval=cache_clear_interval, precision=precision,
        persistent=persistent_models, ray_address=ray_address, workers=workers,
        gpus_per_worker=gpus_per_worker)
    config = PredictConfig(
        inputs=inputs, outdir=outdir, chunk_size=int(chunk_size), models=models_spec,
        device=device, batch_tokens=batch_tokens, threshold=threshold, min_length=min_length,
        save_embeddings=save_embeddings, rename_duplicates=rename_duplicates, force=force,
        resume=resume, progress=not quiet, engine=engine_config, report=write_report,
        region_gap=region_gap, region_min_p=region_min_p, min_region_length=min_region_length,
        **({"shard_frames": shard_frames} if shard_frames else {}))
    results = run_predict(config, reporter=ProgressReporter(enabled=not quiet))
    summary = [{"input": r["input"]["source"], "outdir": str(_outdir(config, r)),
                **r.get("counts", {})} for r in results]
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    elif not quiet:
        from virnucpro.cli.summary import summary_line

        for s in summary:
            click.echo(summary_line(s), err=True)


def _outdir(config, run: dict) -> Path:
    return config.outdir if len(config.inputs) == 1 else config.outdir / run["input"]["name"]
