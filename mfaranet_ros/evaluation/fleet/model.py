"""The model of a fleet run as plain data, so every Ray actor can load the same one."""
from __future__ import annotations

import hashlib
import os
from typing import Dict

__all__ = ["model_spec", "load_model", "load_spec_label_map", "file_sha256"]


def file_sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_spec(args) -> Dict:
    """The model options of the command line (``add_segmenter_options``) as a dict."""
    from ..model_args import existing_weights

    label_map = getattr(args, "label_map", "") or ""
    if label_map and os.path.exists(os.path.expanduser(label_map)):
        label_map = os.path.abspath(os.path.expanduser(label_map))
    return {"weights": existing_weights(args.weights), "backend": args.backend,
            "device": args.device or None, "precision": args.precision,
            "input_size": args.input_size, "pruned": args.pruned,
            "cache_dir": args.cache_dir, "label_map": label_map}


def load_model(spec: Dict):
    """A :class:`~mfaranet_ros.inference.Segmenter` from :func:`model_spec`'s dict."""
    from mfaranet_ros.inference import Segmenter

    size = spec.get("input_size", "checkpoint")
    return Segmenter.from_checkpoint(
        spec["weights"], backend=spec.get("backend", "auto"), device=spec.get("device"),
        precision=spec.get("precision", "fp32"),
        input_size=tuple(size) if isinstance(size, list) else size,
        pruned=spec.get("pruned", False), cache_dir=spec.get("cache_dir"))


def load_spec_label_map(spec: Dict, metadata):
    """The spec's label map for the model ``metadata`` (None: the model's own classes)."""
    from ..model_args import load_cli_label_map

    return load_cli_label_map(spec.get("label_map") or "", metadata)
