"""The submit dialog: one or more FASTA or FASTQ files (picked in a file tree or typed, with
completion), chunk size, model set, output folder, priority and name.

The fields are checked here first (`submission.check_submission`: every problem at once); the
request then goes out in a thread, and if the daemon refuses, its error is shown in the dialog,
which stays open with the fields as they were. Dismissed with the new job, or None.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.suggester import Suggester, SuggestFromList
from textual.widgets import Button, DirectoryTree, Footer, Input, Label, OptionList, Select, Static
from textual.worker import get_current_worker

from virnucpro.daemon.client import ClientError, DaemonUnavailable
from virnucpro.daemon.jobs import JobRecord
from virnucpro.tui.link import SUBMIT_TIMEOUT_S, Abandoned, DaemonLink
from virnucpro.tui.submission import (
    CHUNK_SIZES,
    FormError,
    Submission,
    absolute,
    check_submission,
    is_fasta_name,
)


class PathSuggester(Suggester):
    """Completes the last part of a path from the file system, as a shell does: the one name
    it can be, or the part all the names it can be share (folders end with '/'); None when
    there is nothing to add (a whole name, a folder's '/', no match)."""

    def __init__(self, *, folders_only: bool = False) -> None:
        super().__init__(use_cache=False, case_sensitive=True)
        self.folders_only = folders_only

    async def get_suggestion(self, value: str) -> str | None:
        return self.complete(value)

    def complete(self, value: str) -> str | None:
        names = self.matches(value)
        prefix = value.rpartition("/")[2]
        common = os.path.commonprefix(names) if names else ""
        if len(common) <= len(prefix):
            return None
        return value[: len(value) - len(prefix)] + common

    def matches(self, value: str) -> list[str]:
        """The names the last part of `value` can be (folders end with '/'); none for an
        empty last part (a folder already: Tab moves on instead of listing it)."""
        head, _, prefix = value.rpartition("/")
        if not prefix:
            return []
        folder = Path(os.path.expanduser(head + "/" if head or value.startswith("/") else "."))
        try:
            return sorted(e.name + ("/" if e.is_dir() else "") for e in os.scandir(folder)
                          if e.name.startswith(prefix)
                          and (prefix.startswith(".") or not e.name.startswith("."))
                          and (e.is_dir() or not self.folders_only))
        except OSError:
            return []


class PathInput(Input):
    """An Input whose Tab works as a shell's: it takes the completion when there is one; with
    several names and nothing to add, it lists them (`Listed`) and keeps the focus; a Tab
    again on the same text, or with nothing to complete, moves on to the next field."""

    BINDINGS = [Binding("tab", "complete", "Complete", show=False)]

    class Listed(Message):
        """The names a Tab found (empty: clear the list)."""

        def __init__(self, field: PathInput, names: list[str]) -> None:
            super().__init__()
            self.field = field
            self.names = names

    listed_for: str | None = None  # the text whose names the last Tab listed

    def action_complete(self) -> None:
        # Computed here, not taken from the inline hint: that one comes from a worker, and a Tab
        # typed right after a letter would otherwise arrive first and move the focus away.
        suggester = self.suggester
        completion = suggester.complete(self.value) if isinstance(suggester, PathSuggester) else None
        names = suggester.matches(self.value) if isinstance(suggester, PathSuggester) else []
        if completion and self.cursor_at_end and completion != self.value:
            self.value = completion
            self.cursor_position = len(self.value)
            self.listed_for = None
            self.post_message(self.Listed(self, []))
        elif len(names) > 1 and self.cursor_at_end and self.listed_for != self.value:
            self.listed_for = self.value
            self.post_message(self.Listed(self, names))
        else:
            self.listed_for = None
            self.post_message(self.Listed(self, []))
            self.screen.focus_next()


class FastaTree(DirectoryTree):
    """Folders and FASTA and FASTQ files (also compressed); hidden entries left out."""

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        return [p for p in paths if not p.name.startswith(".") and (p.is_dir() or is_fasta_name(p))]


class Refused(Message):
    def __init__(self, text: str, unknown_outcome: bool = False) -> None:
        super().__init__()
        self.text = text
        self.unknown_outcome = unknown_outcome


class Accepted(Message):
    def __init__(self, job: JobRecord) -> None:
        super().__init__()
        self.job = job


class SubmitScreen(ModalScreen[JobRecord | None]):
    HELP_TITLE = "submit a job"
    BINDINGS = [
        Binding("escape", "dismiss_none", "Close"),
        Binding("ctrl+s", "send", "Submit"),
        Binding("delete", "remove_input", "Remove file", show=False),
    ]

    def __init__(self, link: DaemonLink, *, local: bool = True, models: str = "published",
                 start: Path | None = None) -> None:
        super().__init__()
        self.link = link
        self.local = local
        self.models = models
        self.start = start or Path.cwd()
        self.inputs: list[str] = []
        self.request_id = os.urandom(12).hex()

    def compose(self) -> ComposeResult:
        with Vertical(id="submit-dialog"):
            yield Static("Submit a job", id="submit-title")
            with Horizontal(id="submit-body"):
                yield FastaTree(self.start, id="submit-tree")
                with Vertical(id="submit-form"):
                    yield Label("FASTA/FASTQ files: Enter adds (tree or path), Delete removes")
                    yield OptionList(id="submit-inputs")
                    yield PathInput(placeholder="a path or a glob: ~/data/*.fa.gz  (Tab completes)",
                                    suggester=PathSuggester(), id="submit-path")
                    yield Static(id="submit-matches")
                    with Horizontal(classes="submit-row"):
                        with Vertical():
                            yield Label("chunk size")
                            yield Select([(str(c), c) for c in CHUNK_SIZES], value=CHUNK_SIZES[0],
                                         allow_blank=False, id="submit-chunk")
                        with Vertical():
                            yield Label("model set")
                            yield Input(self.models, id="submit-models",
                                        suggester=SuggestFromList(["published", "tiny"]))
                        with Vertical():
                            yield Label("priority")
                            yield Input("0", id="submit-priority", type="integer")
                    yield Label("output folder (empty: the daemon's results folder)")
                    yield PathInput(placeholder="e.g. results/sample1", id="submit-outdir",
                                    suggester=PathSuggester(folders_only=True))
                    yield Label("name (empty: the first file's name)")
                    yield Input(id="submit-name")
            yield Static(id="submit-error")
            with Horizontal(id="submit-buttons"):
                yield Button("Submit", variant="primary", id="submit-send")
                yield Button("Cancel", id="submit-cancel")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#submit-tree").border_title = str(self.start)
        self.query_one("#submit-path").focus()
        self._show_error("")
        self.query_one("#submit-matches", Static).display = False

    @on(PathInput.Listed)
    def _listed(self, message: PathInput.Listed) -> None:
        """A Tab's names, under the field, as a shell lists them (at most 30)."""
        matches = self.query_one("#submit-matches", Static)
        shown = message.names[:30]
        more = f"  … {len(message.names) - len(shown)} more" if len(message.names) > 30 else ""
        matches.update(Text("  ".join(shown) + more, style="dim"))
        matches.display = bool(shown)

    @on(Input.Changed, "#submit-path, #submit-outdir")
    def _typing(self, event: Input.Changed) -> None:
        if isinstance(event.input, PathInput) and event.input.listed_for != event.value:
            event.input.listed_for = None  # other text: its first Tab lists again
            self.query_one("#submit-matches", Static).display = False

    # -- choosing files --------------------------------------------------------------------

    def add_inputs(self, paths: Iterable[str]) -> None:
        options = self.query_one("#submit-inputs", OptionList)
        for path in paths:
            if path not in self.inputs:
                self.inputs.append(path)
                options.add_option(path)

    @on(DirectoryTree.FileSelected)
    def _tree_file(self, event: DirectoryTree.FileSelected) -> None:
        self.add_inputs([str(event.path)])

    @on(Input.Submitted, "#submit-path")
    def _typed_path(self, event: Input.Submitted) -> None:
        if not event.value.strip():
            self.action_send()
        elif self._add_typed():
            self._show_error("")

    def _add_typed(self) -> bool:
        """Add what the path field holds (a path or a glob) and clear it; False, with the
        reason shown, when nothing matches (the field is left as it is)."""
        field = self.query_one("#submit-path", Input)
        typed = field.value.strip()
        if not typed:
            return True
        expanded = os.path.expanduser(typed)
        matches = sorted(glob.glob(expanded)) if glob.has_magic(expanded) else [expanded]
        if not matches:
            self._show_error(f"nothing matches {typed} (the path field): correct it or clear it")
            return False
        self.add_inputs(str(absolute(m)) for m in matches)
        field.value = ""
        return True

    def action_remove_input(self) -> None:
        options = self.query_one("#submit-inputs", OptionList)
        if options.has_focus and options.highlighted is not None:
            del self.inputs[options.highlighted]
            options.remove_option_at_index(options.highlighted)

    # -- sending ---------------------------------------------------------------------------

    def _show_error(self, text: str | Text) -> None:
        error = self.query_one("#submit-error", Static)
        error.update(text)
        error.display = bool(text)

    def _form(self) -> Submission:
        return check_submission(
            self.inputs, chunk_size=self.query_one("#submit-chunk", Select).value,
            models=self.query_one("#submit-models", Input).value,
            outdir=self.query_one("#submit-outdir", Input).value,
            priority=self.query_one("#submit-priority", Input).value,
            name=self.query_one("#submit-name", Input).value, local=self.local)

    @on(Button.Pressed, "#submit-send")
    @on(Input.Submitted, "#submit-models, #submit-priority, #submit-outdir, #submit-name")
    def action_send(self) -> None:
        # A path typed but not confirmed with Enter is meant too: add it, or say why not.
        if not self._add_typed():
            return
        try:
            submission = self._form()
        except FormError as exc:
            self._show_error("\n".join(f"• {p}" for p in exc.problems))
            return
        self._show_error(Text("sending…", style="dim"))
        self.query_one("#submit-send", Button).disabled = True
        self.send(submission)

    @work(thread=True, exclusive=True, group="submit", exit_on_error=False)
    def send(self, submission: Submission) -> None:
        worker = get_current_worker()
        try:
            job = self.link.call("submit", list(submission.inputs), timeout=SUBMIT_TIMEOUT_S,
                                 cancelled=lambda: worker.is_cancelled,
                                 client_request_id=self.request_id, **submission.client_kwargs())
        except ClientError as exc:
            self.post_message(Refused(f"The daemon refused the job ({exc.code}): {exc.message}"))
        except DaemonUnavailable as exc:
            self.post_message(Refused(f"No answer from the daemon: {exc}", unknown_outcome=True))
        except Abandoned:
            pass
        except OSError as exc:  # an upload that could not read its file
            self.post_message(Refused(str(exc)))
        else:
            self.post_message(Accepted(job))

    @on(Refused)
    def _refused(self, message: Refused) -> None:
        if not message.unknown_outcome:
            # Nothing was created: the next try is a new request. After no answer it may have
            # been, so the same id lets the daemon answer with that job instead of a second one.
            self.request_id = os.urandom(12).hex()
        self.query_one("#submit-send", Button).disabled = False
        self._show_error(message.text)

    @on(Accepted)
    def _accepted(self, message: Accepted) -> None:
        self.dismiss(message.job)

    @on(Button.Pressed, "#submit-cancel")
    def action_dismiss_none(self) -> None:
        self.workers.cancel_group(self, "submit")
        self.dismiss(None)
