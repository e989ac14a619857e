"""The published model set's catalogue: which files it holds, where each comes from, and the
hashes each must have (FIDELITY.md section 5, DNABERT_S.md).

DNABERT-S is pinned by hub revision, every file but the classifiers by size and sha256
(`PUBLISHED_PINS`), the classifiers by git blob id (`PUBLISHED_BLOB_IDS`). Both tables are dicts
read at call time, so that tests can point them at their fake files. Environment:
`VIRNUCPRO_HF_ENDPOINT` (or `HF_ENDPOINT`; default https://huggingface.co), `VIRNUCPRO_ESM_URL`
(a mirror of https://dl.fbaipublicfiles.com/fair-esm with its `models/` and `regression/`
folders), `VIRNUCPRO_CLASSIFIER_URL` (the folder holding `300_model.pth` and `500_model.pth`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

# Git blob ids of the reference classifiers (FIDELITY.md section 5).
PUBLISHED_BLOB_IDS: dict[str, str] = {
    "300_model.pth": "a0b5b85e7c1e44f00cde146d091beb82b2c8e855",
    "500_model.pth": "fc35d5ef9f1f4564eea7036f34f4f8ec6000d33d",
}
PUBLISHED_ESM = "esm2_t36_3B_UR50D"


@dataclass(frozen=True)
class PublishedFile:
    """One file of the published set: where it goes in the set and where it comes from."""

    rel: str
    env: str
    default_base: str
    remote: str

    def url(self) -> str:
        base = os.environ.get(self.env) or ""
        if not base and self.env == "VIRNUCPRO_HF_ENDPOINT":
            base = os.environ.get("HF_ENDPOINT", "")  # honour an existing hub mirror setting
        return f"{(base or self.default_base).rstrip('/')}/{self.remote}"


# The hub revision of DNABERT-S whose files are pinned below: the one other projects pin. Its
# file table (sizes, sha256) agrees with the LFS pointer of pytorch_model.bin in a public copy
# and with the text files in tests/data/published-dnabert-s/. fair-esm's files have no
# revisions; their sizes and sha256 are those other projects pin for the same URLs.
DNABERT_S_REVISION = "00e47f96cdea35e4b6f5df89e5419cbe47d490c6"

# Size and sha256 of each published file where known: a download that differs is refused, not
# trusted on first fetch. The classifiers are held to their git blob ids instead.
PUBLISHED_PINS: dict[str, tuple[int, str]] = {
    "dnabert-s/config.json":
        (1025, "d54c142114563aa34ef7c2b54ccc921d08e50cd7c3cd69c439d5e0d2bbcfcdee"),
    "dnabert-s/pytorch_model.bin":
        (468_320_053, "f3cfc3d0541859df64759e758cc4bc40fe1d5760799a7d098a9f9f09501c1e5f"),
    "dnabert-s/tokenizer.json":
        (168_203, "667f5a0e6e9630f7052b004784dda7c7aeba395cc4ca3c01b11b02e6aa29d7b1"),
    "dnabert-s/tokenizer_config.json":
        (268, "f13dbe9968de35aff25b06965f18e30449ec37ed94811bd0c7f97990f3b18ebb"),
    "dnabert-s/special_tokens_map.json":
        (125, "b6d346be366a7d1d48332dbc9fdf3bf8960b5d879522b7799ddba59e76237ee3"),
    f"{PUBLISHED_ESM}.pt":
        (5_678_116_398, "7de8b4082ba15891959ab368b77ce3886697af1efb16d3c9e9e7b0c5d3f07500"),
    f"{PUBLISHED_ESM}-contact-regression.pt":
        (6759, "4da500eab246481dc9c8c95bc7b1d02f2803d761c380b0e95186d4a07d0fc84e"),
}
# What a fetch downloads, for messages: the pinned files, plus the classifiers' few MB.
PUBLISHED_DOWNLOAD = "about 6.2 GB"

_HF = ("VIRNUCPRO_HF_ENDPOINT", "https://huggingface.co")
_ESM = ("VIRNUCPRO_ESM_URL", "https://dl.fbaipublicfiles.com/fair-esm")
_CLS = ("VIRNUCPRO_CLASSIFIER_URL", "https://raw.githubusercontent.com/Li-Jing-1997/VirNucPro/"
        "0f93f2755a7ea1acd3ff1bcf182892f960ef3326")
PUBLISHED: tuple[PublishedFile, ...] = (
    *(PublishedFile(f"dnabert-s/{f}", *_HF, f"zhihan1996/DNABERT-S/resolve/{DNABERT_S_REVISION}/{f}")
      for f in ("config.json", "pytorch_model.bin", "tokenizer.json", "tokenizer_config.json",
                "special_tokens_map.json")),
    PublishedFile(f"{PUBLISHED_ESM}.pt", *_ESM, f"models/{PUBLISHED_ESM}.pt"),
    PublishedFile(f"{PUBLISHED_ESM}-contact-regression.pt", *_ESM,
                  f"regression/{PUBLISHED_ESM}-contact-regression.pt"),
    *(PublishedFile(f, *_CLS, f) for f in ("300_model.pth", "500_model.pth")),
)
