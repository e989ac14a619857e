"""Model sets: fetching the published set from a local server, the tiny set, import, verify."""

from __future__ import annotations

import hashlib
import shutil
import threading
from pathlib import Path

import pytest

from virnucpro.errors import ChecksumError, FetchError, ModelError
from virnucpro.models import catalogue, fetch, sets
from virnucpro.models.cache import cache_root
from virnucpro.models.catalogue import PUBLISHED
from virnucpro.models.manifest import read_manifest, write_manifest
from virnucpro.models.modelset import scan_set_folder
from virnucpro.models.published import fetch_published
from virnucpro.models.set_checks import is_complete, verify_set
from virnucpro.models.set_import import import_set
from virnucpro.models.sets import list_sets, resolve_model_set
from virnucpro.models.tiny.build import ensure_tiny

HUB = f"zhihan1996/DNABERT-S/resolve/{catalogue.DNABERT_S_REVISION}"
REAL_BLOB_IDS = dict(catalogue.PUBLISHED_BLOB_IDS)


def _blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@pytest.fixture(autouse=True)
def _own_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("VIRNUCPRO_HOME", str(home))
    for var in ("VIRNUCPRO_OFFLINE", "HF_HUB_OFFLINE", "HF_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(fetch, "RETRY_DELAYS_S", (0.0, 0.0, 0.0))
    return home


@pytest.fixture(scope="module")
def published_like(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny weights written as the published files come (`build_tiny_set(published_like=
    True)`): what the fake hub serves under the published names, so that fetched and
    imported sets load."""
    from virnucpro.models.tiny.build import build_tiny_set

    folder = tmp_path_factory.mktemp("published-like")
    build_tiny_set(folder, published_like=True)
    return folder


@pytest.fixture
def hub(file_server, monkeypatch: pytest.MonkeyPatch, published_like: Path):
    """The published-like files on the local server under the published names, the env vars
    pointing at it, and the classifiers' blob ids and the other files' pins pointed at them."""
    served = {
        **{f"hf/{HUB}/{name}": (published_like / "dnabert-s" / name).read_bytes() for name in (
            "config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
            "pytorch_model.bin")},
        "esm/models/esm2_t36_3B_UR50D.pt": (published_like / "esm2_t2_tiny.pt").read_bytes(),
        "esm/regression/esm2_t36_3B_UR50D-contact-regression.pt":
            (published_like / "esm2_t2_tiny-contact-regression.pt").read_bytes(),
        "cls/300_model.pth": (published_like / "300_model.pth").read_bytes(),
        "cls/500_model.pth": (published_like / "500_model.pth").read_bytes(),
    }
    for rel, data in served.items():
        (file_server.root / rel).parent.mkdir(parents=True, exist_ok=True)
        (file_server.root / rel).write_bytes(data)
    monkeypatch.setenv("VIRNUCPRO_HF_ENDPOINT", f"{file_server.url}/hf")
    monkeypatch.setenv("VIRNUCPRO_ESM_URL", f"{file_server.url}/esm/")
    monkeypatch.setenv("VIRNUCPRO_CLASSIFIER_URL", f"{file_server.url}/cls")
    for cs in (300, 500):
        monkeypatch.setitem(catalogue.PUBLISHED_BLOB_IDS, f"{cs}_model.pth",
                            _blob_id(served[f"cls/{cs}_model.pth"]))
    for item in PUBLISHED:  # the pins pointed at the fakes too
        if item.rel in catalogue.PUBLISHED_PINS:
            data = served[_served_name(item.rel)]
            monkeypatch.setitem(catalogue.PUBLISHED_PINS, item.rel,
                                (len(data), hashlib.sha256(data).hexdigest()))
    file_server.served = served
    return file_server


def _served_name(rel: str) -> str:
    if rel.startswith("dnabert-s/"):
        return f"hf/{HUB}/{rel.removeprefix('dnabert-s/')}"
    if rel.endswith("-contact-regression.pt"):
        return f"esm/regression/{rel}"
    return f"esm/models/{rel}" if rel.endswith(".pt") else f"cls/{rel}"


def test_the_published_urls_are_the_documented_ones():
    urls = {f.rel: f.url() for f in PUBLISHED}
    assert urls["dnabert-s/pytorch_model.bin"] == (
        "https://huggingface.co/zhihan1996/DNABERT-S/resolve/"
        "00e47f96cdea35e4b6f5df89e5419cbe47d490c6/pytorch_model.bin")
    assert urls["esm2_t36_3B_UR50D-contact-regression.pt"] == (
        "https://dl.fbaipublicfiles.com/fair-esm/regression/"
        "esm2_t36_3B_UR50D-contact-regression.pt")
    assert urls["500_model.pth"] == (
        "https://raw.githubusercontent.com/Li-Jing-1997/VirNucPro/"
        "0f93f2755a7ea1acd3ff1bcf182892f960ef3326/500_model.pth")
    assert REAL_BLOB_IDS == {"300_model.pth": "a0b5b85e7c1e44f00cde146d091beb82b2c8e855",
                             "500_model.pth": "fc35d5ef9f1f4564eea7036f34f4f8ec6000d33d"}


def test_fetch_published_downloads_every_file_and_records_their_hashes(hub, _own_home):
    model_set = fetch_published(progress=False)
    assert model_set.root == _own_home / "sets" / "published"
    assert model_set.classifiers.keys() == {300, 500} and not model_set.is_tiny
    manifest = read_manifest(model_set.root)
    assert len(manifest["files"]) == len(PUBLISHED) == len(hub.requests)
    esm = manifest["files"]["esm2_t36_3B_UR50D.pt"]
    assert esm["sha256"] == hashlib.sha256(hub.served["esm/models/esm2_t36_3B_UR50D.pt"]).hexdigest()
    assert manifest["files"]["300_model.pth"]["published"] is True
    assert verify_set(model_set) == []
    described = {f["path"]: f["sha256"] for f in model_set.describe()["files"]}
    assert described["esm2_t36_3B_UR50D.pt"] == esm["sha256"]


def test_a_second_fetch_downloads_nothing(hub):
    fetch_published(progress=False)
    before = len(hub.requests)
    fetch_published(progress=False)
    assert len(hub.requests) == before
    assert resolve_model_set("published").name == "published"
    assert len(hub.requests) == before


def test_fetch_published_resumes_a_download_cut_midway(hub):
    rel = "esm/models/esm2_t36_3B_UR50D.pt"
    hub.cut_after[rel] = 100_000
    model_set = fetch_published(progress=False)
    assert hub.ranged(rel) == ["bytes=100000-"]
    assert model_set.esm_checkpoint.read_bytes() == hub.served[rel]


def test_a_fetch_interrupted_between_files_is_not_ready_and_is_completed(hub):
    model_set = fetch_published(progress=False)
    manifest = read_manifest(model_set.root)
    del manifest["files"]["500_model.pth"]  # as if stopped before the last file
    (model_set.root / "500_model.pth").unlink()
    write_manifest(model_set.root, manifest)
    assert not is_complete(model_set.root)
    assert any("500_model.pth: missing" in p for p in verify_set(model_set))
    before = len(hub.requests)
    again = resolve_model_set("published")
    assert 500 in again.classifiers and len(hub.requests) == before + 1


def test_a_classifier_that_is_not_the_published_one_is_refused(hub, _own_home):
    catalogue.PUBLISHED_BLOB_IDS["500_model.pth"] = REAL_BLOB_IDS["500_model.pth"]
    with pytest.raises(ChecksumError, match=REAL_BLOB_IDS["500_model.pth"]):
        fetch_published(progress=False)
    folder = _own_home / "sets" / "published"
    assert not (folder / "500_model.pth").exists()
    assert not (folder / "500_model.pth.part").exists()


def test_verify_reports_a_classifier_that_is_not_the_published_one(hub, monkeypatch):
    model_set = fetch_published(progress=False)
    monkeypatch.setitem(catalogue.PUBLISHED_BLOB_IDS, "300_model.pth", REAL_BLOB_IDS["300_model.pth"])
    (problem,) = verify_set(model_set)
    assert problem.startswith("300_model.pth: git blob id") and REAL_BLOB_IDS["300_model.pth"] in problem


def test_files_without_a_known_hash_are_trusted_on_first_fetch_then_checked(hub):
    model_set = fetch_published(progress=False)
    model_set.esm_checkpoint.unlink()
    (hub.root / "esm/models/esm2_t36_3B_UR50D.pt").write_bytes(b"changed upstream")
    with pytest.raises(ChecksumError):
        fetch_published(progress=False)


def test_a_corrupt_cached_file_is_downloaded_again(hub):
    model_set = fetch_published(progress=False)
    model_set.esm_regression.write_bytes(b"garbage")
    fetch_published(progress=False)
    assert verify_set(model_set) == []


@pytest.mark.parametrize("var", ["HF_HUB_OFFLINE", "VIRNUCPRO_OFFLINE"])
def test_offline_the_missing_published_set_is_refused_naming_models_import(var, monkeypatch):
    monkeypatch.setenv(var, "1")
    with pytest.raises(ModelError, match="virnucpro models import DIR"):
        fetch_published(progress=False)
    with pytest.raises(ModelError, match="models import"):
        resolve_model_set("published")


def test_ensure_tiny_generates_once_and_marks_the_set_tiny(_own_home, monkeypatch):
    from virnucpro.models.tiny import build as tiny

    calls = []
    real_build = tiny.build_tiny_set
    monkeypatch.setattr(tiny, "build_tiny_set", lambda folder: (calls.append(1), real_build(folder)))
    results = []
    threads = [threading.Thread(target=lambda: results.append(ensure_tiny())) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(results) == 2
    model_set = results[0]
    assert model_set.root == _own_home / "sets" / "tiny" and model_set.is_tiny
    stamps = {p: p.stat().st_mtime_ns for p in model_set.root.rglob("*")}
    again = ensure_tiny()
    assert again == model_set and len(calls) == 1
    assert {p: p.stat().st_mtime_ns for p in model_set.root.rglob("*")} == stamps
    assert verify_set(model_set) == []
    assert not [p for p in (_own_home / "sets").iterdir() if p.name.startswith(".tiny-")]


def test_the_tiny_set_loads_with_consistent_sizes(tiny_set_dir):
    from virnucpro.models.classifier_io import load_classifier
    from virnucpro.models.dnabert_io import load_dnabert
    from virnucpro.models.esm_io import load_esm

    model_set = scan_set_folder(tiny_set_dir)
    assert model_set.is_tiny and model_set.name == "tiny"
    width = load_dnabert(model_set.dnabert_dir, "cpu").hidden_size
    width += load_esm(model_set.esm_checkpoint, "cpu").embed_dim
    assert width == 72
    for cs in (300, 500):
        assert load_classifier(model_set.classifier_path(cs), input_dim=width).input_dim == width


def test_import_ignores_extra_files_and_records_a_manifest(tiny_set_dir, tmp_path, _own_home):
    src = tmp_path / "offline"
    shutil.copytree(tiny_set_dir, src)
    (src / "notes.txt").write_text("not a model")
    (src / "dnabert-s" / "bert_layers.py").write_text("# hub code, never used")
    (src / "manifest.json").unlink()
    model_set = import_set(src, "mine")
    assert model_set.root == _own_home / "sets" / "mine" and model_set.is_tiny
    assert not (model_set.root / "notes.txt").exists()
    assert not (model_set.dnabert_dir / "bert_layers.py").exists()
    assert "notes.txt" not in read_manifest(model_set.root)["files"]
    assert verify_set(model_set) == []
    assert resolve_model_set("mine").root == model_set.root
    with pytest.raises(ModelError, match="already exists"):
        import_set(src, "mine")
    with pytest.raises(ModelError, match="only the published files"):
        import_set(src, "published")


def test_a_folder_of_the_published_files_is_imported_as_published(hub, tmp_path, monkeypatch):
    src = fetch_published(progress=False).root
    moved = shutil.move(src, tmp_path / "carried")
    (Path(moved) / "manifest.json").unlink()
    monkeypatch.setenv("VIRNUCPRO_OFFLINE", "1")
    model_set = import_set(moved)
    assert model_set.name == "published"
    assert resolve_model_set("published", fetch_missing=False).root == model_set.root
    assert verify_set(model_set) == []


def test_import_refuses_files_that_differ_from_the_folders_own_manifest(tiny_set_dir, tmp_path):
    src = tmp_path / "offline"
    shutil.copytree(tiny_set_dir, src)
    with (src / "300_model.pth").open("r+b") as fh:
        fh.seek(100)
        fh.write(b"\x00\xff")
    with pytest.raises(ChecksumError, match="300_model.pth"):
        import_set(src, "mine")


@pytest.mark.parametrize("remove, named", [
    ("esm2_t2_tiny.pt", "esm2_*.pt"),
    ("esm2_t2_tiny-contact-regression.pt", "esm2_t2_tiny-contact-regression.pt"),
    ("dnabert-s/pytorch_model.bin", "dnabert-s/pytorch_model.bin"),
    ("dnabert-s/tokenizer.json", "dnabert-s/tokenizer.json"),
    ("*_model.pth", "300_model.pth and/or 500_model.pth"),
])
def test_scan_names_what_is_missing(tiny_set_dir, tmp_path, remove, named):
    folder = tmp_path / "set"
    shutil.copytree(tiny_set_dir, folder)
    for path in folder.glob(remove):
        path.unlink()
    with pytest.raises(ModelError, match="missing") as err:
        scan_set_folder(folder)
    assert named in str(err.value)


def test_verify_detects_a_flipped_byte(tiny_set_dir, tmp_path):
    folder = tmp_path / "set"
    shutil.copytree(tiny_set_dir, folder)
    model_set = scan_set_folder(folder)
    assert verify_set(model_set) == []
    data = bytearray(model_set.esm_checkpoint.read_bytes())
    data[len(data) // 2] ^= 0x01
    model_set.esm_checkpoint.write_bytes(bytes(data))
    (problem,) = verify_set(model_set)
    assert problem.startswith("esm2_t2_tiny.pt: sha256")


def test_a_missing_chunk_size_lists_the_available_ones(tiny_set_dir):
    with pytest.raises(ModelError, match=r"chunk size 400 \(available: 300, 500\)"):
        scan_set_folder(tiny_set_dir).classifier_path(400)


def test_a_folder_path_is_used_in_place_and_unknown_names_list_the_known_ones(tiny_set_dir):
    assert resolve_model_set(str(tiny_set_dir)).root == tiny_set_dir
    with pytest.raises(ModelError, match="published, tiny"):
        resolve_model_set("nonesuch")


def test_the_cache_follows_virnucpro_home_and_lists_the_sets(_own_home, tiny_set_dir):
    assert cache_root() == _own_home
    shutil.copytree(tiny_set_dir, _own_home / "sets" / "tiny")
    listed = {s["name"]: s for s in list_sets()}
    assert listed["published"]["present"] is False
    assert listed["tiny"]["complete"] and listed["tiny"]["is_tiny"]
    assert listed["tiny"]["size_bytes"] > 0


# -- failed downloads leave nothing broken (issue 23) ----------------------------------------


def _unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every published URL on a local port where nothing listens."""
    for var in ("VIRNUCPRO_HF_ENDPOINT", "VIRNUCPRO_ESM_URL", "VIRNUCPRO_CLASSIFIER_URL"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")


def test_a_fetch_from_an_unreachable_address_leaves_no_folder_and_names_the_ways_out(
        monkeypatch, _own_home):
    from virnucpro.doctor import PROBLEM, check_model_sets

    _unreachable(monkeypatch)
    with pytest.raises(FetchError) as err:
        fetch_published(progress=False)
    for way_out in ("virnucpro models import DIR", "--models PATH", "--models tiny"):
        assert way_out in str(err.value)
    assert not (_own_home / "sets" / "published").exists()
    listed = {s["name"]: s for s in list_sets()}
    assert listed["published"]["state"] == "absent"
    published = next(c for c in check_model_sets() if c.name == "published")
    assert published.status != PROBLEM and "not in the cache" in published.detail


def test_a_fetch_cut_off_between_files_is_partial_resumable_and_not_a_problem(hub):
    from virnucpro.doctor import WARNING, check_model_sets

    root = fetch_published(progress=False).root
    esm = "esm2_t36_3B_UR50D.pt"
    manifest = read_manifest(root)
    for rel in (esm, "300_model.pth", "500_model.pth"):  # as if stopped inside the ESM-2 file
        del manifest["files"][rel]
        (root / rel).unlink()
    write_manifest(root, manifest)
    (root / f"{esm}.part").write_bytes(hub.served[_served_name(esm)][:100_000])
    assert sets.set_state(root) == "partial"
    check = next(c for c in check_model_sets() if c.name == "published")
    assert check.status == WARNING and "partly downloaded, resumable" in check.detail
    assert "resumes" in check.fix
    hub.requests.clear()
    fetch_published(progress=False)
    assert hub.ranged(_served_name(esm)) == ["bytes=100000-"]
    assert sets.set_state(root) == "ready"


def test_a_recorded_file_of_the_wrong_size_is_damaged_and_a_problem(hub):
    from virnucpro.doctor import PROBLEM, check_model_sets

    root = fetch_published(progress=False).root
    with (root / "dnabert-s" / "pytorch_model.bin").open("ab") as fh:
        fh.write(b"\x00")
    assert sets.set_state(root) == "damaged"
    check = next(c for c in check_model_sets() if c.name == "published")
    assert check.status == PROBLEM and "damaged" in check.detail


@pytest.mark.parametrize("pin", ["sha256", "size"])
def test_a_download_that_differs_from_its_pin_is_refused_and_not_kept(hub, monkeypatch,
                                                                      _own_home, pin):
    rel = "dnabert-s/pytorch_model.bin"
    size, sha = catalogue.PUBLISHED_PINS[rel]
    monkeypatch.setitem(catalogue.PUBLISHED_PINS, rel,
                        (size, "0" * 64) if pin == "sha256" else (size + 1, sha))
    with pytest.raises(ChecksumError, match="pytorch_model.bin"):
        fetch_published(progress=False)
    folder = _own_home / "sets" / "published" / "dnabert-s"
    assert not (folder / "pytorch_model.bin").exists()
    assert not (folder / "pytorch_model.bin.part").exists()


def test_a_host_that_does_not_resolve_fails_at_once_without_retries(monkeypatch):
    import socket

    calls = []

    def no_dns(*args, **kwargs):
        calls.append(args[0])
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    monkeypatch.setattr(fetch, "RETRY_DELAYS_S", (600.0, 600.0, 600.0))  # a retry would hang
    with pytest.raises(FetchError, match="no network") as err:
        fetch_published(progress=False)
    assert len(calls) == 1 and calls[0] == "huggingface.co"
    assert "virnucpro models import DIR" in str(err.value)


def test_the_pins_are_the_published_files_where_the_repository_has_them():
    data = Path(__file__).resolve().parents[1] / "data" / "published-dnabert-s"
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json",
                 "special_tokens_map.json"):
        body = (data / name).read_bytes()
        assert catalogue.PUBLISHED_PINS[f"dnabert-s/{name}"] == (
            len(body), hashlib.sha256(body).hexdigest()), name


def test_verify_holds_a_fetched_published_file_to_its_pin(hub, monkeypatch):
    model_set = fetch_published(progress=False)
    assert verify_set(model_set) == []
    rel = "dnabert-s/config.json"
    monkeypatch.setitem(catalogue.PUBLISHED_PINS, rel, (catalogue.PUBLISHED_PINS[rel][0], "0" * 64))
    (problem,) = verify_set(model_set)
    assert problem.startswith(f"{rel}: sha256 ") and "pinned" in problem
