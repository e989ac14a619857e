"""CPU scoring pins glibc's malloc so that freed activations go back to the system."""

from __future__ import annotations

import subprocess
import sys

import pytest

# In a fresh process: a freed 30 MB block raises glibc's dynamic mmap threshold to 30 MB, after
# which a 20 MB block comes from the heap and, once freed, is kept (the default trim threshold
# is twice the mmap threshold). Pinned, the same 20 MB goes back at once.
_PROBE = """
import sys
from virnucpro.heap import pin_for_cpu_scoring
def rss():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4096
if sys.argv[1] == "pin":
    assert pin_for_cpu_scoring()
big = b"x" * (30 << 20)
del big
base = rss()
activation = b"y" * (20 << 20)
del activation
print((rss() - base) >> 20)
"""


def _kept_mb(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True,
                          check=True)
    return int(done.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc only")
def test_pinned_malloc_gives_a_freed_activation_back_and_the_default_keeps_it():
    assert _kept_mb("default") >= 15
    assert _kept_mb("pin") <= 2
