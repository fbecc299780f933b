"""One batch of frames, in the worker thread: decode, check, segment, format, publish.

:class:`BatchPipeline` is built at configure from an immutable :class:`RunConfig` (what
configure decided: transport, label format and resolution, label map) and reads the
parameters that act at once (:class:`RuntimeSettings`: overlay alpha, ``publish_*``) once
per batch, as one value, so a ``ros2 param set`` never lands half-way through a batch. It
reads nothing else of the node.

Every frame it is given ends processed, dropped (deactivated meanwhile) or rejected (a
malformed image, a size the backend cannot run, a frame the Segmenter refuses), through
the worker's ``account``; one bad camera rejects only its own frame.

A batch runs in two parts: the call decodes, checks and segments, and returns the
publishing of the results, which the worker runs right after or, with ``publish_overlap``,
on its publishing thread while the next batch is segmented. Each frame's ``~/latency``
report gives its stages, which add up to its end-to-end time (:class:`_Marks`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from ..label_formats import confidence_to_mono8
from . import camera_info as info_tools
from . import diagnostics, label_outputs
from .conversions import ImageFormatError, compressed_to_rgb, image_to_rgb
from .outputs import IMAGE_OUTPUTS

#: each image output's encoding
ENCODINGS = {"labels": "mono8", "color": "rgb8", "overlay": "rgb8"}

__all__ = ["RunConfig", "RuntimeSettings", "BatchPipeline"]


@dataclass(frozen=True)
class RunConfig:
    """What configure decided, for one configure..cleanup cycle."""

    compressed: bool
    label_format: str            # mono8 | autoware_rle
    network_resolution: bool     # label_resolution: network
    label_map: Any               # LabelMap: model classes -> published ids
    latency_name: str            # the latency report's status name (node + camera)


@dataclass(frozen=True)
class RuntimeSettings:
    """The parameters that act at once; replaced as a whole when one changes."""

    overlay_alpha: float = 0.5
    enabled: Dict[str, bool] = field(
        default_factory=lambda: {name: True for name in IMAGE_OUTPUTS})

    def with_parameter(self, name: str, value: Any) -> "RuntimeSettings":
        if name == "overlay_alpha":
            return RuntimeSettings(float(value), dict(self.enabled))
        if name.startswith("publish_"):
            return RuntimeSettings(self.overlay_alpha,
                                   dict(self.enabled, **{name[len("publish_"):]: bool(value)}))
        return self


@dataclass(frozen=True)
class _Marks:
    """One batch's clock readings, for its frames' latency reports."""

    t_start: float     # the worker took the batch
    t_decoded: float   # every frame decoded and checked: the Segmenter starts
    batch_size: int
    device: str

    def stages(self, t_recv: float, timings: Dict[str, float], t_publish: float,
               t_done: float) -> Dict[str, float]:
        """A frame's stage times (ms), which add up to its ``end_to_end`` exactly:
        ``queue`` (receipt -> the worker takes it), ``decode`` (the batch's decoding and
        checks), the Segmenter's ``preprocess``, ``inference``, ``postprocess``, ``wait``
        (until its outputs start going out: the previous batch's publishing, earlier
        frames of its batch) and ``publish`` (its outputs)."""
        ms = 1000.0
        pre, inf, post = (float(timings.get(k, 0.0))
                          for k in ("preprocess", "inference", "postprocess"))
        segmented = (self.t_decoded - t_recv) * ms + pre + inf + post
        return {"queue": (self.t_start - t_recv) * ms,
                "decode": (self.t_decoded - self.t_start) * ms,
                "preprocess": pre, "inference": inf, "postprocess": post,
                "wait": (t_publish - t_recv) * ms - segmented,
                "publish": (t_done - t_publish) * ms,
                "end_to_end": (t_done - t_recv) * ms}


class BatchPipeline:
    """The batch function the worker runs (module docstring).

    ``slot``: the :class:`~.model_slot.ModelSlot`; ``settings()``: the current
    :class:`RuntimeSettings`; ``lock``: the worker's lock (guards the counters);
    ``on_processed()``: a batch ran through the model (resets the failure count).
    """

    def __init__(self, slot: Any, run: RunConfig, settings: Callable[[], RuntimeSettings],
                 cameras: List[Any], logger: Any, lock: Any, stages: Any,
                 on_processed: Callable[[], None]):
        self.slot, self.run, self._settings = slot, run, settings
        self.cameras, self._log, self._lock = cameras, logger, lock
        self._stages, self._on_processed = stages, on_processed

    def __call__(self, batch, publishable: Callable[[], bool],
                 account) -> Optional[Callable[[], None]]:
        """Runs ``batch`` up to its results; returns their publishing (the worker runs it
        right away, or beside the next batch's inference), or None when nothing is left."""
        seg = self.slot.segmenter
        if seg is None:  # cleaned up between taking the batch and running it
            for cam, _, _ in batch:
                account(cam, "dropped")
            return None
        t_start = time.perf_counter()
        settings = self._settings()
        frames, items = self._decode(batch, settings, account)
        frames, items = self._usable(seg, frames, items, account)
        if not frames:
            return None
        confidence = (any(w["confidence"] for *_, w in items)
                      and all(self.slot.confidence_available(
                          tuple(seg.network_shape(f.shape[:2]))) for f in frames))
        kwargs = dict(color=any(w["color"] for *_, w in items),
                      overlay=any(w["overlay"] for *_, w in items),
                      overlay_alpha=settings.overlay_alpha, confidence=confidence,
                      network_resolution=self.run.network_resolution)
        t_decoded = time.perf_counter()
        buffers: Dict[Tuple[int, str], Any] = {}
        results = self._segment(seg, frames, items, kwargs, account,
                                self._destinations(items, buffers))
        self._on_processed()
        marks = _Marks(t_start, t_decoded, len(frames), str(seg.device))
        del seg  # publishing needs the results only, never the model

        def publish() -> None:
            for i, (item, result) in enumerate(zip(items, results)):
                cam, msg, t_recv, shape, wanted = item
                if result is None:
                    continue
                if not publishable():  # deactivated or cleaned up meanwhile
                    account(cam, "dropped")
                    continue
                written = {name: buffers.get((i, name)) for name in IMAGE_OUTPUTS}
                self._publish(cam, msg, t_recv, shape, marks, wanted, result, written,
                              publishable, account)
        return publish

    # ------------------------------------------------------------------ steps
    def reject(self, cam: Any, reason: str, account) -> None:
        account(cam, "rejected", reason)
        where = cam.resolved_topic or cam.input_topic
        self._log.warning(f"rejected a frame on {where}: {reason}", throttle_duration_sec=2.0)

    def _decode(self, batch, settings: RuntimeSettings, account) -> Tuple[list, list]:
        """The batch's frames as RGB arrays and, per frame, what to publish it with."""
        frames, items = [], []
        for cam, msg, t_recv in batch:
            try:
                frame = compressed_to_rgb(msg) if self.run.compressed else image_to_rgb(msg)
            except ImageFormatError as exc:
                self.reject(cam, str(exc), account)
                continue
            frames.append(frame)
            items.append((cam, msg, t_recv, frame.shape[:2],
                          cam.outputs.wanted(settings.enabled)))
        return frames, items

    def _usable(self, seg, frames: list, items: list, account) -> Tuple[list, list]:
        """The frames whose network size runs (prepared now where new: full resolution);
        the others are rejected with the reason."""
        keep_frames, keep_items = [], []
        for frame, item in zip(frames, items):
            cam = item[0]
            shape = tuple(seg.network_shape(frame.shape[:2]))
            with self._lock:
                cam.last_shape = shape
            failed = self.slot.usable(shape, self._sizes_in_use)
            if failed is not None:
                self.reject(cam, failed, account)
                continue
            keep_frames.append(frame)
            keep_items.append(item)
        return keep_frames, keep_items

    def _sizes_in_use(self):
        with self._lock:
            return [c.last_shape for c in self.cameras if c.last_shape is not None]

    def _destinations(self, items: list, buffers: Dict[Tuple[int, str], Any]):
        """The Segmenter's ``into``: each wanted image output of frame ``index`` is written
        straight into a message buffer of its camera's outputs (kept in ``buffers``). Labels
        go there when published as they come (mono8, no label map); otherwise they are
        mapped or encoded into their message after."""
        run = self.run
        labels_as_they_are = run.label_format == "mono8" and run.label_map.is_identity

        def into(index: int, name: str, shape: Tuple[int, ...]):
            cam, msg, _, _, wanted = items[index]
            if not wanted[name] or (name == "labels" and not labels_as_they_are):
                return None
            buffer = cam.outputs.buffer(msg.header, shape, ENCODINGS[name])
            buffers[index, name] = buffer
            return buffer.pixels
        return into

    def _segment(self, seg, frames, items, kwargs, account, into) -> List[Any]:
        """The results, None where the Segmenter refused that frame: a refused batch is
        run frame by frame, so one bad camera rejects only its own frame."""
        try:
            if len(frames) == 1:
                return [seg.segment(frames[0], into=into, **kwargs)]
            return list(seg.segment_batch(frames, into=into, **kwargs))
        except ValueError as exc:  # the Segmenter refuses these frames
            if len(frames) == 1:
                self.reject(items[0][0], f"segmenter: {exc}", account)
                return [None]
        results = []
        for i, (frame, item) in enumerate(zip(frames, items)):
            try:
                results.append(seg.segment(
                    frame, into=lambda _, name, shape, i=i: into(i, name, shape), **kwargs))
            except ValueError as exc:
                self.reject(item[0], f"segmenter: {exc}", account)
                results.append(None)
        return results

    def _publish(self, cam, msg, t_recv, shape, marks: "_Marks", wanted, result, written,
                 publishable, account) -> None:
        """Publishes one frame's outputs: the image outputs from the message buffers the
        Segmenter wrote them into (``written``, by output), the others serialized here."""
        t0 = time.perf_counter()
        header, out, run = msg.header, cam.outputs, self.run
        sent = []
        for name in IMAGE_OUTPUTS:
            pixels = getattr(result, name)
            if not wanted[name] or pixels is None:
                continue
            message = written[name]
            if message is None or message.pixels is not pixels:
                message = self._image_message(out, header, name, pixels)
            if out.publish(name, message, publishable):
                sent.append(name)
        if wanted["confidence"] and result.confidence is not None:
            message = out.buffer(header, result.confidence.shape, "mono8")
            confidence_to_mono8(result.confidence, out=message.pixels)
            if out.publish("confidence", message, publishable):
                sent.append("confidence")
        info = self._camera_info(cam, header, shape, result.labels.shape[:2],
                                 wanted["camera_info"])
        if info is not None and out.publish("camera_info", info, publishable):
            sent.append("camera_info")
        t_done = time.perf_counter()
        times = marks.stages(t_recv, result.timings, t0, t_done)
        cam.stages.add(times)
        self._stages.add(times)
        account(cam, "processed")
        report = diagnostics.latency_report(
            header, run.latency_name + (f"/{cam.key}" if cam.key else ""), marks.device,
            times, marks.batch_size, sent)
        out.publish("latency", report, publishable)

    def _image_message(self, out, header, name: str, pixels):
        """An image output's message from pixels made elsewhere: the labels through the
        label map into their buffer (or Autoware's run-length image), else a copy."""
        if name == "labels" and self.run.label_format == "autoware_rle":
            return label_outputs.autoware_rle_image(header, self.run.label_map.apply(pixels))
        message = out.buffer(header, pixels.shape, ENCODINGS[name])
        if name == "labels":
            self.run.label_map.apply(pixels, out=message.pixels)
        else:
            np.copyto(message.pixels, pixels)
        return message

    def _camera_info(self, cam, header, frame_hw, labels_hw, wanted: bool) -> Optional[Any]:
        """``~/camera_info`` for this label image, from the camera's newest camera_info
        (REP 104: its ROI and binning give the image size); one that describes another
        size than the frame is counted and warned about, and none goes out with it."""
        info = cam.camera_info
        if info is None:
            return None
        mismatch = info_tools.size_mismatch(info, frame_hw)   # this frame's, not the newest
        if mismatch:
            with self._lock:
                cam.counters.camera_info_mismatched += 1
            self._log.warning(f"{cam.resolved_topic}: {mismatch}; the frame is segmented, its "
                              f"camera_info is not published", throttle_duration_sec=5.0)
            return None
        if not wanted:
            return None
        return info_tools.for_labels(info, header, labels_hw)
