"""The daemon's wire protocol: version, message types, one schema per message, error codes.

Requests travel ROUTER/DEALER as one frame of UTF-8 JSON (at most `MAX_MESSAGE_BYTES`):
  {"v": 4, "id": "<request id>", "type": "<request type>", "body": {...}}
Replies: {"v": 4, "id": ..., "ok": true, "body": {...}} or
         {"v": 4, "id": ..., "ok": false, "error": {"code": ..., "message": ...}}
Events travel PUB/SUB as two frames, the topic and the JSON event:
  b"job" | b"progress" | b"memory" | b"daemon",  {"v": 4, "seq": n, "topic": ..., "time": t, "body": {...}}
This module imports nothing heavy (no zmq, no torch): the TUI and tests use it freely.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from virnucpro.daemon.jobs import JobState  # noqa: F401 - the protocol's states are the lifecycle's
from virnucpro.options import OPTIONS, SUBMIT, Option

PROTOCOL_VERSION = 5  # docs/protocol.md, "History"
MAX_MESSAGE_BYTES = 1 << 20  # 1 MiB: a request, a reply or an upload chunk
UPLOAD_CHUNK_BYTES = 512 * 1024  # raw bytes per upload/download chunk (base64 fits the limit)
MAX_ID_LENGTH = 128
MAX_PATHS = 1000
TOPICS = ("job", "progress", "memory", "daemon")


class DaemonState(str, Enum):
    RUNNING = "running"
    DRAINING = "draining"  # finishes what it has, accepts no new job
    STOPPING = "stopping"
    STOPPED = "stopped"


class ErrorCode(str, Enum):
    BAD_REQUEST = "bad_request"  # malformed, wrong schema, unknown type
    TOO_LARGE = "too_large"
    VERSION_MISMATCH = "version_mismatch"
    UNKNOWN_JOB = "unknown_job"
    BUSY = "busy"  # the queue is full
    REFUSED = "refused"  # draining / stopping, or a submission the daemon cannot run
    INVALID = "invalid"  # a well-formed request with a bad value (missing input file...)
    CONFLICT = "conflict"  # the job's state does not allow it (retry a completed job...)
    INTERNAL = "internal"


class ProtocolError(Exception):
    """A request that gets an error reply; carries its code."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# -- schemas ------------------------------------------------------------------------------
# Each request type maps field -> (types, required). Unknown fields are refused: a client that
# sends what the server would silently ignore deserves to know.

_STR, _INT, _BOOL, _NUM, _LIST, _DICT = (str,), (int,), (bool,), (int, float), (list,), (dict,)

# A submission's options: name -> (JSON types, default), in the option table's order
# (virnucpro/options.py: those that `submit` takes; null where the default is None).
SUBMIT_OPTIONS: dict[str, tuple[tuple[type, ...], Any]] = {
    o.name: (o.json_types(), o.default) for o in OPTIONS if SUBMIT in o.commands}

SCHEMAS: dict[str, dict[str, tuple[tuple[type, ...], bool]]] = {
    "hello": {"client": (_STR, False), "versions": (_LIST, False)},
    "status": {},
    "snapshot": {},
    "submit": {
        "inputs": (_LIST, False),  # absolute paths on the daemon's machine
        "uploads": (_LIST, False),  # upload ids from upload_begin (remote clients)
        "outdir": (_STR, False),  # absolute; omitted: the daemon's results folder
        "name": (_STR, False),
        "priority": (_INT, False),
        "client_request_id": (_STR, False),
        "options": (_DICT, False),
    },
    "jobs": {"all": (_BOOL, False)},
    "show": {"job_id": (_INT, True)},
    "cancel": {"job_id": (_INT, True)},
    # The overrides a failure's hint names (version 3): the retried job's options change.
    "retry": {"job_id": (_INT, True), "force": (_BOOL, False), "rename_duplicates": (_BOOL, False)},
    "logs": {"job_id": (_INT, True), "since": (_INT, False)},
    "remove": {"job_id": (_INT, False), "older_than_s": (_NUM, False)},
    "drain": {},
    "stop": {},
    "upload_begin": {"name": (_STR, True), "size": (_INT, True), "sha256": (_STR, True)},
    "upload_chunk": {"upload_id": (_STR, True), "offset": (_INT, True), "data": (_STR, True)},
    "upload_end": {"upload_id": (_STR, True)},
    "download": {"job_id": (_INT, True), "file": (_STR, True), "offset": (_INT, False)},
}


@dataclass(frozen=True)
class Request:
    id: str
    type: str
    body: dict


def _check_fields(kind: str, body: dict, schema: dict) -> None:
    unknown = sorted(set(body) - set(schema))
    if unknown:
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"{kind}: unknown field(s) {', '.join(unknown)}")
    for name, (types, required) in schema.items():
        if name not in body:
            if required:
                raise ProtocolError(ErrorCode.BAD_REQUEST, f"{kind}: missing field {name!r}")
            continue
        value = body[name]
        # bool is an int in Python: an int field must not take true/false, and the reverse.
        ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
        if not ok:
            names = "/".join("null" if t is type(None) else t.__name__ for t in types)
            raise ProtocolError(ErrorCode.BAD_REQUEST, f"{kind}: field {name!r} must be {names}")


def check_options(options: dict, table: Iterable[Option] = OPTIONS) -> dict:
    """Predict options of a submission, with defaults filled and values checked against the
    option table (its choices and ranges: a bad value is refused at submit rather than failing
    the job when it starts)."""
    chosen = [o for o in table if SUBMIT in o.commands]
    _check_fields("options", options, {o.name: (o.json_types(), False) for o in chosen})
    full = {o.name: options.get(o.name, o.default) for o in chosen}
    for o in chosen:
        if problem := o.problem(full[o.name]):
            raise ProtocolError(ErrorCode.INVALID, problem)
    return full


def decode_request(frame: bytes) -> Request:
    """Parse and validate one request frame; raise ProtocolError for anything off."""
    if len(frame) > MAX_MESSAGE_BYTES:
        raise ProtocolError(ErrorCode.TOO_LARGE,
                            f"message of {len(frame)} bytes; the limit is {MAX_MESSAGE_BYTES}")
    try:
        msg = json.loads(frame.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"not UTF-8 JSON: {exc}") from None
    if not isinstance(msg, dict):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "a request is a JSON object")
    if msg.get("v") != PROTOCOL_VERSION:
        raise ProtocolError(ErrorCode.VERSION_MISMATCH,
                            f"protocol version {msg.get('v')!r}; this daemon speaks {PROTOCOL_VERSION}")
    rid, kind, body = msg.get("id"), msg.get("type"), msg.get("body", {})
    if not isinstance(rid, str) or not 0 < len(rid) <= MAX_ID_LENGTH:
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"'id' must be a string of 1-{MAX_ID_LENGTH} characters")
    if kind not in SCHEMAS:
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"unknown request type {kind!r}")
    if not isinstance(body, dict):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "'body' must be a JSON object")
    extra = set(msg) - {"v", "id", "type", "body"}
    if extra:
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"unknown top-level field(s) {', '.join(sorted(extra))}")
    _check_fields(kind, body, SCHEMAS[kind])
    for key in ("inputs", "uploads"):
        items = body.get(key, [])
        if len(items) > MAX_PATHS or not all(isinstance(p, str) and p for p in items):
            raise ProtocolError(ErrorCode.BAD_REQUEST, f"{key} must be a list of at most {MAX_PATHS} strings")
    return Request(rid, kind, body)


def request_id_of(frame: bytes) -> str:
    """Best effort: the id of a request that failed validation, so the reply can carry it."""
    try:
        rid = json.loads(frame.decode("utf-8")).get("id")
        return rid if isinstance(rid, str) and len(rid) <= MAX_ID_LENGTH else ""
    except Exception:  # noqa: BLE001 - any garbage simply has no id
        return ""


def encode(obj: dict) -> bytes:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()


def make_request(kind: str, body: dict | None = None, rid: str | None = None) -> bytes:
    return encode({"v": PROTOCOL_VERSION, "id": rid or uuid.uuid4().hex, "type": kind,
                   "body": body or {}})


def ok_reply(rid: str, body: dict) -> bytes:
    return encode({"v": PROTOCOL_VERSION, "id": rid, "ok": True, "body": body})


def error_reply(rid: str, code: ErrorCode, message: str) -> bytes:
    return encode({"v": PROTOCOL_VERSION, "id": rid, "ok": False,
                   "error": {"code": code.value, "message": message}})


def make_event(seq: int, topic: str, body: dict, now: float) -> list[bytes]:
    return [topic.encode(), encode({"v": PROTOCOL_VERSION, "seq": seq, "topic": topic,
                                    "time": now, "body": body})]
