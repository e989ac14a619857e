"""Token-budget batching, on its own."""

import random

import pytest

from virnucpro.batching import batch_by_token_budget, padding_waste


@pytest.mark.parametrize("seed", range(20))
def test_every_item_is_in_exactly_one_batch_within_budget(seed):
    rng = random.Random(seed)
    lengths = [rng.randint(1, 300) for _ in range(rng.randint(0, 200))]
    budget = rng.randint(300, 5000)
    batches = batch_by_token_budget(lengths, budget)
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(len(lengths)))
    for b in batches:
        assert len(b) * max(lengths[i] for i in b) <= budget


def test_batches_are_sorted_longest_first_so_padding_is_small():
    lengths = [10, 200, 11, 190, 12, 180]
    batches = batch_by_token_budget(lengths, 400)
    assert batches == [[1, 3], [5, 4], [2, 0]]
    assert padding_waste(lengths, batches) < 0.5


def test_an_item_longer_than_the_budget_gets_its_own_batch():
    assert batch_by_token_budget([1000, 5, 5], 100) == [[0], [1, 2]]


def test_max_items_caps_a_batch():
    assert batch_by_token_budget([1] * 5, 100, max_items=2) == [[0, 1], [2, 3], [4]]


def test_the_cut_depends_only_on_lengths_and_budget():
    lengths = [5, 3, 5, 3, 5]
    assert batch_by_token_budget(lengths, 10) == batch_by_token_budget(list(lengths), 10)
    assert batch_by_token_budget(lengths, 10) == [[0, 2], [4, 1], [3]]


def test_budget_must_be_positive():
    with pytest.raises(ValueError):
        batch_by_token_budget([1], 0)


def test_padding_waste_counts_padded_positions():
    assert padding_waste([4, 2], [[0, 1]]) == 0.25
    assert padding_waste([], []) == 0.0
