"""Writes the pictures of the dashboard in docs/daemon.md: the scenes of tests/tui/scenes.py (fake
daemon, two GPUs, jobs in every state, a clock moved by hand, UTC) at 120x36.

    python -m tests.tui.screenshot docs/tui.svg [--detail docs/tui-detail.svg] [--extra docs/]

`--extra FOLDER` also writes tui-help.svg (the keys), tui-confirm.svg (a cancel asked first),
tui-detail-lost.svg (a job's detail with the daemon lost) and tui-progress-1.svg..3.svg (a
resumed job at three moments) there.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from pathlib import Path

from tests.tui.driving import SIZE
from tests.tui.scenes import SCENES, scene_app

EXTRA = ("help", "confirm", "detail-lost", "progress-1", "progress-2", "progress-3")


async def shoot(scene: str, out: Path) -> None:
    app, daemon, clock = scene_app()
    async with app.run_test(size=SIZE) as pilot:
        await SCENES[scene](pilot, app, daemon, clock)
        await pilot.pause(0.2)
        app.save_screenshot(out.name, path=str(out.parent))
    print(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("main", type=Path)
    parser.add_argument("--detail", type=Path, default=None)
    parser.add_argument("--extra", type=Path, default=None, metavar="FOLDER")
    args = parser.parse_args()
    os.environ["TZ"] = "UTC"
    time.tzset()
    shots = [("main", args.main)]
    if args.detail is not None:
        shots.append(("detail", args.detail))
    if args.extra is not None:
        shots += [(scene, args.extra / f"tui-{scene}.svg") for scene in EXTRA]
    for scene, out in shots:
        asyncio.run(shoot(scene, out))


if __name__ == "__main__":
    main()
