"""The help screen (`?` or F1, on every screen): the keys of the screen it was opened on, the
ones the footer shows and the hidden ones of the dashboard's own widgets, one line per action.
`bindings_of(screen)` reads them from Textual's active bindings, so the list cannot drift from
what the keys do; Escape, `?` or F1 closes it."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer, Static

OWN = "virnucpro.tui"  # hidden bindings of these modules' classes are listed too
HELP_ACTIONS = ("help", "app.help")


def own_actions(cls: type) -> set[str]:
    """The actions bound in the BINDINGS of `cls` and its bases that are the dashboard's."""
    actions = set()
    for base in cls.__mro__:
        if base.__module__.startswith(OWN):
            for binding in base.__dict__.get("BINDINGS", ()):
                actions.add(binding.action if isinstance(binding, Binding) else binding[1])
    return actions


def bindings_of(screen: Screen) -> list[tuple[str, str]]:
    """(keys, what they do) of `screen` now: its focused widget's, its own and the app's, in
    that order; keys of one action together (`y / enter`)."""
    app = screen.app
    rows: dict[tuple[int, str, str], list[str]] = {}
    for active in screen.active_bindings.values():
        binding, node = active.binding, active.node
        if not binding.description or binding.action in HELP_ACTIONS:
            continue
        if not binding.show and binding.action not in own_actions(type(node)):
            continue  # Textual's own cursor and editing keys
        key = (id(node), binding.action, binding.description)
        rows.setdefault(key, []).append(app.get_key_display(binding))
    return [(" / ".join(keys), description) for (_, _, description), keys in rows.items()]


def help_table(rows: list[tuple[str, str]]) -> Table:
    table = Table.grid(padding=(0, 3))
    table.add_column(style="bold cyan", no_wrap=True, justify="right")
    table.add_column()
    for keys, description in rows:
        table.add_row(keys, description)
    table.add_row(Text("? / f1", style="bold cyan"), "this help (escape closes it)")
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,f1", "dismiss", "Close", priority=True)]

    def __init__(self, title: str, rows: list[tuple[str, str]]) -> None:
        super().__init__()
        self.title_line = title
        self.rows = rows

    def compose(self) -> ComposeResult:
        with Vertical(id="help-dialog"):
            yield Static(Text(f"Keys: {self.title_line}", style="bold"), id="help-title")
            yield Static(help_table(self.rows), id="help-keys")
            yield Static(Text("Cancel, retry and remove ask first (y or Enter: yes; n or Escape: "
                              "no). ctrl+q quits from any screen.", style="dim"), id="help-note")
        yield Footer()
