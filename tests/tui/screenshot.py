"""Writes the README's picture of the dashboard: the snapshot tests' scene (fake daemon, two
GPUs, jobs in every state, frozen clock, UTC) at 120x36.

    python -m tests.tui.screenshot docs/tui.svg [--detail docs/tui-detail.svg]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from pathlib import Path

from tests.tui.driving import FROZEN, SIZE, fake_app, until
from tests.tui.fakes import memory_wave, sample_daemon
from virnucpro.tui.screens.job_detail import JobDetailScreen


async def shoot(main: Path, detail: Path | None) -> None:
    daemon = sample_daemon(FROZEN)
    app = fake_app(daemon)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.state.connected)
        memory_wave(daemon, samples=40)
        await until(pilot, lambda: app.state.seq == daemon.seq)
        await pilot.pause(0.2)
        app.save_screenshot(main.name, path=str(main.parent))
        if detail is not None:
            app.queue.select(4)
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, JobDetailScreen)
                        and app.screen.results is not None and app.screen.log_since == 4)
            await pilot.pause(0.2)
            app.save_screenshot(detail.name, path=str(detail.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("main", type=Path)
    parser.add_argument("--detail", type=Path, default=None)
    args = parser.parse_args()
    os.environ["TZ"] = "UTC"
    time.tzset()
    asyncio.run(shoot(args.main, args.detail))


if __name__ == "__main__":
    main()
