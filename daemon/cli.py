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
from virnucpro.cli.common import ErrorExitGroup
from virnucpro.errors import VirNucProError

log = logging.getLogger("virnucpro.daemon.cli")  # not __main__ under `python -m`


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


ENDPOINT_HELP = ("The daemon's request endpoint [default: $VIRNUCPRO_ENDPOINT, else the local "
                 "daemon's]; tcp:// takes its CurveZMQ keys from $VIRNUCPRO_KEYS.")


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
              help="A model set (name or folder) checked at start; repeat the option for several "
              "(--models a --models b). With --persistent-models their workers load at start; "
              "without, each job loads its set. One set named is the default of a submit "
              "without --models. A set not installed: the daemon does not start.")
@click.option("--endpoint", default=None, help="Request endpoint [default: an ipc socket in the "
              "runtime folder]; tcp://HOST:PORT (events on PORT+1) needs --keys (CurveZMQ).")
@click.option("--keys", type=click.Path(path_type=Path), default=None,
              help="Folder from `virnucpro-daemon keygen` (server.key_secret, authorized/).")
@click.option("--max-queued", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Queued jobs at most; a submit beyond answers busy (exit code 7).")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="Torch CPU threads per worker [default: every core, shared by CPU workers].")
@click.option("--worker-timeout", type=click.FloatRange(min=1), default=600.0, show_default=True,
              help="Seconds a worker (or Ray actor) may take to load its models before the job "
              "(or, for the sets of --persistent-models --models, the start) fails.")
@click.option("--shutdown-timeout", type=float, default=60.0, show_default=True,
              help="On SIGTERM, seconds to finish or checkpoint running work.")
@click.option("--max-loaded-sets", type=click.IntRange(min=1), default=1, show_default=True,
              help="Model sets kept loaded at once in persistent mode (least recently used evicted).")
@click.option("--precision", type=click.Choice(["auto", "float32", "bfloat16"]), default="auto",
              show_default=True, help="auto: bfloat16 weights on GPUs, float32 on the CPU.")
@click.option("--foreground", is_flag=True,
              help="Stay attached, logging on stderr (systemd, containers) [default: in the "
              "background, logging to the state folder's daemon.log].")
@click.option("--shard-frames", type=int, default=None, hidden=True)
@click.option("-v", "--verbose", count=True,
              help="Log the engines' and workers' INFO lines too (the daemon's own always are).")
def start(persistent_models: bool, devices: str, preload: tuple[str, ...], endpoint: str | None,
          keys: Path | None, max_queued: int, threads: int | None, worker_timeout: float,
          shutdown_timeout: float, max_loaded_sets: int, precision: str, foreground: bool,
          shard_frames: int | None, verbose: int, engine: str, ray_address: str | None,
          workers: int | None, gpus_per_worker: float | None) -> None:
    """Start the daemon; in the background it returns once the daemon answers.

    A start that cannot (another daemon runs, a set of --models is not installed, tcp without
    keys, the endpoint in use) says why on stderr and exits with code 6."""
    from virnucpro.daemon.paths import DaemonPaths, UnsafeFolder
    from virnucpro.ray_cluster import check_ray_options

    if foreground:
        # First, so that a background parent finds the lines of this start in the shared log.
        logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
        logging.getLogger("virnucpro.daemon").setLevel(logging.INFO)
        log.info("%s: virnucpro-daemon %s start %s", start_marker(os.getpid()), __version__,
                 " ".join(sys.argv[sys.argv.index("start") + 1:] if "start" in sys.argv else []))
    if problem := check_ray_options(engine, ray_address, workers, gpus_per_worker, devices):
        raise click.UsageError(problem)

    if not foreground:
        _start_background(DaemonPaths.default(), endpoint, keys)
        return
    import sqlite3

    import zmq

    from virnucpro.daemon.server import Daemon, DaemonConfig, DaemonError
    from virnucpro.engine_config import EngineConfig

    # With Ray the devices are the cluster's, learnt when the daemon joins it.
    engine_config = EngineConfig(engine=engine, threads=threads, worker_timeout=worker_timeout,
                                 precision=precision, ray_address=ray_address, workers=workers,
                                 gpus_per_worker=gpus_per_worker)
    config = DaemonConfig(devices=resolve_devices(devices) if engine == "pool" else [],
                          persistent=persistent_models, engine=engine_config,
                          models=list(preload), endpoint=endpoint, max_queued=max_queued,
                          shutdown_timeout=shutdown_timeout, max_loaded_sets=max_loaded_sets,
                          curve_keys=keys, shard_frames=shard_frames)
    try:
        daemon = Daemon(config, DaemonPaths.default())
        daemon.start()
    except (DaemonError, UnsafeFolder):
        raise  # already one line saying why, as a background start says it
    except (VirNucProError, OSError, sqlite3.Error, zmq.ZMQError) as exc:
        # One line and the exit code of "the daemon cannot start", whatever stopped it.
        raise DaemonError(f"the daemon cannot start: {exc}") from exc
    daemon.serve_forever()


def start_marker(pid: int) -> str:
    """The first line a start writes (to daemon.log in the background): what follows is its own."""
    return f"---- start (pid {pid})"


def _this_start(paths, offset: int, pid: int) -> list[str]:
    """The log lines written by the start of process `pid`: after its marker, or, when it died
    before writing one, everything written since `offset`."""
    try:
        with open(paths.log, "rb") as fh:
            fh.seek(offset)
            lines = fh.read().decode(errors="replace").splitlines()
    except OSError:
        return []
    marker = start_marker(pid)
    for i, line in enumerate(lines):
        if f"{marker}:" in line:
            return lines[i + 1:]
    return lines


def _start_background(paths, endpoint: str | None, keys: Path | None) -> None:
    from virnucpro.daemon.client import Client, DaemonUnavailable
    from virnucpro.daemon.paths import make_state_dir, open_private
    from virnucpro.daemon.server import DaemonError

    args = [a for a in sys.argv[sys.argv.index("start") + 1:] if a != "--foreground"]
    make_state_dir(paths.state)
    with os.fdopen(open_private(paths.log), "ab") as log_fh:
        offset = log_fh.seek(0, os.SEEK_END)
        proc = subprocess.Popen([sys.executable, "-m", "virnucpro.daemon.cli", "start",
                                 "--foreground", *args], stdin=subprocess.DEVNULL, stdout=log_fh,
                                stderr=log_fh, start_new_session=True)
    # Over tcp the probe is a CurveZMQ client: the client pair keygen wrote beside the
    # server's in --keys, else the client's usual keys ($VIRNUCPRO_KEYS, the state folder's).
    probe_keys = keys if keys is not None and (keys / "client.key_secret").is_file() else None
    deadline = time.monotonic() + 120
    why = ""
    while time.monotonic() < deadline:
        if (code := proc.poll()) is not None:
            raise _start_failed(paths, offset, proc.pid, code)
        try:
            with Client(endpoint, timeout=1.0, curve_keys=probe_keys) as client:
                status = client.status()
        except DaemonUnavailable as exc:
            why = str(exc)
            time.sleep(0.2)
            continue
        if status.pid == proc.pid:
            click.echo(f"virnucpro daemon started (pid {status.pid}) on {status.requests}; "
                       f"log: {paths.log}", err=True)
            return
        # Another daemon answers: ours will refuse (the lock) and exit; wait for its word.
        time.sleep(0.2)
    raise DaemonError(f"the daemon (pid {proc.pid}) did not answer within 120 s ({why}); see "
                      f"{paths.log}")


def _start_failed(paths, offset: int, pid: int, code: int) -> VirNucProError:
    """The error of a background daemon that exited at start: its own `error:` line, else what
    it wrote (a traceback), never an older start's lines; its exit code, else 6."""
    from virnucpro.daemon.server import DaemonError

    lines = [line for line in _this_start(paths, offset, pid) if line.strip()]
    said = [line[len("error: "):] for line in lines if line.startswith("error: ")]
    if said:
        error = DaemonError(said[-1])
    elif lines:
        error = DaemonError(f"the daemon exited at start (exit code {code}):\n" +
                            "\n".join(lines[-40:]) + f"\n(log: {paths.log})")
    else:
        error = DaemonError(f"the daemon exited at start (exit code {code}) without a word; "
                            f"see {paths.log}")
    error.exit_code = code if 0 < code < 128 else DaemonError.exit_code
    return error


def _gone(pid: int, endpoint: str) -> bool:
    """Whether a stopped daemon has exited: its pid is gone. A daemon whose socket is in our
    runtime folder also holds the lock file beside it to its very end (and unlinks it first),
    which is seen through a mounted folder too: while it is held, not gone; once released, gone
    as soon as the pid is, or at once when that pid is not a virnucpro process here (a daemon
    in a container has its own pid namespace: its pid names another process of the host)."""
    released = _lock_released(endpoint)
    if released is False:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    return bool(released) and not _runs_virnucpro(pid)


def _lock_released(endpoint: str) -> bool | None:
    """For the daemon of our runtime folder's socket: whether its lock file is gone or no
    longer locked; None for any other endpoint (its lock is not ours to see)."""
    import fcntl

    from virnucpro.daemon.paths import DaemonPaths, UnsafeFolder

    try:
        paths = DaemonPaths.default()
    except UnsafeFolder:
        return None
    if endpoint != paths.requests:
        return None
    try:
        fd = os.open(paths.lock, os.O_RDONLY)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return True  # a file left by a daemon that died: nobody holds it
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


PF_KTHREAD = 0x00200000  # /proc/PID/stat's flags: a kernel thread


def _runs_virnucpro(pid: int) -> bool:
    """Whether process `pid` runs virnucpro, by its command line. A process with none that is
    not a kernel thread counts: the daemon exiting (its memory gone) or exited and not yet
    reaped. True where /proc cannot be read: then only the pid's end says it is gone."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        if not cmdline:
            flags = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[6])
            return not flags & PF_KTHREAD
        return b"virnucpro" in cmdline
    except (OSError, IndexError, ValueError):
        return True


@main.command()
@click.option("--endpoint", default=None, help=ENDPOINT_HELP)
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
        if _gone(pid, client.endpoint):
            click.echo("virnucpro daemon stopped", err=True)
            return
        time.sleep(0.2)
    raise VirNucProError(f"the daemon (pid {pid}) is still running after {timeout} s")


@main.command()
@click.option("--endpoint", default=None, help=ENDPOINT_HELP)
@click.option("--json", "as_json", is_flag=True, help="The whole status as JSON on stdout.")
def status(endpoint: str | None, as_json: bool) -> None:
    """The daemon's state, mode, devices and what is loaded where."""
    from virnucpro.daemon.client import Client

    s = Client(endpoint).status()
    if as_json:
        click.echo(json.dumps(s.to_dict(), indent=2))
        return
    click.echo(f"state      {s.state.value} (pid {s.pid}, up {s.uptime_s:.0f} s, version {s.version})")
    click.echo(f"models     {'persistent' if s.persistent_models else 'loaded per job'}; "
               f"a submit without --models uses {s.default_models}")
    click.echo(f"devices    {', '.join(s.devices)}")
    click.echo(f"endpoint   {s.requests}")
    click.echo(f"queue      {s.queued} queued, running: {s.running or '-'}")
    for entry in s.loaded:
        for w in entry.workers:
            mem = (w.memory_bytes or 0) / 1e9
            click.echo(f"loaded     {entry.models} on {w.device} ({w.state}, {mem:.2f} GB)")


@main.command()
@click.option("--endpoint", default=None, help=ENDPOINT_HELP)
def drain(endpoint: str | None) -> None:
    """Accept no new job, finish the queue, then stop."""
    from virnucpro.daemon.client import Client

    click.echo(f"daemon is {Client(endpoint).drain().state.value}", err=True)


@main.command()
@click.option("--dir", "folder", type=click.Path(path_type=Path), default=None,
              help="Where to write the keys (default: the state folder's keys/).")
def keygen(folder: Path | None) -> None:
    """Create CurveZMQ keys for a tcp endpoint: the server's pair, a client's pair, and the
    authorized/ folder holding the client public keys the daemon accepts. The folder is 0700
    and the secrets 0600 from their first byte."""
    import shutil

    from virnucpro.daemon.curve_keys import write_key_pair
    from virnucpro.daemon.paths import make_state_dir, state_dir

    if folder is None:
        folder = make_state_dir(state_dir()) / "keys"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    (folder / "authorized").mkdir(exist_ok=True)
    for name in ("server", "client"):
        write_key_pair(folder, name)
    shutil.copy(folder / "client.key", folder / "authorized" / "client.key")
    click.echo(str(folder))
    click.echo("give clients server.key and their own client.key_secret; add more client public "
               "keys to authorized/", err=True)


if __name__ == "__main__":
    main()
