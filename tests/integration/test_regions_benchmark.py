"""`python -m benchmarks.regions --quick` runs and keeps its JSON contract.

Nothing here is timed: the figures are checked to add up and to be what they claim to be, with
one loose bound on quality that a broken region rule would fail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    out = tmp_path_factory.mktemp("regions") / "regions.json"
    done = subprocess.run([sys.executable, "-m", "benchmarks.regions", "--quick", "--json", str(out)],
                          cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1"},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text()), done.stdout


def test_every_setting_is_measured_at_both_noise_levels_and_chunk_sizes(bench) -> None:
    r, table = bench
    keys = {(row["chunk_size"], row["noise"], row["setting"]) for row in r["rows"]}
    settings = {row["setting"] for row in r["rows"]}
    assert {"gap 1 (default)", "gap 0", "gap 2", "min_p 0.7"} == settings
    assert keys == {(c, n, s) for c in (500, 300) for n in ("low", "high") for s in settings}
    assert r["set"]["chimeras"] == 30 and r["cpu_count"] >= 1 and r["platform"]
    assert "the rule, not the model" in table and r["machine"] in table
    for row in r["rows"]:
        assert row["setting"] in table


def test_counts_add_up_and_fractions_are_fractions(bench) -> None:
    r, _ = bench
    for row in r["rows"]:
        assert row["inserts"] == r["set"]["chimeras"]
        assert row["found"] + row["missed"] == row["inserts"], row
        assert 0 <= row["short_found"] <= row["short_inserts"] <= row["inserts"], row
        assert row["split"] <= row["found"] <= row["matched_regions"], row
        assert row["spurious"] >= 0 and row["spurious_per_host_mbp"] >= 0, row
        assert 0.0 <= row["found_fraction"] <= 1.0
        assert row["found_fraction"] == row["found"] / row["inserts"]
        if row["matched_regions"]:
            assert 0.0 <= row["provirus_share"] <= 1.0
    for calls in r["chunk_calls"]:
        assert 0.0 <= calls["host_chunks_called_viral"] <= 1.0
        assert 0.0 <= calls["insert_chunks_called_not_viral"] <= 1.0


def test_boundary_error_medians_are_at_most_their_90th_percentiles(bench) -> None:
    r, _ = bench
    for row in r["rows"]:
        e = row["boundary_error_bp"]
        if row["found"]:
            assert 0 <= e["median"] <= e["p90"] <= e["max"], row
        else:
            assert e["median"] is e["p90"] is None, row


def test_low_noise_finds_most_inserts_and_no_fewer_than_high_noise(bench) -> None:
    r, _ = bench
    rows = {(row["chunk_size"], row["noise"], row["setting"]): row for row in r["rows"]}
    for (size, noise, setting), row in rows.items():
        if noise != "low":
            continue
        # With a min_p, more noise can lift boundary chunks over it: no ordering is promised.
        if row["region_min_p"] is None:
            assert row["found"] >= rows[(size, "high", setting)]["found"], (size, setting)
        if setting == "gap 1 (default)":
            assert row["found_fraction"] >= 0.8, row
            assert row["spurious"] == 0 and row["provirus_share"] >= 0.9, row
