"""`ModelSet`, the files of one model set found on disk, and `scan_set_folder`, which finds them.

A set is a folder laid out as ARCHITECTURE.md section 3 says (`dnabert-s/`, `esm2_*.pt` with its
contact-regression file, `<chunk size>_model.pth|.safetensors`), plus a `TINY` marker for the
tiny set and, for a trained set, its `training.json`. Finding the files checks nothing but their
presence; the checks are in `set_checks` and `loadcheck`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from virnucpro.errors import ModelError
from virnucpro.models.manifest import read_manifest

TINY_MARKER = "TINY"
TRAINING_RECORD = "training.json"
_CLASSIFIER = re.compile(r"(\d+)_model\.(pth|safetensors)")
_DNABERT_REQUIRED = ("config.json", "tokenizer.json")
_DNABERT_OPTIONAL = ("tokenizer_config.json", "special_tokens_map.json")
_DNABERT_WEIGHTS = ("model.safetensors", "pytorch_model.bin")


@dataclass(frozen=True)
class ModelSet:
    """The files of one model set, found on disk."""

    name: str
    root: Path
    dnabert_dir: Path
    esm_checkpoint: Path
    classifiers: dict[int, Path] = field(hash=False)
    is_tiny: bool = False

    @property
    def esm_regression(self) -> Path:
        return self.esm_checkpoint.with_name(f"{self.esm_checkpoint.stem}-contact-regression.pt")

    def classifier_path(self, chunk_size: int) -> Path:
        if chunk_size not in self.classifiers:
            have = ", ".join(str(c) for c in sorted(self.classifiers)) or "none"
            raise ModelError(f"model set {self.name!r} has no classifier for chunk size "
                             f"{chunk_size} (available: {have})", path=self.root)
        return self.classifiers[chunk_size]

    def files(self) -> list[Path]:
        """Every file of the set that this project reads, plus the tiny marker."""
        out = [self.dnabert_dir / f for f in (*_DNABERT_REQUIRED, *_DNABERT_OPTIONAL)
               if (self.dnabert_dir / f).is_file()]
        out.append(_dnabert_weights(self.dnabert_dir))
        out += [self.esm_checkpoint, self.esm_regression]
        out += [self.classifiers[c] for c in sorted(self.classifiers)]
        if (self.root / TINY_MARKER).is_file():
            out.append(self.root / TINY_MARKER)
        return out

    def describe(self) -> dict:
        """What run.json records about the set (hashes from the manifest, when there is one)."""
        manifest = read_manifest(self.root)
        recorded = manifest.get("files", {})
        files = []
        for path in self.files():
            rel = path.relative_to(self.root).as_posix()
            entry = recorded.get(rel, {})
            files.append({"path": rel, "size": path.stat().st_size,
                          "sha256": entry.get("sha256")})
        return {"name": self.name, "root": str(self.root), "is_tiny": self.is_tiny,
                "source": manifest.get("source"), "files": files}


def _dnabert_weights(folder: Path) -> Path:
    for name in _DNABERT_WEIGHTS:
        if (folder / name).is_file():
            return folder / name
    return folder / _DNABERT_WEIGHTS[-1]


def scan_set_folder(path: Path | str, *, name: str | None = None) -> ModelSet:
    """Find a set's files in `path`; other files are ignored. ModelError names what is missing."""
    root = Path(path).expanduser().absolute()
    if not root.is_dir():
        raise ModelError("not a folder holding a model set", path=root)
    missing: list[str] = []
    dnabert = root / "dnabert-s"
    if not dnabert.is_dir():
        missing.append("dnabert-s/ (the DNABERT-S folder)")
    else:
        missing += [f"dnabert-s/{f}" for f in _DNABERT_REQUIRED if not (dnabert / f).is_file()]
        if not _dnabert_weights(dnabert).is_file():
            missing.append("dnabert-s/pytorch_model.bin (or model.safetensors)")
    esm = sorted(p for p in root.glob("esm2_*.pt") if not p.stem.endswith("-contact-regression"))
    if not esm:
        missing.append("esm2_*.pt (a fair-esm ESM-2 checkpoint)")
    elif len(esm) > 1:
        raise ModelError("several ESM-2 checkpoints (" + ", ".join(p.name for p in esm)
                         + "); a set holds one", path=root)
    elif not (reg := esm[0].with_name(f"{esm[0].stem}-contact-regression.pt")).is_file():
        missing.append(f"{reg.name} (the contact-regression file of {esm[0].name})")
    classifiers: dict[int, Path] = {}
    for p in sorted(root.iterdir()):
        m = _CLASSIFIER.fullmatch(p.name)
        # A safetensors file wins over a .pth of the same size: nothing to unpickle.
        if m and p.is_file() and (int(m[1]) not in classifiers or m[2] == "safetensors"):
            classifiers[int(m[1])] = p
    if not classifiers:
        missing.append("300_model.pth and/or 500_model.pth (a classifier)")
    if missing:
        broken = [p for d in (root, dnabert) if d.is_dir() for p in sorted(d.iterdir())
                  if p.is_symlink() and not p.exists()]
        note = ("; broken links: " + ", ".join(f"{p.relative_to(root)} -> {os.readlink(p)}"
                                                for p in broken)) if broken else ""
        raise ModelError("incomplete model set, missing: " + "; ".join(missing) + note,
                         path=root)
    manifest = read_manifest(root)
    return ModelSet(name=name or manifest.get("name") or root.name, root=root,
                    dnabert_dir=dnabert, esm_checkpoint=esm[0], classifiers=classifiers,
                    is_tiny=(root / TINY_MARKER).is_file() or bool(manifest.get("is_tiny")))
