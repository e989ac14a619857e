"""The daemon's wire protocol: version, limits, error codes, daemon states, submit options.

Requests travel ROUTER/DEALER as one frame of UTF-8 JSON (at most `MAX_MESSAGE_BYTES`):
  {"v": 5, "id": "<request id>", "type": "<request type>", "body": {...}}
Replies: {"v": 5, "id": ..., "ok": true, "body": {...}} or
         {"v": 5, "id": ..., "ok": false, "error": {"code": ..., "message": ...}}
Events travel PUB/SUB as two frames, the topic and the JSON event:
  b"job" | b"progress" | b"memory" | b"daemon",  {"v": 5, "seq": n, "topic": ..., "time": t, "body": {...}}
The bodies are records, one codec (wire.py) for all: requests in requests.py, replies and
events in messages.py. This module imports nothing heavy (no zmq, no torch): the TUI and
tests use it freely.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
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


# -- the options of a submission -----------------------------------------------------------
# Each option maps to (types, default), in the option table's order (virnucpro/options.py:
# those that `submit` takes; null where the default is None). Unknown ones are refused: a
# client that sends what the server would silently ignore deserves to know. The requests
# themselves are typed records (requests.py), read by the codec of the replies (wire.py).

SUBMIT_OPTIONS: dict[str, tuple[tuple[type, ...], Any]] = {
    o.name: (o.json_types(), o.default) for o in OPTIONS if SUBMIT in o.commands}


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


def encode(obj: dict) -> bytes:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()


def ok_reply(rid: str, body: dict) -> bytes:
    return encode({"v": PROTOCOL_VERSION, "id": rid, "ok": True, "body": body})


def error_reply(rid: str, code: ErrorCode, message: str) -> bytes:
    return encode({"v": PROTOCOL_VERSION, "id": rid, "ok": False,
                   "error": {"code": code.value, "message": message}})


def make_event(seq: int, topic: str, body: dict, now: float) -> list[bytes]:
    return [topic.encode(), encode({"v": PROTOCOL_VERSION, "seq": seq, "topic": topic,
                                    "time": now, "body": body})]
