"""Runs of the stand-in scorer (virnucpro.standin) whose files are pinned under
tests/data/standin/expected/: every table, viral.fasta, the reference-format files and the
embeddings of each case, as the code wrote them when the fixtures were made. Engines, the
daemon and resumed runs must write the same bytes.

The stand-in is chosen as every test stand-in is, through $VIRNUCPRO_TEST_SCORER (read by
virnucpro.pool.worker.load_scorer): `use_standin(monkeypatch)` for a run in the test's process,
`SCORER_ENV` in the environment of a subprocess.

Remake the fixtures only for an intended change of the output format:
  python -m tests.standin_cases --write
"""

from __future__ import annotations

import argparse
import random
import shutil
from pathlib import Path

from tests.helpers import DATA

STANDIN = DATA / "standin"
EDGE_INPUT = STANDIN / "edge.fasta"
EXPECTED = STANDIN / "expected"
SCORER = "virnucpro.standin:HashScorer"
SCORER_ENV = {"VIRNUCPRO_TEST_SCORER": SCORER}  # for the environment of a subprocess

# Each case: the inputs and the PredictConfig fields that shape what is written.
CASES: dict[str, dict] = {
    # Two inputs (two subfolders), many shard boundaries inside records, embeddings.
    "reference": {"inputs": (DATA / "viral_reference.fasta", DATA / "nonviral_reference.fasta"),
                  "chunk_size": 500, "shard_frames": 5, "save_embeddings": True},
    # Every edge of the input rules, 300 bp chunks, renames, a length floor, embeddings.
    "edge300": {"inputs": (EDGE_INPUT,), "chunk_size": 300, "shard_frames": 7,
                "rename_duplicates": True, "min_length": 20, "threshold": 0.3,
                "save_embeddings": True},
    # The same input in the default shards and chunk size.
    "edge500": {"inputs": (EDGE_INPUT,), "chunk_size": 500, "rename_duplicates": True},
}

OUTPUT_FILES = ("frames.tsv", "chunks.tsv", "sequences.tsv", "regions.tsv",
                "prediction_results.txt", "prediction_results_highestscore.csv", "viral.fasta",
                "regions.fasta")


def use_standin(monkeypatch) -> None:
    """Score with the stand-in in this test (its process and the workers it spawns)."""
    for name, value in SCORER_ENV.items():
        monkeypatch.setenv(name, value)


def config(case: str, outdir: Path, **overrides):
    """The PredictConfig of a case (tiny set, local engine, no report); overrides may name
    EngineConfig fields too (engine="pool", workers=2...). Run it with the stand-in scorer
    (`use_standin`)."""
    from dataclasses import fields

    from virnucpro.config import PredictConfig
    from virnucpro.engine_config import EngineConfig

    spec = dict(CASES[case])
    inputs = tuple(str(p) for p in spec.pop("inputs"))
    base = {"inputs": inputs, "outdir": outdir, "models": "tiny", "device": "cpu",
            "progress": False, "report": False}
    settings = {**base, **spec, **overrides}
    names = {f.name for f in fields(EngineConfig)}
    engine = {k: settings.pop(k) for k in list(settings) if k in names}
    return PredictConfig(**settings, engine=EngineConfig(**{"engine": "local", **engine}))


def folders(case: str, outdir: Path) -> list[Path]:
    """The output folder of each input of a case under `outdir`."""
    from virnucpro.run.inputs import input_name

    inputs = CASES[case]["inputs"]
    return [outdir] if len(inputs) == 1 else [outdir / input_name(str(p)) for p in inputs]


def written_files(folder: Path) -> list[Path]:
    """What a case compares, relative to one output folder."""
    names = [Path(n) for n in OUTPUT_FILES]
    emb = folder / "embeddings"
    if emb.is_dir():
        names += sorted(p.relative_to(folder) for p in emb.iterdir())
    return names


def differences(case: str, outdir: Path) -> list[str]:
    """The files of a finished run of `case` in `outdir` that differ from the fixtures."""
    bad = []
    for got, want in zip(folders(case, outdir), folders(case, EXPECTED / case), strict=True):
        expected = written_files(want)
        if written_files(got) != expected:
            bad.append(f"{got}: files {written_files(got)} != {expected}")
            continue
        bad += [str(got / rel) for rel in expected if (got / rel).read_bytes() != (want / rel).read_bytes()]
    return bad


def write_edge_input(path: Path) -> None:
    """Records at every edge of the rules (lengths around the chunk sizes, case, N and IUPAC
    codes, RNA, gaps, an empty record, duplicates, frame-less records, reads, a record long
    enough to span many shards), from a fixed seed."""
    from benchmarks.synthetic_input import open_codons

    rng = random.Random(13)
    codons = open_codons()

    def open_dna(n: int) -> str:
        return "".join(rng.choice(codons) for _ in range(n // 3 + 1))[:n]

    def any_dna(n: int) -> str:
        return "".join(rng.choice("ACGT") for _ in range(n))

    records: list[tuple[str, str]] = []
    for n in (3000, 12345, 1000, 601, 599, 501, 500, 499, 301, 300, 299, 150, 149, 50, 3, 2, 1):
        records.append((f"open_{n} synthetic open frames, {n} bp", open_dna(n)))
    records.append(("empty_record nothing follows", ""))
    records.append(("lower_case", open_dna(700).lower()))
    mixed = list(open_dna(1200))
    for i in rng.sample(range(len(mixed)), 40):
        mixed[i] = rng.choice("NRYSWKMBDHV")
    records.append(("iupac_and_n", "".join(mixed[:500]) + "N" * 60 + "".join(mixed[500:])))
    records.append(("rna_record RNA", open_dna(650).replace("T", "U")))
    records.append(("with_gaps", open_dna(300) + "-" * 12 + open_dna(200) + "." * 5 + open_dna(100)))
    records.append(("all_n no frame at all", "N" * 900))
    records.append(("random_dna stops in most frames", any_dna(4000)))
    records.append(("open_n_open unscored chunks inside", open_dna(900) + "N" * 700 + open_dna(900)))
    records.append(("random_then_open", any_dna(900) + open_dna(600)))
    records.append(("dup_id first copy", open_dna(400)))
    records.append(("dup_id second copy", open_dna(420)))
    records.append(("dup_id_2 an id the renaming must not reuse", open_dna(410)))
    records.append(("dup_id third copy", open_dna(430)))
    records.append(("descr\u00e9 non-ASCII text in a header: caf\u00e9", open_dna(800)))
    for i in range(40):
        records.append((f"read_{i}/1 a 150 bp read", open_dna(150) if i % 3 else any_dna(150)))
    records.append(("long_tail", open_dna(20000)))
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        for k, (header, seq) in enumerate(records):
            fh.write(f">{header}\n")
            width = 60 if k % 2 else 80
            for i in range(0, len(seq), width):
                fh.write(seq[i:i + width] + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description="Remake the stand-in fixtures.")
    parser.add_argument("--write", action="store_true", help="overwrite tests/data/standin/expected")
    args = parser.parse_args()
    if not args.write:
        parser.error("nothing to do without --write")
    import os
    import tempfile

    from virnucpro.pipeline import run_predict

    os.environ.setdefault("VIRNUCPRO_OFFLINE", "1")
    os.environ.update(SCORER_ENV)  # this process only: the stand-in writes the fixtures
    if not EDGE_INPUT.exists():
        STANDIN.mkdir(parents=True, exist_ok=True)
        write_edge_input(EDGE_INPUT)
    with tempfile.TemporaryDirectory() as tmp:
        for case in CASES:
            out = Path(tmp) / case
            run_predict(config(case, out))
            target = EXPECTED / case
            shutil.rmtree(target, ignore_errors=True)
            for got, want in zip(folders(case, out), folders(case, target), strict=True):
                for rel in written_files(got):
                    (want / rel).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(got / rel, want / rel)
            print(f"{case}: {target}")


if __name__ == "__main__":
    main()
