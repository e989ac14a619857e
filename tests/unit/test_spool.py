"""Spooling a stream: binary data refused before a byte is written, endless text stopped at
the free-space bound of the spool's file system (issue 24, item 1)."""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import mounted_tmpfs
from virnucpro import spool
from virnucpro.errors import InputError


class Endless(io.RawIOBase):
    """`yes ACGT` as a stream: never ends; counts what was read of it."""

    def __init__(self, line: bytes = b"ACGT\n") -> None:
        self.line = line
        self.served = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = len(buffer)
        data = (self.line * (n // len(self.line) + 1))[:n]
        buffer[:n] = data
        self.served += n
        return n


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 64 MiB tmpfs (root only): a file system whose free space the test knows."""
    with mounted_tmpfs(tmp_path / "fs", "64m") as mount:
        yield mount


def test_binary_data_is_refused_before_anything_is_written(tmp_path):
    stream = Endless(b"\x00" * 64)
    with pytest.raises(InputError, match="binary data") as err:
        spool.spool_input(tmp_path, stream, shown="z.fa")
    assert err.value.path == "z.fa" and err.value.line == 1
    assert stream.served <= spool.SNIFF_BYTES  # read its start, no more
    assert list(tmp_path.iterdir()) == []


def test_binary_data_inside_a_compressed_stream_is_refused_too(tmp_path):
    data = gzip.compress(b">s\nACGT\n" + b"\x00" * 1000)
    with pytest.raises(InputError, match="line 3, record 's': binary data"):
        spool.spool_input(tmp_path, io.BytesIO(data))
    assert list(tmp_path.iterdir()) == []


def test_a_compressed_text_stream_is_spooled_as_it_came(tmp_path):
    data = gzip.compress(b">s\n" + b"ACGT\n" * 50_000)
    path = spool.spool_input(tmp_path, io.BytesIO(data))
    assert path.read_bytes() == data


def test_the_bound_is_one_gib_or_five_percent():
    assert spool.min_free(10 * 2**30) == 2**30
    assert spool.min_free(100 * 2**30) == 5 * 2**30


def test_endless_text_stops_at_the_bound_and_leaves_nothing(small_fs, monkeypatch):
    monkeypatch.setattr(spool, "MIN_FREE_BYTES", 48 * 2**20)  # 16 MiB of the 64 may be used
    stream = Endless()
    with pytest.raises(InputError, match=r"stopped reading after 1[56] MiB.*less than 48 MiB "
                       r"free in .*max\(1 GiB, 5 % of the file system\)"):
        spool.spool_input(small_fs, stream)
    assert list(small_fs.iterdir()) == []  # the partial copy is gone
    assert 15 * 2**20 <= stream.served <= 17 * 2**20


def test_a_stream_that_fits_is_copied_whole(small_fs, monkeypatch):
    monkeypatch.setattr(spool, "MIN_FREE_BYTES", 48 * 2**20)
    data = b">s\n" + b"ACGT\n" * (2 * 2**20)  # 10 MiB
    path = spool.spool_input(small_fs, io.BytesIO(data))
    assert path.read_bytes() == data
