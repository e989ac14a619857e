"""The dashboard's messages: what the network threads report and what widgets ask for.

Worker threads post the first group to the app (Textual's `post_message` is thread-safe);
widgets and screens post the second, which bubbles up to the app, the only place that routes
them. Handlers are named after the class (`DaemonEvent` -> `on_daemon_event`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.message import Message

if TYPE_CHECKING:
    from virnucpro.daemon.jobs import JobRecord
    from virnucpro.daemon.messages import Event, Snapshot

# -- from the network threads -------------------------------------------------------------------


class DaemonEvent(Message):
    """One item of the client's `Follower`: a `Snapshot` (the first, or after a gap) or a
    newer `Event`."""

    def __init__(self, item: Snapshot | Event) -> None:
        super().__init__()
        self.item = item


class Disconnected(Message):
    """The daemon stopped answering (or never did); the stream retries after `retry_in`."""

    def __init__(self, reason: str, retry_in: float, attempt: int) -> None:
        super().__init__()
        self.reason = reason
        self.retry_in = retry_in
        self.attempt = attempt


class JobActionDone(Message):
    """A cancel or retry was accepted; `job` is the daemon's answer."""

    def __init__(self, action: str, job: JobRecord) -> None:
        super().__init__()
        self.action = action
        self.job = job


class JobRemoved(Message):
    """A remove was accepted: the daemon dropped `removed` (0 or 1) records of `job_id`."""

    def __init__(self, job_id: int, removed: int) -> None:
        super().__init__()
        self.job_id = job_id
        self.removed = removed


class JobActionFailed(Message):
    def __init__(self, action: str, job_id: int, error: str) -> None:
        super().__init__()
        self.action = action
        self.job_id = job_id
        self.error = error


# -- from widgets and screens -------------------------------------------------------------------


class JobActionRequested(Message):
    """Cancel, retry or remove a job (from the queue table's bindings or the detail screen);
    the app asks for confirmation first."""

    def __init__(self, action: str, job_id: int) -> None:
        super().__init__()
        self.action = action
        self.job_id = job_id


class JobOpened(Message):
    """Show a job's detail screen."""

    def __init__(self, job_id: int) -> None:
        super().__init__()
        self.job_id = job_id
