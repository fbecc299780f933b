"""Units of work (a bag, or a window of frames of a long bag) and how one is evaluated.

A unit covers the frames ``[first, stop)`` of its bag's image topic, by index. Windows are
planned from the bag's index (:meth:`..bags.BagReader.log_times`: message counts and
receive times, no message read), and each window is also a receive-time range
``[start_ns, stop_ns)`` cut between two frames: a unit reads only its range (``rosbags``
seeks there) and the labels recorded around it, so a bag in ten windows is read once, not
ten times up to each window; a window's labels are read in the same pass as its images.
Windows of one bag tile it exactly: no frame is lost or counted twice at their edges. A
unit runs eval-bag's own per-frame step
(:func:`..offline._segment_frame`) into a :class:`..accumulator.FrameAccumulator`; its
result is plain JSON-able data.
"""
from __future__ import annotations

import hashlib
import logging
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Deque, Dict, Iterator, List, Optional, Tuple

from ..accumulator import FrameAccumulator
from ..bags import BagError, BagReader, ImageFrame, stamp_to_ns
from ..groundtruth import LABEL_SLACK_NS, StreamedGroundTruth
from ..inputs import choose_image_topic, open_ground_truth
from ..offline import EvalOptions, _FrameSink, _segment_frame, output_accumulator
from .manifest import BagEntry, Manifest
from .model import file_sha256

__all__ = ["Unit", "plan_units", "evaluate_unit", "config_key", "bag_files", "bytes_read"]

log = logging.getLogger(__name__)


@dataclass
class Unit:
    """Frames ``[first, stop)`` (indices; ``stop`` None: to the end) of one bag, received
    at ``[start_ns, stop_ns)`` (None: from the start / to the end)."""

    unit_id: str
    bag: str
    image_topic: Optional[str]
    label_topic: Optional[str]
    tags: List[str] = field(default_factory=list)
    first: int = 0
    stop: Optional[int] = None
    skip_first: int = 0
    skip_last: int = 0
    skip_time: List[List[float]] = field(default_factory=list)    # [from, to) seconds
    total: Optional[int] = None      # frames the bag announces (None: unknown, unreadable)
    start_ns: Optional[int] = None
    stop_ns: Optional[int] = None
    hash_bag: bool = False           # this unit computes the bag's sha256 (--hash-bags)
    problem: str = ""                # why planning could not read the bag (the unit fails)

    def to_dict(self) -> Dict:
        return asdict(self)


def _cuts(times: List[int], step: int) -> List[Tuple[int, int]]:
    """``[first, stop)`` windows of about ``step`` frames, never cut between two frames
    received at the same time (a receive-time range could not separate them)."""
    bounds, first, total = [], 0, len(times)
    while first < total:
        stop = min(first + step, total)
        while stop < total and times[stop] == times[stop - 1]:
            stop += 1
        bounds.append((first, stop))
        first = stop
    return bounds


def _bag_index(entry: BagEntry, unit_frames: Optional[int]) -> Dict:
    """What planning needs from one bag's index: image topic, count, window times."""
    with BagReader(entry.path) as bag:
        topic = choose_image_topic(bag, entry.image_topic, entry.label_topic)
        if entry.label_topic:
            bag.require_topic(entry.label_topic, "label")
        total = bag.message_count(topic)
        times = bag.log_times(topic) if unit_frames and total > unit_frames else None
        if times is not None and len(times) != total:
            raise BagError(f"{entry.path!r}: the index lists {len(times)} messages on "
                           f"{topic!r}, the metadata {total}")
        return {"image_topic": topic, "messages": total, "times": times,
                "start_ns": bag.start_time_ns, "end_ns": int(bag.reader.end_time),
                "topics": bag.topics()}


def _topics(path: str) -> Dict[str, str]:
    """The bag's topics where it opens at all (to say which label topic to pass)."""
    try:
        with BagReader(path) as bag:
            return bag.topics()
    except Exception:        # noqa: BLE001 - the unit reports why the bag is unusable
        return {}


def plan_units(manifest: Manifest, hash_bags: bool = False) -> Tuple[List[Unit], Dict]:
    """The manifest's bags cut into units of at most ``unit_frames`` frames each (about:
    a cut never separates frames received at the same time).

    Returns the units and, per bag, what its index says (``{path: {image_topic, messages,
    start_ns, end_ns, topics}}``, or ``{problem}``): planning reads no message.
    """
    units: List[Unit] = []
    facts: Dict[str, Dict] = {}
    for i, entry in enumerate(manifest.bags):
        try:
            index = _bag_index(entry, manifest.unit_frames)
        except Exception as exc:      # the bag's unit fails with this reason, not the run
            problem = " ".join(f"{exc}".split()) if isinstance(exc, BagError) else \
                f"{type(exc).__name__}: {' '.join(str(exc).split())}"
            facts[entry.path] = {"problem": problem, "topics": _topics(entry.path)}
            units.append(Unit(f"{i:04d}", entry.path, entry.image_topic, entry.label_topic,
                              list(entry.tags), problem=problem))
            continue
        times = index.pop("times")
        facts[entry.path] = index
        total = index["messages"]
        bounds = [(0, None)] if times is None else _cuts(times, manifest.unit_frames)
        for first, stop in bounds:
            windowed = stop is not None
            units.append(Unit(
                f"{i:04d}@{first}-{stop}" if windowed else f"{i:04d}", entry.path,
                index["image_topic"], entry.label_topic, list(entry.tags), first, stop,
                entry.skip_first, entry.skip_last, [list(w) for w in entry.skip_time], total,
                start_ns=times[first] if windowed and first > 0 else None,
                stop_ns=times[stop] if windowed and stop < total else None,
                hash_bag=hash_bags and first == 0))
    return units, facts


def bytes_read() -> Optional[int]:
    """Bytes this process has read through read() calls so far (``rchar`` of
    ``/proc/self/io``; None off Linux)."""
    try:
        with open("/proc/self/io") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("rchar:"))
    except (OSError, StopIteration, ValueError):
        return None


def bag_files(path) -> List[Path]:
    """The files of a bag: every file of a rosbag2 folder, or the file itself."""
    path = Path(path)
    return [p for p in sorted(path.rglob("*")) if p.is_file()] if path.is_dir() else [path]


def _skip_reason(unit: Unit, index: int, offset_s: float) -> Optional[str]:
    """Why the manifest leaves frame ``index`` (``offset_s`` after the bag's start) out."""
    if index < unit.skip_first:
        return "manifest: skip_first"
    if unit.total is not None and index >= unit.total - unit.skip_last:
        return "manifest: skip_last"
    if any(start <= offset_s < stop for start, stop in unit.skip_time):
        return "manifest: skip_time"
    return None


def _window_frames(bag: BagReader, topic: str, unit: Unit,
                   truth: StreamedGroundTruth) -> Iterator[ImageFrame]:
    """A window's frames in index order, its labels read in the same pass.

    The pass covers the window's receive times and ``LABEL_SLACK_NS`` on each side (a label
    may be recorded a little before or after its image). A frame waits, undecoded, until
    its label has been read or the pass is ``LABEL_SLACK_NS`` past it; frames of the margins
    are not decoded.
    """
    slack = LABEL_SLACK_NS
    lo = None if unit.start_ns is None else unit.start_ns - slack
    hi = None if unit.stop_ns is None else unit.stop_ns + slack
    pending: Deque[Tuple[int, object, str]] = deque()
    index = unit.first

    def inside(t: int) -> bool:
        return (unit.start_ns is None or t >= unit.start_ns) and \
            (unit.stop_ns is None or t < unit.stop_ns)

    def ready(now: Optional[int]) -> bool:
        t, msg, _ = pending[0]
        return now is None or truth.has(stamp_to_ns(msg.header.stamp)) or now - t > slack

    now: Optional[int] = None
    for name, now, msg, msgtype in bag.stream({topic: "image", truth.topic: "label"},
                                               start_ns=lo, stop_ns=hi):
        if name == truth.topic:
            truth.add(now, msg, msgtype)
        elif inside(now):
            pending.append((now, msg, msgtype))
        while pending and ready(now):
            t, m, typ = pending.popleft()
            yield bag.frame(m, typ, index, t)
            index += 1
        truth.forget_before(now - 2 * slack)
    while pending:
        t, m, typ = pending.popleft()
        yield bag.frame(m, typ, index, t)
        index += 1


def _run_frames(unit: Unit, segmenter, run: FrameAccumulator, skipped: Dict[str, int],
                label_map=None) -> int:
    """Segments the unit's frames into ``run``; returns how many frames were read.

    A window with a label topic reads both topics in one pass (:func:`_window_frames`); a
    whole bag reads its label topic first, as eval-bag does (a label anywhere in the bag
    counts).
    """
    options = EvalOptions(write_bag=False, progress=False, label_map=label_map)
    with BagReader(unit.bag) as bag:
        topic = choose_image_topic(bag, unit.image_topic, unit.label_topic)
        windowed = unit.start_ns is not None or unit.stop_ns is not None
        if windowed and unit.label_topic:
            truth = StreamedGroundTruth(unit.label_topic)
            frames = _window_frames(bag, topic, unit, truth)
        else:
            truth = open_ground_truth(bag, unit.label_topic)
            frames = bag.images(topic, start_ns=unit.start_ns, stop_ns=unit.stop_ns,
                                first_index=unit.first)
        sink = _FrameSink(run, None, "", topic, str(segmenter.device))
        start_ns = bag.start_time_ns       # skip_time's zero: the bag's, not the window's
        read = 0
        for frame in frames:
            read += 1
            reason = _skip_reason(unit, frame.index, (frame.log_time_ns - start_ns) / 1e9)
            if reason is None and truth is not None and \
                    truth.lookup(frame.index, frame.stamp_ns) is None:
                reason = "no ground truth for the frame's stamp"
            if reason is not None:
                skipped[reason] = skipped.get(reason, 0) + 1
                run.per_frame.append({"index": frame.index, "stamp_ns": frame.stamp_ns,
                                      "skipped": reason})
                continue
            _segment_frame(frame, truth, segmenter, sink, options)
    return read


def _check_read(unit: Unit, read: int, run: FrameAccumulator,
                skipped: Dict[str, int]) -> Tuple[str, str]:
    expected = None if unit.total is None else \
        (unit.stop if unit.stop is not None else unit.total) - unit.first
    if expected is not None and read != expected:
        return "failed", (f"read {read} of the {expected} frames the bag's index "
                          f"announces (truncated or damaged bag)")
    if unit.label_topic and run.with_gt == 0 and read > sum(
            n for why, n in skipped.items() if why.startswith("manifest: ")):
        return "failed", (f"no frame matches a message of the label topic "
                          f"{unit.label_topic!r} by stamp")
    return "ok", ""


def evaluate_unit(unit: Unit, segmenter, ignore_index: int = 255, label_map=None,
                  worker: Optional[Dict] = None) -> Dict:
    """Evaluates one unit. Any exception inside it (a damaged bag, a malformed message, a
    backend fault, CUDA out of memory) gives ``status: failed`` with its type and message:
    it fails the unit, never the run. KeyboardInterrupt still stops the run.

    ``label_map``: a :class:`~mfaranet_ros.labelmap.LabelMap` to score over its classes;
    ``worker``: where it ran (node, threads), recorded as is.

    Returns ``{unit, status, error_type, reason, frames, frames_with_truth, skipped,
    confusion_matrix ((C, C) list), per_frame, latency, wall_s, cpu_s, bytes_read (by
    this process while the unit ran; None off Linux), worker, bag_sha256}``.
    """
    run = output_accumulator(segmenter.metadata, label_map, ignore_index)
    skipped: Dict[str, int] = {}
    t0 = time.perf_counter()
    status, reason, error_type = "ok", "", ""
    digest: Dict[str, str] = {}
    io_before, cpu_before = bytes_read(), time.process_time()
    try:
        if unit.problem:
            raise BagError(unit.problem)
        if unit.hash_bag:      # here, in parallel over the workers, not after the run
            digest = {str(p): file_sha256(p) for p in bag_files(unit.bag)}
        read = _run_frames(unit, segmenter, run, skipped, label_map)
        status, reason = _check_read(unit, read, run, skipped)
    except Exception as exc:      # noqa: BLE001 - a unit's fault is its result
        log.debug("unit %s failed", unit.unit_id, exc_info=True)
        status, error_type = "failed", type(exc).__name__
        reason = " ".join(str(exc).split()) or error_type    # one line
        if not isinstance(exc, BagError):
            reason = f"{error_type}: {reason}"
    return {"unit": unit.to_dict(), "status": status, "error_type": error_type,
            "reason": reason,
            "frames": sum(1 for r in run.per_frame if "skipped" not in r),
            "frames_with_truth": run.with_gt, "skipped": skipped,
            "confusion_matrix": run.cm.matrix.tolist(),
            "per_frame": run.per_frame, "latency": run.latency.summary(),
            "wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - cpu_before,
            "bytes_read": None if io_before is None else bytes_read() - io_before,
            "worker": worker or {}, "bag_sha256": digest}


def config_key(config: Dict, unit: Unit) -> str:
    """What makes a unit's result reusable by ``--resume``: the package version, the model
    and the unit."""
    from mfaranet_ros import __version__

    text = repr(__version__) + repr(sorted(config.items())) + \
        repr(sorted(unit.to_dict().items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
