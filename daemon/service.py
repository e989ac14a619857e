"""The job service: the only code that changes a job's state, and the one that emits `job`.

Every state change is a verb here, named as in the lifecycle (jobs.MOVES): the server's
handlers call `submit`, `cancel` and `retry`; the scheduler and its stream call `claim`,
`start`, `progress`, `finish`, `fail`, `halt` and `requeue`; crash recovery at start calls
`reconcile`. A verb reads the job and moves it under one lock, so that a cancel and a claim
(or a cancel and a job's last shard) cannot interleave; the store refuses any move the
lifecycle lacks (`IllegalMove`). A cancel is recorded as the state `cancelling`: the store is
the one place that says whether a job should stop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from virnucpro.daemon.jobs import IllegalMove, InputFile, JobRecord, JobState, Progress
from virnucpro.daemon.messages import JobProgress
from virnucpro.daemon.store import JobStore

log = logging.getLogger(__name__)

# A job interrupted this many times in a row (daemon crashes) without writing a new shard
# fails instead of looping; an attempt that wrote one does not count (JobRecord.stalls).
MAX_ATTEMPTS = 3
Emit = Callable[[str, object], None]  # (topic, record): the server publishes it


class UnknownJob(KeyError):
    def __init__(self, job_id: int) -> None:
        super().__init__(job_id)
        self.job_id = job_id

    def __str__(self) -> str:
        return f"no job {self.job_id}"


class JobService:
    def __init__(self, store: JobStore, emit: Emit, clock: Callable[[], float] = time.time
                 ) -> None:
        self.store = store
        self.emit = emit
        self.clock = clock
        # Re-entrant: `finish` decides between completed and cancelled by the state it reads.
        self.lock = threading.RLock()
        # Told the id of a job that became cancelling: the scheduler drops its shards in flight.
        self.on_cancel: Callable[[int], None] = lambda job_id: None

    # -- reading ---------------------------------------------------------------------------

    def get(self, job_id: int) -> JobRecord:
        job = self.store.get(job_id)
        if job is None:
            raise UnknownJob(job_id)
        return job

    def cancel_requested(self, job_id: int) -> bool:
        return self.get(job_id).state is JobState.CANCELLING

    def idle(self) -> bool:
        """No job queued or on the devices (read under the lock: a claim in progress counts)."""
        with self.lock:
            return self.store.count([s for s in JobState if s.live]) == 0

    def log(self, job_id: int, line: str) -> None:
        self.store.append_log(job_id, self.clock(), line)

    # -- the one way a state changes ---------------------------------------------------------

    def _move(self, job_id: int, state: JobState, reason: str = "", **fields) -> JobRecord:
        with self.lock:
            job = self.store.transition(job_id, state, self.clock(), reason, **fields)
        if reason:
            self.log(job_id, f"{state.value}: {reason}")
        self.emit("job", job)
        return job

    # -- from the requests -------------------------------------------------------------------

    def submit(self, record: JobRecord) -> tuple[JobRecord, bool]:
        """Queue a job; a known client_request_id returns that job and True (a duplicate)."""
        with self.lock:
            if record.client_request_id is not None:
                known = self.store.find_by_request(record.client_request_id)
                if known is not None:
                    return known, True
            job = self.store.add(record, self.clock())
        self.log(job.id, f"submitted: {len(job.inputs)} input(s) -> {job.outdir}")
        self.emit("job", job)
        return job, False

    def cancel(self, job_id: int) -> JobRecord:
        """A queued job ends at once; a claimed one is marked cancelling and the scheduler stops
        it at the next shard boundary (`halt`); an ended or cancelling one is returned as is."""
        with self.lock:
            job = self.get(job_id)
            if job.state is JobState.QUEUED:
                return self._move(job_id, JobState.CANCELLED, "cancelled by request")
            if job.state in (JobState.LOADING, JobState.RUNNING):
                job = self._move(job_id, JobState.CANCELLING, "cancel requested")
            else:
                return job
        self.on_cancel(job_id)  # outside the lock: it talks to the engine's workers
        return job

    def retry(self, job_id: int, options: dict | None = None) -> JobRecord:
        """Failed or cancelled -> queued; `options` changes some of its options (retry --force)."""
        with self.lock:
            job = self.get(job_id)
            if job.state not in (JobState.FAILED, JobState.CANCELLED):
                raise IllegalMove(job_id, job.state, JobState.QUEUED,
                                  "only failed or cancelled jobs can be retried")
            return self._move(job_id, JobState.QUEUED, "retry requested", attempts=0, stalls=0,
                              finished=None, options={**job.options, **(options or {})})

    # -- from the scheduler ------------------------------------------------------------------

    def claim(self, accept: Callable[[JobRecord], bool] | None = None) -> JobRecord | None:
        """Take the next queued job (priority, then submission order) and mark it loading;
        None when the queue is empty or `accept` turns that job down."""
        with self.lock:
            job = self.store.next_queued()
            if job is None or (accept is not None and not accept(job)):
                return None
            return self._move(job.id, JobState.LOADING, attempts=job.attempts + 1,
                              stalls=job.stalls + 1)

    def start(self, job_id: int, inputs: tuple[InputFile, ...], progress: Progress
              ) -> JobRecord | None:
        """Loading -> running, with the inputs' hashes and the total work; None when a cancel
        came while it was loading (the job is then cancelled)."""
        with self.lock:
            if self.cancel_requested(job_id):
                self.halt(job_id)
                return None
            job = self._move(job_id, JobState.RUNNING, inputs=inputs)
            self.store.set_progress(job_id, progress)
        self.emit("progress", JobProgress(job_id, progress))
        return job.with_(progress=progress)

    def advanced(self, job_id: int) -> None:
        """The running attempt wrote a new shard: it is not a stalled one."""
        self.store.clear_stalls(job_id)

    def progress(self, job_id: int, progress: Progress) -> None:
        self.store.set_progress(job_id, progress)
        self.emit("progress", JobProgress(job_id, progress))

    def finish(self, job_id: int, progress: Progress) -> JobRecord:
        """Its outputs are in place: completed, unless a cancel came first (then cancelled)."""
        with self.lock:
            self.store.set_progress(job_id, progress)
            if self.cancel_requested(job_id):
                return self.halt(job_id)
            return self._move(job_id, JobState.COMPLETED)

    def fail(self, job_id: int, reason: str) -> JobRecord:
        return self._move(job_id, JobState.FAILED, reason)

    def halt(self, job_id: int, reason: str = "cancelled by request") -> JobRecord:
        """The cancel takes effect: cancelling -> cancelled."""
        return self._move(job_id, JobState.CANCELLED, reason)

    def requeue(self, job_id: int, reason: str) -> JobRecord:
        """Back to the queue (the daemon stops; its finished shards resume the job later); a
        job being cancelled ends cancelled instead."""
        with self.lock:
            if self.cancel_requested(job_id):
                return self.halt(job_id)
            return self._move(job_id, JobState.QUEUED, reason)

    # -- at start ------------------------------------------------------------------------------

    def reconcile(self, max_attempts: int = MAX_ATTEMPTS) -> None:
        """After a crash: a job that was loading or running goes back to the queue; one whose
        last `max_attempts` attempts in a row wrote no new shard fails instead (a job that
        advances is resumed however often the daemon restarts); a cancelling one ends
        cancelled."""
        for job in self.store.list(include_finished=False):
            if job.state in (JobState.LOADING, JobState.RUNNING):
                if job.stalls >= max_attempts:
                    self.fail(job.id, f"interrupted {job.stalls} times in a row without "
                                      "writing a new shard; giving up")
                else:
                    self.requeue(job.id, "daemon restarted; resuming")
            elif job.state is JobState.CANCELLING:
                self.halt(job.id, "cancelled (daemon restarted)")
