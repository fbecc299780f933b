"""int8 post-training quantization of the exported graph, and the accuracy of an artifact.

Two quantizers of one recipe: ONNX Runtime's (:func:`quantize_onnx`) and NNCF's for
OpenVINO (:func:`nncf_quantize_onnx`); both quantize the same nodes (:func:`int8_nodes`).
Keys, the cache and the embedded metadata of the artifacts are :mod:`.onnx_artifacts`'.

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
import logging
import os
import tempfile
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from .backends.base import BackendUnavailable
from .calibration import FrameSet

__all__ = ["RECIPE", "NNCF_RECIPE", "OV_INSTALL", "int8_nodes", "quantize_onnx",
           "nncf_quantize_onnx", "accuracy_report", "describe_accuracy"]

log = logging.getLogger(__name__)

#: Names the recipe in cache keys: change it when the recipe changes.
RECIPE = "qdq-u8s8-perchannel-rr-minmax/v1"
#: Names the NNCF recipe in cache keys: change it when :func:`nncf_quantize_onnx` changes.
NNCF_RECIPE = "nncf-performance-fbc-same-nodes/v1"
OV_INSTALL = "pip install openvino==2026.4.1 nncf==3.4.0"
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


def quantize_onnx(model, calibration: FrameSet, num_classes: int, input_name: str = "pixels"):
    """ONNX Runtime's int8 QDQ ``onnx.ModelProto`` of the fp32 ``onnx.ModelProto`` ``model``."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    nodes = int8_nodes(model, num_classes)
    log.info("int8: quantizing %d of %d nodes over %d calibration frames (%s)", len(nodes),
             len(model.graph.node), len(calibration), calibration.source)
    with tempfile.TemporaryDirectory(prefix="mfaranet-int8-") as tmp:
        out = os.path.join(tmp, "int8.onnx")
        quantize_static(
            model, out, _Frames(input_name, calibration.frames),
            quant_format=QuantFormat.QDQ, op_types_to_quantize=QUANTIZED_OPS,
            nodes_to_quantize=nodes, per_channel=True, reduce_range=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax)
        return onnx.load(out)


def nncf_quantize_onnx(model, calibration: FrameSet, num_classes: int,
                       input_name: str = "pixels"):
    """NNCF post-training int8 of an fp32 ``onnx.ModelProto`` (QDQ, OpenVINO's patterns).

    The same operators as ONNX Runtime's recipe are quantized (:func:`int8_nodes`): every
    other node is in NNCF's ignored scope, so the flow warp, the class logits, the
    upsampling and the argmax stay float.
    """
    try:
        import nncf
    except ImportError as exc:
        raise BackendUnavailable(f"nncf is not installed ({exc}); {OV_INSTALL}") from None

    keep = set(int8_nodes(model, num_classes))
    ignored = [node.name for node in model.graph.node if node.name not in keep]
    data = nncf.Dataset([{input_name: frame[None]} for frame in calibration.frames])
    # NNCF logs one INFO line per node it leaves alone: hundreds, here.
    nncf_log = logging.getLogger("nncf")
    level = nncf_log.level
    nncf_log.setLevel(logging.WARNING)
    try:
        return nncf.quantize(model, data, subset_size=len(calibration),
                             preset=nncf.QuantizationPreset.PERFORMANCE,
                             fast_bias_correction=True,
                             ignored_scope=nncf.IgnoredScope(names=ignored, validate=False))
    finally:
        nncf_log.setLevel(level)


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

