"""One line on the daemon: connected or not, its state, model mode, uptime, version, queue
length and devices. `show(...)` redraws it from the model's daemon status (the queue
length comes from the jobs, which events keep current; the status's own figure is stale)."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from virnucpro.tui import render

DAEMON_STYLES = {"running": "green", "draining": "yellow", "stopping": "red", "stopped": "red"}


def status_line(daemon: dict, uptime: float | None, *, connected: bool, endpoint: str,
                queued: int = 0) -> Text:
    text = Text()
    if not connected or not daemon:
        text.append("○ ", style="red")
        text.append("not connected", style="bold red")
        text.append(f"  {endpoint}", style="dim")
        return text
    state = daemon.get("state", "?")
    text.append("● ", style=DAEMON_STYLES.get(state, ""))
    text.append(f"daemon {state}", style="bold " + DAEMON_STYLES.get(state, ""))
    mode = "persistent models" if daemon.get("persistent_models") else "models loaded per job"
    parts = [mode, f"up {render.duration(uptime)}", f"v{daemon.get('version', '?')}",
             f"{queued} queued",
             "devices " + ",".join(daemon.get("devices") or []) if daemon.get("devices") else ""]
    for part in filter(None, parts):
        text.append("  ·  ", style="dim")
        text.append(part)
    return text  # the endpoint is in the header


class StatusBar(Static):
    def show(self, daemon: dict, uptime: float | None, *, connected: bool, endpoint: str,
             queued: int = 0) -> None:
        self.update(status_line(daemon, uptime, connected=connected, endpoint=endpoint,
                                queued=queued))
