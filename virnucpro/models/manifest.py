"""A set's `manifest.json`: every file's size and sha256 (published classifiers also their git
blob id), its name and `source` (published, tiny, import, trained), written when the set is
fetched, generated, imported or trained, and read back by the checks (`set_checks`). An
unreadable manifest reads as absent (with a warning), so that fetching again repairs the set.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path

from virnucpro.errors import ModelError
from virnucpro.models.catalogue import PUBLISHED_BLOB_IDS
from virnucpro.models.fetch import hash_file

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
TRAINED = "trained"  # the manifest `source` of a set written by a training
_MANIFEST_FORMAT = 1


def read_manifest(root: Path, *, strict: bool = False) -> dict:
    """A set's manifest, {} when absent; unreadable: {} with a warning, or ModelError if strict."""
    try:
        data = json.loads((Path(root) / MANIFEST).read_text())
        if not isinstance(data, dict) or not isinstance(data.get("files", {}), dict):
            raise ValueError("not a manifest")
        return data
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        if strict:
            raise ModelError(f"unreadable {MANIFEST}: {exc}", path=root) from exc
        # Treated as absent, so that fetching or generating again can repair the set.
        log.warning("%s: unreadable %s (%s); ignoring it", root, MANIFEST, exc)
        return {}


def write_manifest(root: Path, data: dict) -> None:
    tmp = Path(root) / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps({"format": _MANIFEST_FORMAT, **data}, indent=2, sort_keys=True))
    os.replace(tmp, Path(root) / MANIFEST)


def file_entry(path: Path, rel: str) -> dict:
    """A manifest entry; published classifiers also get their git blob id checked and recorded."""
    hashes = hash_file(path, git_blob=rel in PUBLISHED_BLOB_IDS)
    entry: dict = {"size": path.stat().st_size, "sha256": hashes["sha256"]}
    if rel in PUBLISHED_BLOB_IDS:
        entry["git_blob_sha1"] = hashes["git-blob-sha1"]
        entry["published"] = hashes["git-blob-sha1"] == PUBLISHED_BLOB_IDS[rel]
    return entry


def record_files(root: Path, paths: Iterable[Path]) -> dict:
    """The manifest's `files` for `paths` (files under `root`), keyed by their path in the set."""
    return {p.relative_to(root).as_posix(): file_entry(p, p.relative_to(root).as_posix())
            for p in paths}
