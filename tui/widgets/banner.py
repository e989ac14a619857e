"""The disconnected banner: shown while the daemon does not answer, with why and what happens
next (the stream reconnects by itself); hidden again by the next snapshot."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static


def banner_text(reason: str, retry_in: float, attempt: int, *, ever_connected: bool,
                can_start: bool = True) -> Text:
    text = Text("⚠ ", style="bold")
    text.append("Lost the daemon" if ever_connected else "No daemon answers", style="bold")
    text.append(f": {reason}\n")
    text.append(f"Reconnecting by itself (attempt {attempt}, next in {retry_in:g} s).")
    if can_start:
        text.append(" Press d to start a daemon.")
    if ever_connected:
        text.append(" What is shown below may be out of date.", style="italic")
    return text


class ConnectionBanner(Static):
    def show_lost(self, reason: str, retry_in: float, attempt: int, *, ever_connected: bool,
                  can_start: bool = True) -> None:
        self.update(banner_text(reason, retry_in, attempt, ever_connected=ever_connected,
                                can_start=can_start))
        self.display = True

    def hide(self) -> None:
        self.display = False
