"""``precision: auto``: each candidate of :mod:`.precision_rule` built and measured here.

The fp32 backend (the reference, and the fallback) is built first. Each faster candidate
is then built on the real runtime and run, with the reference, on the same probe frames:
generated street scenes at the network input size (the held-out seeds of int8
calibration), which also warm the chosen backend up. A candidate's agreement is the
fraction of their pixels it labels as fp32 does; an int8 artifact counts the lower of that
and the agreement recorded on its calibration's held-out frames. The first candidate at
:data:`~.precision_rule.AGREEMENT_THRESHOLD` or above is kept, the others are released.

Only what exists is used: int8 loads a calibrated artifact built before (``mfaranet
build-engine --precision int8 --calibration ...``) and never calibrates one here.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import logging
import time
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import torch

from ..names import BACKEND_PRECISIONS
from .backends import Backend, ModelSource, auto_candidates, create_backend
from .cache import CacheDir
from .calibration import HELD_OUT_SEED, FrameSet, scenes
from .cpu_units import CpuUnits, detect_cpu_units
from .onnx_artifacts import embedded_props
from .precision_rule import AGREEMENT_THRESHOLD, PrecisionChoice, auto_order, choose_precision

__all__ = ["PROBE_FRAMES", "PROBE_SIZE", "select_precision", "network_labels"]

log = logging.getLogger(__name__)

#: Probe frames each candidate and the reference run.
PROBE_FRAMES = 4
#: The probe's network input when frames run at full resolution (size not known yet).
PROBE_SIZE = (512, 1024)


def network_labels(backend: Backend, frames: np.ndarray) -> np.ndarray:
    """``(N, H, W, 3)`` uint8 at network size -> ``(N, H, W)`` uint8 labels, one frame
    per call (the node's batch), whatever arrays the backend takes."""
    n, h, w = frames.shape[:3]
    backend.prepare(1, h, w)
    out = np.empty((n, h, w), np.uint8)
    for i in range(n):
        if backend.array_type == "torch":
            pixels = torch.from_numpy(np.ascontiguousarray(frames[i:i + 1])).to(backend.device)
            out[i] = backend.run(pixels)[0].cpu().numpy()[0]
        else:
            out[i] = np.asarray(backend.run(np.ascontiguousarray(frames[i:i + 1]))[0])[0]
    return out


def _recorded_agreement(backend: Backend) -> Optional[Tuple[float, str]]:
    """An int8 artifact's agreement measured on its calibration's held-out frames."""
    for path in backend.artifacts().values():
        accuracy = embedded_props(path).get("accuracy")
        if accuracy:
            return float(json.loads(accuracy)["label_agreement"]), path
    return None


def _runtimes(backend: str, precision: str, device: Optional[str]) -> List[Tuple[str, str]]:
    """``(backend, device)`` to try for a candidate precision, in ``auto``'s order."""
    if backend != "auto":
        return [(backend, device)]
    on_gpu = bool(device) and str(device).startswith("cuda")
    return [(b, d) for b, d in auto_candidates(device, precision)
            if precision in BACKEND_PRECISIONS[b] and (d != "cpu") == on_gpu]


class _Probe:
    """The probe frames and the reference's labels on them, made on first use (a machine
    with no candidate but fp32 runs nothing)."""

    def __init__(self, reference: Backend, size: Tuple[int, int], count: int) -> None:
        self.reference, self.size, self.count = reference, size, count
        self._frames: Optional[FrameSet] = None
        self._labels: Optional[np.ndarray] = None

    @property
    def frames(self) -> FrameSet:
        if self._frames is None:
            self._frames = scenes(HELD_OUT_SEED, self.count, self.size)
        return self._frames

    @property
    def reference_labels(self) -> np.ndarray:
        if self._labels is None:
            self._labels = network_labels(self.reference, self.frames.frames)
        return self._labels

    def describe(self) -> str:
        h, w = self.size
        return f"{self.frames.source} at {h}x{w}" if self._frames is not None else ""


def _measure(make: Callable[[], Backend], precision: str,
             probe: _Probe) -> Tuple[Optional[Backend], object, str]:
    """The candidate, its agreement and how it was measured; or None and why it could
    not run."""
    try:
        backend = make()
        if backend.precision != precision:
            return None, f"{backend.describe()} runs {backend.precision}, not {precision}", ""
        labels = network_labels(backend, probe.frames.frames)
    except RuntimeError as exc:  # BackendUnavailable, or a runtime refusing the model
        return None, str(exc), ""
    agreement = float(np.mean(labels == probe.reference_labels))
    log.info("precision auto: %s labels %.2f %% of the probe's pixels as fp32 does",
             backend.describe(), 100 * agreement)
    note = f"{backend.name}: {100 * agreement:.2f} % on the probe"
    recorded = _recorded_agreement(backend) if precision == "int8" else None
    if recorded is not None:
        log.info("precision auto: %s recorded %.2f %% on its calibration's held-out frames",
                 recorded[1], 100 * recorded[0])
        note += f", {100 * recorded[0]:.2f} % on its calibration's held-out frames"
        agreement = min(agreement, recorded[0])
    return backend, agreement, note


def _first_that_runs(runtimes: List[Tuple[str, Optional[str]]], precision: str,
                     probe: _Probe, **create) -> Tuple[Optional[Backend], object, str]:
    """:func:`_measure` of the first runtime that runs ``precision``; else None and why
    none did (each runtime's reason)."""
    reasons = []
    for name, device in runtimes:
        make = functools.partial(create_backend, name, device=device, precision=precision,
                                 **create)
        backend, result, note = _measure(make, precision, probe)
        if backend is not None:
            return backend, result, note
        reasons.append(f"{name}: {result}" if len(runtimes) > 1 else str(result))
    return None, "; ".join(reasons) or "no backend runs it here", ""


def select_precision(backend: str, source: ModelSource, *, device: Optional[str],
                     cache: CacheDir, network_size: Optional[Tuple[int, int]],
                     compile: bool = False, units: Optional[CpuUnits] = None,
                     frames: int = PROBE_FRAMES,
                     threshold: float = AGREEMENT_THRESHOLD) -> Tuple[Backend, PrecisionChoice]:
    """The backend ``precision: auto`` runs, and the choice with its evidence.

    ``backend`` / ``device``: as asked for (``auto``, a name; None for the device).
    ``network_size``: the network input ``(H, W)``; None (full resolution): measured at
    :data:`PROBE_SIZE`. ``units``: the CPU's (default: this machine's).
    """
    if frames < 1:
        raise ValueError(f"precision auto needs at least 1 probe frame, got {frames}")
    t0 = time.perf_counter()
    units = detect_cpu_units() if units is None else units
    create = dict(source=source, cache=cache, compile=compile)
    reference = create_backend(backend, device=device, precision="fp32", **create)
    on_gpu = str(reference.device).startswith("cuda")
    probe = _Probe(reference, tuple(network_size or PROBE_SIZE), frames)
    measured: Dict[str, object] = {}
    notes: Dict[str, str] = {}
    chosen: Backend = reference
    order, _ = auto_order(units, on_gpu, backend)
    for precision, _why in order[:-1]:  # the last is fp32, the reference
        runtimes = _runtimes(backend, precision, reference.device if on_gpu else device)
        candidate, measured[precision], notes[precision] = _first_that_runs(
            runtimes, precision, probe, **create)
        if candidate is not None and measured[precision] >= threshold:
            chosen = candidate
            break
    choice = choose_precision(units, on_gpu, measured, backend=backend, threshold=threshold,
                              measured_on=probe.describe(), notes=notes)
    choice = dataclasses.replace(choice, seconds=time.perf_counter() - t0)
    log.info("precision %s; chosen in %.1f s", choice.describe(), choice.seconds)
    if choice.precision != chosen.precision:  # the rule and the loop disagree: a bug
        raise RuntimeError(f"precision auto: the rule chose {choice.precision}, the "
                           f"measurements {chosen.precision}")
    return chosen, choice
