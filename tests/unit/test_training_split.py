"""The split by group: seeded, stratified, no group on both sides; the groups TSV."""

from __future__ import annotations

from pathlib import Path

import pytest

from virnucpro.errors import InputError
from virnucpro.training.split import read_groups_tsv, split_groups


def _genomes(n_viral: int, n_others: int, parts: int = 3) -> tuple[dict, dict]:
    """Genomes of `parts` records each (segments, plasmids): record -> group, record -> label."""
    groups, labels = {}, {}
    for label, n in ((1, n_viral), (0, n_others)):
        for g in range(n):
            for p in range(parts):
                record = f"{'v' if label else 'o'}{g}_part{p}"
                groups[record] = f"{'v' if label else 'o'}{g}"
                labels[record] = label
    return groups, labels


def test_no_group_falls_on_both_sides():
    groups, labels = _genomes(37, 53)
    split = split_groups(groups, labels, seed=7)
    train = {groups[r] for r in split.train_records}
    val = {groups[r] for r in split.val_records}
    assert not train & val
    assert set(split.train_groups) == train and set(split.val_groups) == val
    assert set(split.train_records) | set(split.val_records) == set(labels)
    assert not set(split.train_records) & set(split.val_records)


def test_each_label_is_split_on_its_own_with_at_least_one_group_each_side():
    groups, labels = _genomes(37, 53)
    split = split_groups(groups, labels, val_fraction=0.1)
    val = set(split.val_groups)
    assert sum(g.startswith("v") for g in val) == 4  # round(3.7)
    assert sum(g.startswith("o") for g in val) == 5  # round(5.3)
    small = split_groups(*_genomes(2, 3), val_fraction=0.01)
    assert {g[0] for g in small.val_groups} == {"v", "o"}
    assert {g[0] for g in small.train_groups} == {"v", "o"}
    most = split_groups(*_genomes(2, 3), val_fraction=0.99)
    assert len(most.train_groups) == 2  # n - 1 of each label held out, one kept


def test_the_same_seed_gives_the_same_split_and_another_seed_another():
    groups, labels = _genomes(40, 40)
    assert split_groups(groups, labels, seed=3) == split_groups(dict(groups), dict(labels), seed=3)
    assert split_groups(groups, labels, seed=3) != split_groups(groups, labels, seed=4)
    # The order the records come in does not matter: groups are sorted before the shuffle.
    reversed_groups = dict(reversed(list(groups.items())))
    reversed_labels = dict(reversed(list(labels.items())))
    assert split_groups(reversed_groups, reversed_labels, seed=3) == split_groups(
        groups, labels, seed=3)


def test_a_record_missing_from_the_groups_is_its_own_group():
    groups, labels = _genomes(3, 3)
    labels["lonely"] = 1
    split = split_groups(groups, labels)
    assert "lonely" in split.train_groups + split.val_groups


def test_a_label_with_one_group_is_refused_with_a_clear_message():
    groups, labels = _genomes(1, 5)
    with pytest.raises(InputError, match="label viral has 1 group: at least 2 are needed, one on "
                                         "each side"):
        split_groups(groups, labels)


def test_a_label_without_records_is_refused():
    groups, labels = _genomes(0, 5)
    with pytest.raises(InputError, match="label viral has no records"):
        split_groups(groups, labels)


def test_a_group_holding_both_labels_is_named():
    groups, labels = _genomes(3, 3)
    groups["o1_part0"] = "v2"
    with pytest.raises(InputError, match=r"'v2' hold records of both labels"):
        split_groups(groups, labels)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1])
def test_a_validation_fraction_outside_zero_one_is_refused(fraction):
    with pytest.raises(InputError, match="between 0 and 1"):
        split_groups(*_genomes(3, 3), val_fraction=fraction)


def test_the_groups_tsv_keeps_genomes_together_and_names_unknown_ids(tmp_path: Path):
    tsv = tmp_path / "groups.tsv"
    tsv.write_text("record_id\tgroup\n# segments of one genome\nseg1\tflu\nseg2\tflu\n\n"
                   "ghost\tflu\nchr\thost\n")
    table = read_groups_tsv(tsv, ["seg1", "seg2", "chr", "plasmid"])
    groups, warnings = table
    assert groups == {"seg1": "flu", "seg2": "flu", "chr": "host", "plasmid": "plasmid"}
    (warning,) = warnings
    assert "1 record id(s) not in the inputs" in warning and "'ghost'" in warning


@pytest.mark.parametrize("line, says", [
    ("seg1\tflu\textra\n", "found 3"),
    ("seg1\n", "found 1"),
    ("seg1\t\n", "found 1"),
])
def test_a_malformed_line_is_named_with_its_number(tmp_path: Path, line, says):
    tsv = tmp_path / "groups.tsv"
    tsv.write_text("seg2\tflu\n" + line)
    with pytest.raises(InputError, match=f"line 2: expected 2 tab-separated fields.*{says}"):
        read_groups_tsv(tsv, ["seg1", "seg2"])


def test_a_record_given_two_groups_is_refused(tmp_path: Path):
    tsv = tmp_path / "groups.tsv"
    tsv.write_text("seg1\tflu\nseg1\tmeasles\n")
    with pytest.raises(InputError, match=r"line 2: record 'seg1' is given group 'measles' here "
                                         r"and 'flu' on line 1"):
        read_groups_tsv(tsv, ["seg1"])


def test_a_missing_groups_file_is_an_input_error(tmp_path: Path):
    with pytest.raises(InputError, match="cannot read the groups file"):
        read_groups_tsv(tmp_path / "absent.tsv", ["a"])
