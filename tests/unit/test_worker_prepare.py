"""A pool worker's preparing thread: tasks reach the scoring thread in order, each with its
host-side work done, and a preparation that fails (a classifier that will not load, a bad
letter) never stops the thread: the task goes on unprepared and `score` reports the error."""

import queue
import threading

from virnucpro.pool.worker import ShardTask, _preparer


def _task(k: int) -> ShardTask:
    return ShardTask(key=("in", k), frame_ids=[f"f{k}"], nucleotides=["ACGT"], proteins=["M"],
                     batch_tokens=0, keep_features=False, chunk_size=500)


def _run(prepare, keys, cancelled=()):
    received, inbox = queue.Queue(), queue.Queue()
    thread = threading.Thread(target=_preparer, args=(received, inbox, set(cancelled), prepare))
    thread.start()
    for k in keys:
        received.put(_task(k))
    received.put(None)
    thread.join(5)
    assert not thread.is_alive()
    out = []
    while (item := inbox.get_nowait()) is not None:
        out.append((item[0].key[1], item[1]))
    return out


def test_each_task_goes_on_with_its_prepared_batches_in_order():
    assert _run(lambda t: f"batches of {t.key[1]}", [0, 1, 2]) == [
        (0, "batches of 0"), (1, "batches of 1"), (2, "batches of 2")]


def test_a_failing_preparation_passes_the_task_on_unprepared_and_the_thread_lives():
    def prepare(task):
        if task.key[1] == 1:
            raise RuntimeError("the 300 bp classifier is truncated")
        return "ok"

    assert _run(prepare, [0, 1, 2]) == [(0, "ok"), (1, None), (2, "ok")]


def test_cancelled_tasks_and_cpu_workers_are_not_prepared():
    seen = []
    assert _run(lambda t: seen.append(t.key[1]) or "ok", [0, 1], cancelled=[("in", 0)]) == [
        (0, None), (1, "ok")]
    assert seen == [1]
    assert _run(None, [0, 1]) == [(0, None), (1, None)]  # a CPU worker: its cores score
