"""A pool of spawned worker processes that run the engine, and the futures the server waits on.

HTTP threads never run TensorFlow: they submit a task (a picklable dict, see worker_main) and wait
on its future. Identical tasks in flight share one future. Each worker slot has a thread that
sends one task at a time over a pipe and forwards progress; when the process dies (SIGKILL, OOM,
abort) the pipe ends, the task it held fails with WorkerDiedError (503) and a fresh process is
started for the next task. Processes start on the first task, so listing stays cheap.
"""

import concurrent.futures
import itertools
import logging
import multiprocessing
import queue
import threading

from tb_xai_plugin.errors import XaiError

logger = logging.getLogger(__name__)

MEMORY_POLL_S = 0.05  # how often a slot checks its worker's memory while waiting for its answer
# Task priorities, lowest first: a worker takes the most urgent queued task whenever it is free, so the
# grid's maps and predictions pass the chunks of a whole-set job (suggestions) still in the queue.
INTERACTIVE, BULK = 0, 1


class WorkerDiedError(XaiError):
    """The worker process computing a request died; the request can be retried."""

    http_status = 503


class WorkerOutOfMemoryError(WorkerDiedError):
    """The worker went over its memory limit (--xai_worker_memory_mb) and was stopped."""


class OverloadedError(XaiError):
    """Too many tasks are queued; the request can be retried later."""

    http_status = 503


class CancelledError(XaiError):
    """The client cancelled the request."""

    http_status = 409


class TaskFuture(concurrent.futures.Future):
    """The result of one worker task, with progress listeners and a cancel that reaches the worker."""

    def __init__(self, pool, task_id, key, message, on_result=None):
        super().__init__()
        self.on_result = on_result
        self.task_id = task_id
        self.key = key
        self.message = message
        self.waiters = 0
        self._pool = pool
        self._listeners = []
        self._lock = threading.Lock()
        self.slot = None  # the WorkerSlot running it, once sent

    def settle(self, result=None, error=None):
        """Set the result or the error unless the task was already settled (a cancel can race)."""
        try:
            if error is not None:
                self.set_exception(error)
            else:
                self.set_result(result)
        except concurrent.futures.InvalidStateError:
            pass

    def add_listener(self, listener):
        """Call listener(done, total) on every progress report of this task."""
        with self._lock:
            self._listeners.append(listener)

    def report(self, done, total):
        """Forward the worker's progress to the listeners."""
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener(done, total)

    def cancel_task(self):
        """One waiter gives up; when none is left, the task is dropped or its worker told to stop."""
        with self._lock:
            self.waiters -= 1
            if self.waiters > 0:
                return
        self._pool.cancel(self)


class WorkerSlot:
    """One worker process (restarted when it dies) and the thread that feeds it tasks."""

    def __init__(self, pool, index):
        self.pool = pool
        self.index = index
        self.process = None
        self.conn = None
        self.current = None
        self.send_lock = threading.Lock()

    def ensure_started(self):
        """Start the process if there is none alive."""
        if self.process is not None and self.process.is_alive():
            return
        self.stop()
        from tb_xai_plugin.plugin import worker_main  # light: imports TensorFlow only in the child

        context = multiprocessing.get_context("spawn")
        parent_conn, child_conn = context.Pipe(duplex=True)
        process = context.Process(
            target=worker_main.main,
            args=(child_conn, self.pool.options),
            name="tb-xai-worker-%d" % self.index,
            daemon=True,
        )
        process.start()
        child_conn.close()  # so that the child's death ends our recv with EOFError
        self.process, self.conn = process, parent_conn
        self.pool.stats["started"] += 1

    def stop(self):
        """Terminate the process (if any) and close the pipe."""
        if self.conn is not None:
            self.conn.close()
        if self.process is not None and self.process.is_alive():
            self.process.terminate()
            self.process.join(5)
        self.process, self.conn = None, None

    def receive(self):
        """The worker's next message; with a memory limit, its RSS is checked before each message and
        every MEMORY_POLL_S while waiting (WorkerOutOfMemoryError, after killing it, once past the limit)."""
        limit = self.pool.memory_limit_bytes
        while limit:
            if process_rss(self.process.pid) > limit:
                self.process.kill()
                raise WorkerOutOfMemoryError(
                    "the worker process computing this request went over its memory limit of %d MiB "
                    "(--xai_worker_memory_mb) and was stopped; retry with fewer samples" % (limit >> 20)
                )
            if self.conn.poll(MEMORY_POLL_S):
                break
        return self.conn.recv()

    def send(self, message):
        """Send one message to the worker (tasks and cancels come from different threads)."""
        with self.send_lock:
            self.conn.send(message)

    def run(self, task):
        """Run `task` on this slot's process; set its result, error, or WorkerDiedError."""
        try:
            self.ensure_started()
            self.current = task
            task.slot = self
            self.send(("task", task.task_id, task.message))
            while True:
                kind, task_id, payload = self.receive()
                if task_id != task.task_id:
                    continue
                if kind == "progress":
                    task.report(*payload)
                elif kind == "result":
                    self.pool.store(task, payload)
                    task.settle(payload)
                    return
                elif kind == "error":
                    status, text = payload
                    error = CancelledError("cancelled") if status == 409 else XaiError(text)
                    error.http_status = status
                    task.settle(error=error)
                    return
        except WorkerOutOfMemoryError as e:
            logger.warning("tb-xai worker %d stopped: %s", self.index, e)
            self.pool.stats["died"] += 1
            self.pool.stats["out_of_memory"] += 1
            self.stop()
            task.settle(error=e)
        except (EOFError, OSError) as e:
            code = self.process.exitcode if self.process is not None else None
            if self.process is not None:
                self.process.join(5)
                code = self.process.exitcode
            logger.warning("tb-xai worker %d died (exit code %s): %s", self.index, code, e)
            self.pool.stats["died"] += 1
            self.stop()
            task.settle(
                error=WorkerDiedError(
                    "the worker process computing this request died (exit code %s); "
                    "a new one will start, retry the request" % code
                )
            )
        except Exception as e:  # noqa: BLE001  (a failed spawn must not kill the slot's thread)
            logger.exception("tb-xai worker %d failed", self.index)
            self.stop()
            task.settle(error=WorkerDiedError("the worker process could not run this request: %s" % e))
        finally:
            self.current = None


def process_rss(pid):
    """Resident memory of process `pid` in bytes (0 once it is gone)."""
    import psutil

    try:
        return psutil.Process(pid).memory_info().rss
    except psutil.Error:
        return 0


class WorkerPool:
    """`size` worker processes fed from one queue; `submit` merges identical tasks in flight.
    A worker whose resident memory passes `memory_limit_mb` (0: no limit) is killed, failing its task."""

    def __init__(self, size=1, options=None, max_queue=1024, memory_limit_mb=0):
        self.size = max(1, int(size))
        self.options = dict(options or {})
        self.max_queue = max_queue
        self.memory_limit_bytes = int(memory_limit_mb) << 20
        self.stats = {"submitted": 0, "merged": 0, "started": 0, "died": 0, "out_of_memory": 0, "late_cache_hits": 0}
        self._queue = queue.PriorityQueue()  # (priority, sequence number, TaskFuture or None to stop)
        self._order = itertools.count()
        self._inflight = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._slots = []
        self._threads = []
        self._closed = False

    def submit(self, key, message, on_result=None, cached=None, priority=INTERACTIVE):
        """A TaskFuture for `message`; a task with the same `key` already in flight is shared; queued tasks
        run by `priority` (INTERACTIVE before BULK), then in the order they came.
        on_result(result) runs before the future is done (to fill a cache while the task is in flight).
        cached() -> the result or None is asked when no such task is in flight: one that finished
        since the caller missed the cache has stored its result there, and is not computed again."""
        with self._lock:
            if self._closed:
                raise OverloadedError("the worker pool is shutting down")
            future = self._inflight.get(key)
            if future is not None and not future.done():
                future.waiters += 1
                self.stats["merged"] += 1
                return future
            result = cached() if cached is not None else None
            if result is not None:
                self.stats["late_cache_hits"] += 1
                future = TaskFuture(self, next(self._ids), key, message)
                future.settle(result)
                return future
            if self._queue.qsize() >= self.max_queue:
                raise OverloadedError("too many requests are queued (%d); retry later" % self.max_queue)
            future = TaskFuture(self, next(self._ids), key, message, on_result)
            future.waiters = 1
            self._inflight[key] = future
            self.stats["submitted"] += 1
            self._start_threads()
        future.add_done_callback(self._forget)
        self._queue.put((priority, next(self._order), future))
        return future

    def store(self, task, result):
        """Run the task's on_result hook; a failing hook is logged and does not fail the task."""
        if task.on_result is None:
            return
        try:
            task.on_result(result)
        except Exception:  # noqa: BLE001  (a result that cannot be cached is still an answer)
            logger.exception("tb-xai could not store the result of task %s", task.task_id)

    def cancel(self, future):
        """Drop a queued task, or ask its worker to stop (the engine stops at its next progress report)."""
        if future.done():
            return
        slot = future.slot
        if slot is None:
            future.settle(error=CancelledError("cancelled"))
            return
        try:
            slot.send(("cancel", future.task_id, None))
        except (OSError, AttributeError):
            pass

    def stop_worker_of(self, future):
        """Kill the process running `future` (its slot then fails the task and starts a new one)."""
        slot = future.slot
        process = slot.process if slot is not None and slot.current is future else None
        if process is not None and process.is_alive():
            process.kill()

    def pids(self):
        """Process ids of the live workers (for tests and the status route)."""
        return [s.process.pid for s in self._slots if s.process is not None and s.process.is_alive()]

    def busy_pids(self):
        """Process ids of the workers running a task right now."""
        return [s.process.pid for s in self._slots if s.current is not None and s.process is not None]

    def close(self):
        """Stop the threads and the processes."""
        with self._lock:
            self._closed = True
        for _ in self._threads:
            self._queue.put((float("inf"), next(self._order), None))
        for slot in self._slots:
            slot.stop()

    def _forget(self, future):
        """Remove a finished task from the in-flight table."""
        with self._lock:
            if self._inflight.get(future.key) is future:
                del self._inflight[future.key]

    def _start_threads(self):
        """Create the slots and their threads on the first task (lock held)."""
        if self._slots:
            return
        for index in range(self.size):
            slot = WorkerSlot(self, index)
            thread = threading.Thread(target=self._serve, args=(slot,), name="tb-xai-slot-%d" % index, daemon=True)
            self._slots.append(slot)
            self._threads.append(thread)
            thread.start()

    def _serve(self, slot):
        """A slot's loop: take the next task that is not yet done and run it."""
        while True:
            _, _, task = self._queue.get()
            if task is None:
                return
            if not task.done():
                slot.run(task)
