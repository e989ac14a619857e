"""The daemon's supervisor stays light: after it ran a job, torch is not in its `sys.modules`.

The real `Daemon` runs in a fresh subprocess (CPU device, tiny models, isolated folders as in
tests/daemon_helpers.py), served in that process's main thread; a second thread submits one job
through the `Client`, waits for it to complete, looks at `sys.modules`, then stops the daemon.
The models run in the pool's worker processes; only they may import torch.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.daemon_helpers import daemon_env

VIRAL = Path(__file__).resolve().parents[1] / "data" / "viral_reference.fasta"

SCRIPT = r"""
import json, os, signal, sys, threading, time

from virnucpro.daemon.client import Client
from virnucpro.daemon.server import Daemon, DaemonConfig

fasta, outdir = sys.argv[1], sys.argv[2]
daemon = Daemon(DaemonConfig(devices=["cpu"]))
daemon.start()
finding = {}


def drive():
    try:
        with Client(daemon.sockets.requests_endpoint, timeout=30.0) as client:
            job = client.submit([fasta], outdir=outdir, options={"models": "tiny", "report": False})
            deadline = time.monotonic() + 60
            while job.state.live and time.monotonic() < deadline:
                time.sleep(0.1)
                job = client.show(job.id)
            finding.update(state=job.state.value, torch="torch" in sys.modules,
                           esm="esm" in sys.modules)
            client.stop()
    except BaseException as exc:  # the daemon must stop either way
        finding["error"] = repr(exc)
        os.kill(os.getpid(), signal.SIGTERM)


threading.Thread(target=drive, daemon=True).start()
daemon.serve_forever()
print(json.dumps(finding), flush=True)
"""


@pytest.mark.slow
def test_the_supervisor_has_no_torch_after_a_job(tmp_path, tiny_set_dir):
    env = daemon_env(tmp_path)  # offline, own XDG folders; VIRNUCPRO_HOME holds the tiny set
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(VIRAL), str(tmp_path / "out")],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert proc.returncode == 0 and lines, (proc.returncode, proc.stdout, proc.stderr[-3000:])
    finding = json.loads(lines[-1])
    assert finding.get("state") == "completed", (finding, proc.stderr[-3000:])
    assert finding["torch"] is False, "the supervisor imported torch"
    assert finding["esm"] is False, "the supervisor imported esm"
    assert (tmp_path / "out").is_dir()
