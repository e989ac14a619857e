"""`import_set`: a folder's set files copied (or hard-linked) into the cache under a name, with
a manifest, after the checks a run would make (a trained set's training finished, the hashes of
the folder's own manifest, every file loading). Without a name, a folder of the published files
becomes `published`, any other takes the folder's name.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from virnucpro.errors import ChecksumError, ModelError
from virnucpro.models.cache import SET_NAME, file_lock, sets_dir, staging
from virnucpro.models.catalogue import PUBLISHED_ESM
from virnucpro.models.loadcheck import check_loadable
from virnucpro.models.manifest import (
    MANIFEST,
    file_entry,
    read_manifest,
    record_files,
    write_manifest,
)
from virnucpro.models.modelset import TRAINING_RECORD, ModelSet, scan_set_folder
from virnucpro.models.set_checks import usable_problems

log = logging.getLogger(__name__)


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    # A trained set's links: the imported set holds what they point to, as real files.
    src = src.resolve() if src.is_symlink() else src
    try:  # a hard link costs no space; verify_set notices if the source is later edited
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _check_import_name(name: str) -> None:
    if not SET_NAME.fullmatch(name) or name == "tiny":
        raise ModelError(f"cannot import a set as {name!r}: choose another --name "
                         "(letters, digits, '.', '_' and '-'; not 'tiny')")


def import_set(src: Path | str, name: str | None = None) -> ModelSet:
    """Copy (or hard-link) a folder's set files into the cache as `name`, with a manifest.

    Without a name, a folder holding the published files becomes `published`, any other takes
    the folder's name. A classifier named like a published one is checked against its git blob
    id; one that differs is kept as a custom classifier, with a warning. A trained set's links
    are followed (the files they point to are copied) and its training.json comes along.
    """
    found = scan_set_folder(src)
    unfinished = [p for p in usable_problems(found.root) if p.startswith(f"no {TRAINING_RECORD}")]
    if unfinished:
        raise ModelError(unfinished[0], path=found.root)
    if name is not None:
        _check_import_name(name)
    with staging(".import-") as tmp:
        for path in found.files():
            _link_or_copy(path, tmp / path.relative_to(found.root))
        # Also the reference-format twin of a safetensors classifier, and a training's record.
        extra = [p.with_suffix(".pth") for p in found.classifiers.values()
                 if p.suffix == ".safetensors"] + [found.root / TRAINING_RECORD]
        for path in extra:
            if path.is_file():
                shutil.copy2(path.resolve(), tmp / path.name)
        files = record_files(tmp, scan_set_folder(tmp).files())
        for path in extra:
            if path.suffix == ".pth" and (tmp / path.name).is_file():
                files[path.name] = file_entry(tmp / path.name, path.name)
        is_published = found.esm_checkpoint.stem == PUBLISHED_ESM and all(
            files[p.name].get("published") for p in found.classifiers.values())
        name = name or ("published" if is_published else found.root.name)
        _check_import_name(name)
        if name == "published" and not is_published:
            raise ModelError("only the published files can be imported as 'published' "
                             f"({PUBLISHED_ESM}.pt and classifiers with the published git "
                             "blob ids); choose another --name", path=found.root)
        for rel, entry in files.items():
            if entry.get("published") is False and not found.is_tiny:
                log.warning("%s is not the published classifier (git blob id %s); imported "
                            "as a custom classifier", rel, entry["git_blob_sha1"])
        theirs = read_manifest(found.root).get("files", {})
        differ = [r for r, e in files.items()
                  if r in theirs and theirs[r].get("sha256") != e["sha256"]]
        if differ:
            raise ChecksumError(found.root / MANIFEST, expected="the hashes in this manifest",
                                actual="different files: " + ", ".join(differ))
        # Verify means load: a set that would fail at run time is refused here, naming the
        # file of the folder imported from.
        check_loadable(found)
        dest = sets_dir() / name
        with file_lock(sets_dir() / f".{name}.lock"):
            if dest.exists():
                raise ModelError(f"a set named {name!r} already exists; remove that folder or "
                                 "choose another --name", path=dest)
            write_manifest(tmp, {"name": name, "source": "import", "imported_from": str(found.root),
                                 "is_tiny": found.is_tiny, "files": files})
            os.replace(tmp, dest)
    log.info("imported %d files from %s as %r", len(files), found.root, name)
    return scan_set_folder(dest, name=name)
