"""PyTorch backend: CPU or CUDA, fp32 or fp16, channels_last, inference mode, optional compile."""
from __future__ import annotations

import logging
import time
from typing import Dict

import torch

from ..graph import SegmentationGraph
from .base import Backend, BackendUnavailable, ModelSource, Outputs

__all__ = ["TorchBackend"]

log = logging.getLogger(__name__)


class TorchBackend(Backend):
    """Eager PyTorch (or ``torch.compile``) on the model's own device.

    ``run`` takes and returns torch tensors on the backend's device. On the CPU the
    Segmenter still processes frames with numpy / OpenCV (10x cheaper or more there than
    the same steps as torch ops) and hands batches over as tensors sharing the numpy
    memory, so no copy is made either way.

    ``channels_last=True`` (the default) is about 2x faster than the default NCHW layout
    on CPU for this network (docs/performance.md); ``channels_last=False`` is the
    plain eager baseline the benchmark compares against.
    """

    name = "torch"

    def __init__(self, source: ModelSource, device: str, precision: str = "fp32", *,
                 compile: bool = False, channels_last: bool = True) -> None:
        super().__init__(source, device, precision)
        if precision == "fp16" and not device.startswith("cuda"):
            raise BackendUnavailable("fp16 needs a CUDA device for the torch backend (CPU "
                                     "half-precision convolutions are slower than fp32); use fp32")
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        self.channels_last = channels_last
        self.compiled = compile
        model = source.load_model().to(device=device, dtype=self.dtype)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        meta = source.metadata
        self._graphs: Dict[bool, torch.nn.Module] = {}
        for conf in (False, True):
            graph = SegmentationGraph(model, meta.mean, meta.std, confidence=conf,
                                      compute_dtype=self.dtype).to(device).eval()
            if compile:
                # Static shapes: one specialisation per input shape, as the engines.
                graph = torch.compile(graph, dynamic=False)
            self._graphs[conf] = graph

    def describe(self) -> str:
        extra = ", channels_last" if self.channels_last else ", NCHW"
        if self.compiled:
            extra += ", compiled"
        return f"{self.name} on {self.device}, {self.precision}{extra}"

    def prepare(self, batch: int, height: int, width: int, confidence: bool = False) -> float:
        t0 = time.perf_counter()
        if self.compiled:
            log.info("compiling the torch graph for %dx%dx%d (%s); the first call takes a while",
                     batch, height, width, self.describe())
            self.run(torch.zeros((batch, height, width, 3), dtype=torch.uint8, device=self.device),
                     confidence)
            log.info("compiled in %.1f s", time.perf_counter() - t0)
        return time.perf_counter() - t0

    array_type = "torch"

    @torch.inference_mode()
    def run(self, pixels: torch.Tensor, confidence: bool = False) -> Outputs:
        """``(B, H, W, 3)`` uint8 tensor on :attr:`device` -> labels ``(B, H, W)`` uint8
        tensor and confidence ``(B, H, W)`` float32 tensor or None, on the same device."""
        if not self.channels_last:
            # The plain baseline gets plain contiguous NCHW memory.
            pixels = pixels.permute(0, 3, 1, 2).contiguous().permute(0, 2, 3, 1)
        out = self._graphs[bool(confidence)](pixels)
        return out if confidence else (out, None)
