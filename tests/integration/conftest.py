"""Fixtures of the integration tests that drive a real daemon."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon_helpers import DaemonHandle, start_daemon


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory, tiny_set_dir: Path) -> Iterator[DaemonHandle]:
    """One daemon for a module, as a user starts it: `start --persistent-models --models tiny`
    (the tiny models loaded once, on the CPU). A module may define its own `daemon` instead."""
    handle = start_daemon(tmp_path_factory.mktemp("daemon"), "--persistent-models", "--models", "tiny")
    try:
        yield handle
    finally:
        handle.stop()
