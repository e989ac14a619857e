"""`predict`'s progress bar tells the truth: its speed is that of this run (a resume's chunks
already on disk are its starting point), and the time left is shown once a speed is known,
however long a shard takes."""

from __future__ import annotations

import io
import os
import pty
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from tests.helpers import ten_times_viral
from virnucpro.cli.progress import ProgressReporter

REPO = Path(__file__).resolve().parents[2]
VIRNUCPRO = Path(sys.executable).with_name("virnucpro")  # the installed entry point
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def run_in_terminal(cmd: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run `cmd` with stderr on a pseudo-terminal (the bar shows only there); its exit code
    and what the terminal received, escape sequences removed."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=follower)
    os.close(follower)
    seen = bytearray()
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the last writer closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    os.close(leader)
    return proc.wait(60), ANSI.sub("", seen.decode(errors="replace"))


@pytest.mark.slow
def test_after_resume_the_speed_counts_only_chunks_scored_in_this_run(tmp_path, tiny_set_dir):
    fasta, out = ten_times_viral(tmp_path), tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "160",
           "VIRNUCPRO_TEST_SCORER": "tests.fakes:SlowScorer", "FAKE_DELAY": "0.3"}
    cmd = [str(VIRNUCPRO), "predict", str(fasta), "-o", str(out), "--models", "tiny",
           "--shard-frames", "16"]
    # A first run killed once half its shards are on disk.
    first = subprocess.Popen([*cmd, "-q"], env=env, stderr=subprocess.DEVNULL)
    shards = out / ".virnucpro" / "shards"
    deadline = time.monotonic() + 120
    while len(list(shards.glob("shard-*.safetensors"))) < 7 and time.monotonic() < deadline:
        assert first.poll() is None, "the first run ended before it was killed"
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait(30)
    # The resume: each shard takes at least 2 s, so no honest speed can exceed all the
    # chunks of the input (360) in one shard's time.
    code, screen = run_in_terminal([*cmd, "--resume"], {**env, "FAKE_DELAY": "2"})
    assert code == 0, screen
    speeds = [float(s) for s in re.findall(r"([0-9.]+) chunks/s", screen)]
    assert speeds, screen
    assert max(speeds) <= 360 / 2, f"the resumed chunks counted as speed: {max(speeds)} chunks/s"
    assert re.search(r"eta \d+:\d\d:\d\d", screen), screen


def test_the_time_left_is_shown_once_a_speed_is_known_even_with_minutes_per_shard():
    """Shards 40 s apart (the published models on a CPU): after the second, a speed and the
    time left; rich's own estimate, over its last 30 s of updates, never had two."""
    now = [0.0]
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=160)
    bar = ProgressReporter(True, console=console, clock=lambda: now[0])
    bar.start("reads", 3000, 30_000)
    bar.update(0, 0, 0)
    for shard in range(1, 4):  # 1,000 chunks and 100 sequences a shard
        now[0] += 40.0
        bar.update(100 * shard, 1000 * shard, shard)
    bar.update(300, 3000, 3)
    bar._progress.refresh()
    shown = ANSI.sub("", screen.getvalue()).splitlines()[-1]
    bar.finish()
    # This run's speed: 2,000 chunks in the 80 s after its first shard.
    assert "25.0 chunks/s" in shown, shown
    assert "eta 0:18:00" in shown, shown  # 27,000 chunks left at 25 a second
