"""Progress and cancellation of client requests, keyed by the client's request_id.

A job sums the progress of the worker tasks a request waits on; the progress route reads it,
the cancel route marks it, and the tasks it holds are cancelled with it.
"""

import threading
import time

RUNNING, DONE, CANCELLED, UNKNOWN = "running", "done", "cancelled", "unknown"


class Job:
    """One client request: its tasks' progress (done, total) and whether it was cancelled."""

    def __init__(self, request_id):
        self.request_id = request_id
        self.state = RUNNING
        self.finished_at = None
        self._parts = {}
        self._futures = []
        self._lock = threading.Lock()

    def report(self, part, done, total):
        """Record that task `part` has done `done` of `total` units."""
        with self._lock:
            self._parts[part] = (int(done), int(total))

    def expect(self, part, total):
        """Count task `part` as `total` units not yet started (its own reports, earlier or later, win)."""
        with self._lock:
            self._parts.setdefault(part, (0, int(total)))

    def attach(self, future):
        """Remember a task's future so that cancelling the job cancels it."""
        with self._lock:
            self._futures.append(future)
            cancelled = self.state == CANCELLED
        if cancelled:
            future.cancel_task()

    def progress(self):
        """(done, total) summed over the job's tasks."""
        with self._lock:
            parts = list(self._parts.values())
        return sum(d for d, _ in parts), sum(t for _, t in parts)

    def cancel(self):
        """Mark the job cancelled and cancel its tasks; False if it had already finished."""
        with self._lock:
            if self.state != RUNNING:
                return self.state == CANCELLED
            self.state = CANCELLED
            futures = list(self._futures)
        for future in futures:
            future.cancel_task()
        return True

    def finish(self):
        """Mark the job done unless it was cancelled."""
        with self._lock:
            if self.state == RUNNING:
                self.state = DONE
            self.finished_at = time.monotonic()

    def describe(self):
        """The JSON of GET progress."""
        done, total = self.progress()
        return {"request_id": self.request_id, "state": self.state, "done": done, "total": total}


class Jobs:
    """The registry of jobs; finished ones are forgotten after `keep_s` seconds."""

    def __init__(self, keep_s=300.0):
        self._jobs = {}
        self._keep_s = keep_s
        self._lock = threading.Lock()

    def start(self, request_id):
        """A new job for `request_id` (None: an anonymous job that is not registered)."""
        job = Job(request_id)
        if request_id is not None:
            with self._lock:
                self._forget_old()
                previous = self._jobs.get(request_id)
                if previous is not None and getattr(previous, "early", False):
                    job.state = CANCELLED  # cancelled before its request arrived
                self._jobs[request_id] = job
        return job

    def get(self, request_id):
        """The job for `request_id`, or None."""
        with self._lock:
            return self._jobs.get(request_id)

    def cancel(self, request_id):
        """Cancel the job `request_id`; an unknown id is remembered as cancelled for when it arrives."""
        with self._lock:
            job = self._jobs.get(request_id)
            if job is None:
                job = self._jobs[request_id] = Job(request_id)
                job.state, job.early, job.finished_at = CANCELLED, True, time.monotonic()
                return True
        return job.cancel()

    def describe(self, request_id):
        """GET progress's JSON for `request_id` (state 'unknown' if never seen)."""
        job = self.get(request_id)
        if job is None:
            return {"request_id": request_id, "state": UNKNOWN, "done": 0, "total": 0}
        return job.describe()

    def _forget_old(self):
        """Drop jobs that finished more than keep_s ago (lock held)."""
        now = time.monotonic()
        for rid in [r for r, j in self._jobs.items() if j.finished_at is not None and now - j.finished_at > self._keep_s]:
            del self._jobs[rid]
