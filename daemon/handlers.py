"""The daemon's request handlers, dispatched through one table (`HANDLERS`: request type ->
handler). Each takes the daemon and the request's record (requests.py, decoded and checked)
and returns a reply record (messages.py); what changes a job's state is a job service verb.
A handler raises ProtocolError for an error reply; the server turns an `IllegalMove` into
`conflict` and an unknown job into `unknown_job`.
"""

from __future__ import annotations

import os
import stat
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from virnucpro.daemon import messages as M
from virnucpro.daemon import protocol as P
from virnucpro.daemon import requests as R
from virnucpro.daemon.jobs import InputFile, JobRecord, JobState
from virnucpro.daemon.paths import real_path
from virnucpro.daemon.protocol import DaemonState, ErrorCode, ProtocolError
from virnucpro.daemon.uploads import read_chunk
from virnucpro.errors import VirNucProError

if TYPE_CHECKING:
    from virnucpro.daemon.server import Daemon


def hello(d: Daemon, req: R.HelloRequest) -> M.Hello:
    versions = [P.PROTOCOL_VERSION] if req.versions is None else list(req.versions)
    if P.PROTOCOL_VERSION not in versions:
        raise ProtocolError(ErrorCode.VERSION_MISMATCH,
                            f"client speaks {versions}; this daemon speaks {P.PROTOCOL_VERSION}")
    return M.Hello(daemon=d.status())


def status(d: Daemon, req: R.StatusRequest) -> M.DaemonStatus:
    return d.status()


def snapshot(d: Daemon, req: R.SnapshotRequest) -> M.Snapshot:
    d.publish_pending()  # so that seq covers everything the snapshot shows
    return M.Snapshot(seq=d.seq, daemon=d.status(), devices=d.memory(),
                      jobs=tuple(d.store.list(include_finished=True)))


def default_models(d: Daemon) -> str:
    """The model set of a submit without a `models` option: the one the daemon was started
    with (`--models`, persistent or not) when it names exactly one; else, with persistent
    models and no `--models`, the one set it holds loaded; else "published". `status` shows it."""
    if len(d.config.models) == 1:
        return d.config.models[0]
    if not d.config.models and d.config.persistent:
        loaded = [entry["models"] for entry in d.engines.describe()]
        if len(loaded) == 1:
            return loaded[0]
    return "published"


def submit(d: Daemon, req: R.SubmitRequest) -> M.Submitted:
    from virnucpro.run.folder import check_output_folder
    from virnucpro.seqfile import sniff_fasta

    if d.state is not DaemonState.RUNNING:
        raise ProtocolError(ErrorCode.REFUSED, f"the daemon is {d.state.value}: no new jobs")
    rid = req.client_request_id
    if rid and (known := d.store.find_by_request(rid)):
        return M.Submitted(job=known, duplicate=True)
    # The set is resolved now and recorded: a retry (or a restart) runs the same one.
    options = P.check_options({"models": default_models(d), **req.options})
    uploads = [d.uploads.finished(u) for u in req.uploads or ()]
    paths = [str(u.path) for u in uploads] + list(req.inputs or ())
    if not paths:
        raise ProtocolError(ErrorCode.INVALID, "a job needs at least one input")
    inputs = tuple(_fingerprint(p) for p in paths)
    paths = [i.path for i in inputs]  # resolved: what the job reads is what was checked
    for path in paths:  # the cheap checks of any client: its first bytes, as predict says it
        sniff_fasta(path)
    _check_models(options)
    if d.store.count([JobState.QUEUED]) >= d.config.max_queued:
        raise ProtocolError(ErrorCode.BUSY, f"the queue is full ({d.config.max_queued} jobs)")
    outdir = req.outdir
    if outdir is not None and not os.path.isabs(outdir):
        raise ProtocolError(ErrorCode.INVALID, "outdir must be an absolute path")
    if outdir is not None:
        # As the file system resolves it (as predict's would be): `link/..` is the link
        # target's parent, and a link to a live job's folder is that folder.
        outdir = real_path(outdir)
        # Two live jobs in one folder (or one inside the other's) would claim, or --force
        # away, each other's shards. Theirs is resolved again: a link may have changed.
        for j in d.store.list(include_finished=False):
            theirs = real_path(j.outdir)
            if os.path.commonpath([outdir, theirs]) in (outdir, theirs):
                where = "is" if theirs == outdir else ("holds" if theirs.startswith(outdir)
                                                       else "lies inside")
                raise ProtocolError(ErrorCode.INVALID, f"{outdir} {where} the output folder of "
                                    f"live job {j.id}; choose another or wait for it")
        if options["force"] and options["resume"]:
            raise ProtocolError(ErrorCode.INVALID, "force and resume exclude each other")
        # As predict refuses it; with resume, a finished run there is taken up.
        check_output_folder(outdir, paths, force=options["force"], resume=options["resume"])
    first = uploads[0].name if uploads else Path(paths[0]).name
    # Without an outdir: a fresh folder in the daemon's results, named before the job has
    # an id so that its history records one "queued", not two.
    default = d.paths.results / f"job-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    record = JobRecord(id=0, name=req.name or first, state=JobState.QUEUED,
                       inputs=inputs, outdir=outdir or str(default), options=options,
                       priority=req.priority, client_request_id=rid)
    job, duplicate = d.service.submit(record)
    for u in req.uploads or ():  # the file now belongs to the job
        d.uploads.take(u)
    d.wake.set()
    return M.Submitted(job=job, duplicate=duplicate)


def _check_models(options: dict) -> None:
    from virnucpro.daemon.scheduler import resolve_loadable

    # Offline by design here: a daemon must not start a 6 GB download for a submission. The
    # load check runs once per set (and again only when its files change).
    try:
        model_set = resolve_loadable(options["models"])
        model_set.classifier_path(options["chunk_size"])
    except VirNucProError as exc:
        raise ProtocolError(ErrorCode.INVALID, str(exc)) from None


def _fingerprint(path: str) -> InputFile:
    """Size and modification time only: hashing a 50 GB input here would stall every
    client for a minute. The scheduler fills in the sha256 from the job's first read."""
    from virnucpro.seqfile import check_path

    if not os.path.isabs(path):
        raise ProtocolError(ErrorCode.INVALID, f"{path}: input paths must be absolute")
    p = check_path(real_path(path, keep_name=True), display_name=path)  # no such file; is a folder, not a FASTA or FASTQ file (predict's words)
    st = p.stat()
    if not stat.S_ISREG(st.st_mode):
        # A pipe or a device would block the request loop on its first read (every client
        # waits), and a job reads its inputs again later, by path.
        raise ProtocolError(ErrorCode.INVALID, f"{path}: not a regular file (a pipe, a device "
                            "or a socket); save it to a file first, or use `virnucpro predict`")
    return InputFile(path=str(p), size=st.st_size, mtime_ns=st.st_mtime_ns, sha256="")


def jobs(d: Daemon, req: R.JobsRequest) -> M.JobList:
    return M.JobList(jobs=tuple(d.store.list(include_finished=req.all)))


def show(d: Daemon, req: R.ShowRequest) -> M.JobReply:
    return M.JobReply(job=d.service.get(req.job_id))


def cancel(d: Daemon, req: R.CancelRequest) -> M.JobReply:
    return M.JobReply(job=d.service.cancel(req.job_id))


def retry(d: Daemon, req: R.RetryRequest) -> M.JobReply:
    from virnucpro.daemon.engines import changed_inputs

    # An input that changed since the submission would fail the new attempt at once with the
    # same reason: refused here, naming it, and the job keeps its state.
    if changed := changed_inputs(d.service.get(req.job_id)):
        raise ProtocolError(ErrorCode.CONFLICT, f"job {req.job_id} cannot be retried: its "
                            f"input changed since submission: {changed}; submit it again")
    # The overrides a failure's hint names. --force applies to the next attempt only: a plain
    # retry resumes the shards the job finished, whatever its submit said.
    options = {"force": bool(req.force)}
    if req.rename_duplicates is not None:
        options["rename_duplicates"] = req.rename_duplicates
    job = d.service.retry(req.job_id, options)
    d.wake.set()
    return M.JobReply(job=job)


def logs(d: Daemon, req: R.LogsRequest) -> M.LogLines:
    job = d.service.get(req.job_id)
    return M.LogLines(lines=tuple(M.LogLine(n, t, line)
                                  for n, t, line in d.store.logs(job.id, req.since)))


def remove(d: Daemon, req: R.RemoveRequest) -> M.Removed:
    if req.job_id is not None:
        job = d.service.get(req.job_id)
        if job.state.live:
            raise ProtocolError(ErrorCode.CONFLICT, f"job {job.id} is {job.state.value}; cancel it first")
        return M.Removed(removed=int(d.store.remove(job.id)))
    older = 7 * 86400.0 if req.older_than_s is None else req.older_than_s
    return M.Removed(removed=d.store.remove_finished(older, time.time()))


def drain(d: Daemon, req: R.DrainRequest) -> M.DaemonStatus:
    d.begin_drain()
    return d.status()


def stop(d: Daemon, req: R.StopRequest) -> M.DaemonStatus:
    d.begin_stop("stop requested")
    return d.status()


def upload_begin(d: Daemon, req: R.UploadBeginRequest) -> M.UploadStarted:
    return d.uploads.begin(req.name, req.size, req.sha256)


def upload_chunk(d: Daemon, req: R.UploadChunkRequest) -> M.UploadReceived:
    return d.uploads.chunk(req.upload_id, req.offset, req.data)


def upload_end(d: Daemon, req: R.UploadEndRequest) -> M.UploadDone:
    return d.uploads.end(req.upload_id)


def download(d: Daemon, req: R.DownloadRequest) -> M.DownloadChunk:
    job = d.service.get(req.job_id)
    return read_chunk(job.outdir, job.id, req.file, req.offset)


# Request type -> its handler, which takes that type's record (requests.REQUESTS).
HANDLERS: dict[str, Callable[[Daemon, Any], Any]] = {
    "hello": hello, "status": status, "snapshot": snapshot, "submit": submit, "jobs": jobs,
    "show": show, "cancel": cancel, "retry": retry, "logs": logs, "remove": remove,
    "drain": drain, "stop": stop, "upload_begin": upload_begin, "upload_chunk": upload_chunk,
    "upload_end": upload_end, "download": download,
}
