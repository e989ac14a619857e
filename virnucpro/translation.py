"""Six-frame translation with the reference's exact rules (FIDELITY 2).

Own codon table (NCBI table 1) rather than Biopython's `translate`, because the reference
drops any codon that holds a letter other than ACGT (Biopython would resolve GCN to A). A frame
is kept only when its translation is non-empty and stop-free; each kept frame carries the
nucleotide slice that DNABERT-S sees: `3 * len(protein) + 1` bases from the frame offset.
"""

from __future__ import annotations

from dataclasses import dataclass

_BASES = "TCAG"
_AMINO = "FFLLSSSSYY**CC*WLLLLPPPPHHQQRRRRIIIMTTTTNNKKSSRRVVVVAAAADDEEGGGG"
CODON_TABLE: dict[str, str] = {
    a + b + c: _AMINO[16 * i + 4 * j + k]
    for i, a in enumerate(_BASES) for j, b in enumerate(_BASES) for k, c in enumerate(_BASES)
}
_COMPLEMENT = str.maketrans("ACGT", "TGCA")
FRAME_NAMES = ("F1", "F2", "F3", "R1", "R2", "R3")


@dataclass(frozen=True, slots=True)
class Frame:
    """One kept reading frame of one chunk.

    `start`/`end` are 0-based, end-exclusive positions of `nucleotides` on the forward strand
    of the whole sequence (for R frames the slice is the reverse complement of that span).
    """

    frame_id: str  # e.g. contig7_chunk_3R1
    chunk_id: str
    strand: str  # "+" or "-"
    frame: int  # 1, 2 or 3
    start: int
    end: int
    nucleotides: str
    protein: str


def reverse_complement(seq: str) -> str:
    """Reverse complement that maps only A, C, G, T; any other letter stays, reversed."""
    return seq.translate(_COMPLEMENT)[::-1]


def translate_frame(seq: str, offset: int) -> str:
    """Translate complete codons from `offset`; codons with a non-ACGT letter are dropped."""
    table = CODON_TABLE
    out = []
    for i in range(offset, len(seq) - 2, 3):
        aa = table.get(seq[i:i + 3])
        if aa is not None:
            out.append(aa)
    return "".join(out)


def translate_six_frames(chunk: str, chunk_id: str, chunk_start: int = 0) -> list[Frame]:
    """Kept frames of one chunk, in the order F1 F2 F3 R1 R2 R3 (0 to 6 of them)."""
    fwd = chunk.upper()
    rev = reverse_complement(fwd)
    length = len(fwd)
    frames = []
    for strand, strand_seq in (("+", fwd), ("-", rev)):
        for offset in range(3):
            protein = translate_frame(strand_seq, offset)
            if not protein or "*" in protein:
                continue
            nucleotides = strand_seq[offset:offset + 3 * len(protein) + 1]
            if strand == "+":
                start = chunk_start + offset
            else:
                # Positions offset..offset+m on the reverse strand cover, on the forward
                # strand, length-offset-m .. length-offset.
                start = chunk_start + length - offset - len(nucleotides)
            letter = "F" if strand == "+" else "R"
            frames.append(Frame(
                frame_id=f"{chunk_id}{letter}{offset + 1}", chunk_id=chunk_id, strand=strand,
                frame=offset + 1, start=start, end=start + len(nucleotides),
                nucleotides=nucleotides, protein=protein))
    return frames
