"""Uploads and downloads for remote clients: a file's content in chunks over the request socket.

An upload is an `Upload` (a file in the daemon's uploads folder, hashed as its chunks arrive:
reading a large upload back at the end would stall the request loop); once finished, a
submission takes it (`take`) and the file belongs to that job. A download reads one chunk of a
job's output file per request, never outside the job's folder.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from virnucpro.daemon import messages as M
from virnucpro.daemon import protocol as P
from virnucpro.daemon.protocol import ErrorCode, ProtocolError

MAX_UPLOADS = 100  # in progress at once


@dataclass
class Upload:
    path: Path
    name: str
    size: int  # announced
    sha256: str  # announced
    received: int = 0
    done: bool = False
    digest: hashlib._Hash = field(default_factory=hashlib.sha256)


class Uploads:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.uploads: dict[str, Upload] = {}

    def begin(self, name: str, size: int, sha256: str) -> M.UploadStarted:
        if size < 0 or len(self.uploads) >= MAX_UPLOADS:
            raise ProtocolError(ErrorCode.INVALID, "bad size or too many uploads in progress")
        upload_id = uuid.uuid4().hex
        self.folder.mkdir(parents=True, exist_ok=True)
        safe = "".join(c for c in Path(name).name if c.isalnum() or c in "._-") or "input"
        path = self.folder / f"{upload_id}-{safe}"
        path.write_bytes(b"")
        self.uploads[upload_id] = Upload(path=path, name=safe, size=size, sha256=sha256)
        return M.UploadStarted(upload_id=upload_id, chunk_bytes=P.UPLOAD_CHUNK_BYTES)

    def chunk(self, upload_id: str, offset: int, data: str) -> M.UploadReceived:
        up = self.uploads.get(upload_id)
        if up is None or up.done:
            raise ProtocolError(ErrorCode.INVALID, "unknown or finished upload")
        if offset != up.received:
            raise ProtocolError(ErrorCode.INVALID, f"expected offset {up.received}")
        try:
            raw = base64.b64decode(data, validate=True)
        except ValueError:
            raise ProtocolError(ErrorCode.BAD_REQUEST, "data is not base64") from None
        if up.received + len(raw) > up.size:
            raise ProtocolError(ErrorCode.INVALID, "more data than the announced size")
        with open(up.path, "ab") as fh:
            fh.write(raw)
        up.digest.update(raw)
        up.received += len(raw)
        return M.UploadReceived(received=up.received)

    def end(self, upload_id: str) -> M.UploadDone:
        up = self.uploads.get(upload_id)
        if up is None:
            raise ProtocolError(ErrorCode.INVALID, "unknown upload")
        if up.received != up.size or up.digest.hexdigest() != up.sha256:
            up.path.unlink(missing_ok=True)
            del self.uploads[upload_id]
            raise ProtocolError(ErrorCode.INVALID, "upload incomplete or its sha256 differs")
        up.done = True
        return M.UploadDone(upload_id=upload_id, path=str(up.path))

    def finished(self, upload_id: str) -> Upload:
        up = self.uploads.get(upload_id)
        if up is None or not up.done:
            raise ProtocolError(ErrorCode.INVALID, f"upload {upload_id} is unknown or unfinished")
        return up

    def take(self, upload_id: str) -> None:
        """A job now owns the file: it is no longer an upload."""
        self.uploads.pop(upload_id, None)


def read_chunk(outdir: str, job_id: int, file: str, offset: int) -> M.DownloadChunk:
    root = Path(outdir).resolve()
    target = (root / file).resolve()
    if root not in target.parents or not target.is_file():
        raise ProtocolError(ErrorCode.INVALID, f"{file}: not a file of job {job_id}")
    offset = max(0, offset)
    with open(target, "rb") as fh:
        fh.seek(offset)
        data = fh.read(P.UPLOAD_CHUNK_BYTES)
    size = target.stat().st_size
    return M.DownloadChunk(data=base64.b64encode(data).decode(), offset=offset,
                           eof=offset + len(data) >= size, size=size)
