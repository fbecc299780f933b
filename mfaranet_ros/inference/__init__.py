"""Inference runtime: one :class:`Segmenter`, backends chosen by name, cached artifacts.

    from mfaranet_ros.inference import Segmenter
    seg = Segmenter.from_checkpoint("model.pth", backend="auto", input_size=(512, 1024))
    result = seg.segment(rgb_frame)        # labels / color / overlay at the frame's size
"""
from .backends import BACKENDS, Backend, BackendUnavailable, create_backend
from .cache import default_cache_dir, resolve_cache_dir
from .segmenter import SegmentationResult, Segmenter

__all__ = [
    "Segmenter",
    "SegmentationResult",
    "BackendUnavailable",
    "Backend",
    "BACKENDS",
    "create_backend",
    "default_cache_dir",
    "resolve_cache_dir",
]
