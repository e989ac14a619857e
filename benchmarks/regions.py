"""`python -m benchmarks.regions [--quick] [--json FILE] [--seed N] [--fasta FILE]`: how well the
region rule (virnucpro/regions.py) finds viral inserts whose place is known.

Chimeras: a viral record of tests/data inserted at a random place into a host (the non-viral
record of tests/data that has room, or a synthetic one of 20-200 kb), at least two 500 bp chunks
of host on each side, so every insert should come back as one `provirus` region. A seeded
stand-in scores each chunk of the real layout (`chunk_spans`) from the share of its bases inside
the insert plus noise, at two noise levels. This measures the rule, not the model.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from virnucpro.chunking import chunk_spans
from virnucpro.regions import PROVIRUS, Region, RegionRule, find_regions

REPO = Path(__file__).resolve().parents[1]
VIRAL = REPO / "tests" / "data" / "viral_reference.fasta"
HOSTS = REPO / "tests" / "data" / "nonviral_reference.fasta"
CHUNK_SIZES = (500, 300)
NOISE = {"low": 0.15, "high": 0.35}  # sigma of the normal noise added to a chunk's truth
UNSCORED = 0.02  # chunks left unscored at random, as chunks with no open reading frame are
# Host on each side: two 500 bp chunks, plus a margin for the chunks' overlap (under 25 bp a
# step at these lengths), so two chunks of host stand on both sides of every insert.
FLANK_BP = 1100
SHORT_BP = 2000  # inserts under this are reported apart: two or three chunks of 500 bp
SYNTHETIC_BP = (20_000, 200_000)
GC = (0.35, 0.65)
SETTINGS = {"gap 1 (default)": RegionRule(), "gap 0": RegionRule(gap=0),
            "gap 2": RegionRule(gap=2), "min_p 0.7": RegionRule(min_p=0.7)}
STAND_IN = ("each chunk's max P(virus) is modelled directly: p = clip(share of the chunk inside "
            "the insert + N(0, sigma), 0, 1), the chunk called viral when p >= 0.5 (the real call "
            "compares max P(virus) with max P(others)); 2% of chunks unscored at random")


@dataclass(frozen=True, slots=True)
class Chimera:
    """A host with one viral insert at [start, end) (0-based, end-exclusive)."""

    id: str
    host: str
    virus: str
    seq: bytes
    start: int
    end: int

    @property
    def host_bp(self) -> int:
        return len(self.seq) - (self.end - self.start)


def read_records(path: Path) -> dict[str, bytes]:
    from virnucpro.seqfile import read_fasta, scan_fasta

    return {r.id: r.seq for r in read_fasta(scan_fasta(path))}


def synthetic_host(rng: np.random.Generator, length: int) -> bytes:
    gc = rng.uniform(*GC)
    p = [(1 - gc) / 2, gc / 2, gc / 2, (1 - gc) / 2]
    return np.frombuffer(b"ACGT", np.uint8)[rng.choice(4, size=length, p=p)].tobytes()


def make_chimeras(n: int, rng: np.random.Generator, viruses: dict[str, bytes],
                  hosts: dict[str, bytes]) -> list[Chimera]:
    """Each a whole viral record (they are 1.4-9.2 kb: none is cut) in a host: half the time a
    real record long enough for the insert and both flanks, when one is, else synthetic."""
    names = sorted(viruses)
    out = []
    for i in range(n):
        virus = names[int(rng.integers(len(names)))]
        insert = viruses[virus]
        fits = sorted(h for h, s in hosts.items() if len(s) >= max(len(insert), 2 * FLANK_BP))
        if fits and rng.random() < 0.5:
            host = fits[int(rng.integers(len(fits)))]
            host_seq = hosts[host]
        else:
            host = f"synthetic_{i}"
            host_seq = synthetic_host(rng, int(rng.integers(*SYNTHETIC_BP, endpoint=True)))
        at = int(rng.integers(FLANK_BP, len(host_seq) - FLANK_BP, endpoint=True))
        out.append(Chimera(f"chimera_{i}", host, virus, host_seq[:at] + insert + host_seq[at:],
                           at, at + len(insert)))
    return out


def chunk_truth(spans: np.ndarray, start: int, end: int) -> np.ndarray:
    """Per chunk: the share of its bases inside the insert."""
    inside = np.clip(np.minimum(spans[:, 1], end) - np.maximum(spans[:, 0], start), 0, None)
    return inside / (spans[:, 1] - spans[:, 0])


def stand_in(truth: np.ndarray, sigma: float, rng: np.random.Generator):
    """(scored, viral, max_p_virus) of the chunks, as `find_regions` takes them."""
    p = np.clip(truth + rng.normal(0.0, sigma, len(truth)), 0.0, 1.0).astype(np.float32)
    scored = rng.random(len(truth)) >= UNSCORED
    p[~scored] = np.nan
    with np.errstate(invalid="ignore"):
        viral = scored & (p >= 0.5)
    return scored, viral, p


def overlap(region: Region, c: Chimera) -> int:
    return max(0, min(region.end, c.end) - max(region.start - 1, c.start))


def percentile(values: list[int], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


def evaluate(chimeras: list[Chimera], chunk_size: int, noise: str, seed: int) -> tuple[list, dict]:
    """Every setting on the same stand-in scores (the settings are compared pair-wise), and
    what the stand-in's chunk calls were."""
    rng = np.random.default_rng([seed, chunk_size, list(NOISE).index(noise)])
    scored_sets, host_calls, insert_calls = [], [], []
    for c in chimeras:
        spans = np.asarray(chunk_spans(len(c.seq), chunk_size), dtype=np.int64)
        truth = chunk_truth(spans, c.start, c.end)
        scored, viral, p = stand_in(truth, NOISE[noise], rng)
        scored_sets.append((spans, scored, viral, p))
        host_calls.append(viral[scored & (truth == 0)])
        insert_calls.append(~viral[scored & (truth == 1)])
    rows = []
    for name, rule in SETTINGS.items():
        found = short_found = split = spurious = matched_regions = provirus = 0
        errors: list[int] = []
        for c, (spans, scored, viral, p) in zip(chimeras, scored_sets, strict=True):
            regions = find_regions(spans[:, 0], spans[:, 1], scored, viral, p, rule)
            matched = [r for r in regions
                       if overlap(r, c) >= min(r.length, c.end - c.start) / 2]
            spurious += len(regions) - len(matched)
            if not matched:
                continue
            found += 1
            short_found += c.end - c.start < SHORT_BP
            split += len(matched) > 1
            matched_regions += len(matched)
            provirus += sum(r.kind == PROVIRUS for r in matched)
            best = max(matched, key=lambda r: overlap(r, c))
            errors += [abs(best.start - (c.start + 1)), abs(best.end - c.end)]
        host_mbp = sum(c.host_bp for c in chimeras) / 1e6
        short = sum(c.end - c.start < SHORT_BP for c in chimeras)
        rows.append({"chunk_size": chunk_size, "noise": noise, "sigma": NOISE[noise],
                     "setting": name, **rule.parameters(), "inserts": len(chimeras),
                     "found": found, "missed": len(chimeras) - found,
                     "found_fraction": found / len(chimeras), "short_inserts": short,
                     "short_found": short_found, "split": split,
                     "spurious": spurious, "spurious_per_host_mbp": round(spurious / host_mbp, 2),
                     "matched_regions": matched_regions,
                     "provirus_share": provirus / matched_regions if matched_regions else None,
                     "boundary_error_bp": {"median": percentile(errors, 50),
                                           "p90": percentile(errors, 90),
                                           "max": max(errors) if errors else None}})
    calls = {"chunk_size": chunk_size, "noise": noise, "sigma": NOISE[noise],
             "host_chunks_called_viral": float(np.concatenate(host_calls).mean()),
             "insert_chunks_called_not_viral": float(np.concatenate(insert_calls).mean())}
    return rows, calls


def describe(chimeras: list[Chimera]) -> dict:
    inserts = [c.end - c.start for c in chimeras]
    hosts = [c.host_bp for c in chimeras]
    real = sorted({c.host for c in chimeras if not c.host.startswith("synthetic_")})
    return {"chimeras": len(chimeras), "viral_records": sorted({c.virus for c in chimeras}),
            "insert_bp": {"min": min(inserts), "median": float(np.median(inserts)),
                          "max": max(inserts)},
            "real_hosts": real, "chimeras_in_real_hosts": sum(c.host in real for c in chimeras),
            "host_bp": {"min": min(hosts), "median": float(np.median(hosts)), "max": max(hosts)}}


def write_fasta(path: Path, chimeras: list[Chimera]) -> None:
    """The chimeras, for scoring with the real models; the insert's place is in the header."""
    with open(path, "w") as fh:
        for c in chimeras:
            fh.write(f">{c.id} host={c.host} virus={c.virus} insert={c.start + 1}-{c.end}\n")
            for k in range(0, len(c.seq), 80):
                fh.write(c.seq[k:k + 80].decode() + "\n")


def print_table(r: dict) -> None:
    s = r["set"]
    print(f"VirNucPro region rule on {r['machine']} (the rule, not the model: stand-in scores)")
    print(f"  {s['chimeras']} chimeras, seed {r['seed']}: inserts {s['insert_bp']['min']:,}-"
          f"{s['insert_bp']['max']:,} bp (whole records), hosts {s['host_bp']['min']:,}-"
          f"{s['host_bp']['max']:,} bp ({s['chimeras_in_real_hosts']} in "
          f"{', '.join(s['real_hosts']) or 'no real host'}, the rest synthetic)")
    print(f"  stand-in: {r['stand_in']}")
    for c in r["chunk_calls"]:
        print(f"    {c['chunk_size']} bp, {c['noise']} noise (sigma {c['sigma']}): host chunks "
              f"called viral {c['host_chunks_called_viral']:.1%}, insert chunks called not viral "
              f"{c['insert_chunks_called_not_viral']:.1%}")
    head = ("chunk", "noise", "setting", "found", "<2 kb", "missed", "split", "spurious", "/host Mbp",
            "provirus", "err median", "err p90")
    print("  " + f"{head[0]:>5}  {head[1]:<5}  {head[2]:<15}" + "".join(f"{h:>11}" for h in head[3:]))
    for row in r["rows"]:
        e = row["boundary_error_bp"]
        share = row["provirus_share"]
        cells = (f"{row['found']}/{row['inserts']}", f"{row['short_found']}/{row['short_inserts']}",
                 row["missed"], row["split"], row["spurious"],
                 f"{row['spurious_per_host_mbp']:.2f}", "-" if share is None else f"{share:.0%}",
                 "-" if e["median"] is None else f"{e['median']:.0f} bp",
                 "-" if e["p90"] is None else f"{e['p90']:.0f} bp")
        print("  " + f"{row['chunk_size']:>5}  {row['noise']:<5}  {row['setting']:<15}"
              + "".join(f"{c:>11}" for c in cells))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.regions", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="30 chimeras instead of 200")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fasta", type=Path, help="also write the chimeras to this FASTA")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    chimeras = make_chimeras(30 if args.quick else 200, np.random.default_rng([args.seed, 0]),
                             read_records(VIRAL), read_records(HOSTS))
    print(f"{len(chimeras)} chimeras built", file=sys.stderr)
    if args.fasta:
        write_fasta(args.fasta, chimeras)
    result = {"quick": args.quick, "seed": args.seed,
              "machine": f"{platform.platform()} {platform.processor() or platform.machine()} "
                         f"{os.cpu_count()} cores",
              "platform": platform.platform(), "cpu_count": os.cpu_count(),
              "python": platform.python_version(), "stand_in": STAND_IN, "noise": NOISE,
              "unscored_share": UNSCORED, "flank_bp": FLANK_BP, "set": describe(chimeras),
              "match": "a region matches an insert when they overlap by >= half the shorter",
              "rows": [], "chunk_calls": []}
    for chunk_size in CHUNK_SIZES:
        for noise in NOISE:
            rows, calls = evaluate(chimeras, chunk_size, noise, args.seed)
            result["rows"] += rows
            result["chunk_calls"].append(calls)
            print(f"[{time.perf_counter() - started:5.1f} s] {chunk_size} bp, {noise} noise",
                  file=sys.stderr)
    result["seconds"] = round(time.perf_counter() - started, 2)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    print_table(result)


if __name__ == "__main__":
    main()
