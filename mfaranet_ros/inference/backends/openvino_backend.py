"""OpenVINO backend (CPU): fp32, bf16 where the processor has it, int8 calibrated with NNCF.

OpenVINO is optional: it is imported here only, and a missing install makes the backend
unavailable with the reason (``auto`` then skips it). Every artifact is an ONNX file with
the checkpoint's metadata embedded, in the same cache as the ONNX Runtime backend's:

- fp32 and bf16 compile the fp32 export (the same cached file ONNX Runtime runs);
- int8 compiles an NNCF-quantized copy of it (``mfaranet-openvino-int8``), keyed by the
  checkpoint, the input size and the calibration frames' hash, with its accuracy.

The inference precision is always requested explicitly: on a CPU with bf16 units the
CPU plugin's default is bf16, so fp32 must be asked for when fp32 is meant. A bf16 request
on a CPU without bf16 units is refused rather than silently run as fp32.
"""
from __future__ import annotations

import io
import json
import logging
import time
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np

from ..cache import CacheDir, lookup, store
from .base import Backend, BackendUnavailable, ModelSource, Outputs
from .onnxruntime_backend import (
    CONFIDENCE,
    INPUT,
    LABELS,
    META_PREFIX,
    export_onnx,
    onnx_cache_key,
    physical_cores,
)

__all__ = ["OpenVinoBackend", "OV_INT8_ARTIFACT", "openvino_int8_key", "INFERENCE_HINTS"]

log = logging.getLogger(__name__)

OV_INT8_ARTIFACT = "mfaranet-openvino-int8"
#: INFERENCE_PRECISION_HINT per precision. int8: the quantized operators run int8 and
#: the rest f32 (never the plugin's bf16 default).
INFERENCE_HINTS = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}
OV_INSTALL = "pip install openvino==2026.4.1 nncf==3.4.0"
#: Names the NNCF recipe in cache keys: change it when :func:`nncf_quantize_onnx` changes.
NNCF_RECIPE = "nncf-performance-fbc-same-nodes/v1"


def _import_openvino():
    try:
        import openvino
    except ImportError as exc:
        raise BackendUnavailable(f"openvino is not installed ({exc}); {OV_INSTALL}") from None
    return openvino


def _require_bf16(core) -> None:
    caps = list(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    if "BF16" not in caps:
        raise BackendUnavailable(
            f"this CPU ({core.get_property('CPU', 'FULL_DEVICE_NAME')}) has no bf16 "
            f"instructions (OpenVINO reports {', '.join(caps)}; bf16 needs AVX512_BF16 or "
            f"AMX): OpenVINO would run fp32; use precision fp32 or int8")


def openvino_int8_key(source: ModelSource, height: int, width: int, confidence: bool,
                      calibration=None) -> Dict:
    """The OpenVINO int8 artifact's key (cf. :func:`..onnxruntime_backend.int8_key`)."""
    import nncf

    key = onnx_cache_key(source, height, width, "int8", confidence)
    key.update(artifact="openvino-int8", recipe=NNCF_RECIPE, nncf=nncf.__version__)
    if calibration is not None:
        key["calibration"] = {"sha256": calibration.sha256, "frames": len(calibration)}
    return key


def fp32_onnx(source: ModelSource, cache: CacheDir, height: int, width: int,
              confidence: bool) -> Tuple[object, Dict]:
    """The fp32 export (path, or bytes when nothing can be cached) and its key."""
    key = onnx_cache_key(source, height, width, "fp32", confidence)
    directory = cache.readable
    path, why = lookup(directory, "mfaranet-onnx", key, "onnx")
    if path is not None:
        return str(path), key
    log.info("exporting %s to ONNX for %dx%d (%s)", source.describe(), height, width, why)
    blob = export_onnx(source, height, width, confidence, key)
    if cache.path is None:
        return blob, key
    return str(store(cache.path, "mfaranet-onnx", key, "onnx", lambda p: p.write_bytes(blob))), key


def _compile(ov, core, model: object, shape: Tuple[int, int, int], hint: str, threads: int):
    """An ONNX model (path or bytes) compiled for ``(B, H, W, 3)`` with inference precision
    ``hint``; a bf16 request the CPU plugin turned into f32 is refused."""
    ov_model = core.read_model(model) if isinstance(model, str) else \
        ov.convert_model(io.BytesIO(model))
    ov_model.reshape({INPUT: [*shape, 3]})
    compiled = core.compile_model(ov_model, "CPU", {
        "INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": threads,
        "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1})
    got = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
    if got != hint:
        raise BackendUnavailable(f"OpenVINO compiled for {got}, not {hint}, on this CPU")
    return compiled


class OpenVinoBackend(Backend):
    """One compiled OpenVINO model per (batch, height, width, confidence); numpy in and out."""

    name = "openvino"
    array_type = "numpy"

    def __init__(self, source: ModelSource, device: Optional[str], precision: str = "fp32", *,
                 cache: CacheDir, calibration=None, threads: Optional[int] = None) -> None:
        ov = _import_openvino()
        device = device or "cpu"
        if device != "cpu":
            raise BackendUnavailable(f"the openvino backend runs on the CPU, not {device!r}")
        super().__init__(source, device, precision)
        self._ov = ov
        self._core = ov.Core()
        if precision == "bf16":
            _require_bf16(self._core)
        self.cache = cache
        self.calibration = calibration
        self.threads = threads or physical_cores()
        self._compiled: Dict[Tuple[int, int, int, bool], object] = {}
        self._requests: Dict[Tuple[int, int, int, bool], object] = {}
        self._paths: Dict[Tuple[int, int, bool], str] = {}
        if precision == "int8" and calibration is None:
            _require_any_int8(source, self._cache_dir())

    def _cache_dir(self) -> Optional[Path]:
        return self.cache.readable

    def describe(self) -> str:
        version = self._ov.__version__.split("-")[0]
        return (f"{self.name} {version} on cpu ({self.threads} threads, "
                f"inference precision {INFERENCE_HINTS[self.precision]}), {self.precision}")

    def _model(self, height: int, width: int, confidence: bool) -> object:
        """The ONNX model this precision compiles: a path, or bytes kept in memory."""
        if self.precision == "int8":
            model, path = _int8_model(self, height, width, confidence)
        else:
            model, _key = fp32_onnx(self.source, self.cache, height, width, confidence)
            path = model if isinstance(model, str) else None
        if path is not None:
            self._paths[(height, width, confidence)] = str(path)
        return model

    def compile(self, model: object, batch: int, height: int, width: int):
        """``model`` (ONNX path or bytes) compiled for a static ``(batch, H, W, 3)`` input."""
        return _compile(self._ov, self._core, model, (batch, height, width),
                        INFERENCE_HINTS[self.precision], self.threads)

    def _request(self, batch: int, height: int, width: int, confidence: bool):
        key = (int(batch), int(height), int(width), bool(confidence))
        req = self._requests.get(key)
        if req is None:
            t0 = time.perf_counter()
            compiled = self.compile(self._model(*key[1:]), *key[:3])
            self._compiled[key] = compiled
            req = self._requests[key] = compiled.create_infer_request()
            log.info("openvino: compiled %dx%dx%d %s in %.1f s", *key[:3], self.precision,
                     time.perf_counter() - t0)
        return req

    def artifacts(self) -> Dict[Tuple, str]:
        return dict(self._paths)

    def prepare(self, batch: int, height: int, width: int, confidence: bool = False) -> float:
        t0 = time.perf_counter()
        self._request(batch, height, width, confidence)
        return time.perf_counter() - t0

    def run(self, pixels: np.ndarray, confidence: bool = False) -> Outputs:
        b, h, w = pixels.shape[:3]
        req = self._request(b, h, w, confidence)
        req.infer({INPUT: np.ascontiguousarray(pixels)})
        labels = req.get_tensor(LABELS).data.copy()
        conf = req.get_tensor(CONFIDENCE).data.copy() if confidence else None
        return labels, conf


# --------------------------------------------------------------------- int8 (NNCF)

def _require_any_int8(source: ModelSource, directory: Optional[Path]) -> None:
    """Refuses before any input size is known when no OpenVINO int8 artifact of this
    checkpoint exists at all."""
    from ..quantize import missing_artifact_message

    for manifest in (directory.glob(f"{OV_INT8_ARTIFACT}-*.json") if directory else ()):
        try:
            key = json.loads(manifest.read_text()).get("key", {})
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(key, dict) and key.get("checkpoint_sha256") == source.sha256:
            return
    raise BackendUnavailable(missing_artifact_message(
        "openvino", "int8", source.path, None, directory, "none was built"))


def _int8_model(backend: OpenVinoBackend, height: int, width: int,
                confidence: bool) -> Tuple[object, Optional[Path]]:
    """The NNCF int8 ONNX for this size: calibrated now when the backend has a calibration
    source, else the newest cached one for this checkpoint, size and NNCF version."""
    from ..quantize import find_calibrated, missing_artifact_message

    directory = backend._cache_dir()
    if backend.calibration is None:
        base = openvino_int8_key(backend.source, height, width, confidence)
        path, key, why = find_calibrated(directory, OV_INT8_ARTIFACT, base, "onnx")
        if path is None:
            raise BackendUnavailable(missing_artifact_message(
                "openvino", "int8", backend.source.path, (height, width), directory, why))
        _check_loaded(path, key)
        return str(path), path
    return _calibrate(backend, height, width, confidence)


def _check_loaded(path: Path, key: Dict) -> None:
    """Refuses a file that does not carry the key its manifest claims; logs its accuracy."""
    import onnx

    from ..quantize import describe_accuracy

    props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    embedded = props.get(META_PREFIX + "cache_key")
    if embedded is None or json.loads(embedded) != key:
        raise BackendUnavailable(f"{path} does not carry the key its manifest claims; delete it "
                                 f"and build it again with mfaranet build-engine")
    accuracy = props.get(META_PREFIX + "accuracy")
    log.info("openvino int8 model %s, calibrated on %s: %s", path.name,
             props.get(META_PREFIX + "calibration", "?"),
             describe_accuracy(json.loads(accuracy)) if accuracy else "accuracy not recorded")


def _calibrate(backend: OpenVinoBackend, height: int, width: int,
               confidence: bool) -> Tuple[object, Optional[Path]]:
    import onnx

    from ..calibration import load_calibration
    from ..processing import letterbox_fill
    from ..quantize import describe_accuracy, store_int8_artifact

    meta = backend.source.metadata
    calib, held = load_calibration(backend.calibration, (height, width), letterbox_fill(meta.mean))
    key = openvino_int8_key(backend.source, height, width, confidence, calib)
    path, why = lookup(backend._cache_dir(), OV_INT8_ARTIFACT, key, "onnx")
    if path is not None:
        _check_loaded(path, key)
        return str(path), path
    fp32_model, _ = fp32_onnx(backend.source, backend.cache, height, width, confidence)
    fp32_proto = onnx.load(fp32_model) if isinstance(fp32_model, str) else \
        onnx.load_from_string(fp32_model)
    log.info("calibrating openvino int8 for %dx%d on %s (%s)", height, width, calib.source, why)
    t0 = time.perf_counter()
    proto = nncf_quantize_onnx(fp32_proto, calib, meta.num_classes, input_name=INPUT)
    accuracy = _accuracy(backend, fp32_model, proto, held, height, width)
    log.info("openvino int8 calibrated in %.1f s: %s", time.perf_counter() - t0,
             describe_accuracy(accuracy))
    return store_int8_artifact(proto, key, accuracy, calib.source, backend.cache.path,
                               OV_INT8_ARTIFACT)


def _accuracy(backend: OpenVinoBackend, fp32_model: object, int8_proto, held, height: int,
              width: int) -> Dict:
    """Agreement and mIoU difference of the int8 model against fp32, both on OpenVINO f32."""
    from ..quantize import accuracy_report

    def runner(model):
        request = _compile(backend._ov, backend._core, model, (1, height, width), "f32",
                           backend.threads).create_infer_request()

        def run(pixels: np.ndarray) -> np.ndarray:
            request.infer({INPUT: pixels})
            return request.get_tensor(LABELS).data.copy()
        return run

    return accuracy_report(runner(fp32_model), runner(int8_proto.SerializeToString()), held,
                           backend.source.metadata.num_classes, backend.calibration.miou)


def nncf_quantize_onnx(model, calibration, num_classes: int, input_name: str = INPUT):
    """NNCF post-training int8 of an fp32 ``onnx.ModelProto`` (QDQ, OpenVINO's patterns).

    The same operators as ONNX Runtime's recipe are quantized
    (:func:`..quantize.int8_nodes`): every other node is in NNCF's ignored scope, so the
    flow warp, the class logits, the upsampling and the argmax stay float.
    """
    try:
        import nncf
    except ImportError as exc:
        raise BackendUnavailable(f"nncf is not installed ({exc}); {OV_INSTALL}") from None
    from ..quantize import int8_nodes

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
