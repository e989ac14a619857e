"""When no daemon answers: say so and offer to start one, with persistent models or with
models loaded per job, on the devices typed (default auto), with a model set chosen among those
in this machine's cache (`published` when it is there, else `tiny` for a trial): the daemon's
default for the jobs submitted to it.

Starting runs `virnucpro-daemon start` in a thread (it returns once the daemon answers). The
dialog does not connect by itself: the app's event stream keeps retrying and closes this
dialog at its first snapshot, whoever started the daemon. Keep waiting closes it, leaving the
banner; for a remote endpoint there is nothing to start from here.
"""

from __future__ import annotations

import json
import subprocess
import sys

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Input, Label, Select, Static
from textual.worker import get_current_worker

from virnucpro.tui.link import Abandoned, start_daemon

TINY_CHOICE = ("tiny (random weights: a trial, its calls mean nothing)", "tiny")


def model_set_choices() -> list[tuple[str, str]]:
    """(label, name) of the sets a daemon started here can use without a download: the ready
    ones in the cache (`published` first) and `tiny` (built on first use), last. Asked of
    `virnucpro models list --json` in a child process: the dashboard imports nothing of the
    model code (its imports reach torch)."""
    try:
        done = subprocess.run([sys.executable, "-m", "virnucpro", "models", "list", "--json"],
                              capture_output=True, text=True, timeout=30, check=True)
        listed = json.loads(done.stdout)
    except (OSError, subprocess.SubprocessError, ValueError):
        return [TINY_CHOICE]
    ready = [s["name"] for s in listed if s.get("state") == "ready" and s["name"] != "tiny"]
    return [(name, name) for name in ready] + [TINY_CHOICE]


class SetsListed(Message):
    def __init__(self, choices: list[tuple[str, str]]) -> None:
        super().__init__()
        self.choices = choices


class StartFinished(Message):
    def __init__(self, ok: bool, text: str) -> None:
        super().__init__()
        self.ok = ok
        self.text = text


class ConnectScreen(ModalScreen[None]):
    HELP_TITLE = "no daemon answers"
    BINDINGS = [Binding("escape", "dismiss", "Keep waiting")]

    def __init__(self, endpoint: str, reason: str, *, can_start: bool, start_endpoint: str | None
                 ) -> None:
        super().__init__()
        self.endpoint = endpoint
        self.reason = reason
        self.can_start = can_start
        self.start_endpoint = start_endpoint  # None: the daemon's default (what we look for)

    def compose(self) -> ComposeResult:
        with Vertical(id="connect-dialog"):
            yield Static(Text("No daemon answers", style="bold"), id="connect-title")
            yield Static(Text.assemble(("at ", "dim"), self.endpoint, ("\n", ""),
                                       (self.reason, "dim italic")), id="connect-where")
            if self.can_start:
                yield Static("Start one here? Persistent keeps the models loaded between jobs; "
                             "per job loads them for each job and frees the memory after it.")
                with Horizontal(id="connect-devices-row"):
                    yield Label("devices ")
                    yield Input("auto", id="connect-devices")
                with Horizontal(id="connect-models-row"):
                    yield Label("model set ")
                    # Filled once `models list` answers (SetsListed); tiny until then.
                    yield Select([TINY_CHOICE], value="tiny", allow_blank=False,
                                 id="connect-models")
                with Horizontal(classes="connect-buttons"):
                    yield Button("Start, persistent models", variant="primary", id="start-persistent")
                    yield Button("Start, models per job", id="start-per-job")
            else:
                yield Static("The daemon is on another machine: start it there "
                             "(virnucpro-daemon start).")
            yield Static(id="connect-status")
            with Horizontal(classes="connect-buttons"):
                yield Button("Keep waiting", id="connect-wait")
                yield Button("Quit", variant="error", id="connect-quit")
        yield Footer()

    def on_mount(self) -> None:
        self._status("")
        if self.can_start:
            self.list_sets()

    @work(thread=True, exclusive=True, group="sets", exit_on_error=False)
    def list_sets(self) -> None:
        self.post_message(SetsListed(model_set_choices()))

    @on(SetsListed)
    def _sets_listed(self, message: SetsListed) -> None:
        select = self.query_one("#connect-models", Select)
        select.set_options(message.choices)
        select.value = message.choices[0][1]

    def _status(self, text: str | Text) -> None:
        status = self.query_one("#connect-status", Static)
        status.update(text)
        status.display = bool(text)

    @on(Button.Pressed, "#start-persistent")
    def _start_persistent(self) -> None:
        self._start(persistent=True)

    @on(Button.Pressed, "#start-per-job")
    def _start_per_job(self) -> None:
        self._start(persistent=False)

    def _start(self, *, persistent: bool) -> None:
        devices = self.query_one("#connect-devices", Input).value.strip() or "auto"
        models = str(self.query_one("#connect-models", Select).value)
        for button in self.query(Button):
            if button.id and button.id.startswith("start-"):
                button.disabled = True
        self._status(Text(f"starting a daemon on {devices} with the set {models}…", style="dim"))
        self.start(persistent, devices, models)

    @work(thread=True, exclusive=True, exit_on_error=False)
    def start(self, persistent: bool, devices: str, models: str) -> None:
        worker = get_current_worker()
        try:
            text = start_daemon(persistent=persistent, devices=devices, endpoint=self.start_endpoint,
                                models=models, cancelled=lambda: worker.is_cancelled)
            self.post_message(StartFinished(True, text or "started; connecting…"))
        except Abandoned:
            pass
        except (RuntimeError, OSError) as exc:
            self.post_message(StartFinished(False, str(exc)))

    @on(StartFinished)
    def _finished(self, message: StartFinished) -> None:
        self._status(Text(message.text, style="green" if message.ok else "red"))
        if not message.ok:
            for button in self.query(Button):
                button.disabled = False

    @on(Button.Pressed, "#connect-wait")
    def _wait(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#connect-quit")
    def _quit(self) -> None:
        self.app.exit()
