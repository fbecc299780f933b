"""Inference runtime: one :class:`Segmenter`, backends chosen by name, cached artifacts.

    from mfaranet_ros.inference import Segmenter
    seg = Segmenter.from_checkpoint("model.pth", backend="auto")  # at the checkpoint's size
    result = seg.segment(rgb_frame)        # labels / color / overlay at the frame's size

Its names load on first use (the command's parser in ``cli`` needs no torch).
"""
from ..lazy import lazy_exports

__all__, __getattr__ = lazy_exports(__name__, {
    ".segmenter": ("Segmenter", "SegmentationResult", "resolve_input_size"),
    "..names": ("CHECKPOINT_SIZE", "BACKENDS"),
    ".backends": ("BackendUnavailable", "Backend", "create_backend"),
    ".cache": ("default_cache_dir", "resolve_cache_dir"),
    ".cpu_units": ("CpuUnits", "detect_cpu_units"),
    ".precision_rule": ("PrecisionChoice", "choose_precision"),
})
