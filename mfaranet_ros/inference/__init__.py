"""Inference runtime: one :class:`Segmenter`, backends chosen by name, cached artifacts.

    from mfaranet_ros.inference import Segmenter
    seg = Segmenter.from_checkpoint("model.pth", backend="auto")  # at the checkpoint's size
    result = seg.segment(rgb_frame)        # labels / color / overlay at the frame's size
"""
from .backends import BACKENDS, Backend, BackendUnavailable, create_backend
from .cache import default_cache_dir, resolve_cache_dir
from .segmenter import CHECKPOINT_SIZE, SegmentationResult, Segmenter, resolve_input_size

__all__ = [
    "Segmenter",
    "SegmentationResult",
    "CHECKPOINT_SIZE",
    "resolve_input_size",
    "BackendUnavailable",
    "Backend",
    "BACKENDS",
    "create_backend",
    "default_cache_dir",
    "resolve_cache_dir",
]
