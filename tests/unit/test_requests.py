"""Typed requests: every request type through the codec of the replies (daemon/wire.py) and
back; a malformed body of each refused with the field named; and the client's frames, byte for
byte those of the client before requests were records (the wire did not change)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from tests.unit.test_messages import JOB, STATUS
from virnucpro.daemon import messages as M
from virnucpro.daemon import protocol as P
from virnucpro.daemon import requests as R
from virnucpro.daemon.client import Client, ClientError, DaemonUnavailable
from virnucpro.daemon.handlers import HANDLERS

V = P.PROTOCOL_VERSION

# One instance of each request type, every field given.
FULL = [
    R.HelloRequest(client="test", versions=(V, V - 1)),
    R.StatusRequest(), R.SnapshotRequest(), R.DrainRequest(), R.StopRequest(),
    R.SubmitRequest(priority=-3, options={"models": "tiny", "region_min_p": None,
                                          "threshold": 0.25}, client_request_id="r1",
                    uploads=("u1",), inputs=("/in/a.fa", "/in/b.fa"), outdir="/out",
                    name="a"),
    R.JobsRequest(all=True), R.ShowRequest(job_id=3), R.CancelRequest(job_id=3),
    R.RetryRequest(job_id=3, force=False, rename_duplicates=True),
    R.LogsRequest(job_id=3, since=7), R.RemoveRequest(job_id=3, older_than_s=60.5),
    R.UploadBeginRequest(name="a.fa", size=10, sha256="0" * 64),
    R.UploadChunkRequest(upload_id="u1", offset=0, data="aGk="),
    R.UploadEndRequest(upload_id="u1"),
    R.DownloadRequest(job_id=3, file="sequences.tsv", offset=512),
]


def test_every_request_type_has_a_record_a_handler_and_a_typed_reply() -> None:
    assert set(R.REQUESTS) == set(HANDLERS) == set(M.REPLIES) == {r.TYPE for r in FULL}


@pytest.mark.parametrize("request_", FULL + [cls() for cls in R.REQUESTS.values()
                                             if not any(f.default is dataclasses.MISSING
                                                        for f in dataclasses.fields(cls))],
                         ids=lambda r: type(r).__name__)
def test_every_request_survives_its_frame(request_: R.Request) -> None:
    frame = R.encode_request(request_, rid="abc")
    rid, back = R.decode_request(frame)
    assert (rid, back) == ("abc", request_)
    msg = json.loads(frame)
    assert (msg["v"], msg["type"]) == (V, request_.TYPE)
    assert None not in msg["body"].values()  # absent, not null


def _body(request_: R.Request) -> dict:
    return json.loads(R.encode_request(request_))["body"]


def _refused(kind: str, body: object) -> P.ProtocolError:
    frame = json.dumps({"v": V, "id": "x", "type": kind, "body": body}).encode()
    with pytest.raises(P.ProtocolError) as err:
        R.decode_request(frame)
    return err.value


# A malformed body of each type, and the words its refusal must hold (the field named).
MALFORMED = [
    ("hello", {"versions": [V, "5"]}, "hello.versions[1]: expected int, got str"),
    ("status", {"verbose": True}, "status: unknown field(s) verbose"),
    ("snapshot", {"seq": 1}, "snapshot: unknown field(s) seq"),
    ("drain", {"now": True}, "drain: unknown field(s) now"),
    ("stop", {"now": True}, "stop: unknown field(s) now"),
    ("submit", {"inputs": "/in/a.fa"}, "submit.inputs: expected a list, got str"),
    ("submit", {"inputs": ["/a.fa", 3]}, "submit.inputs[1]: expected str, got int"),
    ("submit", {"inputs": [""]}, "inputs must be a list of at most 1000 strings"),
    ("submit", {"uploads": ["u"] * 1001}, "uploads must be a list of at most 1000 strings"),
    ("submit", {"outdir": None}, "submit.outdir: expected str, got null"),
    ("submit", {"priority": 1 << 64}, "submit.priority: out of range"),
    ("submit", {"name": "\ud800"}, "submit.name: not valid UTF-8"),
    ("submit", {"options": {"colour": "red"}}, "unknown field(s) colour"),
    ("submit", {"options": {"threshold": float("nan")}}, "submit.options.threshold: not a finite"),
    ("submit", {"options": {"models": "\udcff"}}, "submit.options.models: not valid UTF-8"),
    ("jobs", {"all": 1}, "jobs.all: expected bool, got int"),
    ("show", {}, "show: missing field 'job_id'"),
    ("cancel", {"job_id": "3"}, "cancel.job_id: expected int, got str"),
    ("retry", {"job_id": 3, "force": "yes"}, "retry.force: expected bool, got str"),
    ("logs", {"job_id": True}, "logs.job_id: expected int, got bool"),
    ("remove", {"older_than_s": "1d"}, "remove.older_than_s: expected float, got str"),
    ("upload_begin", {"name": "a", "size": 1}, "upload_begin: missing field 'sha256'"),
    ("upload_chunk", {"upload_id": "u", "offset": 1.5, "data": ""},
     "upload_chunk.offset: expected int, got float"),
    ("upload_end", {"upload_id": ["u"]}, "upload_end.upload_id: expected str, got list"),
    ("download", {"job_id": 3, "file": "a", "offset": -(1 << 63) - 1},
     "download.offset: out of range"),
]


@pytest.mark.parametrize(("kind", "body", "named"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_a_malformed_request_is_refused_naming_its_field(kind: str, body: dict, named: str) -> None:
    err = _refused(kind, body)
    assert err.code is P.ErrorCode.BAD_REQUEST and named in err.message, err.message


def test_the_daemon_answers_each_malformed_request_with_its_id_and_the_field(
        tmp_path: Path) -> None:
    from virnucpro.daemon.paths import DaemonPaths
    from virnucpro.daemon.server import Daemon, DaemonConfig

    daemon = Daemon(DaemonConfig(devices=["cpu"]), DaemonPaths(runtime=tmp_path, state=tmp_path))
    for kind, body, named in MALFORMED:
        frame = json.dumps({"v": V, "id": "r7", "type": kind, "body": body}).encode()
        reply = json.loads(daemon.answer(frame))
        assert (reply["id"], reply["ok"], reply["error"]["code"]) == ("r7", False, "bad_request")
        assert named in reply["error"]["message"], reply


def test_every_request_type_has_a_malformed_case() -> None:
    assert {kind for kind, _b, _n in MALFORMED} == set(R.REQUESTS)


def test_an_out_of_range_option_is_invalid_and_the_frame_checks_come_first() -> None:
    err = _refused("submit", {"inputs": ["/a.fa"], "options": {"chunk_size": 42}})
    assert err.code is P.ErrorCode.INVALID and "chunk_size must be" in err.message
    for frame, code, named in [
        (b"\xff", P.ErrorCode.BAD_REQUEST, "not UTF-8 JSON"),
        (b"[" * 100_000, P.ErrorCode.BAD_REQUEST, "not UTF-8 JSON"),
        (b"[1]", P.ErrorCode.BAD_REQUEST, "a request is a JSON object"),
        (b'{"v": 1, "id": "x", "type": "status"}', P.ErrorCode.VERSION_MISMATCH, "version 1"),
        (json.dumps({"v": V, "id": "", "type": "status"}).encode(), P.ErrorCode.BAD_REQUEST, "'id'"),
        (json.dumps({"v": V, "id": "x", "type": ["status"]}).encode(), P.ErrorCode.BAD_REQUEST,
         "unknown request type"),
        (json.dumps({"v": V, "id": "x", "type": "status", "body": []}).encode(),
         P.ErrorCode.BAD_REQUEST, "'body' must be a JSON object"),
        (json.dumps({"v": V, "id": "x", "type": "status", "extra": 1}).encode(),
         P.ErrorCode.BAD_REQUEST, "top-level field(s) extra"),
        (b"x" * (P.MAX_MESSAGE_BYTES + 1), P.ErrorCode.TOO_LARGE, "the limit is"),
    ]:
        with pytest.raises(P.ProtocolError, match=named.replace("(", r"\(").replace(")", r"\)")) as err:
            R.decode_request(frame)
        assert err.value.code is code


def test_absent_fields_take_their_defaults() -> None:
    assert R.decode_body("submit", {}) == R.SubmitRequest()
    assert R.decode_body("logs", {"job_id": 1}) == R.LogsRequest(job_id=1, since=0)
    assert R.decode_body("retry", {"job_id": 1}).rename_duplicates is None  # keep the job's
    # A null in the options is a value (region_min_p: the call), kept on the way out.
    assert _body(R.SubmitRequest(options={"region_min_p": None})) == {
        "priority": 0, "options": {"region_min_p": None}}


# -- the client's frames ------------------------------------------------------------------------

REPLY_BODIES = {
    "hello": {"daemon": STATUS}, "status": STATUS, "drain": STATUS, "stop": STATUS,
    "snapshot": {"seq": 0, "daemon": STATUS, "devices": [], "jobs": []},
    "submit": {"job": JOB.to_dict(), "duplicate": False}, "jobs": {"jobs": []},
    "show": {"job": JOB.to_dict()}, "cancel": {"job": JOB.to_dict()},
    "retry": {"job": JOB.to_dict()}, "logs": {"lines": []}, "remove": {"removed": 0},
    "upload_begin": {"upload_id": "u1", "chunk_bytes": 4}, "upload_chunk": {"received": 4},
    "upload_end": {"upload_id": "u1", "path": "/state/uploads/u1-a.fa"},
    "download": {"data": "aGk=", "offset": 0, "eof": True, "size": 2},
}


class RecordingSocket:
    """A DEALER that keeps what the client sends and answers each request with its canned
    reply body."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send(self, frame: bytes) -> None:
        self.sent.append(frame)

    def poll(self, timeout_ms: int) -> int:
        return 1

    def recv(self) -> bytes:
        msg = json.loads(self.sent[-1])
        return json.dumps({"v": V, "id": msg["id"], "ok": True,
                           "body": REPLY_BODIES[msg["type"]]}).encode()

    def close(self, linger: int = 0) -> None:
        pass


def test_the_clients_frames_are_those_of_the_dict_client_byte_for_byte(tmp_path: Path) -> None:
    """Each verb's frame, against the body the client sent when requests were dicts (0.2
    before this change), keys in the same order: the wire is unchanged, so the protocol
    version is too."""
    client = Client("ipc:///nowhere/daemon.sock")
    sock = client._sock = RecordingSocket()
    fasta = tmp_path / "a.fa"
    fasta.write_text(">a\nACGT\n")
    out = str(tmp_path / "out")
    calls = [
        (lambda: client.hello(), "hello", {"client": "virnucpro", "versions": [V]}),
        (lambda: client.status(), "status", {}),
        (lambda: client.snapshot(), "snapshot", {}),
        (lambda: client.submit([str(fasta)], outdir=out, name="n", priority=2,
                               options={"models": "tiny"}, client_request_id="r"),
         "submit", {"priority": 2, "options": {"models": "tiny"}, "client_request_id": "r",
                    "inputs": [str(fasta)], "outdir": out, "name": "n"}),
        (lambda: client.submit([str(fasta)], client_request_id="r"),
         "submit", {"priority": 0, "options": {}, "client_request_id": "r",
                    "inputs": [str(fasta)]}),
        (lambda: client.jobs(), "jobs", {"all": False}),
        (lambda: client.jobs(all=True), "jobs", {"all": True}),
        (lambda: client.show(3), "show", {"job_id": 3}),
        (lambda: client.cancel(3), "cancel", {"job_id": 3}),
        (lambda: client.retry(3), "retry", {"job_id": 3}),
        (lambda: client.retry(3, force=True, rename_duplicates=True), "retry",
         {"job_id": 3, "force": True, "rename_duplicates": True}),
        (lambda: client.logs(3), "logs", {"job_id": 3, "since": 0}),
        (lambda: client.logs(3, 7), "logs", {"job_id": 3, "since": 7}),
        (lambda: client.remove(job_id=3), "remove", {"job_id": 3}),
        (lambda: client.remove(older_than_s=86400.0), "remove", {"older_than_s": 86400.0}),
        (lambda: client.remove(), "remove", {}),
        (lambda: client.drain(), "drain", {}),
        (lambda: client.stop(), "stop", {}),
    ]
    for call, kind, body in calls:
        call()
        sent = json.loads(sock.sent[-1])
        assert sock.sent[-1] == P.encode({"v": V, "id": sent["id"], "type": kind, "body": body})
    client.download(3, "sequences.tsv", tmp_path / "got")
    assert json.loads(sock.sent[-1])["body"] == {"job_id": 3, "file": "sequences.tsv", "offset": 0}
    sock.sent.clear()
    client.submit([str(fasta)], client_request_id="r", upload=True)
    bodies = [(m["type"], m["body"]) for m in map(json.loads, sock.sent)]
    assert [kind for kind, _ in bodies] == ["upload_begin", "upload_chunk", "upload_chunk",
                                            "upload_end", "submit"]
    assert bodies[0][1].keys() == {"name", "size", "sha256"} and bodies[0][1]["size"] == 8
    assert bodies[1][1] == {"upload_id": "u1", "offset": 0, "data": "PmEKQQ=="}
    assert bodies[-1][1] == {"priority": 0, "options": {}, "client_request_id": "r",
                             "uploads": ["u1"]}


def test_a_body_given_as_json_is_checked_by_the_client_as_the_daemon_would() -> None:
    client = Client("ipc:///nowhere/daemon.sock")
    client._sock = RecordingSocket()
    assert client.request("show", {"job_id": 3}).job == JOB
    with pytest.raises(ClientError, match="show.job_id: expected int") as err:
        client.request("show", {"job_id": "3"})
    assert err.value.code == "bad_request" and len(client._sock.sent) == 1  # never sent
    with pytest.raises(ClientError, match="unknown request type 'launch'"):
        client.call("launch")
    with pytest.raises(TypeError):
        client.call(R.ShowRequest(job_id=3), {"job_id": 4})
    client._sock.poll = lambda timeout_ms: 0
    with pytest.raises(DaemonUnavailable):
        client.request(R.StatusRequest(), timeout=0.01)
