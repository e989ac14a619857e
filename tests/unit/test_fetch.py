"""download(): resume with Range, restarts, checksums, git blob ids, errors naming the url."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
from pathlib import Path

import pytest

from virnucpro.errors import ChecksumError, FetchError
from virnucpro.models import fetch
from virnucpro.models.fetch import Checksum, download


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fetch, "RETRY_DELAYS_S", (0.0, 0.0, 0.0))


@pytest.fixture
def payload(file_server) -> bytes:
    data = os.urandom(3 * (1 << 20) + 12345)  # several read blocks
    (file_server.root / "w.bin").write_bytes(data)
    return data


def test_download_writes_the_file_and_returns_its_sha256(file_server, payload, tmp_path):
    dest = tmp_path / "out" / "w.bin"
    sha = download(f"{file_server.url}/w.bin", dest, progress=False)
    assert sha == hashlib.sha256(payload).hexdigest()
    assert dest.read_bytes() == payload
    assert not dest.with_name("w.bin.part").exists()


def test_a_cut_connection_is_resumed_with_a_range_request(file_server, payload, tmp_path):
    file_server.cut_after["w.bin"] = 1_000_000
    dest = tmp_path / "w.bin"
    sha = download(f"{file_server.url}/w.bin", dest, progress=False,
                   expected=Checksum("sha256", hashlib.sha256(payload).hexdigest()))
    assert sha == hashlib.sha256(payload).hexdigest()
    assert file_server.ranged("w.bin") == ["bytes=1000000-"]
    assert dest.read_bytes() == payload


def test_a_partial_file_left_by_an_earlier_run_is_resumed(file_server, payload, tmp_path):
    dest = tmp_path / "w.bin"
    dest.with_name("w.bin.part").write_bytes(payload[:777])
    download(f"{file_server.url}/w.bin", dest, progress=False)
    assert file_server.requests == [("w.bin", "bytes=777-")]
    assert dest.read_bytes() == payload


def test_a_server_that_ignores_range_makes_the_download_restart(file_server, payload, tmp_path):
    file_server.ignore_range = True
    dest = tmp_path / "w.bin"
    dest.with_name("w.bin.part").write_bytes(b"stale bytes that must not stay")
    download(f"{file_server.url}/w.bin", dest, progress=False)
    assert dest.read_bytes() == payload


def test_a_complete_partial_file_is_accepted_on_416(file_server, payload, tmp_path):
    dest = tmp_path / "w.bin"
    dest.with_name("w.bin.part").write_bytes(payload)
    sha = download(f"{file_server.url}/w.bin", dest, progress=False)
    assert sha == hashlib.sha256(payload).hexdigest()
    assert dest.read_bytes() == payload


def test_a_wrong_hash_removes_the_download_and_raises(file_server, payload, tmp_path):
    dest = tmp_path / "w.bin"
    with pytest.raises(ChecksumError) as err:
        download(f"{file_server.url}/w.bin", dest, progress=False,
                 expected=Checksum("sha256", "0" * 64))
    assert err.value.expected == "sha256:" + "0" * 64
    assert not dest.exists()
    assert not dest.with_name("w.bin.part").exists()


def test_git_blob_id_is_the_one_git_computes(tmp_path):
    path = tmp_path / "blob.bin"
    path.write_bytes(b"VirNucPro \x00\xff classifier bytes\n" * 1000)
    git = subprocess.run(["git", "hash-object", str(path)], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert Checksum("git-blob-sha1", git).compute(path) == git
    assert Checksum("git-blob-sha1", "x").compute(tmp_path.joinpath("blob.bin")) == git


def test_a_git_blob_id_verifies_a_download(file_server, payload, tmp_path):
    blob = hashlib.sha1(b"blob %d\0" % len(payload) + payload).hexdigest()
    dest = tmp_path / "w.bin"
    download(f"{file_server.url}/w.bin", dest, expected=Checksum("git-blob-sha1", blob),
             progress=False)
    assert dest.is_file()


def test_a_missing_file_is_a_fetch_error_naming_the_url_without_retries(file_server, tmp_path):
    url = f"{file_server.url}/nope.bin"
    with pytest.raises(FetchError, match="404") as err:
        download(url, tmp_path / "nope.bin", progress=False)
    assert err.value.url == url and url in str(err.value)
    assert len(file_server.requests) == 1


def test_server_errors_are_retried(file_server, payload, tmp_path):
    file_server.fail["w.bin"] = [503, 502]
    download(f"{file_server.url}/w.bin", tmp_path / "w.bin", progress=False)
    assert len(file_server.requests) == 3


def test_an_unreachable_server_fails_after_a_few_tries(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/w.bin"
    with pytest.raises(FetchError, match="4 attempts") as err:
        download(url, tmp_path / "w.bin", progress=False, timeout=2)
    assert err.value.url == url


def test_a_malformed_url_is_a_fetch_error(tmp_path):
    with pytest.raises(FetchError, match="example.org/w.bin"):
        download("example.org/w.bin", tmp_path / "w.bin", progress=False)


def test_checksum_kinds_are_checked():
    with pytest.raises(ValueError):
        Checksum("md5", "abc")  # type: ignore[arg-type]
    assert Checksum("sha256", "ABC").hex == "abc"


def test_progress_stays_off_when_stderr_is_not_a_terminal(file_server, payload, tmp_path,
                                                          capsys):
    download(f"{file_server.url}/w.bin", Path(tmp_path / "w.bin"), progress=True)
    assert capsys.readouterr().err == ""
