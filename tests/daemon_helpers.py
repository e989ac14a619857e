"""A real `virnucpro-daemon` process for tests, isolated in a temp folder.

`start_daemon(tmp_path, *args)` runs `virnucpro-daemon start --foreground ARGS` with its own
XDG_RUNTIME_DIR (mode 0700) and XDG_STATE_HOME, the session's VIRNUCPRO_HOME, offline, and the
repository on PYTHONPATH (so workers can import `tests.fakes` scorers); it returns once the daemon
answers `status`. The `DaemonHandle` gives a `Client`, the env for CLI subprocesses, and stops.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DAEMON = Path(sys.executable).with_name("virnucpro-daemon")  # the installed entry point
IPC_PATH_LIMIT = 107  # bytes in a unix socket path, as daemon/paths.py counts them
READY_TIMEOUT_S = 60.0


@dataclass
class DaemonHandle:
    proc: subprocess.Popen
    env: dict[str, str]  # for CLI subprocesses that must talk to this daemon
    runtime: Path  # $XDG_RUNTIME_DIR/virnucpro: sockets, lock, pid, endpoints.json
    state: Path  # $XDG_STATE_HOME/virnucpro: job store, uploads, results
    output: Path  # the daemon's stdout and stderr
    endpoint: str = ""

    def client(self, timeout: float = 10.0, **kwargs):
        """A `Client` of this daemon (close it, or use it in a `with`)."""
        from virnucpro.daemon.client import Client

        return Client(self.endpoint, timeout=timeout, **kwargs)

    def cli(self, *args: object, cwd: Path | None = None, timeout: float = 120.0
            ) -> subprocess.CompletedProcess:
        """Run `virnucpro ARGS` against this daemon; text stdout/stderr, never raises on exit."""
        return subprocess.run([sys.executable, "-m", "virnucpro", *map(str, args)], env=self.env,
                              cwd=cwd, capture_output=True, text=True, timeout=timeout)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.output.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM (the daemon checkpoints and exits), then SIGKILL if it takes too long."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode

    def kill(self) -> int:
        """SIGKILL, as a crash would: nothing is cleaned up (socket files, pid, running jobs)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        return self.proc.returncode

    def __enter__(self) -> DaemonHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _runtime_base(tmp_path: Path) -> Path:
    """A 0700 XDG_RUNTIME_DIR whose socket paths fit. A long pytest tmp_path would make the
    daemon fall back to the shared /tmp/virnucpro-USER, where two tests' daemons would collide."""
    base = tmp_path / "run"
    longest = f"ipc://{base}/virnucpro/daemon-events.sock"
    if len(longest.encode()) > IPC_PATH_LIMIT:
        base = Path(tempfile.mkdtemp(prefix="vnp-", dir="/tmp"))
    base.mkdir(mode=0o700, exist_ok=True)
    os.chmod(base, 0o700)
    return base


def daemon_env(tmp_path: Path, env_extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a daemon (and of its clients) isolated under tmp_path."""
    env = {**os.environ, "XDG_RUNTIME_DIR": str(_runtime_base(tmp_path)),
           "XDG_STATE_HOME": str(tmp_path / "state"), "VIRNUCPRO_OFFLINE": "1",
           "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
    env.pop("VIRNUCPRO_ENDPOINT", None)  # clients must find this daemon, not one named outside
    env.update(env_extra or {})
    return env


def start_daemon(tmp_path: Path, *args: str, env_extra: dict[str, str] | None = None,
                 ready_timeout: float = READY_TIMEOUT_S) -> DaemonHandle:
    """Start `virnucpro-daemon start --foreground ARGS` (`--devices cpu` unless ARGS name
    devices) and wait until it answers. Stop it with `.stop()` (or use it as a context manager)."""
    from virnucpro.daemon.client import DaemonUnavailable

    tmp_path.mkdir(parents=True, exist_ok=True)
    env = daemon_env(tmp_path, env_extra)
    if "--devices" not in args:
        args = ("--devices", "cpu", *args)
    output = tmp_path / "daemon.out"
    with open(output, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "virnucpro.daemon.cli", "start",
                                 "--foreground", *args], env=env, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT)
    runtime = Path(env["XDG_RUNTIME_DIR"]) / "virnucpro"
    handle = DaemonHandle(proc=proc, env=env, runtime=runtime,
                          state=Path(env["XDG_STATE_HOME"]) / "virnucpro", output=output)
    deadline = time.monotonic() + ready_timeout
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the daemon exited ({proc.returncode}) at start:\n"
                                   f"{handle.log_tail()}")
            try:
                # endpoints.json is written after binding, with the endpoint it really used.
                handle.endpoint = json.loads((runtime / "endpoints.json").read_text())["requests"]
                with handle.client(timeout=1.0) as client:
                    client.status()
                return handle
            except (OSError, ValueError, KeyError, DaemonUnavailable):
                time.sleep(0.1)
        raise RuntimeError(f"the daemon did not answer within {ready_timeout} s:\n"
                           f"{handle.log_tail()}")
    except BaseException:
        handle.kill()
        raise


ENDED = ("completed", "failed", "cancelled")


def wait_for(client, job_id: int, states: tuple[str, ...] = ENDED, timeout: float = 120):
    """Poll `show` until the job is in one of `states` (values); its record, or AssertionError."""
    deadline = time.monotonic() + timeout
    while True:
        job = client.show(job_id)
        if job.state.value in states:
            return job
        if time.monotonic() >= deadline:
            raise AssertionError(f"job {job_id} still {job.state.value}")
        time.sleep(0.05)


def run_daemon(env: dict[str, str], *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess:
    """`virnucpro-daemon ARGS` (the installed entry point) in `env`; text output, any exit."""
    return subprocess.run([str(DAEMON), *args], env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    """`proc`, asserted to have exited 0 (its output in the failure message)."""
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    return proc


def small_input(path: Path) -> Path:
    """One record of one chunk (phiX174's first 200 bp): a job of a few shards."""
    from tests.helpers import DATA

    path.write_text(">one\n" + (DATA / "viral_reference.fasta").read_text().split("\n", 2)[1][:200]
                    + "\n")
    return path
