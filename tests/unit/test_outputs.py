"""The bulk score formatter writes what the reference writes: `str(numpy.float32(x))`."""

from __future__ import annotations

import numpy as np

from virnucpro.table_text import format_scores


def _expected(values: np.ndarray) -> list[str]:
    return [str(np.float32(x)) for x in values]


def test_random_bit_patterns_format_as_numpy_formats_one_float32():
    rng = np.random.default_rng(11)
    values = rng.integers(0, 2**32, 50_000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    assert format_scores(values) == _expected(values)


def test_zero_one_subnormals_and_both_sides_of_the_switch_to_scientific_notation():
    f = np.float32
    edges = [f(0), f(-0.0), f(1), f(0.5), f(np.nan), f(np.inf), f(-np.inf),
             np.finfo(f).tiny, np.finfo(f).smallest_subnormal, f(3e-42), f(1e-45),
             np.finfo(f).max]
    for switch in (f(1e-4), f(1e16)):  # numpy goes scientific below 1e-4 and from 1e16
        edges += [np.nextafter(switch, f(0)), switch, np.nextafter(switch, f(np.inf))]
    probabilities = np.linspace(0, 1, 10_001, dtype=np.float32)
    values = np.array(edges + list(probabilities), dtype=np.float32)
    got = format_scores(values)
    assert got == _expected(values)
    assert {"9.999999e-05", "1e-04", "0.000100000005", "9.999999e+15", "1e+16", "0.0", "1.0"} <= set(got)
