"""Typed messages: one codec (daemon/wire.py) from the records to JSON and back, and the
decoding of every reply and event (daemon/messages.py)."""

from __future__ import annotations

import json

import pytest

from virnucpro.daemon import messages as M
from virnucpro.daemon import protocol as P
from virnucpro.daemon import requests as R
from virnucpro.daemon.jobs import HistoryEntry, InputFile, JobRecord, JobState, Progress
from virnucpro.daemon.wire import WireError

JOB = JobRecord(id=3, name="s1", state=JobState.RUNNING,
                inputs=(InputFile("/in/s1.fa", 10, 123, "ab" * 32),), outdir="/out/s1",
                options={"chunk_size": 500, "models": "tiny"}, priority=2,
                client_request_id="r", attempts=1, created=1.0, started=2.0,
                progress=Progress(chunks_done=4, chunks_total=9, sequences_done=1,
                                  sequences_total=3),
                history=(HistoryEntry(1.0, JobState.QUEUED), HistoryEntry(2.0, JobState.LOADING),
                         HistoryEntry(2.5, JobState.RUNNING, "go")))


def test_a_job_record_survives_its_json_form_and_keeps_the_shape_of_0_1() -> None:
    wire = json.loads(json.dumps(JOB.to_dict()))
    assert JobRecord.from_dict(wire) == JOB
    assert set(wire) == {"id", "name", "state", "inputs", "outdir", "options", "priority",
                         "client_request_id", "reason", "attempts", "created", "started",
                         "finished", "progress", "history"} | {"stalls"}  # 0.1's, and one added
    assert wire["state"] == "running" and wire["inputs"][0]["sha256"] == "ab" * 32
    assert wire["history"][-1] == {"time": 2.5, "state": "running", "reason": "go"}
    assert wire["progress"]["chunks_total"] == 9


@pytest.mark.parametrize(("change", "problem"), [
    ({"state": "sleeping"}, "JobRecord.state: 'sleeping' is not a JobState"),
    ({"id": True}, "JobRecord.id: expected int, got bool"),
    ({"inputs": {}}, "JobRecord.inputs: expected a list"),
    ({"progress": {"chunks_done": "4"}}, "JobRecord.progress.chunks_done: expected int"),
    ({"history": [{"time": 1.0}]}, "JobRecord.history[0]: missing field 'state'"),
])
def test_a_record_that_does_not_fit_names_the_field(change: dict, problem: str) -> None:
    with pytest.raises(WireError, match=problem.replace("[", r"\[").replace("]", r"\]")):
        JobRecord.from_dict({**JOB.to_dict(), **change})


def test_missing_fields_take_their_defaults_and_unknown_ones_are_ignored() -> None:
    wire = {k: v for k, v in JOB.to_dict().items() if k not in ("priority", "history")}
    job = JobRecord.from_dict({**wire, "added_in_a_later_daemon": 1})
    assert (job.priority, job.history) == (0, ())
    with pytest.raises(WireError, match="missing field 'outdir'"):
        JobRecord.from_dict({k: v for k, v in wire.items() if k != "outdir"})


def test_progress_fraction_counts_chunks_and_is_unknown_without_a_total() -> None:
    assert Progress().fraction is None
    assert Progress(chunks_total=0).fraction == 1.0
    assert Progress(chunks_done=1, chunks_total=4).fraction == 0.25


def test_every_request_type_has_a_typed_reply() -> None:
    assert set(M.REPLIES) == set(R.REQUESTS)


STATUS = {"state": "running", "version": "0.2.0", "protocol": P.PROTOCOL_VERSION, "pid": 7,
          "uptime_s": 1.5, "persistent_models": True, "devices": ["cpu"], "engine": "pool",
          "precision": "float32", "requests": "ipc:///r", "events": "ipc:///e",
          "loaded": [{"models": "/sets/tiny", "workers": [
              {"worker": 0, "device": "cpu", "state": "ready", "memory_bytes": 5,
               "load_seconds": 0.5}]}],
          "model_loads": 1, "queued": 0, "running": None, "max_queued": 10}


def test_replies_decode_into_records() -> None:
    status = M.decode_reply("status", STATUS)
    assert status.state is P.DaemonState.RUNNING and status.loaded_models() == ("/sets/tiny",)
    assert status.loaded[0].workers[0].memory_bytes == 5
    # A status without default_models (a daemon before it) reads with the default.
    assert status.to_dict() == {**STATUS, "default_models": "published", "loaded": [
        {**STATUS["loaded"][0], "workers": [{**STATUS["loaded"][0]["workers"][0], "node": None}]}]}
    snap = M.decode_reply("snapshot", {"seq": 4, "daemon": STATUS, "devices": [
        {"device": "cpu", "kind": "cpu", "source": "host", "used_bytes": 1, "total_bytes": 2}],
        "jobs": [JOB.to_dict()]})
    assert snap.job(3) == JOB and snap.job(4) is None and snap.devices[0].total_bytes == 2
    assert M.decode_reply("download", {"data": "aGk=", "offset": 0, "eof": True,
                                       "size": 2}).content == b"hi"
    with pytest.raises(WireError, match="status reply: missing field 'pid'"):
        M.decode_reply("status", {k: v for k, v in STATUS.items() if k != "pid"})


def _event(topic: str, body: dict, v: int = P.PROTOCOL_VERSION) -> bytes:
    return P.make_event(9, topic, body, 5.0)[1] if v == P.PROTOCOL_VERSION else json.dumps(
        {"v": v, "seq": 9, "topic": topic, "time": 5.0, "body": body}).encode()


def test_events_decode_by_topic() -> None:
    job = M.decode_event(_event("job", JOB.to_dict()))
    assert (job.seq, job.topic, job.time, job.body) == (9, "job", 5.0, JOB)
    progress = M.decode_event(_event("progress", M.JobProgress(3, Progress(chunks_done=1)).to_dict()))
    assert progress.body == M.JobProgress(3, Progress(chunks_done=1))
    assert M.decode_event(_event("daemon", STATUS)).body.pid == 7
    assert M.decode_event(_event("memory", {"devices": []})).body == M.MemoryReport(())
    for bad, problem in [(_event("job", JOB.to_dict(), v=1), "version 1"),
                         (_event("weather", {}), "known topic"), (b"\xff", "not JSON")]:
        with pytest.raises(WireError, match=problem):
            M.decode_event(bad)


def test_an_event_body_must_be_its_topics_record() -> None:
    assert M.event_body("job", JOB)["id"] == 3
    with pytest.raises(TypeError, match="JobProgress"):
        M.event_body("progress", JOB)


def test_only_a_completed_job_is_shown_done() -> None:
    whole = Progress(chunks_done=9, chunks_total=9)
    assert JOB.with_(progress=whole).share_done() == 0.999  # writing its last tables
    assert JOB.with_(state=JobState.COMPLETED, progress=whole).share_done() == 1.0
    assert JOB.with_(state=JobState.COMPLETED, progress=Progress()).share_done() == 1.0
    assert JOB.with_(state=JobState.CANCELLED).share_done() == pytest.approx(4 / 9)
    assert JOB.with_(progress=Progress()).share_done() is None


def test_the_region_options_are_accepted_and_take_the_rules_defaults() -> None:
    full = P.check_options({"models": "tiny"})
    assert (full["region_gap"], full["region_min_p"], full["min_region_length"]) == (1, None, 1000)
    given = P.check_options({"region_gap": 0, "region_min_p": 0.8, "min_region_length": 500})
    assert (given["region_gap"], given["region_min_p"], given["min_region_length"]) == (0, 0.8, 500)
    assert P.check_options({"region_min_p": 1})["region_min_p"] == 1  # a JSON number
    assert P.check_options({"region_min_p": None})["region_min_p"] is None  # null: the call


@pytest.mark.parametrize(("options", "code", "named"), [
    ({"region_gap": -1}, P.ErrorCode.INVALID, "region_gap must be at least 0"),
    ({"region_min_p": 1.5}, P.ErrorCode.INVALID, "region_min_p must be between 0 and 1"),
    ({"region_min_p": -0.1}, P.ErrorCode.INVALID, "region_min_p must be between 0 and 1"),
    ({"min_region_length": 0}, P.ErrorCode.INVALID, "min_region_length must be at least 1"),
    ({"region_gap": 1.5}, P.ErrorCode.BAD_REQUEST, "'region_gap' must be int"),
    ({"region_gap": True}, P.ErrorCode.BAD_REQUEST, "'region_gap' must be int"),
    ({"region_min_p": "0.5"}, P.ErrorCode.BAD_REQUEST, "'region_min_p' must be int/float/null"),
    ({"min_region_length": None}, P.ErrorCode.BAD_REQUEST, "'min_region_length' must be int"),
])
def test_a_bad_region_option_is_refused_naming_it(options: dict, code: P.ErrorCode,
                                                  named: str) -> None:
    with pytest.raises(P.ProtocolError, match=named) as err:
        P.check_options(options)
    assert err.value.code is code


def test_a_request_of_the_version_before_the_region_options_is_refused_naming_both() -> None:
    # And a daemon of version 3 answers a client of 4 the same way (its check is this one).
    frame = json.dumps({"v": 3, "id": "x", "type": "submit",
                        "body": {"inputs": ["/in.fa"], "options": {"region_gap": 2}}}).encode()
    with pytest.raises(P.ProtocolError, match=f"protocol version 3; this daemon speaks {P.PROTOCOL_VERSION}") as err:
        R.decode_request(frame)
    assert err.value.code is P.ErrorCode.VERSION_MISMATCH
