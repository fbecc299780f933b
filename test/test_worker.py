"""The inference worker's guarantees, without DDS: a batch function that blocks on an
event stands in for the Segmenter (the worker is the part under test)."""
import threading

import pytest

from mfaranet_ros.ros.stats import InputCounters
from mfaranet_ros.ros.worker import FrameWorker, WorkerBusy

WAIT = 10.0  # generous: only a failure waits this long


class Cam:
    def __init__(self, name):
        self.name = name
        self.counters = InputCounters()


class BlockingBatch:
    """Runs a batch: waits on ``go``, then accounts each frame (processed when still
    publishable, dropped otherwise), or rejects the cameras in ``bad``."""

    def __init__(self):
        self.go = threading.Event()
        self.entered = threading.Event()
        self.batches = []
        self.published = []
        self.bad = set()
        self.threads = set()

    def __call__(self, batch, publishable, account):
        self.threads.add(threading.get_ident())
        self.batches.append([cam.name for cam, _, _ in batch])
        self.entered.set()
        assert self.go.wait(WAIT)
        for cam, msg, _ in batch:
            if cam.name in self.bad:
                account(cam, "rejected", "bad frame")
            elif publishable():
                self.published.append(msg)
                account(cam, "processed")
            else:
                account(cam, "dropped")


def balanced(worker, cam):
    """received = processed + dropped + rejected + in flight, read in one step under the
    worker's lock (two reads would see a frame move between them)."""
    received, accounted = worker.balance(cam)
    return received == accounted


@pytest.fixture
def errors():
    return []


@pytest.fixture
def worker(errors):
    w = FrameWorker(errors.append, name="test-worker")
    yield w
    w.stop()
    assert w.wait_stopped(WAIT)


def started(worker, cams, process, overlap=False):
    worker.start(cams, process, overlap=overlap)
    worker.activate()
    return worker


def test_deactivate_during_a_batch_returns_at_once_and_publishes_nothing(worker):
    cam, batch = Cam("a"), BlockingBatch()
    started(worker, [cam], batch)
    worker.offer(cam, "f1")
    assert batch.entered.wait(WAIT)
    worker.offer(cam, "f2")  # pending behind the batch
    worker.deactivate()  # returns although the batch is blocked
    assert worker.busy() and balanced(worker, cam)
    batch.go.set()
    worker.stop()
    assert worker.wait_stopped(WAIT)
    assert batch.published == []
    assert cam.counters.dropped == 2 and cam.counters.received == 2
    assert balanced(worker, cam)


def test_cleanup_during_a_batch_releases_the_model_only_after_the_batch(worker):
    cam, batch = Cam("a"), BlockingBatch()
    released = []
    started(worker, [cam], batch)
    worker.offer(cam, "f1")
    assert batch.entered.wait(WAIT)
    worker.stop(release=lambda: released.append(threading.get_ident()))
    assert released == [] and worker.alive()  # the batch still uses the model
    batch.go.set()
    assert worker.wait_stopped(WAIT)
    assert released == list(batch.threads)  # released by the worker, after its batch
    assert batch.published == [] and cam.counters.dropped == 1


def test_release_runs_at_once_when_no_batch_is_in_flight(worker):
    released = []
    started(worker, [Cam("a")], BlockingBatch())
    worker.stop(release=lambda: released.append(1))
    assert worker.wait_stopped(WAIT) and released == [1]
    worker.stop(release=lambda: released.append(2))  # nothing running: right away
    assert released == [1, 2]


def test_reconfigure_during_a_batch_never_starts_a_second_worker(worker):
    cam, batch = Cam("a"), BlockingBatch()
    started(worker, [cam], batch)
    worker.offer(cam, "f1")
    assert batch.entered.wait(WAIT)
    worker.stop()
    with pytest.raises(WorkerBusy):
        worker.start([cam], BlockingBatch())
    assert not worker.wait_stopped(0.05)  # configure waits on this
    batch.go.set()
    assert worker.wait_stopped(WAIT)
    second = BlockingBatch()
    second.go.set()
    started(worker, [cam], second)
    worker.offer(cam, "f2")
    assert second.entered.wait(WAIT)
    names = [t.name for t in threading.enumerate()]
    assert names.count("test-worker") == 1
    assert batch.published == []  # the old worker never resumed


def test_a_failing_camera_rejects_only_its_frame(worker):
    a, b, batch = Cam("a"), Cam("b"), BlockingBatch()
    batch.bad = {"b"}
    started(worker, [a, b], batch)
    worker.offer(a, "f0")
    assert batch.entered.wait(WAIT)
    worker.offer(a, "fa")  # both wait behind the first batch: the next one has both
    worker.offer(b, "fb")
    batch.go.set()
    _wait_until(lambda: worker.in_flight(a) + worker.in_flight(b) == 0)
    assert batch.batches == [["a"], ["a", "b"]]
    assert (a.counters.processed, a.counters.rejected) == (2, 0)
    assert (b.counters.processed, b.counters.rejected) == (0, 1)
    assert batch.published == ["f0", "fa"]
    for cam in (a, b):
        assert balanced(worker, cam)


def test_an_exception_rejects_the_batch_counts_it_and_the_worker_survives(worker, errors):
    cam = Cam("a")
    calls = []

    def explode(batch, publishable, account):
        calls.append(len(batch))
        if len(calls) == 1:
            raise RuntimeError("engine lost")
        for c, _, _ in batch:
            account(c, "processed")
    started(worker, [cam], explode)
    worker.offer(cam, "f1")
    _wait_until(lambda: calls)
    _wait_until(lambda: not worker.busy())
    worker.offer(cam, "f2")
    _wait_until(lambda: cam.counters.processed == 1)
    assert cam.counters.rejected == 1
    assert "engine lost" in cam.counters.last_reject_reason
    assert errors == ["RuntimeError: engine lost"]
    assert balanced(worker, cam)


def test_counters_add_up_at_every_moment_under_a_flood(worker):
    cams = [Cam("a"), Cam("b")]
    batch = BlockingBatch()
    batch.go.set()
    started(worker, cams, batch)
    for i in range(300):
        for cam in cams:
            worker.offer(cam, i)
            assert balanced(worker, cam)
    worker.deactivate()
    _wait_until(lambda: not worker.busy())
    for cam in cams:
        c = cam.counters
        assert c.received == 300 and c.processed + c.dropped == 300
        assert balanced(worker, cam)


def test_frames_offered_while_inactive_are_not_counted(worker):
    cam = Cam("a")
    worker.start([cam], BlockingBatch())
    worker.offer(cam, "f")
    assert cam.counters.received == 0 and worker.in_flight(cam) == 0


# ------------------------------------------------------------------ publish_overlap

class TwoStageBatch:
    """A batch function in two parts, as the node's pipeline is: the call ("inference")
    returns the rest ("publishing"), which waits on its batch's own event, then accounts."""

    def __init__(self, fail_rest=()):
        self.infer_threads, self.publish_threads = set(), set()
        self.entered = []            # batch numbers whose inference started
        self.publishing = []         # batch numbers whose publishing started
        self.release = {}            # batch number -> Event letting its publishing go on
        self.published = []
        self.fail_rest = set(fail_rest)
        self._lock = threading.Lock()

    def __call__(self, batch, publishable, account):
        self.infer_threads.add(threading.get_ident())
        with self._lock:
            n = len(self.entered)
            self.entered.append(n)
            go = self.release.setdefault(n, threading.Event())

        def rest():
            self.publish_threads.add(threading.get_ident())
            self.publishing.append(n)
            assert go.wait(WAIT)
            if n in self.fail_rest:
                raise OSError("publisher gone")
            for cam, msg, _ in batch:
                if publishable():
                    self.published.append(msg)
                    account(cam, "processed")
                else:
                    account(cam, "dropped")
        return rest

    def go(self, n):
        with self._lock:
            self.release.setdefault(n, threading.Event()).set()


def test_overlap_segments_the_next_batch_while_the_previous_one_is_published(worker):
    cam, batch = Cam("a"), TwoStageBatch()
    started(worker, [cam], batch, overlap=True)
    worker.offer(cam, "f0")
    _wait_until(lambda: batch.publishing == [0])   # batch 0 is being published ...
    worker.offer(cam, "f1")
    _wait_until(lambda: batch.entered == [0, 1])   # ... while batch 1 is segmented
    assert batch.published == []
    # Both of the camera's frames are in flight at once, and the counters still add up.
    assert worker.in_flight(cam) == 2 and balanced(worker, cam)
    assert batch.infer_threads.isdisjoint(batch.publish_threads)
    batch.go(0)
    batch.go(1)
    _wait_until(lambda: batch.published == ["f0", "f1"])
    _wait_until(lambda: not worker.busy())
    assert cam.counters.processed == 2 and balanced(worker, cam)


def test_overlap_publishes_one_batch_at_a_time_and_never_queues_more(worker):
    cam, batch = Cam("a"), TwoStageBatch()
    started(worker, [cam], batch, overlap=True)
    worker.offer(cam, "f0")
    _wait_until(lambda: batch.publishing == [0])
    worker.offer(cam, "f1")
    _wait_until(lambda: batch.entered == [0, 1])
    worker.offer(cam, "f2")   # waits: batch 1's results wait for batch 0 to be out
    threading.Event().wait(0.2)
    assert batch.entered == [0, 1] and batch.publishing == [0]
    assert worker.in_flight(cam) == 3 and balanced(worker, cam)
    batch.go(0)
    _wait_until(lambda: batch.publishing == [0, 1])
    _wait_until(lambda: batch.entered == [0, 1, 2])
    batch.go(1)
    batch.go(2)
    _wait_until(lambda: batch.published == ["f0", "f1", "f2"])


def test_overlap_a_deactivate_drops_the_batch_being_published(worker):
    cam, batch = Cam("a"), TwoStageBatch()
    released = []
    started(worker, [cam], batch, overlap=True)
    worker.offer(cam, "f0")
    _wait_until(lambda: batch.publishing == [0])
    worker.deactivate()
    batch.go(0)
    _wait_until(lambda: not worker.busy())
    assert batch.published == [] and cam.counters.dropped == 1
    worker.activate()
    worker.offer(cam, "f1")
    _wait_until(lambda: batch.publishing == [0, 1])
    worker.stop(release=lambda: released.append(1))
    assert released == [] and worker.alive()   # the publishing thread is still in batch 1
    batch.go(1)
    assert worker.wait_stopped(WAIT)
    assert released == [1] and batch.published == [] and cam.counters.dropped == 2
    assert balanced(worker, cam)
    assert not [t for t in threading.enumerate() if t.name == "test-worker-publish"]


def test_overlap_a_failed_publish_rejects_its_frames_and_the_worker_goes_on(worker, errors):
    cam, batch = Cam("a"), TwoStageBatch(fail_rest={0})
    started(worker, [cam], batch, overlap=True)
    batch.go(0)
    worker.offer(cam, "f0")
    _wait_until(lambda: cam.counters.rejected == 1)
    batch.go(1)
    worker.offer(cam, "f1")
    _wait_until(lambda: cam.counters.processed == 1)
    assert errors == ["OSError: publisher gone"]
    assert "publisher gone" in cam.counters.last_reject_reason
    assert batch.published == ["f1"] and balanced(worker, cam)


def test_without_overlap_the_rest_runs_in_the_worker_thread(worker):
    cam, batch = Cam("a"), TwoStageBatch()
    started(worker, [cam], batch)
    batch.go(0)
    worker.offer(cam, "f0")
    _wait_until(lambda: batch.published == ["f0"])
    assert batch.publish_threads == batch.infer_threads


def _wait_until(condition, timeout=WAIT):
    done = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        done.wait(0.01)
    raise AssertionError("condition not reached")
