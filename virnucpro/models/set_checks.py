"""Checks of a model set beyond finding its files: `is_complete` (no hashing: the files there
with the sizes the manifest records), `verify_set` (every hash recomputed, the published
classifiers held to their git blob ids) and `usable_problems` / `check_usable` (the stat-only
check of a trained set's links to its base set, made at every load). Whether the files load is
`loadcheck`'s question."""

from __future__ import annotations

import os
from pathlib import Path

from virnucpro.errors import ModelError
from virnucpro.models.catalogue import PUBLISHED, PUBLISHED_BLOB_IDS, PUBLISHED_PINS
from virnucpro.models.fetch import hash_file
from virnucpro.models.manifest import MANIFEST, TRAINED, read_manifest
from virnucpro.models.modelset import TRAINING_RECORD, ModelSet, scan_set_folder


def is_complete(root: Path) -> bool:
    """Cheap check (no hashing): the files are there with the sizes the manifest records."""
    manifest = read_manifest(root)
    if not manifest.get("files"):
        return False
    # A fetch interrupted between two files leaves a manifest of the files done so far.
    if manifest.get("source") == "published" and any(
            f.rel not in manifest["files"] for f in PUBLISHED):
        return False
    for rel, entry in manifest["files"].items():
        p = Path(root) / rel
        if not p.is_file() or p.stat().st_size != entry.get("size"):
            return False
    # A killed training leaves no training.json; a changed base file makes the links stale.
    if usable_problems(Path(root), manifest):
        return False
    try:
        scan_set_folder(root)
    except ModelError:
        return False
    return True


def verify_set(model_set: ModelSet) -> list[str]:
    """Recompute every hash; the problems found, empty when the set is intact."""
    try:
        manifest = read_manifest(model_set.root, strict=True)
    except ModelError as exc:
        return [str(exc)]
    recorded: dict = manifest.get("files", {})
    problems = []
    if not manifest:
        problems.append(f"no {MANIFEST}: sizes and hashes unknown "
                        "(`virnucpro models import DIR` records them)")
    present = {p.relative_to(model_set.root).as_posix() for p in model_set.files()}
    problems += usable_problems(model_set.root, manifest)
    if manifest:
        problems += [f"{rel}: not in the manifest" for rel in sorted(present - set(recorded))]
    if manifest.get("source") == "published":
        problems += [f"{f.rel}: missing (fetch it with `virnucpro models fetch`)"
                     for f in PUBLISHED if f.rel not in recorded]
    # The reference classifiers are also held to FIDELITY's blob ids, not only to our record.
    from_hub = manifest.get("source") == "published"
    for rel, entry in sorted(recorded.items()):
        path = model_set.root / rel
        linked = bool(entry.get("link"))  # its link and stat problems are reported above
        if not path.is_file():
            if not linked:
                problems.append(f"{rel}: missing")
            continue
        if path.stat().st_size != entry.get("size"):
            if linked:
                continue
            problems.append(f"{rel}: size {path.stat().st_size}, manifest says {entry.get('size')}")
            continue
        published = rel in PUBLISHED_BLOB_IDS and (from_hub or entry.get("published"))
        hashes = hash_file(path, git_blob=bool(published))
        if hashes["sha256"] != entry.get("sha256"):
            problems.append(f"{rel}: sha256 {hashes['sha256']}, manifest says {entry.get('sha256')}")
        elif linked and path.stat().st_mtime_ns != entry.get("mtime_ns"):
            problems.append(f"{rel}: the content is unchanged (sha256 matches), only the base "
                            "file's modification time differs")
        pin = PUBLISHED_PINS.get(rel) if from_hub else None
        if pin is not None and hashes["sha256"] != pin[1]:
            problems.append(f"{rel}: sha256 {hashes['sha256']}, the published file (pinned) is "
                            f"{pin[1]}: `virnucpro models fetch` downloads it again")
        if published and hashes["git-blob-sha1"] != PUBLISHED_BLOB_IDS[rel]:
            problems.append(f"{rel}: git blob id {hashes['git-blob-sha1']}, the published "
                            f"file is {PUBLISHED_BLOB_IDS[rel]}")
    return problems


def _when(ns: object) -> str:
    import datetime

    if not isinstance(ns, int):
        return "unknown"
    return datetime.datetime.fromtimestamp(ns / 1e9).isoformat(timespec="microseconds")


def usable_problems(root: Path, manifest: dict | None = None) -> list[str]:
    """Why a trained set cannot be used as it stands (stat calls only, no hashing): its
    training did not finish, or a link to its base set no longer matches the manifest."""
    root = Path(root)
    manifest = read_manifest(root) if manifest is None else manifest
    problems = []
    if manifest.get("source") == TRAINED and not (root / TRAINING_RECORD).is_file():
        problems.append(f"no {TRAINING_RECORD}: the training writing this set did not finish; "
                        "remove the folder and train again")
    for rel, entry in sorted(manifest.get("files", {}).items()):
        target = entry.get("link")
        if not target:
            continue
        path = root / rel
        if not path.is_symlink():
            problems.append(f"{rel}: no longer a link to the base set's {target}")
        elif os.readlink(path) != target:
            problems.append(f"{rel}: links to {os.readlink(path)}, the manifest says {target}")
        elif not os.path.isfile(target):
            problems.append(f"{rel} -> {target}: the base set's file is missing")
        else:
            st = os.stat(target)
            if st.st_size != entry.get("size") or st.st_mtime_ns != entry.get("mtime_ns"):
                problems.append(
                    f"{rel} -> {target}: the base set's file changed since training (now "
                    f"{st.st_size} bytes, modified {_when(st.st_mtime_ns)}; at training "
                    f"{entry.get('size')} bytes, modified {_when(entry.get('mtime_ns'))})")
    return problems


def check_usable(root: Path) -> None:
    """Raise ModelError naming every `usable_problems` of the set in `root`."""
    problems = usable_problems(root)
    if problems:
        raise ModelError("this model set cannot be used: " + "; ".join(problems)
                         + " (`virnucpro models verify` hashes the files in full)", path=root)
