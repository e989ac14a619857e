"""One line on the daemon: connected or not, its state, model mode, uptime, version, queue
length and devices. `show(...)` redraws it from the model's `DaemonStatus` (the queue
length comes from the jobs, which events keep current; the status's own figure is stale)."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from virnucpro.daemon.messages import DaemonStatus
from virnucpro.daemon.protocol import DaemonState
from virnucpro.tui import render

DAEMON_STYLES = {DaemonState.RUNNING: "green", DaemonState.DRAINING: "yellow",
                 DaemonState.STOPPING: "red", DaemonState.STOPPED: "red"}


def status_line(daemon: DaemonStatus | None, uptime: float | None, *, connected: bool,
                endpoint: str, queued: int = 0) -> Text:
    text = Text()
    if not connected or daemon is None:
        text.append("○ ", style="red")
        text.append("not connected", style="bold red")
        text.append(f"  {endpoint}", style="dim")
        return text
    style = DAEMON_STYLES.get(daemon.state, "")
    text.append("● ", style=style)
    text.append(f"daemon {daemon.state.value}", style="bold " + style)
    mode = "persistent models" if daemon.persistent_models else "models loaded per job"
    parts = [mode, f"up {render.duration(uptime)}", f"v{daemon.version}", f"{queued} queued",
             "devices " + ",".join(daemon.devices) if daemon.devices else ""]
    for part in filter(None, parts):
        text.append("  ·  ", style="dim")
        text.append(part)
    return text  # the endpoint is in the header


class StatusBar(Static):
    def show(self, daemon: DaemonStatus | None, uptime: float | None, *, connected: bool,
             endpoint: str, queued: int = 0) -> None:
        self.update(status_line(daemon, uptime, connected=connected, endpoint=endpoint,
                                queued=queued))
