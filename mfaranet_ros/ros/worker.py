"""The node's one inference thread and the newest pending frame of each camera.

Pure Python (no rclpy), so each guarantee is testable in milliseconds:

- **one worker, always**: :meth:`FrameWorker.start` refuses while an earlier thread is
  still alive; :meth:`FrameWorker.wait_stopped` is what ``configure`` waits on;
- **stops that return at once**: :meth:`deactivate` and :meth:`stop` never wait for the
  batch in flight (the executor's thread must keep serving services); a batch taken
  before :meth:`deactivate` is not published (its ``publishable()`` turns false) and
  :meth:`stop`'s ``release`` runs only once the thread has left its batch, so the model
  is released when no thread uses it;
- **counters that add up**: per camera, ``received = processed + dropped + rejected +
  in_flight(cam)`` at every moment, where the batch function accounts for each frame
  it is given (processed, dropped or rejected) and an exception it lets out rejects
  the frames of that batch it had not yet accounted for;
- **publishing beside inference** (``overlap``): the batch function may return what is
  left of a batch once its results exist (publishing them); the worker runs that on a
  second thread while it takes and runs the next batch, with at most one batch being
  published at a time (a batch whose results are ready waits for the previous one to be
  out, so nothing queues up). Without ``overlap`` it runs in the worker thread, right
  after. A frame stays in flight until its batch is published.

A *camera* is any object with a ``counters`` attribute (:class:`~.stats.InputCounters`).
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

__all__ = ["Frame", "FrameWorker", "WorkerBusy"]

#: one pending frame: (camera, message, perf_counter time it was received)
Frame = Tuple[Any, Any, float]
#: process(batch, publishable, account): runs one batch; ``account(cam, outcome, reason)``
#: records each frame's outcome ("processed", "dropped" or "rejected"). It may return the
#: rest of the batch's work (publishing) as a callable, run on the publishing thread with
#: ``overlap``, else right away.
Process = Callable[[List[Frame], Callable[[], bool], Callable[..., None]],
                   Optional[Callable[[], None]]]


class WorkerBusy(RuntimeError):
    """An earlier inference thread is still running; a second one is never started."""


class _Run:
    """What one thread works with; emptied when it ends so nothing keeps the model alive."""

    def __init__(self, process: Process, overlap: bool):
        self.process: Optional[Process] = process
        self.overlap = overlap
        self.stop = threading.Event()
        self.release: Optional[Callable[[], None]] = None
        self.exited = False


class _Batch:
    """One batch's frames, the epoch it was taken in, and its frames not yet accounted."""

    def __init__(self, frames: List[Frame], epoch: int):
        self.frames = frames
        self.epoch = epoch
        self.open = {id(cam) for cam, _, _ in frames}


class _Handoff:
    """The publishing thread: one batch's rest at a time; :meth:`put` waits while the
    previous one still runs; :meth:`close` lets the last one finish and ends the thread."""

    def __init__(self, name: str):
        self._cond = threading.Condition()
        self._job: Optional[Callable[[], None]] = None
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def put(self, job: Callable[[], None]) -> None:
        with self._cond:
            while self._job is not None:
                self._cond.wait()
            self._job = job
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._job is None and not self._closed:
                    self._cond.wait()
                if self._job is None:
                    return
                job = self._job
            job()   # never raises: the worker's completion catches and accounts
            with self._cond:
                self._job = None
                self._cond.notify_all()


class FrameWorker:
    """One inference thread fed with the newest frame of each camera (module docstring).

    ``lock`` guards the cameras' counters: other code updating them takes it too.
    ``on_error(reason)`` is told about a batch lost to an unexpected exception.
    """

    def __init__(self, on_error: Callable[[str], None], name: str = "mfaranet-inference"):
        self.lock = threading.Lock()
        self._wake = threading.Condition(self.lock)
        self._on_error = on_error
        self._name = name
        self._cameras: List[Any] = []
        self._pending: Dict[int, Frame] = {}
        self._in_flight: Dict[int, int] = {}   # frames taken, not yet accounted, by camera
        self._active = False
        self._epoch = 0  # raised by deactivate: older batches are not published
        self._run: Optional[_Run] = None
        self._thread: Optional[threading.Thread] = None

    # ------------------------------------------------------------------ control
    @property
    def active(self) -> bool:
        return self._active

    def alive(self) -> bool:
        """Whether an inference thread (maybe one being stopped) is still running."""
        return self._thread is not None and self._thread.is_alive()

    def start(self, cameras: List[Any], process: Process, overlap: bool = False) -> None:
        """Start the thread for ``cameras``; WorkerBusy while an earlier one still runs.
        ``overlap``: publish each batch on a second thread while the next one runs."""
        if self.alive():
            raise WorkerBusy("the previous inference thread is still running its batch")
        run = _Run(process, overlap)
        with self.lock:
            self._cameras = list(cameras)
            self._pending, self._in_flight = {}, {}
            self._run = run
        self._thread = threading.Thread(target=self._loop, args=(run,), name=self._name,
                                        daemon=True)
        self._thread.start()

    def activate(self) -> None:
        with self.lock:
            self._active = True

    def deactivate(self) -> None:
        """Stop taking frames and drop the pending ones; the batch in flight finishes
        unpublished. Returns at once."""
        with self.lock:
            self._active = False
            self._epoch += 1
            self._drop_pending()

    def stop(self, release: Optional[Callable[[], None]] = None) -> None:
        """Deactivate and end the thread. ``release`` (free the model, the outputs) runs
        once no thread uses them: before this returns when the thread is idle or gone
        (an idle thread ends within milliseconds), otherwise in the thread right after
        its batch, this returning at once."""
        with self.lock:
            self._active = False
            self._epoch += 1
            self._drop_pending()
            run, self._run = self._run, None
            deferred = run is not None and not run.exited
            if deferred:
                run.stop.set()
                run.release = release
                self._wake.notify_all()
            in_batch = bool(self._in_flight)
        if not deferred:
            if release is not None:
                release()
        elif not in_batch:
            self.wait_stopped()

    def wait_stopped(self, timeout: Optional[float] = None) -> bool:
        """Wait for the thread to end; whether it has."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                return False
            self._thread = None
        return True

    # ---------------------------------------------------------------- executor side
    def offer(self, cam: Any, msg: Any, t_recv: Optional[float] = None) -> None:
        """A camera's new frame: replaces (and counts as dropped) the one still pending."""
        t_recv = time.perf_counter() if t_recv is None else t_recv
        with self.lock:
            if not self._active or cam not in self._cameras:
                return
            cam.counters.received += 1
            if id(cam) in self._pending:
                cam.counters.dropped += 1  # the newest frame wins
            self._pending[id(cam)] = (cam, msg, t_recv)
            self._wake.notify()

    # Introspection, for the tests' accounting checks (the node itself never asks):
    def in_flight(self, cam: Any) -> int:
        """Frames of ``cam`` received but not yet accounted: pending or in the batch."""
        with self.lock:
            return int(id(cam) in self._pending) + self._in_flight.get(id(cam), 0)

    def balance(self, cam: Any) -> Tuple[int, int]:
        """``(received, processed + dropped + rejected + in flight)`` of ``cam``, read in
        one step under the lock (equal at every moment)."""
        with self.lock:
            c = cam.counters
            in_flight = int(id(cam) in self._pending) + self._in_flight.get(id(cam), 0)
            return c.received, c.processed + c.dropped + c.rejected + in_flight

    def busy(self) -> bool:
        """Whether a batch is being processed now."""
        with self.lock:
            return bool(self._in_flight)

    # ------------------------------------------------------------------ the thread
    def _drop_pending(self) -> None:  # lock held
        for cam, _, _ in self._pending.values():
            cam.counters.dropped += 1
        self._pending = {}

    def _take(self, run: _Run) -> Optional[_Batch]:
        with self.lock:
            while not run.stop.is_set() and not self._pending:
                self._wake.wait(0.5)
            if run.stop.is_set():
                return None
            frames = [self._pending[id(c)] for c in self._cameras if id(c) in self._pending]
            self._pending = {}
            for cam, _, _ in frames:
                self._in_flight[id(cam)] = self._in_flight.get(id(cam), 0) + 1
            return _Batch(frames, self._epoch)

    def _loop(self, run: _Run) -> None:
        handoff = _Handoff(self._name + "-publish") if run.overlap else None
        try:
            while True:
                batch = self._take(run)
                if batch is None:
                    return
                rest = self._one_batch(run, batch)
                if rest is None:
                    continue
                if handoff is not None:
                    handoff.put(rest)
                else:
                    rest()
        finally:
            if handoff is not None:
                handoff.close()  # the batch being published finishes (unpublished if stopped)
            run.process = None  # the model's last reference from this thread goes here
            with self.lock:
                run.exited = True
                release, run.release = run.release, None
            if release is not None:
                release()

    def _account(self, batch: _Batch, cam: Any, outcome: str, reason: str = "") -> None:
        with self.lock:
            if id(cam) not in batch.open:
                return  # already accounted for
            batch.open.discard(id(cam))
            self._leave(cam)
            setattr(cam.counters, outcome, getattr(cam.counters, outcome) + 1)
            if outcome == "rejected" and reason:
                cam.counters.last_reject_reason = reason

    def _leave(self, cam: Any) -> None:  # lock held: one of cam's frames is accounted
        left = self._in_flight.get(id(cam), 0) - 1
        if left > 0:
            self._in_flight[id(cam)] = left
        else:
            self._in_flight.pop(id(cam), None)

    def _settle(self, batch: _Batch) -> None:
        """The batch is over: a frame the batch function forgot counts as dropped."""
        with self.lock:
            for cam, _, _ in batch.frames:
                if id(cam) in batch.open:
                    batch.open.discard(id(cam))
                    self._leave(cam)
                    cam.counters.dropped += 1

    def _failed(self, run: _Run, batch: _Batch, exc: Exception) -> None:
        reason = f"{type(exc).__name__}: {exc}"
        for cam, _, _ in batch.frames:
            self._account(batch, cam, "rejected", f"inference failed: {reason}")
        if not run.stop.is_set():
            self._on_error(reason)

    def _one_batch(self, run: _Run, batch: _Batch) -> Optional[Callable[[], None]]:
        """Runs the batch function; what is left of the batch (its publishing, ending in
        its accounting), or None when it is over."""
        def publishable() -> bool:
            return not run.stop.is_set() and self._epoch == batch.epoch

        def account(cam: Any, outcome: str, reason: str = "") -> None:
            self._account(batch, cam, outcome, reason)

        try:
            rest = run.process(batch.frames, publishable, account)
        except Exception as exc:  # noqa: BLE001 - the worker must survive and report
            self._failed(run, batch, exc)
            rest = None
        if rest is None:
            self._settle(batch)
            return None

        def complete() -> None:
            try:
                rest()
            except Exception as exc:  # noqa: BLE001 - as above, on the publishing thread
                self._failed(run, batch, exc)
            finally:
                self._settle(batch)
        return complete
