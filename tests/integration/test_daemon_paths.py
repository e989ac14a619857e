"""The daemon's paths and permissions (issue 24, items 7-12), as a user and an operator meet
them: the installed `virnucpro-daemon` and `virnucpro` entry points, real daemon processes
(in the background where a user starts them so), real sockets and files in temp folders.

Paths are resolved as the file system resolves them (a link's `..`, a link to a live job's
folder); an endpoint on a path that is not a dead daemon's socket is refused and left alone;
the /tmp fallback runtime folder is accepted only when it is ours alone; the state folder,
store, log and key secrets are the user's only; a tcp start with keys returns once its daemon
answers; another user's socket is "permission denied" at once. CI runs as root: another user
is uid 65534 (`os.chown`, and a client process run as that uid).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon_helpers import (
    DAEMON,
    DaemonHandle,
    daemon_env,
    ok,
    small_input,
    start_daemon,
    wait_for,
)
from tests.daemon_helpers import run_daemon as run
from tests.helpers import DATA
from tests.integration.test_daemon import _free_port
from tests.integration.test_daemon_start import documented_exit_code, log_of, start_background

VIRAL = DATA / "viral_reference.fasta"
SLOW = {"VIRNUCPRO_TEST_SCORER": "tests.fakes:SlowScorer", "FAKE_DELAY": "0.3"}
OTHER_UID = 65534  # nobody


@pytest.fixture(scope="module")
def slow(tmp_path_factory: pytest.TempPathFactory, tiny_set_dir: Path) -> Iterator[DaemonHandle]:
    """Jobs of one-frame shards at 0.3 s each: the viral reference stays live for seconds."""
    handle = start_daemon(tmp_path_factory.mktemp("slow"), "--persistent-models", "--models",
                          "tiny", "--shard-frames", "1", env_extra=SLOW)
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A folder under /tmp whose socket paths fit in 107 bytes (pytest's tmp_path may not),
    open to others (0755) so that another uid can reach a socket in it."""
    folder = Path(tempfile.mkdtemp(prefix="vnp-", dir="/tmp"))
    os.chmod(folder, 0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)




def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def _cli(env: dict[str, str], *args: object) -> subprocess.CompletedProcess:
    """`virnucpro ARGS` (the client verbs, the installed entry point)."""
    return subprocess.run([str(DAEMON.with_name("virnucpro")), *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def _kill_daemon_of(runtime: Path) -> None:
    """SIGKILL the daemon whose pid file is in `runtime`, if any (a test that failed)."""
    with contextlib.suppress(OSError, ValueError):
        os.kill(int((runtime / "daemon.pid").read_text()), signal.SIGKILL)


# -- 7: paths resolved as the file system does ---------------------------------------------------


@pytest.mark.slow
def test_submit_reads_dotdot_after_a_link_as_predict_does(slow, tmp_path):
    """`lnkdeep -> deep/a`: `lnkdeep/../out` is deep/out for the file system and for predict,
    so for submit too (a normpath made it ./out)."""
    (tmp_path / "deep" / "a").mkdir(parents=True)
    (tmp_path / "lnkdeep").symlink_to(tmp_path / "deep" / "a")
    small_input(tmp_path / "s.fa")
    ok(slow.cli("predict", "s.fa", "-o", "lnkdeep/../by-predict", "--models", "tiny", "-q",
                 cwd=tmp_path))
    job = json.loads(ok(slow.cli("submit", "s.fa", "-o", "lnkdeep/../by-submit", "--wait",
                                  "--json", cwd=tmp_path)).stdout)
    deep = Path(os.path.realpath(tmp_path / "deep"))
    assert job["outdir"] == str(deep / "by-submit")
    for name in ("by-predict", "by-submit"):
        assert (deep / name / "sequences.tsv").is_file(), name
        assert not (tmp_path / name).exists(), name


@pytest.mark.slow
def test_a_link_to_a_live_jobs_folder_is_refused_as_that_folder(slow, tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    alias = tmp_path / "alias"
    alias.symlink_to(real)
    with slow.client() as c:
        live = c.submit([str(VIRAL)], outdir=str(real / "v"))
        try:
            for outdir, word in [(alias / "v", "is"), (alias, "holds"),
                                 (alias / "v" / "inner", "lies inside")]:
                proc = slow.cli("submit", VIRAL, "-o", outdir, "--threshold", "0.9")
                assert proc.returncode == 7, (outdir, proc.returncode, proc.stderr)
                assert f"{word} the output folder of live job {live.id}" in proc.stderr, proc.stderr
            # A job submitted through the link is recorded in the folder the link names.
            through = c.submit([str(VIRAL)], outdir=str(alias / "w"))
            assert through.outdir == os.path.realpath(real / "w")
            c.cancel(through.id)
        finally:
            c.cancel(live.id)
            wait_for(c, live.id)


# -- 8: an endpoint's path that is not this daemon's socket --------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["background", "foreground"])
@pytest.mark.parametrize("which", ["requests", "events"])
def test_an_endpoint_on_a_file_that_is_not_a_socket_is_refused_and_left_alone(env, short_dir,
                                                                               mode, which):
    requests = short_dir / "d.sock"
    kept = requests if which == "requests" else short_dir / "d-events.sock"
    kept.write_text("precious notes\n")
    args = ["start", "--devices", "cpu", "--endpoint", f"ipc://{requests}"]
    done = run(env, *args, *(["--foreground"] if mode == "foreground" else []), timeout=60)
    assert done.returncode == documented_exit_code("the daemon cannot start"), done.stderr
    assert f"{kept} exists and is not a socket" in done.stderr, done.stderr
    assert stat.S_ISREG(os.lstat(kept).st_mode) and kept.read_text() == "precious notes\n"
    assert sorted(os.listdir(short_dir)) == [kept.name]  # the other socket was not made either


@pytest.mark.slow
def test_an_endpoint_another_daemon_listens_on_is_refused(env, short_dir, tmp_path):
    """Two runtime folders, so two locks: only the socket can tell that the path is taken."""
    endpoint = f"ipc://{short_dir / 'shared.sock'}"
    first = start_background(env, "--endpoint", endpoint)
    (tmp_path / "other").mkdir()
    other = daemon_env(tmp_path / "other")
    try:
        done = run(other, "start", "--devices", "cpu", "--endpoint", endpoint, timeout=60)
        assert done.returncode == 6, done.stderr
        assert f"{short_dir / 'shared.sock'} is in use" in done.stderr, done.stderr
        status = ok(run(env, "status", "--json", "--endpoint", endpoint))
        assert json.loads(status.stdout)["pid"] == first  # still reached
        ok(run(env, "stop", "--endpoint", endpoint, "--timeout", "60", timeout=90))
        assert os.listdir(short_dir) == []  # its stop unlinked its own sockets
    finally:
        _kill_daemon_of(Path(other["XDG_RUNTIME_DIR"]) / "virnucpro")


# -- 9: the /tmp fallback runtime folder ---------------------------------------------------------


@pytest.fixture
def fallback(env) -> Iterator[tuple[dict[str, str], Path]]:
    """An environment without XDG_RUNTIME_DIR, so the daemon and its clients use
    /tmp/virnucpro-USER; USER (getpass reads it) is a fresh name, so the folder is this test's."""
    name = f"vnpt{uuid.uuid4().hex[:10]}"
    fenv = {k: v for k, v in env.items() if k != "XDG_RUNTIME_DIR"}
    fenv.update(USER=name, LOGNAME=name)
    folder = Path("/tmp") / f"virnucpro-{name}"
    yield fenv, folder
    if folder.is_symlink() or folder.is_file():
        folder.unlink()
    elif folder.is_dir():
        if folder.stat().st_uid == os.getuid():
            _kill_daemon_of(folder)
        shutil.rmtree(folder, ignore_errors=True)


def _another_users_folder(path: Path, mode: int) -> Path:
    path.mkdir(mode=mode)
    os.chmod(path, mode)
    try:
        os.chown(path, OTHER_UID, OTHER_UID)
    except PermissionError:
        pytest.skip("giving a folder to another uid needs root (CI runs as root)")
    return path


def _plant(kind: str, folder: Path, spare: Path) -> tuple[str, Path]:
    """What another user (or a careless one) left at /tmp/virnucpro-USER; the problem named,
    and the path whose mode and contents must not change."""
    if kind == "a link to another user's folder":
        folder.symlink_to(_another_users_folder(spare, 0o755))
        return "is a symbolic link", spare
    if kind == "another user's folder":
        return f"belongs to another user (uid {OTHER_UID})", _another_users_folder(folder, 0o700)
    if kind == "our folder open to others":
        folder.mkdir()
        os.chmod(folder, 0o755)
        return "is open to others (mode 0755", folder
    folder.write_text("not a folder\n")
    return "exists and is not a folder", folder


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["a link to another user's folder", "another user's folder",
                                  "our folder open to others", "a file"])
def test_an_unsafe_fallback_runtime_folder_is_refused_and_left_as_found(fallback, short_dir, kind):
    fenv, folder = fallback
    problem, untouched = _plant(kind, folder, short_dir / "theirs")
    before = os.lstat(untouched)
    for args in (("start", "--devices", "cpu"), ("start", "--devices", "cpu", "--foreground")):
        done = run(fenv, *args, timeout=60)
        assert done.returncode == documented_exit_code("the daemon cannot start"), done.stderr
        assert f"{folder}: {problem}" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr and "started" not in done.stderr
    # A client (the dashboard too) gets the same reason in one line, not a traceback.
    tui = subprocess.run([str(DAEMON.with_name("virnucpro-tui"))], env=fenv, capture_output=True,
                         text=True, timeout=60, stdin=subprocess.DEVNULL)
    for proc in (run(fenv, "status", timeout=60), _cli(fenv, "jobs"), tui):
        assert proc.returncode == 8, (proc.returncode, proc.stderr)
        assert f"{folder}: {problem}" in proc.stderr and "Traceback" not in proc.stderr
    after = os.lstat(untouched)
    assert (after.st_mode, after.st_uid) == (before.st_mode, before.st_uid)
    if stat.S_ISDIR(after.st_mode):
        assert os.listdir(untouched) == []  # no socket, lock or pid put there


@pytest.mark.slow
def test_a_missing_fallback_runtime_folder_is_made_ours_alone(fallback):
    fenv, folder = fallback
    pid = start_background(fenv)
    info = os.lstat(folder)
    assert stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and _mode(folder) == 0o700
    assert (folder / "daemon.sock").exists()
    ok(run(fenv, "stop", "--timeout", "60", timeout=90))
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


# -- 10: file modes ------------------------------------------------------------------------------


@contextlib.contextmanager
def _umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.slow
@pytest.mark.parametrize("found", ["nothing", "an earlier version's files"])
def test_the_state_folder_store_and_log_are_the_users_only(env, found):
    state = log_of(env).parent
    if found == "an earlier version's files":  # what 0.1 left: 0755 and 0644
        state.mkdir(parents=True, mode=0o755)
        os.chmod(state, 0o755)
        for name in ("daemon.log", "jobs.sqlite3"):
            (state / name).touch()
            os.chmod(state / name, 0o644)
    with _umask(0o022):
        start_background(env)
    assert _mode(state) == 0o700
    store = state / "jobs.sqlite3"
    files = [state / "daemon.log", store, *(p for p in (Path(f"{store}-wal"), Path(f"{store}-shm"))
                                             if p.exists())]
    assert Path(f"{store}-wal").exists()  # WAL: the running daemon's store has one
    assert {p.name: _mode(p) for p in files} == {p.name: 0o600 for p in files}


@pytest.mark.slow
def test_keygen_writes_secrets_readable_by_the_user_only(env, tmp_path):
    import zmq.auth

    with _umask(0o022):
        for keys in (tmp_path / "given" / "keys", None):
            done = ok(run(env, "keygen", *(["--dir", str(keys)] if keys else [])))
            keys = Path(done.stdout.strip())
            assert _mode(keys) == 0o700
            for name in ("server", "client"):
                assert _mode(keys / f"{name}.key_secret") == 0o600
                public, secret = zmq.auth.load_certificate(str(keys / f"{name}.key_secret"))
                assert secret and zmq.auth.load_certificate(str(keys / f"{name}.key"))[0] == public
    assert _mode(log_of(env).parent) == 0o700  # the default keys/ is in the state folder


# -- 11: a tcp start with --keys -----------------------------------------------------------------


@pytest.mark.slow
def test_a_tcp_start_with_keys_returns_once_its_daemon_answers(env, tmp_path):
    keys = tmp_path / "keys"
    ok(run(env, "keygen", "--dir", str(keys)))
    endpoint = f"tcp://127.0.0.1:{_free_port()}"
    assert "VIRNUCPRO_KEYS" not in env  # the probe must use --keys, nothing else
    t0 = time.monotonic()
    pid = start_background(env, "--endpoint", endpoint, "--keys", str(keys))
    assert time.monotonic() - t0 < 60
    client_env = {**env, "VIRNUCPRO_KEYS": str(keys)}
    status = ok(run(client_env, "status", "--json", "--endpoint", endpoint))
    assert json.loads(status.stdout)["pid"] == pid
    ok(run(client_env, "stop", "--endpoint", endpoint, "--timeout", "60", timeout=90))


# -- 12: another user's socket -------------------------------------------------------------------

# Run as root, an entry point's `main` with its imports done, then as OTHER_UID: the interpreter
# of a pyenv or venv under /root cannot be started by another uid, and the client's modules are
# imported once (against a socket that does not exist) before the uid changes.
AS_OTHER_USER = """
import contextlib, io, os, sys
from importlib import import_module
main = import_module(sys.argv[1]).main
def once(args):
    try:
        main.main(args, prog_name="virnucpro", standalone_mode=True)
    except SystemExit as exc:
        return exc.code
    return 0
with contextlib.redirect_stderr(io.StringIO()):
    once([a if not a.startswith("ipc://") else "ipc:///nonexistent-vnp/d.sock" for a in sys.argv[3:]])
os.setgroups([])
os.setgid(int(sys.argv[2]))
os.setuid(int(sys.argv[2]))
sys.exit(once(sys.argv[3:]))
"""


def _as_another_user(env: dict[str, str], module: str, *args: str) -> subprocess.CompletedProcess:
    """The entry point `module:main` with ARGS, run as OTHER_UID (root only)."""
    return subprocess.run([sys.executable, "-c", AS_OTHER_USER, module, str(OTHER_UID), *args],
                          env=env, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


@pytest.mark.slow
def test_another_users_socket_is_permission_denied_at_once(tmp_path, short_dir, tiny_set_dir):
    socket_path = short_dir / "d.sock"
    endpoint = f"ipc://{socket_path}"
    with start_daemon(tmp_path, "--endpoint", endpoint) as daemon:
        client_env = {k: v for k, v in daemon.env.items() if not k.startswith("XDG_")}
        client_env["HOME"] = str(short_dir)
        if os.getuid() == 0:  # the daemon's socket is 0600, but root may use any socket
            def client(module: str, *args: str) -> subprocess.CompletedProcess:
                return _as_another_user(client_env, module, *args)
        else:
            os.chmod(socket_path, 0)

            def client(module: str, *args: str) -> subprocess.CompletedProcess:
                name = "virnucpro-daemon" if module == "virnucpro.daemon.cli" else "virnucpro"
                return subprocess.run([str(DAEMON.with_name(name)), *args], env=client_env,
                                      capture_output=True, text=True, timeout=60)
        for module, args in [("virnucpro.cli.root", ("jobs", "--endpoint", endpoint)),
                             ("virnucpro.cli.root", ("show", "1", "--endpoint", endpoint)),
                             ("virnucpro.daemon.cli", ("status", "--endpoint", endpoint))]:
            t0 = time.monotonic()
            proc = client(module, *args)
            took = time.monotonic() - t0
            assert proc.returncode == 8, (args, proc.returncode, proc.stderr)
            assert f"permission denied on the daemon's socket {socket_path}" in proc.stderr, \
                proc.stderr
            assert "Traceback" not in proc.stderr, proc.stderr
            assert took < 5, (args, took)
        assert daemon.proc.poll() is None  # the daemon itself is fine
