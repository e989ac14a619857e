"""Fixtures shared by every test folder.

- The whole session runs with `VIRNUCPRO_HOME` in a temp folder and `VIRNUCPRO_OFFLINE=1`, so no
  test touches the user's cache or downloads a real model by accident (tests that fetch from the
  local server below clear `VIRNUCPRO_OFFLINE` with monkeypatch).
- `tiny_set_dir`: the tiny model set, built once per session in that cache.
- `file_server`: a local HTTP server on 127.0.0.1 with Range support and scripted faults.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest


@pytest.fixture(scope="session", autouse=True)
def _virnucpro_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("virnucpro-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VIRNUCPRO_HOME", str(home))
        mp.setenv("VIRNUCPRO_OFFLINE", "1")
        yield home


@pytest.fixture(autouse=True)
def _cuda_device_order_kept() -> Iterator[None]:
    """In-process runs of the command lines set CUDA_DEVICE_ORDER; no test sees another's."""
    before = os.environ.get("CUDA_DEVICE_ORDER")
    yield
    if before is None:
        os.environ.pop("CUDA_DEVICE_ORDER", None)
    else:
        os.environ["CUDA_DEVICE_ORDER"] = before


@pytest.fixture(scope="session")
def tiny_set_dir(_virnucpro_home: Path) -> Path:
    """The tiny model set's folder (`<session VIRNUCPRO_HOME>/sets/tiny`), built once."""
    from virnucpro.models.tiny.build import ensure_tiny

    return ensure_tiny().root


class FileServer:
    """Serves the files under `root` at `url`; records requests; can misbehave on purpose.

    `cut_after[rel] = n` sends the full headers but only n bytes of the body once, then closes
    the connection; `ignore_range` answers 200 with the whole file to Range requests;
    `fail[rel] = [status, ...]` answers those statuses first.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: list[tuple[str, str | None]] = []
        self.cut_after: dict[str, int] = {}
        self.fail: dict[str, list[int]] = {}
        self.ignore_range = False
        self.url = ""

    def ranged(self, rel: str) -> list[str]:
        """The Range headers of the requests for `rel` that had one."""
        return [r for p, r in self.requests if p == rel and r]


class _Handler(BaseHTTPRequestHandler):
    server: ThreadingHTTPServer

    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        fake: FileServer = self.server.fake  # type: ignore[attr-defined]
        rel = unquote(urlparse(self.path).path).lstrip("/")
        rng = self.headers.get("Range")
        fake.requests.append((rel, rng))
        if fake.fail.get(rel):
            self.send_error(fake.fail[rel].pop(0))
            return
        path = fake.root / rel
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        start, status = 0, 200
        m = re.fullmatch(r"bytes=(\d+)-", rng or "")
        if m and not fake.ignore_range:
            start, status = int(m[1]), 206
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        body = data[start:]
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        cut = fake.cut_after.pop(rel, None)
        self.wfile.write(body if cut is None else body[:cut])
        self.close_connection = True

    def log_message(self, *args: object) -> None:  # keep pytest's output clean
        pass


@pytest.fixture
def file_server(tmp_path: Path) -> Iterator[FileServer]:
    """A local HTTP server (port 0) serving `file_server.root`; stopped after the test."""
    root = tmp_path / "served"
    root.mkdir()
    fake = FileServer(root)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.fake = fake  # type: ignore[attr-defined]
    fake.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02},
                              daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
