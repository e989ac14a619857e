"""Fixtures of the integration tests that drive a real daemon."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon_helpers import DaemonHandle, daemon_env, run_daemon, start_daemon


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory, tiny_set_dir: Path) -> Iterator[DaemonHandle]:
    """One daemon for a module, as a user starts it: `start --persistent-models --models tiny`
    (the tiny models loaded once, on the CPU). A module may define its own `daemon` instead."""
    handle = start_daemon(tmp_path_factory.mktemp("daemon"), "--persistent-models", "--models", "tiny")
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture
def env(tmp_path: Path, tiny_set_dir: Path) -> Iterator[dict[str, str]]:
    """The environment of an isolated daemon (`daemon_env`) for tests that start it through
    the installed entry point; whatever daemon a test leaves is stopped."""
    env = daemon_env(tmp_path)
    yield env
    runtime = Path(env["XDG_RUNTIME_DIR"]) / "virnucpro"
    if (runtime / "daemon.sock").exists():
        run_daemon(env, "stop", "--timeout", "30", timeout=60)
    with contextlib.suppress(OSError, ValueError):  # one that would not stop
        os.kill(int((runtime / "daemon.pid").read_text()), signal.SIGKILL)
