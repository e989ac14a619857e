"""`virnucpro-daemon`: start (in the background or the foreground), stop, status, drain, keygen.

Parsing only; the daemon is `server.Daemon`. Devices are counted with NVML, never with torch:
the supervisor must stay light, and CUDA must start only in the workers.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import click

from virnucpro import __version__
from virnucpro.clicommon import ErrorExitGroup
from virnucpro.errors import VirNucProError


def _gpu_count() -> int:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    try:
        import pynvml

        pynvml.nvmlInit()
        count = pynvml.nvmlDeviceGetCount()
    except Exception:  # noqa: BLE001 - no driver, no library: no GPU
        return 0
    if visible is not None:
        ids = [v for v in visible.split(",") if v.strip()]
        return min(count, len(ids))
    return count


def resolve_devices(spec: str) -> list[str]:
    """`virnucpro.devices.parse_devices`, counting GPUs with NVML instead of torch."""
    from virnucpro.devices import parse_devices

    return parse_devices(spec, gpu_count=_gpu_count)


class _Group(ErrorExitGroup):
    interrupt_message = "interrupted"


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="virnucpro-daemon")
def main() -> None:
    """The VirNucPro daemon: keeps the models on the GPUs and runs a job queue."""
    from virnucpro.devices import number_gpus_as_nvidia_smi

    number_gpus_as_nvidia_smi()  # and so NVML's index of a GPU is its CUDA index


@main.command()
@click.option("--persistent-models/--no-persistent-models", default=False, show_default=True,
              help="Keep the models loaded between jobs (else load per job and free after).")
@click.option("--devices", default="auto", show_default=True, help="auto, cpu, cuda:N or a list.")
@click.option("--engine", type=click.Choice(["pool", "ray"]), default="pool", show_default=True,
              help="pool: one worker process per device of this machine; ray: Ray actors on a "
              "cluster (pip install 'virnucpro[ray]').")
@click.option("--ray-address", default=None, metavar="auto|HOST:PORT",
              help="Ray cluster to join [default: start a local Ray instance].")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Ray actors [default: the cluster's GPUs / --gpus-per-worker, else one per node].")
@click.option("--gpus-per-worker", type=click.FloatRange(min=0), default=None,
              help="GPUs per Ray actor [default: 1 when the cluster has GPUs, else 0].")
@click.option("--models", "preload", multiple=True, metavar="NAME",
              help="Model set(s) to load at start (persistent mode).")
@click.option("--endpoint", default=None, help="Request endpoint (default: an ipc socket in the "
              "runtime folder); tcp://HOST:PORT needs --keys (CurveZMQ).")
@click.option("--keys", type=click.Path(path_type=Path), default=None,
              help="Folder from `virnucpro-daemon keygen` (server.key_secret, authorized/).")
@click.option("--max-queued", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=None)
@click.option("--worker-timeout", type=float, default=600.0, show_default=True)
@click.option("--shutdown-timeout", type=float, default=60.0, show_default=True,
              help="On SIGTERM, seconds to finish or checkpoint running work.")
@click.option("--max-loaded-sets", type=click.IntRange(min=1), default=1, show_default=True,
              help="Model sets kept loaded at once in persistent mode (least recently used evicted).")
@click.option("--precision", type=click.Choice(["auto", "float32", "bfloat16"]), default="auto",
              show_default=True, help="auto: bfloat16 autocast on GPUs, float32 on the CPU.")
@click.option("--foreground", is_flag=True, help="Stay attached (systemd, containers).")
@click.option("--shard-frames", type=int, default=None, hidden=True)
@click.option("-v", "--verbose", count=True)
def start(persistent_models: bool, devices: str, preload: tuple[str, ...], endpoint: str | None,
          keys: Path | None, max_queued: int, threads: int | None, worker_timeout: float,
          shutdown_timeout: float, max_loaded_sets: int, precision: str, foreground: bool,
          shard_frames: int | None, verbose: int, engine: str, ray_address: str | None,
          workers: int | None, gpus_per_worker: float | None) -> None:
    """Start the daemon; in the background it returns once the daemon answers."""
    from virnucpro.daemon.paths import DaemonPaths
    from virnucpro.ray_cluster import check_ray_options

    if problem := check_ray_options(engine, ray_address, workers, gpus_per_worker, devices):
        raise click.UsageError(problem)

    paths = DaemonPaths.default()
    if not foreground:
        _start_background(paths, endpoint)
        return
    from virnucpro.daemon.server import Daemon, DaemonConfig
    from virnucpro.engine_config import EngineConfig

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    logging.getLogger("virnucpro.daemon").setLevel(logging.INFO)
    # With Ray the devices are the cluster's, learnt when the daemon joins it.
    engine_config = EngineConfig(engine=engine, threads=threads, worker_timeout=worker_timeout,
                                 precision=precision, ray_address=ray_address, workers=workers,
                                 gpus_per_worker=gpus_per_worker)
    config = DaemonConfig(devices=resolve_devices(devices) if engine == "pool" else [],
                          persistent=persistent_models, engine=engine_config,
                          models=list(preload), endpoint=endpoint, max_queued=max_queued,
                          shutdown_timeout=shutdown_timeout, max_loaded_sets=max_loaded_sets,
                          curve_keys=keys, shard_frames=shard_frames)
    daemon = Daemon(config, paths)
    daemon.start()
    daemon.serve_forever()


def _start_background(paths, endpoint: str | None) -> None:
    from virnucpro.daemon.client import Client, DaemonUnavailable

    args = [a for a in sys.argv[sys.argv.index("start") + 1:] if a != "--foreground"]
    paths.state.mkdir(parents=True, exist_ok=True)
    log = open(paths.log, "ab")
    proc = subprocess.Popen([sys.executable, "-m", "virnucpro.daemon.cli", "start", "--foreground", *args],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = paths.log.read_text(errors="replace").splitlines()[-15:]
            raise VirNucProError("the daemon exited at start:\n" + "\n".join(tail))
        try:
            status = Client(endpoint, timeout=1.0).status()
            click.echo(f"virnucpro daemon started (pid {status.pid}) on {status.requests}; "
                       f"log: {paths.log}", err=True)
            return
        except DaemonUnavailable:
            time.sleep(0.2)
    raise VirNucProError(f"the daemon did not answer within 120 s; see {paths.log}")


@main.command()
@click.option("--endpoint", default=None)
@click.option("--timeout", type=float, default=120.0, show_default=True,
              help="Seconds to wait for it to finish or checkpoint its work and exit.")
def stop(endpoint: str | None, timeout: float) -> None:
    """Stop the daemon (running work is checkpointed and resumes at the next start)."""
    from virnucpro.daemon.client import Client

    client = Client(endpoint)
    pid = client.status().pid
    client.stop()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            click.echo("virnucpro daemon stopped", err=True)
            return
        time.sleep(0.2)
    raise VirNucProError(f"the daemon (pid {pid}) is still running after {timeout} s")


@main.command()
@click.option("--endpoint", default=None)
@click.option("--json", "as_json", is_flag=True)
def status(endpoint: str | None, as_json: bool) -> None:
    """The daemon's state, mode, devices and what is loaded where."""
    from virnucpro.daemon.client import Client

    s = Client(endpoint).status()
    if as_json:
        click.echo(json.dumps(s.to_dict(), indent=2))
        return
    click.echo(f"state      {s.state.value} (pid {s.pid}, up {s.uptime_s:.0f} s, version {s.version})")
    click.echo(f"models     {'persistent' if s.persistent_models else 'loaded per job'}")
    click.echo(f"devices    {', '.join(s.devices)}")
    click.echo(f"endpoint   {s.requests}")
    click.echo(f"queue      {s.queued} queued, running: {s.running or '-'}")
    for entry in s.loaded:
        for w in entry.workers:
            mem = (w.memory_bytes or 0) / 1e9
            click.echo(f"loaded     {entry.models} on {w.device} ({w.state}, {mem:.2f} GB)")


@main.command()
@click.option("--endpoint", default=None)
def drain(endpoint: str | None) -> None:
    """Accept no new job, finish the queue, then stop."""
    from virnucpro.daemon.client import Client

    click.echo(f"daemon is {Client(endpoint).drain().state.value}", err=True)


@main.command()
@click.option("--dir", "folder", type=click.Path(path_type=Path), default=None,
              help="Where to write the keys (default: the state folder's keys/).")
def keygen(folder: Path | None) -> None:
    """Create CurveZMQ keys for a tcp endpoint: the server's pair, a client's pair, and the
    authorized/ folder holding the client public keys the daemon accepts."""
    import shutil

    import zmq.auth

    from virnucpro.daemon.paths import DaemonPaths

    folder = folder or DaemonPaths.default().keys
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    (folder / "authorized").mkdir(exist_ok=True)
    for name in ("server", "client"):
        if not (folder / f"{name}.key_secret").exists():
            zmq.auth.create_certificates(str(folder), name)
    shutil.copy(folder / "client.key", folder / "authorized" / "client.key")
    click.echo(str(folder))
    click.echo("give clients server.key and their own client.key_secret; add more client public "
               "keys to authorized/", err=True)


if __name__ == "__main__":
    main()
