"""Getting the published set into the cache: `fetch_published` downloads what the set lacks
(resuming partial files, each held to its pin or blob id from `catalogue`), records the
manifest after every file, and on failure keeps only what a resume uses, so that `models list`
and `doctor` tell a partial download from a damaged set. Offline (`VIRNUCPRO_OFFLINE=1` or
`HF_HUB_OFFLINE=1`) nothing is downloaded, and the refusal names the ways out.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

from virnucpro.errors import FetchError, ModelError
from virnucpro.models.cache import file_lock, sets_dir
from virnucpro.models.catalogue import PUBLISHED, PUBLISHED_BLOB_IDS, PUBLISHED_PINS
from virnucpro.models.fetch import Checksum, download
from virnucpro.models.manifest import file_entry, read_manifest, write_manifest
from virnucpro.models.modelset import ModelSet, scan_set_folder
from virnucpro.models.set_checks import is_complete

log = logging.getLogger(__name__)


def is_offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("VIRNUCPRO_OFFLINE", "HF_HUB_OFFLINE"))


OFFLINE_WAYS_OUT = (
    "Without network: fetch the set where there is network (`virnucpro models fetch`), copy "
    "that folder here and run `virnucpro models import DIR`; or point --models at a set folder "
    "(`--models PATH`); or try the program with `--models tiny` (random weights: its calls mean "
    "nothing)")


def fetch_published(progress: bool = True) -> ModelSet:
    """Download what the published set lacks (resuming partial files); check what is there.

    A fetch that fails keeps only what a resume uses (whole files in the manifest, non-empty
    `.part` files); the folders it made for nothing are removed, so that `models list` and
    `doctor` tell a partial download from a damaged set (`sets.set_state`).
    """
    root = sets_dir() / "published"
    if is_offline():
        if is_complete(root):
            return scan_set_folder(root, name="published")
        raise ModelError(
            "the published model set is not in the cache and downloads are off "
            "(VIRNUCPRO_OFFLINE / HF_HUB_OFFLINE). " + OFFLINE_WAYS_OUT, path=root)
    with file_lock(sets_dir() / ".published.lock"):
        try:
            _fetch_missing(root, progress)
        except FetchError as exc:
            raise FetchError(exc.reason, url=exc.url, hint=OFFLINE_WAYS_OUT) from exc
        finally:
            _tidy_partial(root)
    return scan_set_folder(root, name="published")


def _fetch_missing(root: Path, progress: bool) -> None:
    files: dict = read_manifest(root).get("files", {})

    def record() -> None:
        root.mkdir(parents=True, exist_ok=True)
        write_manifest(root, {"name": "published", "source": "published",
                              "is_tiny": False, "files": files})

    for item in PUBLISHED:
        dest, known = root / item.rel, files.get(item.rel)
        blob = PUBLISHED_BLOB_IDS.get(item.rel)
        size, pinned = PUBLISHED_PINS.get(item.rel, (None, None))
        if dest.is_file():
            entry = file_entry(dest, item.rel)
            bad = (blob and entry["git_blob_sha1"] != blob) or (
                pinned and entry["sha256"] != pinned) or (
                known and known.get("sha256") != entry["sha256"])
            if not bad:
                files[item.rel] = {**(known or {}), **entry}
                continue
            log.warning("%s does not match its known hash; downloading it again", dest)
            dest.unlink()
        # Known hashes: the classifiers' blob ids and the pinned sha256; else what an earlier
        # fetch recorded.
        expected = (Checksum("git-blob-sha1", blob) if blob else
                    Checksum("sha256", pinned) if pinned else
                    Checksum("sha256", known["sha256"]) if known else None)
        sha = download(item.url(), dest, expected=expected, size=size, progress=progress)
        files[item.rel] = {"size": dest.stat().st_size, "sha256": sha, "url": item.url()}
        if blob:
            files[item.rel].update(git_blob_sha1=blob, published=True)
        record()  # after every file, so that a 6 GB download is never hashed for nothing
    record()


def _tidy_partial(root: Path) -> None:
    """Remove what a resume would not use: empty `.part` files and empty folders."""
    if not root.is_dir():
        return
    for part in root.rglob("*.part"):
        if part.is_file() and part.stat().st_size == 0:
            part.unlink()
    for folder in sorted((p for p in root.rglob("*") if p.is_dir()), reverse=True):
        with contextlib.suppress(OSError):
            folder.rmdir()  # only succeeds when empty
    with contextlib.suppress(OSError):
        root.rmdir()
