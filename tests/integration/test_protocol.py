"""Every request type that docs/protocol.md lists, sent over a real socket to a real daemon,
gets an answer the client decodes into its typed record; and the client's own follower
(`Client.watch`) follows a real job to its end."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import pytest

from tests.daemon_helpers import start_daemon
from tests.helpers import DATA
from virnucpro.daemon import messages as M
from virnucpro.daemon import protocol as P
from virnucpro.daemon import requests as R
from virnucpro.daemon.client import ClientError
from virnucpro.daemon.jobs import JobRecord, JobState

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
VIRAL = DATA / "viral_reference.fasta"


def documented_requests() -> list[str]:
    """The `type` column of the requests table in section 4 of docs/protocol.md."""
    text = DOC.read_text()
    section = text[text.index("## 4. Requests"):text.index("### submit")]
    return re.findall(r"^\| `(\w+)` \|", section, flags=re.M)


def test_the_documented_requests_are_the_protocols() -> None:
    assert sorted(documented_requests()) == sorted(R.REQUESTS) == sorted(M.REPLIES)


@pytest.fixture
def daemon(tmp_path: Path, tiny_set_dir: Path):
    # The stand-in scorer, slowed: a job of the viral reference (two frames a shard) keeps the
    # daemon busy while `drain` and `stop` are asked.
    slow = {"VIRNUCPRO_TEST_SCORER": "tests.fakes:SlowScorer", "FAKE_DELAY": "0.2"}
    with start_daemon(tmp_path / "d", "--persistent-models", "--models", "tiny",
                      "--shard-frames", "2", env_extra=slow) as handle:
        yield handle


@pytest.fixture
def small(tmp_path: Path) -> Path:
    """One record of one chunk: a job of a few shards."""
    path = tmp_path / "small.fasta"
    path.write_text(">one\n" + VIRAL.read_text().split("\n", 2)[1][:200] + "\n")
    return path


@pytest.mark.slow
def test_every_documented_request_gets_a_typed_answer_over_the_socket(daemon, small,
                                                                      tmp_path) -> None:
    data = VIRAL.read_bytes()
    last = ["submit", "drain", "stop"]  # the upload's job, then ask while it runs
    order = [k for k in documented_requests() if k not in last] + last
    with daemon.client() as c:
        job = c.submit([str(small)], outdir=str(tmp_path / "out"), options={"models": "tiny"})
        # The options a submit leaves out are recorded with their defaults (version 4: the
        # region rule's too); a bad one is refused, named.
        assert {k: job.options[k] for k in ("region_gap", "region_min_p", "min_region_length")} \
            == {"region_gap": 1, "region_min_p": None, "min_region_length": 1000}
        with pytest.raises(ClientError, match="region_min_p must be between 0 and 1") as err:
            c.submit([str(small)], outdir=str(tmp_path / "bad"),
                     options={"models": "tiny", "region_min_p": 2})
        assert err.value.code == "invalid"
        done = [j for j in c.watch(job.id, timeout=120)][-1]
        assert done.state is JobState.COMPLETED
        begin = c.request("upload_begin", {"name": "v.fa", "size": len(data),
                                           "sha256": hashlib.sha256(data).hexdigest()})
        bodies = {
            "hello": {"client": "test", "versions": [P.PROTOCOL_VERSION]}, "status": {},
            "snapshot": {}, "jobs": {"all": True}, "show": {"job_id": job.id},
            "cancel": {"job_id": job.id}, "logs": {"job_id": job.id},
            "download": {"job_id": job.id, "file": "sequences.tsv"},
            "upload_begin": {"name": "w.fa", "size": 1, "sha256": "0" * 64},
            "upload_chunk": {"upload_id": begin.upload_id, "offset": 0,
                             "data": base64.b64encode(data).decode()},
            "upload_end": {"upload_id": begin.upload_id},
            "submit": {"uploads": [begin.upload_id], "options": {"models": "tiny"}},
            "retry": {"job_id": job.id},  # a completed job: a typed error, below
            "remove": {"older_than_s": 1e9}, "drain": {}, "stop": {},
        }
        assert set(bodies) == set(documented_requests())
        answers = {}
        for kind in order:  # the uploaded job is running when drain and stop come
            try:
                answers[kind] = c.request(kind, bodies[kind])
            except ClientError as exc:
                answers[kind] = exc
    for kind, answer in answers.items():
        if kind == "retry":
            assert isinstance(answer, ClientError) and answer.code == "conflict", answer
            assert "completed" in answer.message
            continue
        assert isinstance(answer, M.REPLIES[kind]), (kind, answer)
    assert answers["status"].state is P.DaemonState.RUNNING
    assert answers["snapshot"].job(job.id) == answers["show"].job
    assert answers["cancel"].job.state is JobState.COMPLETED  # an ended job is left as it is
    assert answers["download"].content == (tmp_path / "out" / "sequences.tsv").read_bytes()
    assert isinstance(answers["submit"].job, JobRecord) and not answers["submit"].duplicate
    assert answers["drain"].state is P.DaemonState.DRAINING
    assert answers["stop"].state is P.DaemonState.STOPPING
    assert daemon.proc.wait(30) == 0


@pytest.mark.slow
def test_watch_follows_a_job_through_its_progress_to_its_end(daemon, small, tmp_path) -> None:
    with daemon.client() as c:
        job = c.submit([str(small)], outdir=str(tmp_path / "w"), options={"models": "tiny"})
        seen = list(c.watch(job.id, timeout=120))
        with pytest.raises(ClientError, match="no job 999"):
            next(c.watch(999))
    assert [s.id for s in seen] == [job.id] * len(seen)
    assert seen[-1].state is JobState.COMPLETED and all(s.state.live for s in seen[:-1])
    states = [s.state for s in seen]
    assert states.index(JobState.RUNNING) < len(states) - 1  # it was seen running
    done = [s.progress.chunks_done for s in seen if s.progress.chunks_total]
    assert done == sorted(done) and seen[-1].progress.fraction == 1.0
