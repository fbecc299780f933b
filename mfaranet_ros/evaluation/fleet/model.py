"""The model of a fleet run as plain data, so every Ray actor can load the same one."""
from __future__ import annotations

import hashlib
from typing import Dict

__all__ = ["model_spec", "load_model", "file_sha256"]


def file_sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_spec(args) -> Dict:
    """The model options of the command line (``add_segmenter_options``) as a dict."""
    from ..model_args import existing_weights

    return {"weights": existing_weights(args.weights), "backend": args.backend,
            "device": args.device or None, "precision": args.precision,
            "input_size": args.input_size, "pruned": args.pruned,
            "cache_dir": args.cache_dir}


def load_model(spec: Dict):
    """A :class:`~mfaranet_ros.inference.Segmenter` from :func:`model_spec`'s dict."""
    from mfaranet_ros.inference import Segmenter

    size = spec.get("input_size", "checkpoint")
    return Segmenter.from_checkpoint(
        spec["weights"], backend=spec.get("backend", "auto"), device=spec.get("device"),
        precision=spec.get("precision", "fp32"),
        input_size=tuple(size) if isinstance(size, list) else size,
        pruned=spec.get("pruned", False), cache_dir=spec.get("cache_dir"))
