"""The device check's verdict: from the JSON the steps filled (and gpu_check.sh's step times),
the checks a release needs, each PASS, FAIL or NOT RUN with its figure, added to the JSON; then
the table of figures and the check lines on stdout. Reads no model and imports no torch, so it
runs whatever the steps before it left.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

ESM_SHARE = 0.60
PEAK_BYTES = 12e9
PEAK_AT_TOKENS = 32768
FLIPS_PER_10000 = 10


def _get(r: dict, *keys):
    for key in keys:
        if not isinstance(r, dict) or r.get(key) is None:
            return None
        r = r[key]
    return r


def _check(name: str, value, passes: Callable[[object], bool], shown: str,
           why_not: str = "not measured (its step did not run or was cut)") -> dict:
    if value is None:
        return {"name": name, "value": None, "result": "NOT RUN", "shown": why_not}
    return {"name": name, "value": value, "result": "PASS" if passes(value) else "FAIL",
            "shown": shown}


def checks(r: dict) -> list[dict]:
    """The release targets, each judged on what the JSON holds."""
    share = _get(r, "esm", "share_of_gemm_ceiling")
    peak = _get(r, "memory", "peak_reserved_bytes")
    tokens = _get(r, "memory", "batch_tokens")
    peak_why = ("no CUDA device: no memory figures" if _get(r, "settings", "device") == "cpu"
                else "not measured (its step did not run or was cut)")
    if peak is not None and tokens != PEAK_AT_TOKENS:
        peak, peak_why = None, f"measured at {tokens} tokens, not {PEAK_AT_TOKENS}"
    auto = r.get("auto_budget") or {}
    flips = _get(r, "agreement", "call_flips_per_10000")
    nans = _get(r, "agreement", "nan_frames")
    return [
        _check(f"ESM-2 reaches >= {ESM_SHARE:.0%} of the GEMM ceiling", share,
               lambda v: v >= ESM_SHARE, f"{share:.1%}" if share is not None else ""),
        _check(f"peak reserved <= {PEAK_BYTES / 1e9:.0f} GB at {PEAK_AT_TOKENS} batch tokens", peak,
               lambda v: v <= PEAK_BYTES, f"{peak / 1e9:.2f} GB" if peak is not None else "",
               peak_why),
        _check(f"the auto budget completes under a {auto.get('fraction_gib', 24):g} GiB fraction",
               auto.get("completed"), bool, f"{auto.get('batch_tokens')} tokens"
               + (f", {auto['error']}" if auto.get("error") else ""),
               auto.get("error") or "not measured (its step did not run or was cut)"),
        _check(f"call flips <= {FLIPS_PER_10000} per 10,000 frames (bf16 vs float32)", flips,
               lambda v: v <= FLIPS_PER_10000,
               f"{flips:.1f} ({_get(r, 'agreement', 'call_flips')} in "
               f"{_get(r, 'agreement', 'compared')} frames)" if flips is not None else ""),
        _check("no NaN in either precision", None if nans is None else sum(nans.values()),
               lambda v: v == 0, f"{nans}"),
    ]


def _gb(value) -> str:
    return "n/a" if value is None else f"{value / 1e9:.2f} GB"


def _settings(s: dict) -> str:
    return (f"{s['size']} set on {s['device']}, {s['precision']}, batches of {s['batch_tokens']} "
            f"tokens, {s['passes']} passes over {s['shards']} shards of {s['shard_frames']} "
            f"frames ({s['chunk_bp']} bp chunks)")


def _gemm(g: dict) -> str:
    sizes = ", ".join(f"{n}^3 {v:.1f}" for n, v in g["tflops_by_size"].items())
    return f"{g['ceiling_tflops']:.1f} TFLOP/s {g['dtype']} ({sizes})"


def _alone(m: dict) -> str:
    share = ("" if m["share_of_gemm_ceiling"] is None
             else f", {m['share_of_gemm_ceiling']:.1%} of the ceiling")
    return f"{m['tokens_per_s']:,.0f} tokens/s, {m['tflops']:.2f} TFLOP/s{share}"


def _attention(a: dict) -> str:
    top = a["kernels"][0]["name"][:70] if a["kernels"] else ", ".join(a["ops"][:2])
    return f"{a['kind']} ({top}); with padding: {a['with_padding']['kind']}"


def _agreement(a: dict) -> str:
    return (f"{' vs '.join(a['precisions'])}, {a['compared']} frames: cosine min "
            f"{a['feature_cosine_min']:.5f}, median {a['feature_cosine_median']:.6f}; max |dP| "
            f"{a['max_abs_dp_virus']:.4f}; {a['call_flips']} call flips; NaN {a['nan_frames']}")


def _steps(steps: list) -> str:
    return ", ".join(f"{x['name']} {x['seconds']}" + ("" if x["rc"] == "0" else f" (rc {x['rc']})")
                     for x in steps)


ROWS: tuple[tuple[str, str, Callable[[dict], str]], ...] = (
    ("device", "device", lambda d: f"{d['name']}, torch {d['torch']}, CUDA {d['cuda']}, "
                                   f"{d['cpu_cores']} cores"),
    ("settings", "settings", _settings),
    ("GEMM ceiling", "gemm", _gemm),
    ("load", "load", lambda x: f"{x['seconds']} s; weights {_gb(x['weights_bytes'])}, "
                               f"allocated after load {_gb(x['allocated_after_load_bytes'])}"),
    ("end to end (score_frames)", "end_to_end",
     lambda e: f"{e['frames_per_s']:,.1f} frames/s, {e['tflops']:.2f} TFLOP/s "
               f"({e['share_of_gemm_ceiling']:.1%}); passes {e['pass_seconds']} s; "
               f"{e['failed_frames']} failed, {e['nan_frames']} NaN, {e['oom_retries']} OOM retries"),
    ("DNABERT-S alone", "dnabert", _alone),
    ("ESM-2 alone", "esm", _alone),
    ("peak memory", "memory", lambda m: f"reserved {_gb(m['peak_reserved_bytes'])}, allocated "
                                        f"{_gb(m['peak_allocated_bytes'])} at {m['batch_tokens']} tokens"),
    ("ESM-2 attention", "attention", _attention),
    ("agreement", "agreement", _agreement),
    ("auto budget", "auto_budget",
     lambda a: f"completed {a.get('completed')}, {a.get('batch_tokens')} tokens, peak reserved "
               f"{_gb(a.get('peak_reserved_bytes'))}" + (f"; {a['error']}" if a.get("error") else "")),
    ("steps (s)", "steps", _steps),
)


def rows(r: dict) -> list[tuple[str, str]]:
    """The table's rows, for the sections present; a section that cannot be read (a step
    changed its keys) says so instead of ending the report."""
    out = []
    for label, key, show in ROWS:
        if r.get(key):
            try:
                out.append((label, show(r[key])))
            except (KeyError, TypeError, ValueError, IndexError) as exc:
                out.append((label, f"unreadable ({type(exc).__name__}: {exc})"))
    return out


def read_steps(path: Path) -> list[dict]:
    """gpu_check.sh's lines: name, seconds, exit status, cap (tab-separated)."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        name, seconds, rc, cap = (line.split("\t") + ["", "", "", ""])[:4]
        out.append({"name": name, "seconds": int(seconds or 0), "rc": rc, "cap_s": cap})
    return out


def report(path: Path, steps: Path) -> int:
    """Add the checks and step times to the JSON at `path`; print the table and the checks."""
    r = json.loads(path.read_text()) if path.exists() else {}
    r["steps"] = read_steps(steps)
    r["checks"] = checks(r)
    path.write_text(json.dumps(r, indent=2) + "\n")
    table = rows(r)
    width = max((len(k) for k, _ in table), default=0)
    print("VirNucPro device check")
    for key, value in table:
        print(f"  {key:<{width}}  {value}")
    for c in r["checks"]:
        print(f"{c['result']:<7} {c['name']}: {c['shown']}")
    return 0
