"""Offline evaluation of a bag: every frame through the Segmenter, metrics, output bag, report.

The loop is a plain pass over the image topic: decode -> segment -> compare with the
ground truth -> write the frame and its results to the output bag. Ctrl-C stops it
between frames; the output bag is then closed properly (a valid MCAP) and the report is
written for the frames done so far, marked ``interrupted``.
"""
from __future__ import annotations

import datetime as _dt
import logging
import shutil
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np

from .bags import BagError, BagReader, BagWriter, ImageFrame
from .groundtruth import FolderGroundTruth, GroundTruth, TopicGroundTruth
from .metrics import ConfusionMatrix, LatencyStats, iou_from_matrix
from .report import ThumbnailStrip, write_report

__all__ = ["EvalOptions", "evaluate_bag", "choose_image_topic", "model_info", "FrameAccumulator",
           "OUTPUT_BAG_NAME", "LATENCY_FIELDS"]

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


def choose_image_topic(bag: BagReader, options: EvalOptions) -> str:
    if options.image_topic:
        bag.require_topic(options.image_topic, "image")
        return options.image_topic
    candidates = [t for t in bag.image_topics() if t != options.label_topic]
    if len(candidates) > 1:
        # A bag with ground truth usually records it on a ".../labels" image topic.
        cameras = [t for t in candidates if not t.rsplit("/", 1)[-1].startswith("label")]
        candidates = cameras if len(cameras) == 1 else candidates
    if len(candidates) != 1:
        raise BagError(
            f"{'several' if candidates else 'no'} image topics in {str(bag.path)!r}; name "
            f"one with --image-topic. The bag holds:\n{bag.describe_topics()}")
    return candidates[0]


def model_info(segmenter, weights: Optional[str] = None) -> Dict:
    meta = segmenter.metadata
    size = getattr(segmenter, "input_size", None) or getattr(meta, "input_size", None)
    return {
        "weights": str(weights) if weights else "",
        "source": str(getattr(meta, "source", "")),
        "backend": str(getattr(segmenter, "backend_name", "")),
        "device": str(getattr(segmenter, "device", "")),
        "precision": str(getattr(segmenter, "precision", "")),
        "input_size": list(size) if size is not None else None,
        "num_classes": len(meta.class_names),
        "class_names": list(meta.class_names),
    }


def _open_ground_truth(bag: BagReader, options: EvalOptions) -> Optional[GroundTruth]:
    if options.label_topic and options.gt_folder:
        raise ValueError("give ground truth either by --label-topic or by --gt-folder, not both")
    if options.label_topic:
        return TopicGroundTruth(bag, options.label_topic)
    if options.gt_folder:
        return FolderGroundTruth(options.gt_folder, options.gt_match, options.gt_ids)
    return None


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


class _StopOnSigint:
    """Turns the first Ctrl-C into a request to stop between frames.

    So the frame in flight is finished and written whole: the output bag never holds a
    half-written message. A second Ctrl-C raises KeyboardInterrupt at once. Only the main
    thread can own signal handlers; elsewhere this does nothing.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def _handler(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        log.warning("Ctrl-C: stopping after this frame (press again to abort at once)")

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)

    def restore(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None


class FrameAccumulator:
    """What one evaluation accumulates per frame: confusion matrix, latencies, thumbnails.

    Shared by the offline and the live paths.
    """

    def __init__(self, class_names, palette, ignore_index: int = 255) -> None:
        self.class_names = list(class_names)
        self.palette = np.zeros((256, 3), np.uint8)
        self.palette[: len(palette)] = np.asarray(palette, np.uint8)
        self.cm = ConfusionMatrix(len(self.class_names), ignore_index)
        self.latency = LatencyStats()
        self.strip = ThumbnailStrip()
        self.per_frame: List[Dict] = []
        self.with_gt = 0

    def add(self, index: int, stamp_ns: int, labels: np.ndarray, gt: Optional[np.ndarray],
            overlay: Optional[np.ndarray], timings: Dict[str, float]) -> None:
        record: Dict = {"index": index, "stamp_ns": stamp_ns,
                        "latency_ms": {k: round(float(v), 3) for k, v in timings.items()}}
        self.latency.add_all(timings)
        if gt is not None:
            frame = self.cm.update(labels, gt)
            iou = iou_from_matrix(frame)
            finite = iou[~np.isnan(iou)]
            record["miou"] = float(finite.mean()) if finite.size else None
            total = frame.sum()
            record["pixel_accuracy"] = float(np.trace(frame) / total) if total else None
            self.with_gt += 1
        self.per_frame.append(record)
        if self.strip.wants(index):
            tiles = [overlay if overlay is not None else self.palette[labels]]
            if gt is not None:
                tiles.append(self.palette[gt])
            self.strip.add(index, tiles)

    def accuracy(self) -> Optional[Dict]:
        return self.cm.summary(self.class_names) if self.with_gt else None


def evaluate_bag(bag_path, out_dir, segmenter, options: Optional[EvalOptions] = None, *,
                 weights: Optional[str] = None,
                 on_frame: Optional[Callable[[int], None]] = None) -> Dict:
    """Evaluates ``segmenter`` on a bag; writes the output bag and the report to ``out_dir``.

    Returns the report dict (also in ``out_dir/report.json``); its ``status`` is
    ``complete`` or ``interrupted`` (Ctrl-C, or ``on_frame`` raising KeyboardInterrupt).
    A damaged bag raises :class:`BagError` after the partial report is written.
    """
    options = options or EvalOptions()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta = segmenter.metadata
    run = FrameAccumulator(meta.class_names, meta.palette, getattr(meta, "ignore_index", 255))
    ns = options.output_namespace.rstrip("/")
    status, detail, failure = "complete", "", None
    t_start = time.perf_counter()
    processed = 0
    writer: Optional[BagWriter] = None
    bag_topics: Dict[str, str] = {}

    with BagReader(bag_path) as bag:
        image_topic = choose_image_topic(bag, options)
        image_type = bag.topics()[image_topic]
        truth = _open_ground_truth(bag, options)
        expected = bag.message_count(image_topic)
        if options.max_frames is not None:
            expected = min(expected, options.max_frames)
        if options.write_bag:
            writer = BagWriter(_prepare_output_bag(out), "mcap")
        from tqdm import tqdm

        bar = tqdm(total=expected, unit="frame", disable=not options.progress,
                   desc="eval-bag", dynamic_ncols=True)
        stop = _StopOnSigint()
        try:
            stop.install()
            for frame in bag.images(image_topic):
                if options.max_frames is not None and processed >= options.max_frames:
                    break
                if processed == 0:
                    segmenter.warmup(frame_shape=frame.image.shape[:2])
                gt = truth.lookup(frame.index, frame.stamp_ns) if truth is not None else None
                if gt is not None and gt.shape != frame.image.shape[:2]:
                    raise BagError(
                        f"ground truth for frame {frame.index} (stamp {frame.stamp_ns}) is "
                        f"{gt.shape[1]}x{gt.shape[0]} but the image is "
                        f"{frame.image.shape[1]}x{frame.image.shape[0]}")
                t0 = time.perf_counter()
                result = segmenter.segment(frame.image, color=True, overlay=True,
                                           overlay_alpha=options.overlay_alpha)
                timings = {k: float(result.timings.get(k, 0.0)) for k in LATENCY_FIELDS[:3]}
                timings["total"] = (time.perf_counter() - t0) * 1e3
                run.add(frame.index, frame.stamp_ns, result.labels, gt, result.overlay, timings)
                if writer is not None:
                    _write_results(writer, ns, image_topic, frame, result, gt, run, timings,
                                   str(getattr(segmenter, "device", "")))
                processed += 1
                bar.update(1)
                if on_frame is not None:
                    on_frame(processed)
                if stop.requested:
                    raise KeyboardInterrupt
        except KeyboardInterrupt:
            status, detail = "interrupted", f"stopped by Ctrl-C after {processed} frames."
        except BagError as exc:
            status, detail, failure = "failed", f"{exc}", exc
        finally:
            stop.restore()
            bar.close()
            if writer is not None:
                writer.close()
                bag_topics = writer.topics()
        wall = time.perf_counter() - t_start

    if status == "complete" and processed == 0:
        status, detail = "failed", f"no frame of {image_topic!r} could be read"
        failure = BagError(f"{str(bag_path)!r}: {detail} (damaged bag?)")
    elif status == "complete" and options.max_frames is None and processed < expected:
        log.warning("the bag announces %d messages on %s but %d were read",
                    expected, image_topic, processed)

    total_ms = run.latency.samples.get("total", [])
    report = {
        "tool": "mfaranet eval-bag",
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "status": status,
        "status_detail": detail,
        "bag": {"path": str(bag_path), "image_topic": image_topic, "image_type": image_type,
                "ground_truth": truth.description if truth is not None else "none"},
        "model": model_info(segmenter, weights),
        "frames": {"processed": processed, "with_ground_truth": run.with_gt,
                   "without_ground_truth": processed - run.with_gt},
        "accuracy": run.accuracy(),
        "latency_ms": run.latency.summary(),
        "throughput": {
            "segmenter_fps": processed / (sum(total_ms) / 1e3) if total_ms else 0.0,
            "pipeline_fps": processed / wall if wall > 0 else 0.0,
            "wall_s": wall,
        },
        "outputs": {},
        "per_frame": run.per_frame,
    }
    if writer is not None:
        report["outputs"].update({"bag": str(writer.path), "mcap": str(writer.mcap_file),
                                  "bag_topics": bag_topics})
    write_report(report, out, latency_samples=run.latency.samples, palette=meta.palette,
                 strip=run.strip, strip_caption="overlay | ground truth")
    if failure is not None:
        raise failure
    return report


def _write_results(writer: BagWriter, ns: str, image_topic: str, frame: ImageFrame, result,
                   gt: Optional[np.ndarray], run: FrameAccumulator, timings: Dict[str, float],
                   device: str) -> None:
    t, stamp, fid = frame.log_time_ns, frame.stamp_ns, frame.frame_id
    writer.write_frame(image_topic, frame)
    writer.write_image(f"{ns}/labels", t, stamp, fid, result.labels, "mono8")
    color = result.color if result.color is not None else run.palette[result.labels]
    writer.write_image(f"{ns}/color", t, stamp, fid, color, "rgb8")
    if result.overlay is not None:
        writer.write_image(f"{ns}/overlay", t, stamp, fid, result.overlay, "rgb8")
    if gt is not None:
        writer.write_image(f"{ns}/ground_truth/color", t, stamp, fid, run.palette[gt], "rgb8")
    writer.write_latency(f"{ns}/latency", t, stamp, fid, timings, f"{ns}/latency",
                         hardware_id=device)
