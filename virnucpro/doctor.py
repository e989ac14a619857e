"""`virnucpro doctor`: what a run on this machine would meet, as a list of checks.

One function per section (versions, devices, cache, model sets, a tiny end-to-end run), each
returning `Check` records with a status (`ok`, `warning`, `problem`) and what to do about it.
No click here, and no daemon import (the core must not import `virnucpro.daemon`): the front
end (`virnucpro/cli/doctor.py`) adds the daemon's check. Nothing is downloaded: the only set
this may build is the tiny one, generated locally by `ensure_tiny()`.
"""

from __future__ import annotations

import logging
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from virnucpro.devices import host_memory
from virnucpro.models.catalogue import PUBLISHED_DOWNLOAD
from virnucpro.models.sets import human_size

OK, WARNING, PROBLEM = "ok", "warning", "problem"
EXIT_PROBLEMS = 11  # the exit code of `virnucpro doctor` when any check is a problem
PUBLISHED_SIZE = PUBLISHED_DOWNLOAD
_GB = 1000**3


@dataclass(frozen=True)
class Check:
    section: str
    name: str
    status: str  # OK, WARNING or PROBLEM
    detail: str
    fix: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def _dist_version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


# -- versions ---------------------------------------------------------------------------------

def check_versions() -> list[Check]:
    from virnucpro import __version__

    out = [Check("versions", "virnucpro", OK, __version__),
           Check("versions", "python", OK if sys.version_info >= (3, 10) else PROBLEM,
                 f"{platform.python_version()} ({sys.executable})",
                 "" if sys.version_info >= (3, 10) else "use Python 3.10 or newer")]
    try:
        import torch
    except Exception as exc:  # noqa: BLE001 - a broken install is what this reports
        out.append(Check("versions", "torch", PROBLEM, f"cannot import torch: {exc}",
                         "reinstall: `pip install torch` (a CUDA build for GPUs)"))
    else:
        out.append(Check("versions", "torch", OK, torch.__version__))
        cuda = torch.version.cuda
        out.append(Check("versions", "torch CUDA build", OK if cuda else WARNING,
                         f"CUDA {cuda}" if cuda else "none: a CPU-only wheel of torch",
                         "" if cuda else "for GPUs install a CUDA wheel of torch "
                         "(https://pytorch.org/get-started/locally/)"))
    for dist in ("fair-esm", "tokenizers"):
        version = _dist_version(dist)
        out.append(Check("versions", dist, OK if version else PROBLEM,
                         version or "not installed",
                         "" if version else f"`pip install {dist}` (reinstall virnucpro)"))
    return out


# -- devices ----------------------------------------------------------------------------------

def _gpu_memory(device: str) -> str:
    """`name, free/total` of one visible GPU: NVML when it can (no CUDA context), else torch."""
    from virnucpro.devices import physical_gpu

    try:
        import pynvml

        pynvml.nvmlInit()
        gpu = physical_gpu(device)
        handle = (pynvml.nvmlDeviceGetHandleByUUID(gpu) if gpu.upper().startswith(("GPU-", "MIG-"))
                  else pynvml.nvmlDeviceGetHandleByIndex(int(gpu)))
        mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
        name = pynvml.nvmlDeviceGetName(handle)
        name = name.decode() if isinstance(name, bytes) else name
        return f"{name}, {human_size(mem.free)} free of {human_size(mem.total)} (NVML)"
    except Exception:  # noqa: BLE001 - no driver library, a MIG slice: ask torch
        pass
    try:
        import torch

        index = int(device.split(":")[1])
        props = torch.cuda.get_device_properties(index)
        free, total = torch.cuda.mem_get_info(index)
        return f"{props.name}, {human_size(free)} free of {human_size(total)} (torch)"
    except Exception as exc:  # noqa: BLE001
        return f"memory unknown ({exc})"


def check_devices(gpu_count: Callable[[], int] | None = None) -> list[Check]:
    """The devices `--devices auto` picks (torch's count of visible GPUs, as `virnucpro
    predict` counts them), each with its memory."""
    from virnucpro.devices import parse_devices

    try:
        devices = parse_devices("auto", gpu_count)
    except Exception as exc:  # noqa: BLE001 - torch missing or CUDA broken
        return [Check("devices", "auto", PROBLEM, f"cannot list devices: {exc}",
                      "check the torch install and the NVIDIA driver (`nvidia-smi`)")]
    out = []
    available, total = host_memory()
    host = (f"{os.cpu_count() or '?'} cores, {human_size(available)} available of "
            f"{human_size(total)}" if total else f"{os.cpu_count() or '?'} cores")
    if devices == ["cpu"]:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        why = f" (CUDA_VISIBLE_DEVICES={visible!r})" if visible is not None else ""
        out.append(Check("devices", "auto", WARNING,
                         f"no GPU visible{why}: runs use the CPU, fine for the tiny set, slow "
                         "for the published one",
                         "on a GPU machine: check `nvidia-smi` and that torch is a CUDA build"))
    else:
        out.append(Check("devices", "auto", OK, ", ".join(devices)))
        for device in devices:
            out.append(Check("devices", device, OK, _gpu_memory(device)))
    out.append(Check("devices", "cpu", OK, host))
    return out


# -- the cache --------------------------------------------------------------------------------

def check_cache() -> list[Check]:
    from virnucpro.models.cache import sets_dir
    from virnucpro.models.published import is_offline
    from virnucpro.models.set_checks import is_complete

    folder = sets_dir()
    from virnucpro.layout import existing_ancestor

    base = existing_ancestor(folder)
    out = []
    try:
        usage = shutil.disk_usage(base)
    except OSError as exc:
        return [Check("cache", "model cache", PROBLEM, f"{folder}: {exc}",
                      "set VIRNUCPRO_HOME to a folder you can write")]
    writable = os.access(base, os.W_OK)
    detail = f"{folder}: {human_size(usage.free)} free of {human_size(usage.total)}"
    if not writable:
        out.append(Check("cache", "model cache", WARNING, f"{detail}; not writable",
                         "set VIRNUCPRO_HOME to a folder you can write (sets cannot be fetched "
                         "or built here)"))
    elif usage.free < 7 * _GB and not is_complete(folder / "published"):
        out.append(Check("cache", "model cache", WARNING,
                         f"{detail}; the published set needs {PUBLISHED_SIZE}",
                         "free space there, or set VIRNUCPRO_HOME to a larger disk"))
    else:
        out.append(Check("cache", "model cache", OK, detail))
    out.append(Check("cache", "downloads", OK,
                     "off (VIRNUCPRO_OFFLINE / HF_HUB_OFFLINE)" if is_offline() else "allowed"))
    return out


# -- model sets -------------------------------------------------------------------------------

def _set_files(root: Path) -> tuple[list[Path], dict]:
    from virnucpro.errors import ModelError
    from virnucpro.models.manifest import read_manifest
    from virnucpro.models.modelset import scan_set_folder

    recorded = read_manifest(root).get("files", {})
    try:
        files = scan_set_folder(root).files()
    except ModelError:
        files = [root / rel for rel in recorded if (root / rel).is_file()]
    return files, recorded


def _check_set(entry: dict, verify: bool) -> Check:
    from virnucpro.errors import ModelError
    from virnucpro.models.loadcheck import load_problems
    from virnucpro.models.modelset import scan_set_folder
    from virnucpro.models.set_checks import verify_set

    name, root = entry["name"], Path(entry["path"])
    published, tiny = name == "published", name == "tiny"
    if not entry["present"]:
        if published:
            return Check("model sets", name, WARNING, f"not in the cache ({root})",
                         f"`virnucpro models fetch published` ({PUBLISHED_SIZE}); offline: "
                         "`virnucpro models import DIR`")
        return Check("model sets", name, OK if tiny else WARNING,
                     "not built yet: made on first use" if tiny else "absent")
    files, recorded = _set_files(root)
    size = entry["size_bytes"]  # as `models list` counts it: the set's own bytes on disk
    hashed = sum(1 for e in recorded.values() if e.get("sha256"))
    summary = (f"{len(files)} files, {human_size(size)}, {hashed} recorded sha256 "
               f"({entry['source'] or 'no manifest'})")
    unreadable = [p.relative_to(root).as_posix() for p in files if not os.access(p, os.R_OK)]
    if unreadable:
        return Check("model sets", name, PROBLEM, f"{summary}; unreadable: "
                     + ", ".join(unreadable), f"fix the permissions under {root}")
    if entry.get("state") == "partial":
        return Check("model sets", name, WARNING, f"{summary}; partly downloaded, resumable",
                     "`virnucpro models fetch published` resumes it")
    if not entry["complete"]:
        if tiny:
            return Check("model sets", name, WARNING, f"{summary}; incomplete or outdated",
                         "it is rebuilt on next use (`virnucpro models fetch tiny`)")
        fix = ("`virnucpro models fetch published` downloads the damaged files again"
               if published else f"import the folder again (remove {root} first)")
        return Check("model sets", name, PROBLEM, f"{summary}; {entry.get('state')}: files "
                     "missing or of the wrong size", fix)
    if not verify:
        return Check("model sets", name, OK, f"{summary}; sizes match (hashes and a load: --verify)")
    try:
        model_set = scan_set_folder(root, name=name)
        problems = verify_set(model_set)
        problems += load_problems(model_set)  # verify means load: what predict would meet
    except (ModelError, OSError) as exc:
        problems = [str(exc)]
    if problems:
        fix = ("`virnucpro models fetch tiny` after removing " + str(root) if tiny else
               "`virnucpro models fetch published` downloads the bad files again" if published
               else f"import it again (remove {root} first)")
        return Check("model sets", name, PROBLEM, f"{summary}; verify: " + "; ".join(problems),
                     fix)
    return Check("model sets", name, OK, f"{summary}; every hash verified, every file loads")


def check_model_sets(verify: bool = False) -> list[Check]:
    from virnucpro.models.sets import list_sets

    try:
        sets = list_sets()
    except OSError as exc:
        return [Check("model sets", "list", PROBLEM, f"cannot read the cache: {exc}",
                      "check VIRNUCPRO_HOME and its permissions")]
    return [_check_set(entry, verify) for entry in sets]


# -- a tiny end-to-end run --------------------------------------------------------------------

def _example_fasta(path: Path) -> None:
    """Two fixed records, the same bytes every time: codons without a stop in the first frame,
    so that every chunk keeps a frame and is scored."""
    import itertools
    import random

    rng = random.Random(18)
    codons = ["".join(c) for c in itertools.product("ACGT", repeat=3)
              if "".join(c) not in ("TAA", "TAG", "TGA")]
    with open(path, "w") as fh:
        for name, length in (("doctor_example_1", 1200), ("doctor_example_2", 620)):
            seq = "".join(rng.choice(codons) for _ in range(length // 3 + 1))[:length]
            fh.write(f">{name}\n" + "\n".join(seq[i:i + 60] for i in range(0, length, 60))
                     + "\n")


def check_tiny_run() -> list[Check]:
    """`run_predict` with the tiny set on the CPU over a small FASTA, in a temp folder."""
    from virnucpro.config import PredictConfig
    from virnucpro.layout import OutputLayout
    from virnucpro.pipeline import run_predict
    from virnucpro.run_record import COMPLETED, RunRecord

    fix = "run `virnucpro predict EXAMPLE.fa -o OUT --models tiny -vv` to see the whole error"
    quiet = logging.getLogger("virnucpro")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # the tiny set's "random weights" warning is expected here
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="virnucpro-doctor-") as tmp:
            fasta, outdir = Path(tmp) / "example.fasta", Path(tmp) / "out"
            _example_fasta(fasta)
            run_predict(PredictConfig(inputs=(str(fasta),), outdir=outdir, models="tiny",
                                      device="cpu", progress=False, report=False))
            missing = [f for f in (*OutputLayout.FILES, OutputLayout.RUN)
                       if not (outdir / f).is_file()]
            if missing:
                return [Check("tiny run", "predict", PROBLEM,
                              "finished without " + ", ".join(missing), fix)]
            run = RunRecord.read(OutputLayout(outdir).run_json)  # as `report` will read it
            counts = run.counts
            if not counts.get("chunks_scored"):
                return [Check("tiny run", "predict", PROBLEM,
                              f"finished but scored no chunk ({counts})", fix)]
    except Exception as exc:  # noqa: BLE001 - whatever breaks the run is the finding
        return [Check("tiny run", "predict", PROBLEM,
                      f"failed: {type(exc).__name__}: {exc}", fix)]
    finally:
        quiet.setLevel(level)
    seconds = time.perf_counter() - started
    state = run.status or COMPLETED
    return [Check("tiny run", "predict", OK,
                  f"{state} in {seconds:.1f} s on the CPU: {counts.get('sequences')} records, "
                  f"{counts['chunks_scored']} of {counts.get('chunks')} chunks scored, every "
                  "table written (tiny set: its calls mean nothing)")]


# -- all of it --------------------------------------------------------------------------------

def run_checks(*, verify: bool = False, tiny_run: bool = True,
               extra: Iterable[Callable[[], list[Check]]] = ()) -> list[Check]:
    """Every section in order; `extra` checks (the daemon's, from the front end) go before the
    tiny run. A section that crashes becomes a problem of its own, not a traceback."""
    sections: list[tuple[str, Callable[[], list[Check]]]] = [
        ("versions", check_versions), ("devices", check_devices), ("cache", check_cache),
        ("model sets", lambda: check_model_sets(verify)),
        *((getattr(f, "section", "extra"), f) for f in extra)]
    if tiny_run:
        sections.append(("tiny run", check_tiny_run))
    out: list[Check] = []
    for section, check in sections:
        try:
            out += check()
        except Exception as exc:  # noqa: BLE001
            out.append(Check(section, "check", PROBLEM,
                             f"the check itself failed: {type(exc).__name__}: {exc}",
                             "report it with this output"))
    return out


def summary(checks: list[Check]) -> dict:
    return {"checks": [c.to_dict() for c in checks],
            "problems": sum(c.status == PROBLEM for c in checks),
            "warnings": sum(c.status == WARNING for c in checks)}
