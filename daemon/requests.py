"""The protocol's requests as frozen dataclasses, one per request type, and their framing.

`REQUESTS` maps each request type to its class; a request is written by `encode_request`
(the record through `wire.to_wire`: a field that is None is not sent) and read back by
`decode_request` (the envelope's version, id and type, then the body through `wire.from_wire`,
strictly: an unknown field, a missing one, null, a wrong JSON type, an integer beyond 64 bits
or a string that is not UTF-8 is `bad_request`, naming the field). The client builds these
records and the daemon's handlers take them: one codec, as for the replies (messages.py).
Imports nothing heavy.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any, ClassVar

from virnucpro.daemon import protocol as P
from virnucpro.daemon.protocol import ErrorCode, ProtocolError
from virnucpro.daemon.wire import WireError, from_wire, to_wire


@dataclass(frozen=True)
class Request:
    """A request's body; `TYPE` is its `type` on the wire. A field that is None is absent."""

    TYPE: ClassVar[str] = ""

    def check(self) -> None:
        """What the field types cannot say (raises ProtocolError)."""


@dataclass(frozen=True)
class HelloRequest(Request):
    TYPE = "hello"
    client: str | None = None
    versions: tuple[int, ...] | None = None  # absent: this daemon's version


@dataclass(frozen=True)
class StatusRequest(Request):
    TYPE = "status"


@dataclass(frozen=True)
class SnapshotRequest(Request):
    TYPE = "snapshot"


@dataclass(frozen=True)
class SubmitRequest(Request):
    """A job: at least one of `inputs` and `uploads` (checked by the daemon: `invalid`)."""

    TYPE = "submit"
    # In the order the client has always sent them, so that its frames stay byte for byte.
    priority: int = 0
    options: dict[str, Any] = field(default_factory=dict)  # protocol.check_options
    client_request_id: str | None = None
    uploads: tuple[str, ...] | None = None  # upload ids of finished uploads (remote clients)
    inputs: tuple[str, ...] | None = None  # absolute paths on the daemon's machine
    outdir: str | None = None  # absolute; absent: a new folder in the daemon's results
    name: str | None = None  # absent: the first input's file name

    def check(self) -> None:
        for key in ("inputs", "uploads"):
            items = getattr(self, key) or ()
            if len(items) > P.MAX_PATHS or not all(items):
                raise ProtocolError(ErrorCode.BAD_REQUEST,
                                    f"{key} must be a list of at most {P.MAX_PATHS} strings")
        P.check_options(self.options)  # unknown, mistyped or out-of-range options


@dataclass(frozen=True)
class JobsRequest(Request):
    TYPE = "jobs"
    all: bool = False  # the finished jobs too


@dataclass(frozen=True)
class ShowRequest(Request):
    TYPE = "show"
    job_id: int


@dataclass(frozen=True)
class CancelRequest(Request):
    TYPE = "cancel"
    job_id: int


@dataclass(frozen=True)
class RetryRequest(Request):
    """The overrides a failure's hint names (version 3) change the job's options."""

    TYPE = "retry"
    job_id: int
    force: bool | None = None  # absent or false: the next attempt resumes
    rename_duplicates: bool | None = None  # absent: as the job had it


@dataclass(frozen=True)
class LogsRequest(Request):
    TYPE = "logs"
    job_id: int
    since: int = 0  # the lines after this `n`


@dataclass(frozen=True)
class RemoveRequest(Request):
    """One finished job, or (without `job_id`) those finished `older_than_s` ago."""

    TYPE = "remove"
    job_id: int | None = None
    older_than_s: float | None = None  # absent: a week


@dataclass(frozen=True)
class DrainRequest(Request):
    TYPE = "drain"


@dataclass(frozen=True)
class StopRequest(Request):
    TYPE = "stop"


@dataclass(frozen=True)
class UploadBeginRequest(Request):
    TYPE = "upload_begin"
    name: str
    size: int
    sha256: str


@dataclass(frozen=True)
class UploadChunkRequest(Request):
    TYPE = "upload_chunk"
    upload_id: str
    offset: int
    data: str  # base64


@dataclass(frozen=True)
class UploadEndRequest(Request):
    TYPE = "upload_end"
    upload_id: str


@dataclass(frozen=True)
class DownloadRequest(Request):
    TYPE = "download"
    job_id: int
    file: str  # relative to the job's outdir
    offset: int = 0


REQUESTS: dict[str, type[Request]] = {cls.TYPE: cls for cls in (
    HelloRequest, StatusRequest, SnapshotRequest, SubmitRequest, JobsRequest, ShowRequest,
    CancelRequest, RetryRequest, LogsRequest, RemoveRequest, DrainRequest, StopRequest,
    UploadBeginRequest, UploadChunkRequest, UploadEndRequest, DownloadRequest)}


# -- framing ------------------------------------------------------------------------------------


def encode_request(request: Request, rid: str | None = None) -> bytes:
    """One request frame: `{"v", "id", "type", "body"}`."""
    return P.encode({"v": P.PROTOCOL_VERSION, "id": rid or uuid.uuid4().hex,
                     "type": request.TYPE, "body": to_wire(request, omit_none=True)})


def decode_body(kind: str, body: Any) -> Request:
    """The body of a request of type `kind` as its record; ProtocolError naming the field."""
    if kind not in REQUESTS:
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"unknown request type {kind!r}")
    try:
        request = from_wire(REQUESTS[kind], body, kind, strict=True)
    except WireError as exc:
        raise ProtocolError(ErrorCode.BAD_REQUEST, str(exc)) from None
    except RecursionError:  # options nested thousands deep
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"{kind}: nested too deep") from None
    request.check()
    return request


def decode_request(frame: bytes) -> tuple[str, Request]:
    """One request frame as its id and its record; raise ProtocolError for anything off."""
    if len(frame) > P.MAX_MESSAGE_BYTES:
        raise ProtocolError(ErrorCode.TOO_LARGE,
                            f"message of {len(frame)} bytes; the limit is {P.MAX_MESSAGE_BYTES}")
    try:
        msg = json.loads(frame.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"not UTF-8 JSON: {exc}") from None
    if not isinstance(msg, dict):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "a request is a JSON object")
    if msg.get("v") != P.PROTOCOL_VERSION:
        raise ProtocolError(ErrorCode.VERSION_MISMATCH, f"protocol version {msg.get('v')!r}; "
                            f"this daemon speaks {P.PROTOCOL_VERSION}")
    rid, kind, body = msg.get("id"), msg.get("type"), msg.get("body", {})
    if not isinstance(rid, str) or not 0 < len(rid) <= P.MAX_ID_LENGTH:
        raise ProtocolError(ErrorCode.BAD_REQUEST,
                            f"'id' must be a string of 1-{P.MAX_ID_LENGTH} characters")
    if not isinstance(kind, str) or kind not in REQUESTS:
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"unknown request type {kind!r}")
    if not isinstance(body, dict):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "'body' must be a JSON object")
    extra = set(msg) - {"v", "id", "type", "body"}
    if extra:
        raise ProtocolError(ErrorCode.BAD_REQUEST,
                            f"unknown top-level field(s) {', '.join(sorted(extra))}")
    return rid, decode_body(kind, body)


def request_id_of(frame: bytes) -> str:
    """Best effort: the id of a request that failed validation, so the reply can carry it."""
    try:
        rid = json.loads(frame.decode("utf-8")).get("id")
        return rid if isinstance(rid, str) and len(rid) <= P.MAX_ID_LENGTH else ""
    except Exception:  # noqa: BLE001 - any garbage simply has no id
        return ""
