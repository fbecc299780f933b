"""Offline evaluation of a bag: every frame through the Segmenter, metrics, output bag, report.

The loop is a plain pass over the image topic: decode -> segment -> compare with the
ground truth -> write the frame and its results to the output bag. Ctrl-C stops it
between frames; the output bag is then closed properly (a valid MCAP) and the report is
written for the frames done so far, marked ``interrupted``.
"""
from __future__ import annotations

import logging
import shutil
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..inference.processing import blend
from ..labelmap import LabelMap, identity_label_map
from .accumulator import FrameAccumulator
from .bags import BagError, BagReader, BagWriter, ImageFrame
from .groundtruth import GroundTruth
from .inputs import BagInputs, check_bag_inputs, open_ground_truth
from .report import bag_section, build_report, write_report

__all__ = ["EvalOptions", "evaluate_bag", "check_inputs", "model_info", "OUTPUT_BAG_NAME",
           "LATENCY_FIELDS", "StopOnSigint"]

log = logging.getLogger(__name__)

OUTPUT_BAG_NAME = "segmented_bag"
#: Stages timed per frame (ms): the Segmenter's own three, and ``total``, the whole
#: ``segment()`` call. The output bag carries them as ``<stage>_ms`` on ``<ns>/latency``.
LATENCY_FIELDS = ("preprocess", "inference", "postprocess", "total")


@dataclass
class EvalOptions:
    """What to read from the bag and what to write (the ``eval-bag`` options)."""

    image_topic: Optional[str] = None      # None: the bag's only image topic
    label_topic: Optional[str] = None      # ground truth on a mono8 topic, by stamp
    gt_folder: Optional[str] = None        # or: a folder of label PNGs
    gt_match: str = "auto"                 # stamp | index | auto (folder only)
    gt_ids: str = "train"                  # train | cityscapes (folder only)
    max_frames: Optional[int] = None
    write_bag: bool = True
    output_namespace: str = "/mfaranet"    # output topics, as the node names them
    overlay_alpha: float = 0.5
    progress: bool = True
    #: the model's classes -> a consumer's (:mod:`mfaranet_ros.labelmap`); None: the model's.
    #: Predictions and ground truth are both mapped, so every figure is over its classes.
    label_map: Optional[LabelMap] = None


def output_classes(metadata, label_map: Optional[LabelMap]) -> Tuple[List[str], Sequence]:
    """Class names and palette by output id: the label map's where one is given (an id
    the map does not use is named ``unused <id>``: it has no support), else the model's."""
    if label_map is None:
        return list(metadata.class_names), metadata.palette
    size = max(label_map.names) + 1
    return ([label_map.names.get(i, f"unused {i}") for i in range(size)],
            label_map.palette())


def output_accumulator(metadata, label_map: Optional[LabelMap],
                       ignore_index: Optional[int] = None) -> FrameAccumulator:
    """The accumulator of a run over the model's classes or the label map's."""
    names, palette = output_classes(metadata, label_map)
    if ignore_index is None:
        ignore_index = getattr(metadata, "ignore_index", 255)
    return FrameAccumulator(names, palette, ignore_index)


def class_map(metadata, label_map: Optional[LabelMap]) -> List[Tuple[int, str]]:
    """LabelInfo's ``(id, name)`` pairs, as the node publishes them on ``~/label_info``."""
    lmap = label_map or identity_label_map(metadata.class_names, metadata.palette)
    return lmap.class_map()


def check_inputs(bag_path, options: EvalOptions) -> BagInputs:
    """:func:`~.inputs.check_bag_inputs` with the options' topics and folder (cheap)."""
    return check_bag_inputs(bag_path, options.image_topic, options.label_topic,
                            options.gt_folder, options.gt_match, options.gt_ids)


def model_info(segmenter, weights: Optional[str] = None,
               input_size_reason: str = "") -> Dict:
    """The report's ``model`` entry for a Segmenter."""
    meta = segmenter.metadata
    size = segmenter.input_size
    reason = input_size_reason or getattr(segmenter, "input_size_reason", "")
    choice = getattr(segmenter, "precision_choice", None)  # set by precision auto
    return {
        "weights": str(weights) if weights else "",
        "source": str(getattr(meta, "source", "")),
        "backend": str(segmenter.backend_name),
        "device": str(segmenter.device),
        "precision": str(segmenter.precision),
        "precision_choice": choice.as_dict() if choice is not None else None,
        "input_size": list(size) if size is not None else None,
        "input_size_reason": str(reason),
        "num_classes": len(meta.class_names),
        "class_names": list(meta.class_names),
    }


def _prepare_output_bag(out: Path) -> Path:
    path = out / OUTPUT_BAG_NAME
    if path.exists():
        # Replace the output bag of an earlier run, but never anything else.
        if not (path.is_dir() and (path / "metadata.yaml").exists()
                or path.is_dir() and not any(path.iterdir())):
            raise BagError(f"{str(path)!r} exists and is not an output bag of eval-bag; "
                           f"move it away or choose another --out")
        shutil.rmtree(path)
    return path


class StopOnSigint:
    """Turns the first Ctrl-C into a request to stop between frames.

    So the frame in flight is finished and written whole: the output bag never holds a
    half-written message. A second Ctrl-C raises KeyboardInterrupt at once. Only the main
    thread can own signal handlers; elsewhere this does nothing.
    """

    def __init__(self, what: str = "frame") -> None:
        self.requested = False
        self._previous = None
        self._what = what

    def _handler(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        log.warning("Ctrl-C: stopping after this %s (press again to abort at once)",
                    self._what)

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)

    def restore(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None


@dataclass
class _Pass:
    """How one pass over the image topic went."""

    status: str = "complete"
    detail: str = ""
    failure: Optional[BagError] = None
    processed: int = 0
    wall_s: float = 0.0
    outputs: Dict = field(default_factory=dict)


@dataclass
class _FrameSink:
    """Where each segmented frame goes: the accumulator and the output bag, if any."""

    run: FrameAccumulator
    writer: Optional[BagWriter]
    namespace: str
    image_topic: str
    device: str
    class_map: List[Tuple[int, str]] = field(default_factory=list)    # for label_info
    label_info_written: bool = False

    def close(self) -> Dict:
        """Closes the output bag; returns the report's ``outputs`` entries for it."""
        if self.writer is None:
            return {}
        self.writer.close()
        return {"bag": str(self.writer.path), "mcap": str(self.writer.mcap_file),
                "bag_topics": self.writer.topics()}


def _segment_frame(frame: ImageFrame, truth: Optional[GroundTruth], segmenter,
                   sink: _FrameSink, options: EvalOptions) -> None:
    """One frame: its ground truth, the Segmenter, the accumulator, the output bag."""
    gt = truth.lookup(frame.index, frame.stamp_ns) if truth is not None else None
    if gt is not None and gt.shape != frame.image.shape[:2]:
        raise BagError(
            f"ground truth for frame {frame.index} (stamp {frame.stamp_ns}) is "
            f"{gt.shape[1]}x{gt.shape[0]} but the image is "
            f"{frame.image.shape[1]}x{frame.image.shape[0]}")
    lmap = options.label_map
    t0 = time.perf_counter()
    result = segmenter.segment(frame.image, color=lmap is None, overlay=lmap is None,
                               overlay_alpha=options.overlay_alpha)
    timings = {k: float(result.timings.get(k, 0.0)) for k in LATENCY_FIELDS[:3]}
    timings["total"] = (time.perf_counter() - t0) * 1e3
    labels, color, overlay = result.labels, result.color, result.overlay
    if lmap is not None:         # the consumer's classes, as the node publishes them
        labels = lmap.apply(labels)
        gt = lmap.apply(gt) if gt is not None else None
        color = sink.run.palette[labels]
        overlay = blend(frame.image, color, options.overlay_alpha)
    sink.run.add(frame.index, frame.stamp_ns, labels, gt, overlay, timings)
    if sink.writer is not None:
        _write_results(sink, frame, labels, color, overlay, gt, timings)


def _run_pass(bag: BagReader, inputs: BagInputs, truth: Optional[GroundTruth], segmenter,
              sink: _FrameSink, options: EvalOptions,
              on_frame: Optional[Callable[[int], None]]) -> _Pass:
    """Segments the image topic frame by frame; Ctrl-C and a damaged bag end it early."""
    from tqdm import tqdm

    done = _Pass()
    expected = inputs.messages if options.max_frames is None else \
        min(inputs.messages, options.max_frames)
    bar = tqdm(total=expected, unit="frame", disable=not options.progress, desc="eval-bag",
               dynamic_ncols=True)
    stop = StopOnSigint()
    t_start = time.perf_counter()
    try:
        stop.install()
        segmenter.warmup(frame_shape=inputs.frame_shape)
        for frame in bag.images(inputs.image_topic):
            if options.max_frames is not None and done.processed >= options.max_frames:
                break
            _segment_frame(frame, truth, segmenter, sink, options)
            done.processed += 1
            bar.update(1)
            if on_frame is not None:
                on_frame(done.processed)
            if stop.requested:
                raise KeyboardInterrupt
    except KeyboardInterrupt:
        done.status, done.detail = "interrupted", \
            f"stopped by Ctrl-C after {done.processed} frames."
    except BagError as exc:
        done.status, done.detail, done.failure = "failed", f"{exc}", exc
    finally:
        stop.restore()
        bar.close()
        done.outputs = sink.close()
    done.wall_s = time.perf_counter() - t_start
    return done


def _check_complete(done: _Pass, inputs: BagInputs, options: EvalOptions) -> None:
    """A pass that read no frame failed; one that read fewer than announced is logged."""
    if done.status != "complete":
        return
    if done.processed == 0:
        done.status = "failed"
        done.detail = f"no frame of {inputs.image_topic!r} could be read"
        done.failure = BagError(f"{inputs.path!r}: {done.detail} (damaged bag?)")
    elif options.max_frames is None and done.processed < inputs.messages:
        log.warning("the bag announces %d messages on %s but %d were read",
                    inputs.messages, inputs.image_topic, done.processed)


def _throughput(run: FrameAccumulator, done: _Pass) -> Dict[str, float]:
    total_ms = run.latency.samples.get("total", [])
    return {"segmenter_fps": done.processed / (sum(total_ms) / 1e3) if total_ms else 0.0,
            "pipeline_fps": done.processed / done.wall_s if done.wall_s > 0 else 0.0,
            "wall_s": done.wall_s}


def evaluate_bag(bag_path, out_dir, segmenter, options: Optional[EvalOptions] = None, *,
                 weights: Optional[str] = None, input_size_reason: str = "",
                 on_frame: Optional[Callable[[int], None]] = None) -> Dict:
    """Evaluates ``segmenter`` on a bag; writes the output bag and the report to ``out_dir``.

    Returns the report dict (also in ``out_dir/report.json``); its ``status`` is
    ``complete`` or ``interrupted`` (Ctrl-C, or ``on_frame`` raising KeyboardInterrupt).
    Bad inputs raise :class:`BagError` before any frame is segmented; a bag found damaged
    while reading raises it after the partial report is written.
    """
    options = options or EvalOptions()
    inputs = check_inputs(bag_path, options)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    run = output_accumulator(segmenter.metadata, options.label_map)
    with BagReader(bag_path) as bag:
        truth = open_ground_truth(bag, options.label_topic, options.gt_folder,
                                  options.gt_match, options.gt_ids)
        writer = BagWriter(_prepare_output_bag(out), "mcap") if options.write_bag else None
        sink = _FrameSink(run, writer, options.output_namespace.rstrip("/"),
                          inputs.image_topic, str(segmenter.device),
                          class_map(segmenter.metadata, options.label_map))
        done = _run_pass(bag, inputs, truth, segmenter, sink, options, on_frame)
    _check_complete(done, inputs, options)
    report = build_report(
        run, tool="mfaranet eval-bag", status=done.status, detail=done.detail,
        bag=bag_section(bag_path, inputs.image_topic, inputs.image_type, truth),
        model=model_info(segmenter, weights, input_size_reason), processed=done.processed,
        throughput=_throughput(run, done), outputs=done.outputs)
    write_report(report, out, run)
    if done.failure is not None:
        raise done.failure
    return report


def _write_results(sink: _FrameSink, frame: ImageFrame, labels: np.ndarray,
                   color: Optional[np.ndarray], overlay: Optional[np.ndarray],
                   gt: Optional[np.ndarray], timings: Dict[str, float]) -> None:
    writer, ns, palette = sink.writer, sink.namespace, sink.run.palette
    t, stamp, fid = frame.log_time_ns, frame.stamp_ns, frame.frame_id
    if not sink.label_info_written:     # once, before the first labels (as the node: latched)
        writer.write_label_info(f"{ns}/label_info", t, stamp, fid, sink.class_map)
        sink.label_info_written = True
    writer.write_frame(sink.image_topic, frame)
    writer.write_image(f"{ns}/labels", t, stamp, fid, labels, "mono8")
    color = color if color is not None else palette[labels]
    writer.write_image(f"{ns}/color", t, stamp, fid, color, "rgb8")
    if overlay is not None:
        writer.write_image(f"{ns}/overlay", t, stamp, fid, overlay, "rgb8")
    if gt is not None:
        writer.write_image(f"{ns}/ground_truth/color", t, stamp, fid, palette[gt], "rgb8")
    writer.write_latency(f"{ns}/latency", t, stamp, fid, timings, f"{ns}/latency",
                         hardware_id=sink.device)
