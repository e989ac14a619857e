"""The named model sets: `tiny`, `published`, a folder, or the name of a set in the cache.

`resolve_model_set` turns such a name into a `ModelSet` (generating the tiny set, fetching the
published one when asked; a trained set's links to its base checked by `set_checks`);
`list_sets` and `set_state` say which sets the cache holds and where each stands, unhashed.
Beneath: `catalogue`, `cache`, `manifest`, `modelset`, `set_checks`, `published`, `tiny/`.
"""

from __future__ import annotations

import os
from pathlib import Path

from virnucpro.errors import ModelError
from virnucpro.models.cache import SET_NAME, sets_dir
from virnucpro.models.catalogue import PUBLISHED_PINS
from virnucpro.models.manifest import read_manifest
from virnucpro.models.modelset import ModelSet, scan_set_folder
from virnucpro.models.published import fetch_published
from virnucpro.models.set_checks import check_usable, is_complete
from virnucpro.models.tiny.build import ensure_tiny


def resolve_model_set(spec: str, *, fetch_missing: bool = True, progress: bool = True,
                      check: bool = True) -> ModelSet:
    """`tiny`, `published`, a folder path, or the name of an imported set.

    `check`: refuse a trained set whose training did not finish or whose links to its base
    set are stale (`set_checks.check_usable`); off for commands that only report on a set
    (`verify`).
    """
    if spec == "tiny":
        return ensure_tiny()
    if spec == "published":
        root = sets_dir() / "published"
        if is_complete(root):
            return scan_set_folder(root, name="published")
        if not fetch_missing:
            raise ModelError("the published model set is not in the cache: run `virnucpro models "
                             "fetch` (offline: `virnucpro models import DIR`)", path=root)
        return fetch_published(progress=progress)
    pathlike = "/" in spec or os.sep in spec or spec.startswith((".", "~"))
    if not pathlike and SET_NAME.fullmatch(spec) and (sets_dir() / spec).is_dir():
        if check:
            check_usable(sets_dir() / spec)
        return scan_set_folder(sets_dir() / spec, name=spec)
    if Path(spec).expanduser().is_dir():
        if check:
            check_usable(Path(spec).expanduser())
        return scan_set_folder(spec)
    known = ", ".join(s["name"] for s in list_sets())
    raise ModelError(f"unknown model set {spec!r}: neither a folder nor a known set ({known})")


def as_model_set(models: ModelSet | str) -> ModelSet:
    """A resolved set as it is; a name or folder resolved (never downloaded here)."""
    if isinstance(models, ModelSet):
        return models
    return resolve_model_set(str(models), fetch_missing=False, progress=False)


READY, PARTIAL, DAMAGED, INCOMPLETE, ABSENT = (
    "ready", "partial", "damaged", "incomplete", "absent")


def set_state(root: Path) -> str:
    """Where a set's folder stands, without hashing: `ready`; `absent` (no file in it);
    for the published set `partial` (a download to resume: every recorded file whole, the rest
    missing or in `.part` files) or `damaged` (a recorded or pinned file of the wrong size, or
    an unreadable manifest); for another set `incomplete`."""
    root = Path(root)
    if not root.is_dir() or not any(p.is_file() for p in root.rglob("*")):
        return ABSENT
    if is_complete(root):
        return READY
    try:
        manifest = read_manifest(root, strict=True)
    except ModelError:
        return DAMAGED
    if manifest.get("source", "published" if root.name == "published" else None) != "published":
        return INCOMPLETE
    for rel, entry in manifest.get("files", {}).items():
        p = root / rel
        if not p.is_file() or p.stat().st_size != entry.get("size"):
            return DAMAGED
    for rel, (size, _sha) in PUBLISHED_PINS.items():
        if (root / rel).is_file() and (root / rel).stat().st_size != size:
            return DAMAGED
    return PARTIAL


def list_sets() -> list[dict]:
    """`published`, `tiny` and every imported set, with where they stand (`set_state`)."""
    base = sets_dir()
    names = {"published", "tiny"}
    if base.is_dir():
        names |= {p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")}
    out = []
    for name in sorted(names, key=lambda n: (n not in ("published", "tiny"), n)):
        root = base / name
        manifest = read_manifest(root)
        state = set_state(root)
        present = state != ABSENT
        out.append({
            "name": name, "path": str(root), "present": present, "state": state,
            "complete": state == READY,
            "is_tiny": bool(manifest.get("is_tiny", name == "tiny")),
            "source": manifest.get("source"),
            # The set's own bytes: a trained set's links to its base count for nothing.
            "size_bytes": sum(p.stat().st_size for p in root.rglob("*")
                              if p.is_file() and not p.is_symlink()) if present else 0,
        })
    return out


def human_size(size: float) -> str:
    """A size for people: 512 B, 4.2 MB, 12.1 GB (powers of 1000)."""
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size} B"  # pragma: no cover
