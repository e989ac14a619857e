"""Model sets: the `published` and `tiny` sets, imported folders, the cache and manifests.

A set is a folder laid out as ARCHITECTURE.md section 3 says (`dnabert-s/`, `esm2_*.pt` with its
contact-regression file, `<chunk size>_model.pth|.safetensors`). Sets live in
`cache_root()/sets/<name>/`, each with a `manifest.json` recording every file's size and sha256,
written when the set is fetched, generated or imported and checked by `verify_set`.
A trained set (`source: trained`, written by `virnucpro.training.newset`) links the big files of
its base set (symlinks; the manifest records each target's size and mtime, checked whenever the
set is resolved) and is complete only once its `training.json` is there.

Environment: `VIRNUCPRO_HOME` (cache root), `VIRNUCPRO_HF_ENDPOINT` (or `HF_ENDPOINT`; default
https://huggingface.co), `VIRNUCPRO_ESM_URL` (a mirror of https://dl.fbaipublicfiles.com/fair-esm
with its `models/` and `regression/` folders), `VIRNUCPRO_CLASSIFIER_URL` (the folder holding
`300_model.pth` and `500_model.pth`), `VIRNUCPRO_OFFLINE=1` or `HF_HUB_OFFLINE=1` (no downloads).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from virnucpro.errors import ChecksumError, FetchError, ModelError
from virnucpro.models.fetch import Checksum, download, hash_file

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
TINY_MARKER = "TINY"
TRAINING_RECORD = "training.json"
TRAINED = "trained"  # the manifest `source` of a set written by a training
_MANIFEST_FORMAT = 1
_SET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_CLASSIFIER = re.compile(r"(\d+)_model\.(pth|safetensors)")
_DNABERT_REQUIRED = ("config.json", "tokenizer.json")
_DNABERT_OPTIONAL = ("tokenizer_config.json", "special_tokens_map.json")
_DNABERT_WEIGHTS = ("model.safetensors", "pytorch_model.bin")

# Git blob ids of the reference classifiers (FIDELITY.md section 5). A dict, read at call time,
# so that tests can point it at their fake files.
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
# trusted on first fetch. The classifiers are held to their git blob ids instead. A dict, read
# at call time, so that tests can point it at their fake files.
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


def cache_root() -> Path:
    """`$VIRNUCPRO_HOME` when set, else the user cache folder of virnucpro."""
    home = os.environ.get("VIRNUCPRO_HOME")
    if home:
        return Path(home).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("virnucpro"))


def sets_dir() -> Path:
    return cache_root() / "sets"


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


# -- manifests -------------------------------------------------------------------------------

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


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock (fcntl.flock) held for the block; a no-op where fcntl is absent."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # not POSIX: racing processes are the user's problem there
        yield
        return
    with open(path, "a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


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
    from virnucpro.models.set_checks import usable_problems

    if usable_problems(Path(root), manifest):
        return False
    try:
        scan_set_folder(root)
    except ModelError:
        return False
    return True


@contextlib.contextmanager
def _staging(prefix: str) -> Iterator[Path]:
    """A hidden temp folder next to the sets, renamed into place by the caller, else removed."""
    sets_dir().mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=sets_dir()))
    os.chmod(tmp, 0o755)  # mkdtemp's 0700 would lock others out of a shared cache
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _move_into_place(tmp: Path, root: Path) -> None:
    if root.exists():  # a stale or broken copy: set it aside first, a folder rename cannot overwrite
        old = root.with_name(f".{root.name}-old-{os.getpid()}")
        root.rename(old)
        shutil.rmtree(old, ignore_errors=True)
    os.replace(tmp, root)


def _record(root: Path) -> dict:
    found = scan_set_folder(root)
    return {p.relative_to(root).as_posix(): file_entry(p, p.relative_to(root).as_posix())
            for p in found.files()}


# -- the named sets ---------------------------------------------------------------------------

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
    `doctor` tell a partial download from a damaged set (`set_state`).
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


def ensure_tiny() -> ModelSet:
    """The tiny set, generated deterministically into the cache on first use."""
    from virnucpro.models.tiny import TINY_VERSION, build_tiny_set

    root = sets_dir() / "tiny"

    def current() -> bool:
        return (read_manifest(root).get("tiny_version") == TINY_VERSION
                and is_complete(root))

    if not current():
        with file_lock(sets_dir() / ".tiny.lock"):
            if not current():  # another process may have made it while we waited
                log.info("generating the tiny model set in %s", root)
                with _staging(".tiny-") as tmp:
                    build_tiny_set(tmp)
                    write_manifest(tmp, {"name": "tiny", "source": "tiny", "is_tiny": True,
                                         "tiny_version": TINY_VERSION, "files": _record(tmp)})
                    _move_into_place(tmp, root)
    return scan_set_folder(root, name="tiny")


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    # A trained set's links: the imported set holds what they point to, as real files.
    src = src.resolve() if src.is_symlink() else src
    try:  # a hard link costs no space; verify_set notices if the source is later edited
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _check_import_name(name: str) -> None:
    if not _SET_NAME.fullmatch(name) or name == "tiny":
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
    from virnucpro.models.set_checks import usable_problems

    unfinished = [p for p in usable_problems(found.root) if p.startswith(f"no {TRAINING_RECORD}")]
    if unfinished:
        raise ModelError(unfinished[0], path=found.root)
    if name is not None:
        _check_import_name(name)
    with _staging(".import-") as tmp:
        for path in found.files():
            _link_or_copy(path, tmp / path.relative_to(found.root))
        # Also the reference-format twin of a safetensors classifier, and a training's record.
        extra = [p.with_suffix(".pth") for p in found.classifiers.values()
                 if p.suffix == ".safetensors"] + [found.root / TRAINING_RECORD]
        for path in extra:
            if path.is_file():
                shutil.copy2(path.resolve(), tmp / path.name)
        files = _record(tmp)
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
        from virnucpro.models.loadcheck import check_loadable

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


def resolve_model_set(spec: str, *, fetch_missing: bool = True, progress: bool = True,
                      check: bool = True) -> ModelSet:
    """`tiny`, `published`, a folder path, or the name of an imported set.

    `check`: refuse a trained set whose training did not finish or whose links to its base
    set are stale (`set_checks.check_usable`); off for commands that only report on a set
    (`verify`).
    """
    from virnucpro.models.set_checks import check_usable

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
    if not pathlike and _SET_NAME.fullmatch(spec) and (sets_dir() / spec).is_dir():
        if check:
            check_usable(sets_dir() / spec)
        return scan_set_folder(sets_dir() / spec, name=spec)
    if Path(spec).expanduser().is_dir():
        if check:
            check_usable(Path(spec).expanduser())
        return scan_set_folder(spec)
    known = ", ".join(s["name"] for s in list_sets())
    raise ModelError(f"unknown model set {spec!r}: neither a folder nor a known set ({known})")


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
