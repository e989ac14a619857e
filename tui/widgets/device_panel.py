"""The devices: per GPU its name, memory used/total as a bar, the last minute of memory as a
sparkline, and the model sets loaded on it; CPU devices show the host's memory.

`show(views)` takes `state.DeviceView`s; a card per device is mounted when the set of devices
changes and redrawn in place otherwise. Cards lay out in a grid (see app.tcss).
"""

from __future__ import annotations

from rich.console import Group
from rich.text import Text
from textual.containers import Grid
from textual.widgets import Static

from virnucpro.tui import render
from virnucpro.tui.state import MEMORY_SAMPLES, DeviceView

BAR_WIDTH = 16


def card_body(view: DeviceView, width: int) -> Group:
    """Three lines: memory bar and figures, last minute of memory, models loaded."""
    fraction = view.fraction
    style = "red" if fraction is not None and fraction > 0.9 else "green"
    figures = "no figures" if view.used is None else render.bytes_pair(view.used, view.total)
    bar_width = max(4, min(BAR_WIDTH, width - len(figures) - 7))
    memory = render.bar(fraction, bar_width, style=style)
    memory.append(f"  {figures}", style="" if view.used is not None else "dim")
    spark_width = max(4, min(MEMORY_SAMPLES, width - 7))
    top = float(view.total or max(view.history, default=0))
    history = render.spark(view.history, top, spark_width, style=style)
    history.append(" 1 min", style="dim")
    loaded = Text("models ", style="dim")
    if view.models:
        loaded.append(", ".join(view.models), style="bold")
        loaded.append(f" ({view.workers} worker{'s' if view.workers != 1 else ''})", style="dim")
    else:
        loaded.append("none loaded", style="dim italic")
    for line in (memory, history, loaded):
        line.no_wrap = True
        line.overflow = "ellipsis"
    return Group(memory, history, loaded)


def card_title(view: DeviceView) -> str:
    return f"{view.device}  host memory" if view.kind == "cpu" else f"{view.device}  {view.name}".rstrip()


class DeviceCard(Static):
    def __init__(self, view: DeviceView) -> None:
        super().__init__(classes="device-card")
        self.view = view
        self.border_title = card_title(view)

    def on_mount(self) -> None:
        self.show(self.view)

    def show(self, view: DeviceView) -> None:
        self.view = view
        self.border_title = card_title(view)
        self.border_subtitle = "" if view.source in ("nvml", "host", "") else f"from {view.source}"
        self.update(card_body(view, self.content_size.width or 36))

    def on_resize(self) -> None:
        self.update(card_body(self.view, self.content_size.width or 36))


class DevicePanel(Grid):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.devices: list[str] = []
        self.empty = Static("no devices reported yet", classes="device-empty")

    def compose(self):
        yield self.empty

    def show(self, views: list[DeviceView]) -> None:
        names = [v.device for v in views]
        if names != self.devices:
            self.remove_children()
            self.devices = names
            if views:
                self.mount_all(DeviceCard(v) for v in views)
            else:
                self.empty = Static("no devices reported yet", classes="device-empty")
                self.mount(self.empty)
            return
        for card, view in zip(self.query(DeviceCard), views, strict=False):
            card.show(view)
