"""The CPU image, built here and run as a user runs it (docs/container.md).

`container/build-local.sh build` makes the image from a Debian root file system (debootstrap,
`podman import`, the Containerfile with TORCH=cpu), with its own podman settings and storage;
the tests run it through the same script. Inside: `virnucpro predict` on the bundled example
with the tiny set, as a user who is not root, with the output folder mounted at the same path;
and the daemon, its sockets on the host's runtime folder mounted at the same path, driven from
the host's `virnucpro` client. Each table is compared with a run of the host's `virnucpro`.

Needs root (debootstrap, rootful podman) and Debian's podman, runc and debootstrap; `.ci/run`
installs them and runs these tests as their own step (`-m container`). Set
VIRNUCPRO_CONTAINER_WORK to keep the base image and the layers between runs.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import DATA

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "container" / "build-local.sh"
IMAGE = "localhost/virnucpro:cpu"
BIN = Path(sys.executable).parent
TABLES = ("prediction_results.txt", "prediction_results_highestscore.csv", "sequences.tsv",
          "chunks.tsv", "frames.tsv", "regions.tsv", "regions.fasta", "viral.fasta")

# The first test builds the image (module fixture): more than the suite's 300 s per test.
pytestmark = [pytest.mark.container, pytest.mark.slow, pytest.mark.timeout(900)]


def _missing() -> str | None:
    tools = [t for t in ("podman", "runc", "debootstrap") if shutil.which(t) is None]
    if tools:
        return f"needs {', '.join(tools)} (Debian: apt-get install podman runc debootstrap)"
    if os.geteuid() != 0:
        return "needs root (debootstrap and rootful podman)"
    return None


if reason := _missing():
    # CI's container step sets VIRNUCPRO_REQUIRE_CONTAINER: there a missing tool fails.
    if os.environ.get("VIRNUCPRO_REQUIRE_CONTAINER"):
        raise RuntimeError(f"the container tests are required here but cannot run: {reason}")
    pytestmark.append(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    named = os.environ.get("VIRNUCPRO_CONTAINER_WORK")
    return Path(named) if named else tmp_path_factory.mktemp("container")


def podman(work: Path, *args: str, timeout: float = 180, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(SCRIPT), "podman", *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL,
                          env={**os.environ, "VIRNUCPRO_CONTAINER_WORK": str(work)})
    if check:
        assert proc.returncode == 0, f"podman {' '.join(args)}: exit {proc.returncode}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def image(work: Path) -> str:
    # Its own process group, so that a build cut short takes podman's children with it.
    proc = subprocess.Popen([str(SCRIPT), "build"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
                            start_new_session=True,
                            env={**os.environ, "VIRNUCPRO_CONTAINER_WORK": str(work)})
    try:
        _, err = proc.communicate(timeout=840)
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    assert proc.returncode == 0, f"build-local.sh build: exit {proc.returncode}\n{err[-4000:]}"
    return IMAGE


@pytest.fixture(scope="module")
def host_run(tmp_path_factory: pytest.TempPathFactory, tiny_set_dir: Path) -> Path:
    """The bundled example predicted by the host's `virnucpro`, the reference for the tables."""
    out = tmp_path_factory.mktemp("host") / "out"
    subprocess.run([str(BIN / "virnucpro"), "predict", str(DATA / "viral_reference.fasta"),
                    "-o", str(out), "--models", "tiny", "--no-report"],
                   check=True, capture_output=True, timeout=300,
                   env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return out


def same_tables(got: Path, want: Path) -> None:
    for name in TABLES:
        assert (got / name).read_bytes() == (want / name).read_bytes(), name


def test_the_image_carries_the_entry_points_the_example_and_its_labels_and_no_compiler(
        work: Path, image: str) -> None:
    found = podman(work, "run", "--rm", "--network", "none", image, "sh", "-c",
                   "for t in virnucpro virnucpro-daemon virnucpro-tui gcc cc c++ clang; do "
                   "command -v $t >/dev/null && echo $t; done; "
                   "ls /opt/virnucpro/example; echo home=$VIRNUCPRO_HOME").stdout.split()
    assert found[:3] == ["virnucpro", "virnucpro-daemon", "virnucpro-tui"]
    assert "viral_reference.fasta" in found and "home=/var/lib/virnucpro" in found
    assert not {"gcc", "cc", "c++", "clang"} & set(found), found
    config = json.loads(podman(work, "image", "inspect", image).stdout)[0]["Config"]
    labels = config["Labels"]
    version = subprocess.run([str(BIN / "virnucpro"), "--version"], capture_output=True,
                             text=True, check=True).stdout.split()[-1]
    assert labels["org.opencontainers.image.version"] == version
    assert labels["org.opencontainers.image.licenses"] == "MIT"
    assert labels["org.opencontainers.image.revision"]  # the commit built
    assert "/var/lib/virnucpro" in config["Volumes"]
    # The example inside is the repository's.
    inside = podman(work, "run", "--rm", "--network", "none", image, "cat",
                    "/opt/virnucpro/example/viral_reference.fasta").stdout
    assert inside == (DATA / "viral_reference.fasta").read_text()


def test_predict_in_the_image_as_another_user_matches_the_host(
        work: Path, image: str, host_run: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    os.chown(data, 4321, 4321)
    out = data / "out"
    proc = podman(work, "run", "--rm", "--network", "none", "--user", "4321:4321",
                  "-e", "HF_HUB_OFFLINE=1", "-v", f"{data}:{data}", image,
                  "virnucpro", "predict", "/opt/virnucpro/example/viral_reference.fasta",
                  "-o", str(out), "--models", "tiny", timeout=300)
    assert "4 sequences" in proc.stderr
    same_tables(out, host_run)
    assert (out / "report.html").is_file()
    assert {p.stat().st_uid for p in out.iterdir()} == {4321}  # the user's files, not root's


@pytest.fixture
def container_daemon(work: Path, image: str, tmp_path: Path) -> Iterator[tuple[dict, Path, str]]:
    """The daemon in the image as the host user, its socket folder the host's runtime folder
    mounted at the same path; the data folder mounted at the same path too."""
    # As docs/container.md does it: VIRNUCPRO_RUNTIME_DIR on both sides, the folder mounted at
    # the same path. Short: a socket path holds 107 bytes.
    runtime = Path(f"/tmp/vnp-ctr-{os.getpid()}")
    shutil.rmtree(runtime, ignore_errors=True)
    runtime.mkdir(mode=0o700)
    data = tmp_path / "data"
    data.mkdir()
    name = f"virnucpro-test-{os.getpid()}"
    env = {**os.environ, "VIRNUCPRO_RUNTIME_DIR": str(runtime), "HF_HUB_OFFLINE": "1"}
    env.pop("VIRNUCPRO_ENDPOINT", None)
    podman(work, "run", "-d", "--name", name, "--network", "none",
           "--user", f"{os.getuid()}:{os.getgid()}", "-e", "HF_HUB_OFFLINE=1",
           "-e", f"VIRNUCPRO_RUNTIME_DIR={runtime}", "-v", f"{runtime}:{runtime}",
           "-v", f"{data}:{data}", image, "virnucpro-daemon", "start", "--foreground",
           "--persistent-models", "--models", "tiny", "--devices", "cpu")
    try:
        deadline = time.monotonic() + 120
        while not (runtime / "endpoints.json").exists():
            assert time.monotonic() < deadline, podman(work, "logs", name, check=False).stderr
            time.sleep(0.5)
        yield env, data, name
    finally:
        podman(work, "rm", "-f", name, check=False)
        shutil.rmtree(runtime, ignore_errors=True)


def test_a_job_submitted_from_the_host_to_the_daemon_in_the_image_matches_the_host(
        work: Path, container_daemon: tuple[dict, Path, str], host_run: Path) -> None:
    env, data, name = container_daemon
    shutil.copy(DATA / "viral_reference.fasta", data / "input.fasta")
    out = data / "out"
    proc = subprocess.run([str(BIN / "virnucpro"), "submit", str(data / "input.fasta"), "-o",
                           str(out), "--wait"], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "completed: 4 sequences" in proc.stderr
    same_tables(out, host_run)
    status = subprocess.run([str(BIN / "virnucpro-daemon"), "status", "--json"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert json.loads(status.stdout)["default_models"] == "tiny"
    # Stopped from the host: its pid is the container's, so the host sees its socket close.
    stop = subprocess.run([str(BIN / "virnucpro-daemon"), "stop", "--timeout", "60"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert stop.returncode == 0, stop.stderr
    assert "stopped" in stop.stderr
    # It returned when the daemon had let go of its lock: the container ends at once.
    deadline = time.monotonic() + 15
    while podman(work, "inspect", "--format", "{{.State.Running}}", name).stdout.strip() != "false":
        assert time.monotonic() < deadline, "the daemon's container still runs after stop"
        time.sleep(0.2)
    assert podman(work, "inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip() == "0"
