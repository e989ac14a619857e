"""A FASTA whose chunks keep reading frames: random DNA keeps almost none (stop codons), so
each sequence here is built from sense codons on both strands (no stop in F1 and in R1).

  python -m benchmarks.synthetic_input OUT.fasta --sequences 200 --length 3000
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from virnucpro.translation import CODON_TABLE, reverse_complement


def open_codons() -> list[str]:
    """Codons that are sense in frame 1 and whose reverse complement is sense too."""
    return sorted(c for c, aa in CODON_TABLE.items()
                  if aa != "*" and CODON_TABLE[reverse_complement(c)] != "*")


def write_input(path: Path, sequences: int, length: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    codons = open_codons()
    with open(path, "w") as fh:
        for i in range(sequences):
            seq = "".join(rng.choice(codons) for _ in range(length // 3))
            fh.write(f">synthetic_{i} open frames\n")
            for k in range(0, len(seq), 80):
                fh.write(seq[k:k + 80] + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--sequences", type=int, default=200)
    parser.add_argument("--length", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    write_input(args.out, args.sequences, args.length, args.seed)


if __name__ == "__main__":
    main()
