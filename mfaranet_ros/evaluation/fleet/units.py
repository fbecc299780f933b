"""Units of work (a bag, or a window of frames of a long bag) and how one is evaluated.

A unit covers the frames ``[first, stop)`` of its bag's image topic, by index: windows
of one bag tile it exactly, so no frame is lost or counted twice at their edges. A unit
runs eval-bag's own per-frame step (:func:`..offline._segment_frame`) into a
:class:`..accumulator.FrameAccumulator`; its result is plain JSON-able data.
"""
from __future__ import annotations

import hashlib
import shlex
import time
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional

from ..accumulator import FrameAccumulator
from ..bags import BagError, BagReader
from ..inputs import check_bag_inputs, open_ground_truth
from ..offline import EvalOptions, _FrameSink, _segment_frame, output_accumulator
from .manifest import Manifest

__all__ = ["Unit", "plan_units", "evaluate_unit", "rerun_command"]


@dataclass
class Unit:
    """Frames ``[first, stop)`` (indices; ``stop`` None: to the end) of one bag."""

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

    def to_dict(self) -> Dict:
        return asdict(self)


def _announced_frames(bag: str, topic: Optional[str]) -> Optional[int]:
    """The image topic's message count from the bag's metadata; None where unreadable."""
    try:
        return check_bag_inputs(bag, topic).messages
    except BagError:
        return None     # reported when the unit runs


def plan_units(manifest: Manifest) -> List[Unit]:
    """The manifest's bags cut into units of at most ``unit_frames`` frames each."""
    units: List[Unit] = []
    for i, entry in enumerate(manifest.bags):
        total = _announced_frames(entry.path, entry.image_topic)
        step = manifest.unit_frames
        bounds = [(0, None)] if not step or total is None or total <= step else \
            [(s, min(s + step, total)) for s in range(0, total, step)]
        for first, stop in bounds:
            suffix = "" if stop is None else f"@{first}-{stop}"
            units.append(Unit(f"{i:04d}{suffix}", entry.path, entry.image_topic,
                              entry.label_topic, list(entry.tags), first, stop,
                              entry.skip_first, entry.skip_last,
                              [list(w) for w in entry.skip_time], total))
    return units


def rerun_command(unit: Unit) -> str:
    """The ``mfaranet eval-bag`` command that evaluates the unit's bag alone."""
    cmd = ["mfaranet", "eval-bag", unit.bag, "--out", f"eval_{unit.unit_id}"]
    if unit.image_topic:
        cmd += ["--image-topic", unit.image_topic]
    if unit.label_topic:
        cmd += ["--label-topic", unit.label_topic]
    if unit.stop is not None:
        cmd += ["--max-frames", str(unit.stop)]
    return shlex.join(cmd)


def _skip_reason(unit: Unit, index: int, offset_s: float) -> Optional[str]:
    """Why the manifest leaves frame ``index`` (``offset_s`` after the bag's start) out."""
    if index < unit.skip_first:
        return "manifest: skip_first"
    if unit.total is not None and index >= unit.total - unit.skip_last:
        return "manifest: skip_last"
    if any(start <= offset_s < stop for start, stop in unit.skip_time):
        return "manifest: skip_time"
    return None


def _run_frames(unit: Unit, segmenter, run: FrameAccumulator, skipped: Dict[str, int],
                label_map=None) -> int:
    """Segments the unit's frames into ``run``; returns how many frames were read."""
    options = EvalOptions(write_bag=False, progress=False, label_map=label_map)
    with BagReader(unit.bag) as bag:
        inputs_topic = check_bag_inputs(unit.bag, unit.image_topic, unit.label_topic)
        truth = open_ground_truth(bag, unit.label_topic)
        sink = _FrameSink(run, None, "", inputs_topic.image_topic, str(segmenter.device))
        read = 0
        start_ns = bag.start_time_ns
        for frame in bag.images(inputs_topic.image_topic):
            if frame.index < unit.first:
                continue
            if unit.stop is not None and frame.index >= unit.stop:
                break
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


def evaluate_unit(unit: Unit, segmenter, ignore_index: int = 255, label_map=None) -> Dict:
    """Evaluates one unit; a bad or damaged bag gives ``status: failed`` with the reason.

    ``label_map``: a :class:`~mfaranet_ros.labelmap.LabelMap` to score over its classes.

    Returns ``{unit, status, reason, frames, skipped, confusion_matrix ((C, C) list),
    per_frame, wall_s, rerun}``.
    """
    run = output_accumulator(segmenter.metadata, label_map, ignore_index)
    skipped: Dict[str, int] = {}
    t0 = time.perf_counter()
    status, reason = "ok", ""
    try:
        read = _run_frames(unit, segmenter, run, skipped, label_map)
        expected = None if unit.total is None else \
            (unit.stop if unit.stop is not None else unit.total) - unit.first
        if expected is not None and read < expected:
            status, reason = "failed", (f"read {read} of the {expected} frames the bag "
                                        f"announces (truncated or damaged bag)")
        elif unit.label_topic and run.with_gt == 0 and read > sum(
                n for why, n in skipped.items() if why.startswith("manifest: ")):
            status, reason = "failed", (f"no frame matches a message of the label topic "
                                        f"{unit.label_topic!r} by stamp")
    except (BagError, ValueError, OSError) as exc:
        status, reason = "failed", " ".join(str(exc).split())    # one line
    return {"unit": unit.to_dict(), "status": status, "reason": reason,
            "frames": sum(1 for r in run.per_frame if "skipped" not in r),
            "frames_with_truth": run.with_gt, "skipped": skipped,
            "confusion_matrix": run.cm.matrix.tolist(),
            "per_frame": run.per_frame, "latency": run.latency.summary(),
            "wall_s": time.perf_counter() - t0, "rerun": rerun_command(unit)}


def config_key(config: Dict, unit: Unit) -> str:
    """What makes a unit's result reusable by ``--resume``: the model and the unit."""
    text = repr(sorted(config.items())) + repr(sorted(unit.to_dict().items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
