"""`python -m build` from the sources, `twine check`, and the wheel alone in a fresh venv
running `predict`, the daemon and the dashboard.

The build is the one a release makes: the sdist first, then the wheel from the unpacked sdist
(so a file the sdist forgets breaks the wheel). The fresh venv holds the wheel and nothing of
the source tree; its dependencies are this venv's, reached through a path file, so the test
downloads nothing (the container build installs the same wheel's dependencies from the index:
tests/integration/test_container.py). Every command runs from the fresh venv's bin, in a folder
with no sources, and `virnucpro` is checked to import from the fresh venv.
"""

from __future__ import annotations

import email
import fcntl
import os
import pty
import select
import shutil
import signal
import site
import struct
import subprocess
import sys
import tarfile
import termios
import time
import zipfile
from pathlib import Path

import pytest

from tests.daemon_helpers import _runtime_base
from tests.helpers import DATA
from tests.integration.test_wheel import copy_sources

pytestmark = pytest.mark.slow
TABLES = ("prediction_results.txt", "sequences.tsv", "chunks.tsv", "regions.tsv")


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("dist")
    src = copy_sources(base / "src")
    out = base / "dist"
    done = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out),
                           str(src)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return out


def wheel_of(dist: Path) -> Path:
    [wheel] = dist.glob("virnucpro-*-py3-none-any.whl")
    return wheel


def test_the_sdist_and_the_wheel_pass_twine_and_say_what_users_look_for(dist: Path):
    [sdist] = dist.glob("virnucpro-*.tar.gz")
    check = subprocess.run([sys.executable, "-m", "twine", "check", "--strict",
                            str(sdist), str(wheel_of(dist))], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    with zipfile.ZipFile(wheel_of(dist)) as archive:
        info = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        meta = email.message_from_bytes(archive.read(info))
        licence = [n for n in archive.namelist() if n.endswith("/licenses/LICENSE")]
    assert meta["License-Expression"] == "MIT" and licence
    assert meta["Requires-Python"] == ">=3.10"
    classifiers = meta.get_all("Classifier")
    assert {f"Programming Language :: Python :: 3.{v}" for v in (10, 11, 12, 13)} <= set(classifiers)
    assert "Topic :: Scientific/Engineering :: Bio-Informatics" in classifiers
    assert {"ray", "test"} <= set(meta.get_all("Provides-Extra"))
    assert any(url.startswith("Paper, https://doi.org/") for url in meta.get_all("Project-URL"))
    assert any(r.startswith("torch>=") for r in meta.get_all("Requires-Dist"))
    assert "VirNucPro" in meta.get_payload()  # the README as the long description
    with tarfile.open(sdist) as archive:
        names = {n.split("/", 1)[1] for n in archive.getnames() if "/" in n}
    assert {"LICENSE", "README.md", "pyproject.toml", "setup.py", "tui/app.tcss"} <= names


@pytest.fixture(scope="module")
def fresh(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with the wheel installed and no pip, its dependencies this venv's."""
    venv = tmp_path_factory.mktemp("fresh") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"),
                    "install", "-q", "--no-deps", "--no-index", str(wheel_of(dist))], check=True,
                   capture_output=True)
    [packages] = (venv / "lib").glob("python3.*/site-packages")
    # Appended after the venv's own site-packages; not a site folder, so this venv's editable
    # finder (a .pth there) is not installed and the sources stay out of reach.
    (packages / "dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return venv / "bin"


def run(fresh: Path, name: str, *args: str, env: dict, cwd: Path, timeout: float = 300):
    return subprocess.run([str(fresh / name), *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def dashboard_shows(fresh: Path, env: dict, cwd: Path, text: bytes, timeout: float = 60) -> bytes:
    """`virnucpro-tui` on a 120x40 pseudo-terminal until `text` appears on it, then `q`."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen([str(fresh / "virnucpro-tui")], env={**env, "TERM": "xterm-256color"},
                            cwd=cwd, stdin=follower, stdout=follower, stderr=follower,
                            start_new_session=True)
    os.close(follower)
    seen = b""
    try:
        deadline = time.monotonic() + timeout
        while text not in seen and time.monotonic() < deadline and proc.poll() is None:
            if select.select([leader], [], [], 0.5)[0]:
                try:
                    seen += os.read(leader, 65536)
                except OSError:
                    break
        os.write(leader, b"q")
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        os.close(leader)
    assert text in seen, seen[-3000:]
    assert proc.returncode == 0
    return seen


def test_the_wheel_alone_runs_predict_the_daemon_and_the_dashboard(fresh: Path, tmp_path: Path,
                                                                  tiny_set_dir: Path):
    work = tmp_path / "work"  # no sources here
    work.mkdir()
    shutil.copy(DATA / "viral_reference.fasta", work / "phage.fasta")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRNUCPRO_ENDPOINT")}
    env.update(HF_HUB_OFFLINE="1", XDG_RUNTIME_DIR=str(_runtime_base(tmp_path)),
               XDG_STATE_HOME=str(tmp_path / "state"))
    where = run(fresh, "python", "-c", "import virnucpro; print(virnucpro.__file__)", env=env,
                cwd=work)
    assert Path(where.stdout.strip()).is_relative_to(fresh.parent), where.stdout + where.stderr

    done = run(fresh, "virnucpro", "predict", "phage.fasta", "-o", "local", "--models", "tiny",
               env=env, cwd=work)
    assert done.returncode == 0, done.stderr
    started = run(fresh, "virnucpro-daemon", "start", "--models", "tiny", "--devices", "cpu",
                  env=env, cwd=work, timeout=180)
    assert started.returncode == 0, started.stderr
    try:
        job = run(fresh, "virnucpro", "submit", "phage.fasta", "-o", "daemon", "--wait", env=env,
                  cwd=work)
        assert job.returncode == 0, job.stderr
        for name in TABLES:
            assert (work / "daemon" / name).read_bytes() == (work / "local" / name).read_bytes()
        dashboard_shows(fresh, env, work, b"phage.fasta")
    finally:
        stopped = run(fresh, "virnucpro-daemon", "stop", "--timeout", "60", env=env, cwd=work,
                      timeout=120)
    assert stopped.returncode == 0, stopped.stderr
