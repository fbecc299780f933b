"""The node's model: loaded, warmed up in every variant it may need, released for real.

:class:`ModelSlot` owns the :class:`~mfaranet_ros.inference.Segmenter` between configure
and cleanup, and nothing else in the node keeps a reference to it:

- **every variant is prepared before the first frame**: with a network input size, the
  labels-only graph *and* the graph with confidence, for every batch size a cycle can
  have (1..number of cameras). ``~/confidence`` gets a subscriber at any time (Nav2's
  segmentation layer, ``ros2 topic echo``); its first subscriber must not make a frame
  wait for an ONNX export or a TensorRT build. Where the confidence variant cannot be had
  (an int8 artifact built without ``--confidence``, a failed engine build) the node says
  so once, with the fix, and runs without it: labels, colour and overlay go on.
- **a failure is tried once**: at full resolution a size is prepared at its first frame
  (labels and confidence together); a size that fails is remembered per backend and
  precision and not tried again until no camera sends it any more.
- **cleanup returns the memory**: :meth:`release` drops the slot's reference *before*
  ``gc.collect()`` and ``torch.cuda.empty_cache()`` run, and logs "model released" after.
"""
from __future__ import annotations

import gc
import threading
import time
from typing import Any, Callable, Dict, Iterable, Optional, Tuple

__all__ = ["ModelSlot", "StartupError", "StartupInterrupted", "confidence_fix",
           "release_model", "return_device_memory", "size_text"]

Shape = Tuple[int, int]


class StartupError(RuntimeError):
    """The model cannot be configured (invalid parameters, unusable checkpoint); the text
    says why."""


class StartupInterrupted(BaseException):
    """SIGINT or SIGTERM arrived during start-up (model load, warm-up, discovery).

    A BaseException, like KeyboardInterrupt, so no ``except Exception`` on the way (a
    backend's fallback, a loader's error mapping) mistakes it for a failure.
    """


def size_text(size: Optional[Shape]) -> str:
    return "x".join(str(v) for v in size) if size else "full resolution"


def confidence_fix(backend: str, precision: str) -> str:
    """What makes the confidence variant available for this backend and precision."""
    if precision == "int8":
        return (f"build the int8 artifact with confidence: mfaranet build-engine --backend "
                f"{backend} --precision int8 --confidence ... (same weights and input size)")
    if backend == "tensorrt":
        return ("build the engine with confidence beforehand: mfaranet build-engine "
                "--backend tensorrt --confidence ..., or fix the build error above")
    return "see the error above"


def return_device_memory(device: str) -> None:
    """Collect the released model's objects, then hand CUDA's cached blocks back to the
    driver. Called by :meth:`ModelSlot.release` once the slot holds no reference."""
    gc.collect()   # the backend's tensors and sessions go with their last reference
    if device.startswith("cuda"):
        import torch
        torch.cuda.empty_cache()


class ModelSlot:
    """The Segmenter of one configure..cleanup cycle (module docstring).

    ``logger``: the node's logger (``info``, ``warning``). Thread-safe: the worker asks
    :meth:`usable` while the executor thread reads :meth:`problems` for /diagnostics.
    """

    def __init__(self, logger: Any):
        self._log = logger
        self._lock = threading.Lock()
        self.segmenter = None
        self.max_batch = 1
        self.input_size_text = ""
        self.precision_choice = ""   # precision: auto: what it chose and why, else ''
        self._prepared: set = set()
        #: network (H, W) -> why its confidence variant cannot run (not retried)
        self._no_confidence: Dict[Shape, str] = {}
        #: (backend, precision, network (H, W)) -> why labels cannot run there (not retried)
        self._failed: Dict[Tuple[str, str, Shape], str] = {}

    @property
    def loaded(self) -> bool:
        return self.segmenter is not None

    # ------------------------------------------------------------------ configure
    def load(self, cfg: Any, weights_path: str, input_size: Optional[Shape]) -> None:
        """The Segmenter for the parameters, with its input size logged. StartupError."""
        from mfaranet_ros.inference import Segmenter  # heavy: torch and the backends
        from mfaranet_ros.model import CheckpointError

        self._log.info(f"loading {weights_path} (backend {cfg.backend}, precision "
                       f"{cfg.precision})")
        try:
            seg = Segmenter.from_checkpoint(
                weights_path, backend=cfg.backend, device=cfg.device or None,
                precision=cfg.precision, input_size=input_size, pruned=cfg.pruned,
                cache_dir=cfg.engine_cache_dir or None)
        except CheckpointError as exc:
            raise StartupError(f"cannot load checkpoint {weights_path!r}: {exc}") from None
        except (OSError, ValueError, RuntimeError, ImportError) as exc:
            raise StartupError(f"cannot start the {cfg.backend} backend with "
                               f"{weights_path!r}: {type(exc).__name__}: {exc}") from None
        self.segmenter = seg
        choice = getattr(seg, "precision_choice", None)
        self.precision_choice = "" if choice is None else choice.describe()
        if choice is not None:   # precision: auto: what it measured and chose
            self._log.info(f"precision {self.precision_choice}")
        self.max_batch = max(1, len(cfg.cameras))
        self.input_size_text = size_text(seg.input_size)
        with self._lock:
            self._prepared, self._no_confidence, self._failed = set(), {}, {}
        self._log.info(f"network input {seg.input_size_reason} "
                       f"(input_size {list(cfg.input_size)})")

    def warm_up(self) -> None:
        """Prepares every variant at the shape frames will run at (module docstring).

        A labels variant that cannot run is a StartupError; a confidence variant that
        cannot run is said once here, and ``~/confidence`` stays off.
        """
        seg = self.segmenter
        if seg.input_size is None:
            self._log.info(
                f"model ready: backend {seg.backend_name}, device {seg.device}, input size "
                f"full resolution, {len(seg.metadata.class_names)} classes; each new camera "
                f"size is prepared at its first frame (labels and confidence)")
            return
        from mfaranet_ros.inference import BackendUnavailable

        shape = tuple(int(v) for v in seg.input_size)
        t0 = time.perf_counter()
        try:
            for b in range(1, self.max_batch + 1):
                seg.warmup(frame_shape=shape, batch=b)
        except BackendUnavailable as exc:  # a failed engine build, no int8 artifact ...
            raise StartupError(f"cannot start the {seg.backend_name} backend: {exc}") from None
        labels_s = time.perf_counter() - t0
        confidence = self._prepare_confidence(shape, warm=True)
        with self._lock:
            self._prepared.add(shape)
        self._log.info(
            f"model ready: backend {seg.backend_name}, device {seg.device}, input size "
            f"{self.input_size_text}, {len(seg.metadata.class_names)} classes, warm-up "
            f"{labels_s * 1000:.0f} ms (labels), confidence "
            f"{'ready' if confidence else 'unavailable'}")

    def _prepare_confidence(self, shape: Shape, warm: bool) -> bool:
        """The confidence variant at ``shape`` for every batch size; False (said once,
        remembered) where it cannot run."""
        seg = self.segmenter
        try:
            for b in range(1, self.max_batch + 1):
                if warm:
                    seg.warmup(frame_shape=shape, batch=b, confidence=True)
                else:
                    seg.backend.prepare(b, *shape, confidence=True)
        except Exception as exc:  # noqa: BLE001 - said once, remembered, labels go on
            reason = (f"~/confidence is off for {size_text(shape)} frames: the "
                      f"{seg.backend_name} {seg.precision} model with confidence cannot run "
                      f"({type(exc).__name__}: {exc}); "
                      f"{confidence_fix(seg.backend_name, seg.precision)}")
            with self._lock:
                self._no_confidence[shape] = reason
            self._log.warning(reason)
            return False
        return True

    # ---------------------------------------------------------------- worker side
    def usable(self, shape: Shape, sizes_in_use: Callable[[], Iterable[Shape]]) -> Optional[str]:
        """None when frames of network ``shape`` can run (prepared now if new), or why not.

        ``sizes_in_use()``: the network sizes the cameras send now; failures of other
        sizes are forgotten when a size is new.
        """
        seg = self.segmenter
        key = (seg.backend_name, seg.precision, shape)
        with self._lock:
            if shape in self._prepared:
                return None
            failed = self._failed.get(key)
        if failed is not None:
            return failed
        live = set(sizes_in_use())
        with self._lock:
            self._failed = {k: v for k, v in self._failed.items() if k[2] in live}
            self._no_confidence = {k: v for k, v in self._no_confidence.items()
                                   if k in live or k == seg.input_size}
        t0 = time.perf_counter()
        try:
            for b in range(1, self.max_batch + 1):
                seg.backend.prepare(b, *shape)
        except Exception as exc:  # noqa: BLE001 - remembered and shown, not retried
            reason = (f"{seg.backend_name} {seg.precision} cannot run {size_text(shape)} "
                      f"frames: {type(exc).__name__}: {exc}")
            with self._lock:
                self._failed[key] = reason
            return reason
        self._prepare_confidence(shape, warm=False)
        with self._lock:
            self._prepared.add(shape)
        self._log.info(f"prepared the backend for {size_text(shape)} frames in "
                       f"{(time.perf_counter() - t0) * 1000:.0f} ms")
        return None

    def confidence_available(self, shape: Shape) -> bool:
        with self._lock:
            return shape not in self._no_confidence

    def confidence_anywhere(self) -> bool:
        """False when the configured input size has no confidence variant (then
        ``~/confidence`` is not advertised)."""
        seg = self.segmenter
        if seg is None or seg.input_size is None:
            return True
        return self.confidence_available(tuple(int(v) for v in seg.input_size))

    # ----------------------------------------------------------------- diagnostics
    def problems(self) -> Tuple[str, str]:
        """(sizes whose labels cannot run, what runs without confidence), ``'; '``-joined."""
        with self._lock:
            return "; ".join(self._failed.values()), "; ".join(self._no_confidence.values())

    # --------------------------------------------------------------------- release
    def take(self) -> Optional[Any]:
        """Empties the slot; the caller hands what it got to :func:`release_model` and
        keeps no other reference."""
        seg, self.segmenter = self.segmenter, None
        with self._lock:
            self._prepared, self._no_confidence, self._failed = set(), {}, {}
        return seg


def release_model(holder: list, logger: Any) -> None:
    """Releases the model in ``holder`` (a one-item list, emptied here, so that no frame
    of the caller keeps it alive into the collection), then logs "model released"."""
    if not holder or holder[0] is None:
        holder.clear()
        return
    device = str(holder[0].device)
    holder.clear()
    return_device_memory(device)
    logger.info("model released")
