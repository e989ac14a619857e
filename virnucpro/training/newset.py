"""Writing a trained classifier as a model set, usable at once with `--models NEWSET`.

Layout, as `scan_set_folder` reads it: `dnabert-s/*` and `esm2_*.pt` with its contact-regression
file are symlinks (absolute targets) to the base set's files; `<chunk>_model.pth` (the reference
format) and `<chunk>_model.safetensors` hold the new classifier for the one chunk size trained;
`TINY` is copied when the base is tiny; `manifest.json` (`source: trained`) records each link's
target, size, mtime_ns and sha256 and each classifier file's sha256; `training.json` says how.
Nothing is written in place: a staging folder next to NEWSET, the classifier files and the
manifest there, one rename, and `training.json` last, so a killed write leaves no usable set.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from virnucpro import __version__
from virnucpro.errors import OutputError
from virnucpro.models.cache import sets_dir
from virnucpro.models.manifest import MANIFEST, TRAINED, file_entry, read_manifest, write_manifest
from virnucpro.models.modelset import TINY_MARKER, TRAINING_RECORD, ModelSet
from virnucpro.models.sets import resolve_model_set

log = logging.getLogger(__name__)

_PENDING = ".pending-"  # hidden names while staging: scan_set_folder sees no classifier yet


def _within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_new_set_dest(dest: Path | str, *, force: bool, base: ModelSet | None = None) -> Path:
    """The absolute NEWSET folder, or OutputError: it exists without `force`, it is not a model
    set (`force` replaces only a set, never an unrelated folder), it holds the base set's
    files, or it is the cache's `published` or `tiny`. Cheap: call it before any work."""
    dest = Path(dest).expanduser().absolute()
    if dest.parent.resolve() == sets_dir().resolve() and dest.name in ("published", "tiny"):
        raise OutputError(f"the cache's {dest.name!r} set cannot be replaced by a training; "
                          "choose another NEWSET", path=dest)
    if dest.exists() or dest.is_symlink():
        if not force:
            raise OutputError("exists; use --force to replace the set (the feature cache is "
                              "kept)", path=dest)
        if dest.is_symlink() or not dest.is_dir():
            raise OutputError("exists and is not a model set folder: --force replaces only a "
                              "model set", path=dest)
        if any(dest.iterdir()) and not (dest / MANIFEST).is_file():
            raise OutputError(f"exists and is not a model set (no {MANIFEST}): --force replaces "
                              "only a model set; choose another NEWSET", path=dest)
    if base is not None:
        real = dest.resolve()
        inside = [p for p in base.files() if _within(p.resolve(), real)]
        if inside:
            raise OutputError(f"holds the base set's {inside[0].name}: the new set cannot "
                              "replace the files it links to; choose another NEWSET", path=dest)
    return dest


def _link_base(staging: Path, base: ModelSet) -> dict[str, dict]:
    """Symlink the base set's DNABERT-S and ESM files into `staging`; their manifest entries."""
    known = read_manifest(base.root).get("files", {})
    entries: dict[str, dict] = {}
    skip = {*base.classifiers.values(), base.root / TINY_MARKER}
    for path in base.files():
        if path in skip:
            continue
        rel = path.relative_to(base.root).as_posix()
        target = path.resolve()  # the real file: a base that is itself trained is not chained
        st = target.stat()
        recorded = known.get(rel, {})
        if recorded.get("sha256") and recorded.get("size") == st.st_size:
            sha = recorded["sha256"]
        else:  # a base folder without a manifest: hash once, here
            log.info("hashing %s (the base set records no sha256 for it)", target)
            sha = file_entry(target, rel)["sha256"]
        link = staging / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, link)
        entries[rel] = {"link": str(target), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                        "sha256": sha}
    return entries


def _swap(staging: Path, dest: Path) -> None:
    """Rename the staging folder to `dest`; an old set there is set aside first, removed last."""
    old = None
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
        os.rename(dest, old)
    try:
        os.rename(staging, dest)
    except OSError as exc:
        if old is not None:
            os.rename(old, dest)
        raise OutputError(f"cannot move the new set into place: {exc.strerror or exc} (did "
                          "another process create it meanwhile?)", path=dest) from exc
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_new_set(dest: Path | str, base: ModelSet, classifier, chunk_size: int, training: dict,
                  *, force: bool) -> ModelSet:
    """Write the set (layout in the module docstring) and return it, resolved and checked.

    `classifier`: an MLPClassifier whose input is the base set's feature width; `training`:
    what training.json holds (JSON-serialisable), to which a `model_set` section is added (the
    classifier files' sha256, the weights' `state_sha256`, the base) and, when absent,
    `virnucpro_version`. An existing `dest` needs `force` and is replaced only at the swap.
    """
    from virnucpro.models.classifier_io import (
        load_classifier,
        save_classifier_safetensors,
        write_reference_classifier,
    )
    from virnucpro.training.fit import state_sha256

    dest = check_new_set_dest(dest, force=force, base=base)
    width = load_classifier(next(iter(base.classifiers.values()))).input_dim
    if classifier.input_dim != width:
        raise OutputError(f"the classifier takes {classifier.input_dim} features, the base set "
                          f"{base.name!r} gives {width}", path=dest)
    classifier = classifier.to("cpu").eval()
    dest.parent.mkdir(parents=True, exist_ok=True)
    # Visible, not hidden: left by a kill, `models list` shows it as an incomplete set.
    staging = Path(tempfile.mkdtemp(prefix=f"{dest.name}.partial-", dir=dest.parent))
    try:
        os.chmod(staging, 0o755)  # mkdtemp's 0700 would lock others out of a shared folder
        files = _link_base(staging, base)
        if (base.root / TINY_MARKER).is_file():
            shutil.copyfile(base.root / TINY_MARKER, staging / TINY_MARKER)
            files[TINY_MARKER] = file_entry(staging / TINY_MARKER, TINY_MARKER)
        pending = {f"{chunk_size}_model.pth": staging / f"{_PENDING}{chunk_size}_model.pth",
                   f"{chunk_size}_model.safetensors":
                       staging / f"{_PENDING}{chunk_size}_model.safetensors"}
        write_reference_classifier(pending[f"{chunk_size}_model.pth"], classifier)
        save_classifier_safetensors(pending[f"{chunk_size}_model.safetensors"], classifier)
        for rel, path in pending.items():
            os.chmod(path, 0o644)  # safetensors writes 0600; a set in a shared cache is read by all
            files[rel] = file_entry(path, rel)
        write_manifest(staging, {
            "name": dest.name, "source": TRAINED, "is_tiny": base.is_tiny,
            "chunk_size": chunk_size, "files": files,
            "base": {"name": base.name, "root": str(base.root),
                     "source": read_manifest(base.root).get("source")}})
        for rel, path in pending.items():
            os.replace(path, staging / rel)
        record = {"virnucpro_version": __version__, **training, "model_set": {
            "chunk_size": chunk_size, "base": base.name, "base_root": str(base.root),
            "weights_sha256": state_sha256(classifier.state_dict()),
            "classifier_files": {rel: files[rel]["sha256"] for rel in pending}}}
        hidden = staging / f".{TRAINING_RECORD}.tmp"
        hidden.write_text(json.dumps(record, indent=2, default=str) + "\n")
        _swap(staging, dest)
        # Last: until this rename the set is incomplete (`is_complete`, `check_usable`).
        os.replace(dest / hidden.name, dest / TRAINING_RECORD)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone already after a successful swap
    log.info("wrote the new model set %s (chunk size %d, base %r)", dest, chunk_size, base.name)
    return resolve_model_set(str(dest))
