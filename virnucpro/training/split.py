"""The training/validation split, by group: a genome's records never fall on both sides.

A group is a set of records that must stay together (segments, plasmids or contigs of one
genome); a record is its own group unless a groups TSV says otherwise. `split_groups` is pure,
seeded and stratified by label: each label's groups are sorted, shuffled with
`numpy.random.default_rng(seed)` and cut, so the same inputs and seed give the same split on
every machine. The caller maps frames to records; held-out frames then never reach training.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from virnucpro.errors import InputError
from virnucpro.training.feature_cache import LABEL_NAMES

_HEADER_IDS = {"record", "record_id", "id", "sequence", "sequence_id", "seqid"}
_HEADER_GROUPS = {"group", "group_id", "genome", "genome_id"}
_SHOWN = 20  # ids named in one message; the rest are counted


@dataclass(frozen=True)
class Split:
    """Record and group ids of each side, sorted."""

    train_records: tuple[str, ...]
    val_records: tuple[str, ...]
    train_groups: tuple[str, ...]
    val_groups: tuple[str, ...]

    def to_dict(self) -> dict:
        return {"training": {"groups": list(self.train_groups), "records": len(self.train_records)},
                "validation": {"groups": list(self.val_groups), "records": len(self.val_records)}}


class GroupsTable(NamedTuple):
    """What `read_groups_tsv` found: record id -> group for every record, and warnings."""

    groups: dict[str, str]
    warnings: list[str]


def _name(label: int) -> str:
    return LABEL_NAMES.get(label, str(label))


def _named(ids: Iterable[str]) -> str:
    ids = sorted(ids)
    more = f" and {len(ids) - _SHOWN} more" if len(ids) > _SHOWN else ""
    return ", ".join(repr(i) for i in ids[:_SHOWN]) + more


def split_groups(groups: Mapping[str, str], labels: Mapping[str, int], val_fraction: float = 0.1,
                 seed: int = 0) -> Split:
    """Split the labelled records by group, per label, with at least one group on each side.

    `groups`: record id -> group id (a labelled record absent from it is its own group; entries
    for unlabelled records are ignored). `labels`: record id -> 0 (others) or 1 (viral). Per
    label, round(val_fraction * n) of its n groups are held out, at least 1 and at most n - 1.
    Raises InputError naming the problem: a label without records, a label with fewer than two
    groups, a group holding records of both labels.
    """
    if not 0.0 < val_fraction < 1.0:
        raise InputError(f"the validation fraction must lie between 0 and 1, not {val_fraction}")
    bad = {r: v for r, v in labels.items() if v not in LABEL_NAMES}
    if bad:
        raise InputError(f"labels must be 0 (others) or 1 (viral); records {_named(bad)} are not")
    group_of = {r: groups.get(r, r) for r in labels}
    label_of_group: dict[str, int] = {}
    mixed: set[str] = set()
    for record, group in group_of.items():
        if label_of_group.setdefault(group, labels[record]) != labels[record]:
            mixed.add(group)
    if mixed:
        raise InputError(f"groups {_named(mixed)} hold records of both labels: a group is one "
                         "genome, viral or not; fix the groups TSV")
    val_groups: set[str] = set()
    for label in sorted(LABEL_NAMES):
        mine = sorted(g for g, v in label_of_group.items() if v == label)
        if not mine:
            raise InputError(f"label {_name(label)} has no records: training needs both labels")
        if len(mine) < 2:
            raise InputError(f"label {_name(label)} has 1 group: at least 2 are needed, one on "
                             "each side")
        # A fresh generator per label: the viral split does not move when others are added.
        order = np.random.default_rng(seed).permutation(len(mine))
        n_val = min(max(round(val_fraction * len(mine)), 1), len(mine) - 1)
        val_groups.update(mine[i] for i in order[:n_val])
    val = sorted(r for r, g in group_of.items() if g in val_groups)
    train = sorted(r for r, g in group_of.items() if g not in val_groups)
    return Split(train_records=tuple(train), val_records=tuple(val),
                 train_groups=tuple(sorted(set(label_of_group) - val_groups)),
                 val_groups=tuple(sorted(val_groups)))


def read_groups_tsv(path: Path | str, record_ids: Iterable[str]) -> GroupsTable:
    """Read `record id <TAB> group` lines; every record in `record_ids` gets a group.

    Blank lines and lines starting with '#' are skipped, and a first line naming the columns
    (`record_id<TAB>group`) is a header. Records the TSV does not name are their own group; ids
    the TSV names but the inputs lack come back as a warning. A line without exactly two
    non-empty fields, or a record given two groups, is an InputError naming its line.
    """
    path = Path(path)
    known = list(record_ids)
    known_set = set(known)
    table: dict[str, str] = {}
    where: dict[str, int] = {}
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            for n, row in enumerate(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE), 1):
                if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
                    continue
                fields = [f.strip() for f in row]
                if len(fields) != 2 or not all(fields):
                    raise InputError(f"expected 2 tab-separated fields (record id, group), found "
                                     f"{len([f for f in fields if f])}: {chr(9).join(row)[:80]!r}",
                                     path=path, line=n)
                record, group = fields
                if (not table and record.lower() in _HEADER_IDS and group.lower() in _HEADER_GROUPS
                        and record not in known_set):
                    continue
                if table.get(record, group) != group:
                    raise InputError(f"record {record!r} is given group {group!r} here and "
                                     f"{table[record]!r} on line {where[record]}", path=path, line=n)
                table[record] = group
                where.setdefault(record, n)
    except UnicodeDecodeError as exc:
        raise InputError(f"not a text file: {exc}", path=path) from exc
    except OSError as exc:
        raise InputError(f"cannot read the groups file: {exc.strerror or exc}", path=path) from exc
    unknown = sorted(set(table) - known_set)
    warnings = [f"{path}: {len(unknown)} record id(s) not in the inputs, ignored: "
                f"{_named(unknown)}"] if unknown else []
    return GroupsTable({r: table.get(r, r) for r in known}, warnings)
