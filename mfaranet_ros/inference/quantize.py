"""int8 post-training quantization of the exported graph, and the accuracy of an artifact.

The recipe (static, QDQ, per-channel int8 weights, uint8 activations, min/max ranges over
the calibration frames) quantizes only what has int8 kernels and tolerates it:

- every convolution except those whose output decides a label or a sampling position:
  the class-logit convolutions (out channels <= classes) and the flow-offset
  convolutions (2 out channels) stay float, and so does the stem's first convolution
  (3 input channels), whose input is the normalised image;
- the encoder's residual additions, ReLUs and max-pool, so that int8 tensors flow from
  one convolution to the next without a dequantize/quantize pair in between;
- nothing of the flow warp (its gathers and index arithmetic), the upsampling, the
  attention fusion or the argmax: they stay float.

``reduce_range`` (7-bit weights) is on: without VNNI, x86 int8 kernels multiply pairs
with ``vpmaddubsw``, whose 16-bit sums saturate at full range; it also measured more
accurate here (see docs/cpu_precision.md).
"""
from __future__ import annotations

import ast
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .cache import lookup, store
from .calibration import FrameSet

__all__ = ["RECIPE", "int8_nodes", "quantize_onnx", "accuracy_report", "describe_accuracy",
           "find_calibrated", "missing_artifact_message"]

log = logging.getLogger(__name__)

#: Names the recipe in cache keys: change it when the recipe changes.
RECIPE = "qdq-u8s8-perchannel-rr-minmax/v1"
ENCODER_OPS = ("Add", "Relu", "MaxPool")
QUANTIZED_OPS = ["Conv", *ENCODER_OPS]


def _name_scopes(node) -> List[str]:
    """The module path the exporter recorded for ``node`` (empty if none)."""
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            try:
                return list(ast.literal_eval(prop.value))
            except (ValueError, SyntaxError):
                return []
    return []


def int8_nodes(model, num_classes: int) -> List[str]:
    """Names of the nodes the recipe quantizes in the exported ``onnx.ModelProto``."""
    weights = {init.name: init for init in model.graph.initializer}
    chosen = []
    for node in model.graph.node:
        if node.op_type == "Conv":
            w = weights.get(node.input[1])
            if w is None:
                continue
            out_channels, in_channels = int(w.dims[0]), int(w.dims[1])
            if out_channels <= num_classes or in_channels == 3:
                continue
            chosen.append(node.name)
        elif node.op_type in ENCODER_OPS and "model.encoder" in _name_scopes(node):
            chosen.append(node.name)
    return chosen


class _Frames:
    """``CalibrationDataReader``: one ``(1, H, W, 3)`` uint8 frame per call."""

    def __init__(self, input_name: str, frames: np.ndarray) -> None:
        self._items = iter([{input_name: f[None]} for f in frames])

    def get_next(self) -> Optional[Dict[str, np.ndarray]]:
        return next(self._items, None)


def quantize_onnx(model_path: str, calibration: FrameSet, num_classes: int,
                  input_name: str = "pixels"):
    """The int8 QDQ ``onnx.ModelProto`` of the fp32 ONNX file ``model_path``."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    model = onnx.load(model_path)
    nodes = int8_nodes(model, num_classes)
    log.info("int8: quantizing %d of %d nodes over %d calibration frames (%s)", len(nodes),
             len(model.graph.node), len(calibration), calibration.source)
    with tempfile.TemporaryDirectory(prefix="mfaranet-int8-") as tmp:
        out = os.path.join(tmp, "int8.onnx")
        quantize_static(
            model_path, out, _Frames(input_name, calibration.frames),
            quant_format=QuantFormat.QDQ, op_types_to_quantize=QUANTIZED_OPS,
            nodes_to_quantize=nodes, per_channel=True, reduce_range=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax)
        return onnx.load(out)


def accuracy_report(reference: Callable[[np.ndarray], np.ndarray],
                    candidate: Callable[[np.ndarray], np.ndarray],
                    held_out: Sequence[FrameSet], num_classes: int,
                    miou: Optional[Callable[[np.ndarray, np.ndarray, int], float]] = None
                    ) -> Dict:
    """Label agreement with ``reference`` (fp32) and the mIoU difference on held-out frames.

    ``reference`` / ``candidate``: ``(1, H, W, 3)`` uint8 -> ``(1, H, W)`` uint8 labels.
    ``miou``: the metric, given by the caller (the calibration spec's); without it only the
    label agreement is measured.
    Returns the figures for the artifact's metadata: per held-out set, and at the top the
    worst over the sets (agreement as a fraction, mIoU difference in points).
    """
    sets = []
    for fs in held_out:
        ref = np.concatenate([reference(f[None]) for f in fs.frames])
        cand = np.concatenate([candidate(f[None]) for f in fs.frames])
        entry = {"source": fs.source, "frames": len(fs),
                 "label_agreement": float(np.mean(ref == cand))}
        if fs.labels is not None and miou is not None:
            m_ref = miou(ref, fs.labels, num_classes)
            m_cand = miou(cand, fs.labels, num_classes)
            entry.update(miou_fp32=100 * m_ref, miou=100 * m_cand,
                         miou_delta_points=100 * (m_cand - m_ref))
        sets.append(entry)
    report = {"held_out": sets,
              "label_agreement": min(s["label_agreement"] for s in sets)}
    deltas = [s["miou_delta_points"] for s in sets if "miou_delta_points" in s]
    if deltas:
        report["miou_delta_points"] = min(deltas)
    return report


def store_int8_artifact(proto, key: Dict, accuracy: Dict, source: str,
                        directory: Optional[Path], name: str) -> Tuple[object, Optional[Path]]:
    """Embeds the cache key, the accuracy and the calibration source in an int8 ONNX
    model and stores it under ``directory`` (none: kept in memory). Returns what a
    session loads (a path, or the serialized model) and the stored file, if any."""
    from .backends.onnxruntime_backend import embed_props

    embed_props(proto, {"cache_key": json.dumps(key, sort_keys=True),
                        "accuracy": json.dumps(accuracy, sort_keys=True),
                        "calibration": source})
    blob = proto.SerializeToString()
    if directory is None:
        return blob, None
    path = store(directory, name, key, "onnx", lambda p: p.write_bytes(blob))
    return str(path), path


def describe_accuracy(report: Dict) -> str:
    """One line for the log: agreement and mIoU difference on the held-out frames."""
    parts = []
    for s in report.get("held_out", []):
        text = f"{100 * s['label_agreement']:.2f} % labels as fp32 on {s['source']}"
        if "miou_delta_points" in s:
            text += (f", mIoU {s['miou']:.2f} vs {s['miou_fp32']:.2f} "
                     f"({s['miou_delta_points']:+.2f} points)")
        parts.append(text)
    return "; ".join(parts) or "accuracy not measured"


def find_calibrated(directory: Optional[Path], name: str, key: Dict,
                    ext: str) -> Tuple[Optional[Path], Optional[Dict], str]:
    """The newest valid cache entry whose key equals ``key`` in every field but
    ``calibration`` (the node does not know which frames an artifact was calibrated on).

    Returns ``(artifact, its full key, "")`` or ``(None, None, why not)``.
    """
    if directory is None or not directory.is_dir():
        return None, None, "no cache directory"
    found = []
    for manifest in directory.glob(f"{name}-*.json"):
        try:
            recorded = json.loads(manifest.read_text()).get("key")
        except (OSError, ValueError, AttributeError):
            continue
        if not isinstance(recorded, dict) or "calibration" not in recorded:
            continue
        if {k: v for k, v in recorded.items() if k != "calibration"} != key:
            continue
        path, _why = lookup(directory, name, recorded, ext)  # hash-checked, or skipped
        if path is not None:
            found.append((path.stat().st_mtime, path, recorded))
    if not found:
        return None, None, f"no {name} entry for these settings in {directory}"
    _, path, recorded = max(found, key=lambda item: item[0])
    if len(found) > 1:
        log.info("%d calibrated artifacts match; using the newest, %s", len(found), path.name)
    return path, recorded, ""


def missing_artifact_message(backend: str, precision: str, weights: str,
                             size: Optional[Tuple[int, int]], cache_dir: Optional[Path],
                             why: str) -> str:
    """The one line a consumer (the node) shows when no calibrated artifact exists."""
    hw = f"{size[0]}x{size[1]}" if size else "HxW"
    at = f" at {hw}" if size else ""
    where = f" --cache-dir {cache_dir}" if cache_dir is not None else ""
    return (f"no {backend} {precision} artifact for {os.path.basename(weights)}{at} ({why}); "
            f"build one first: mfaranet build-engine --weights {weights} --backend {backend} "
            f"--input-size {hw} --precision {precision} "
            f"--calibration BAG|IMAGE_FOLDER|synthetic{where}")
