"""The device check's steps; `benchmarks/gpu_check.sh` runs each in its own process, capped:

  python -m benchmarks.device_check set|speed|auto|agreement|report OUT.json

set: the model set (random weights of the published sizes; the tiny set on the CPU). speed: the
matrix-product ceiling, the set loaded, frames/s through `score_frames` and each model alone
(medians of timed passes over shards), peak memory, ESM-2's attention kernel. auto: the
automatic batch budget under a memory fraction (process-wide, hence its own process).
agreement: the same frames in float32 against bfloat16. report: the table and the checks
(`device_report`, no torch). Each step merges its sections into OUT.json as it has them, so a
step cut short keeps what it measured. The knobs are environment variables
(`device_setup.CheckConfig.from_env`; gpu_check.sh lists them).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

STEP_NAMES = ("set", "speed", "auto", "agreement", "report")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or argv[0] not in STEP_NAMES:
        print(__doc__, file=sys.stderr)
        return 2
    step, path = argv[0], Path(argv[1])
    if step == "report":
        from benchmarks.device_report import report

        return report(path, Path(os.environ.get("STEPS_FILE", path.with_name("steps.tsv"))))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from benchmarks.device_setup import CheckConfig, Results
    from benchmarks.device_steps import STEPS

    cfg = CheckConfig.from_env()
    Path(cfg.work).mkdir(parents=True, exist_ok=True)
    STEPS[step](cfg, Results(path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
