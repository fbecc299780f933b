"""ONNX Runtime backend: our checkpoint exported to ONNX (cached), CPU or CUDA execution provider.

One ONNX file per network input size (static height and width, dynamic batch): the
flow-alignment grids then constant-fold, and the file is what an engine would be.
The checkpoint's metadata is embedded in the file's ``metadata_props``. The bilinear
flow warps are exported as gathers (:func:`..graph.gather_grid_sample`) rather than
``GridSample``, whose CPU kernel was the network's hotspot; results are identical.
"""
from __future__ import annotations

import io
import json
import logging
import os
import time
import warnings
from contextlib import contextmanager, redirect_stdout
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np
import torch

from ..cache import ARTIFACT_FORMAT, CacheDir, lookup, store
from ..graph import GatherGridSample, SegmentationGraph
from .base import Backend, BackendUnavailable, ModelSource, Outputs

__all__ = ["OnnxRuntimeBackend", "export_onnx", "onnx_cache_key", "OPSET", "physical_cores",
           "INT8_ARTIFACT", "int8_key", "build_int8", "require_any_int8", "embed_props"]

log = logging.getLogger(__name__)

#: GridSample exists from opset 16; 17 is the project's floor, 18 what we write.
OPSET = 18
INPUT, LABELS, CONFIDENCE = "pixels", "labels", "confidence"
META_PREFIX = "mfaranet_ros."


def _import_ort():
    try:
        import onnxruntime
    except ImportError as exc:
        raise BackendUnavailable(f"onnxruntime is not installed ({exc}); "
                                 f"pip install onnxruntime") from None
    return onnxruntime


def physical_cores() -> int:
    try:
        import psutil
        n = psutil.cpu_count(logical=False)
    except ImportError:
        n = None
    return max(1, n or os.cpu_count() or 1)


def onnx_cache_key(source: ModelSource, height: int, width: int, precision: str,
                   confidence: bool) -> Dict:
    import onnx
    try:
        import onnxscript
        onnxscript_version = onnxscript.__version__
    except ImportError:
        onnxscript_version = None
    return {
        "format": ARTIFACT_FORMAT,
        "artifact": "onnx",
        "checkpoint_sha256": source.sha256,
        "pruned": source.pruned,
        "input_hw": [int(height), int(width)],
        "batch": "dynamic",
        "precision": precision,
        "outputs": [LABELS, CONFIDENCE] if confidence else [LABELS],
        "opset": OPSET,
        "grid_sample": "gather",  # see graph.gather_grid_sample
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxscript": onnxscript_version,
    }


@contextmanager
def _quiet_loggers(names=("torch.onnx", "onnx_ir", "onnxscript")):
    saved = [(logging.getLogger(n), logging.getLogger(n).level) for n in names]
    for logger, _ in saved:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in saved:
            logger.setLevel(level)


def export_onnx(source: ModelSource, height: int, width: int, confidence: bool,
                key: Dict) -> bytes:
    """Exports ``SegmentationGraph``: uint8 NHWC in, uint8 labels [+ float confidence] out.

    Two files per size: ONNX Runtime computes every node of a graph even when only some
    outputs are fetched, and the softmax for the confidence costs ~5 % of the model.
    """
    import onnx

    meta = source.metadata
    graph = SegmentationGraph(source.load_model(), meta.mean, meta.std,
                              confidence=confidence).eval()
    outputs = [LABELS, CONFIDENCE] if confidence else [LABELS]
    example = torch.zeros((2, height, width, 3), dtype=torch.uint8)
    batch = torch.export.Dim("batch", min=1, max=256)
    # The exporter narrates on stdout and logs every optimisation pass: keep it quiet.
    # GatherGridSample: the flow warps as row gathers, ~2x faster than ORT's CPU GridSample.
    with warnings.catch_warnings(), redirect_stdout(io.StringIO()), _quiet_loggers(), \
            GatherGridSample():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            graph, (example,), None, dynamo=True, opset_version=OPSET, verbose=False,
            input_names=[INPUT], output_names=outputs,
            dynamic_shapes={"pixels": {0: batch}}, external_data=False,
        )
    proto = program.model_proto
    described = f"{LABELS}: (B, {height}, {width}) uint8 trainIds"
    if confidence:
        described += f"; {CONFIDENCE}: (B, {height}, {width}) float32 max softmax"
    props = {
        "metadata": json.dumps(meta.to_dict(), sort_keys=True),
        "cache_key": json.dumps(key, sort_keys=True),
        "input": f"{INPUT}: (B, {height}, {width}, 3) uint8 RGB 0..255 (normalised inside)",
        "outputs": described,
        "source_checkpoint": os.path.basename(source.path),
    }
    del proto.metadata_props[:]
    for k, v in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = META_PREFIX + k, v
    proto.producer_name = "mfaranet_ros"
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


class OnnxRuntimeBackend(Backend):
    """One ONNX Runtime session per network input size; ``run`` takes numpy arrays."""

    name = "onnxruntime"
    array_type = "numpy"

    def __init__(self, source: ModelSource, device: Optional[str], precision: str = "fp32", *,
                 cache: CacheDir, threads: Optional[int] = None, calibration=None) -> None:
        ort = _import_ort()
        if device is None:  # auto: the CUDA provider where this onnxruntime build has one
            cuda_ep = "CUDAExecutionProvider" in ort.get_available_providers()
            device = "cuda" if cuda_ep and torch.cuda.is_available() else "cpu"
        super().__init__(source, device, precision)
        self._ort = ort
        if precision not in ("fp32", "int8"):
            raise BackendUnavailable("the onnxruntime backend runs fp32 and int8 (calibrated) "
                                     "only; use torch or tensorrt on a GPU for fp16")
        if precision == "int8" and device != "cpu":
            raise BackendUnavailable(f"int8 runs on the CPU execution provider, not {device!r}")
        available = ort.get_available_providers()
        if device.startswith("cuda"):
            if "CUDAExecutionProvider" not in available:
                raise BackendUnavailable(f"device {device!r} needs onnxruntime's "
                                         f"CUDAExecutionProvider; this onnxruntime "
                                         f"{ort.__version__} has {available}")
            dev_id = int(device.split(":")[1]) if ":" in device else 0
            self.providers = [("CUDAExecutionProvider", {"device_id": dev_id}),
                              "CPUExecutionProvider"]
        else:
            self.providers = ["CPUExecutionProvider"]
        self.cache = cache
        self.threads = threads or physical_cores()
        self._sessions: Dict[Tuple[int, int, bool], object] = {}
        self._paths: Dict[Tuple[int, int, bool], str] = {}
        self._keys: Dict[Tuple[int, int, bool], Dict] = {}  # the key each artifact was built for
        self.calibration = calibration
        if precision == "int8" and calibration is None:
            require_any_int8(source, self._cache_dir())

    def describe(self) -> str:
        first = self.providers[0]
        provider = first if isinstance(first, str) else first[0]
        return (f"{self.name} {self._ort.__version__} on {self.device} "
                f"({provider}, {self.threads} threads), {self.precision}")

    def _session_options(self):
        so = self._ort.SessionOptions()
        so.graph_optimization_level = self._ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.execution_mode = self._ort.ExecutionMode.ORT_SEQUENTIAL
        # One thread per physical core: hyper-threads only contend for the same FMA units.
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        return so

    def _cache_dir(self) -> Optional[Path]:
        """Where artifacts are looked up (a read-only directory can still be read)."""
        return self.cache.readable

    def build(self, height: int, width: int, confidence: bool = False,
              rebuild: str = "") -> Tuple[object, Optional[Path]]:
        """The ONNX model for this input size: from the cache, else exported (and cached)."""
        if self.precision == "int8":
            model, path, key = build_int8(self, height, width, confidence, rebuild)
            self._keys[(int(height), int(width), bool(confidence))] = key
            return model, path
        key = onnx_cache_key(self.source, height, width, self.precision, confidence)
        self._keys[(int(height), int(width), bool(confidence))] = key
        if rebuild:
            path, why = None, rebuild
        else:
            path, why = lookup(self.cache.readable, "mfaranet-onnx", key, "onnx")
        if path is not None:
            log.debug("using cached ONNX model %s", path)
            return str(path), path
        where = self.cache.path or "memory (cache directory not writable)"
        log.info("exporting %s to ONNX for %dx%d input%s (%s), this takes a few seconds to a "
                 "minute; cached at %s", self.source.describe(), height, width,
                 " with confidence" if confidence else "", why, where)
        t0 = time.perf_counter()
        blob = export_onnx(self.source, height, width, confidence, key)
        if self.cache.path is None:
            log.info("exported in %.1f s (kept in memory)", time.perf_counter() - t0)
            return blob, None
        path = store(self.cache.path, "mfaranet-onnx", key, "onnx", lambda p: p.write_bytes(blob))
        log.info("exported in %.1f s: %s", time.perf_counter() - t0, path)
        return str(path), path

    def _new_session(self, model):
        return self._ort.InferenceSession(model, self._session_options(),
                                          providers=self.providers)

    def session(self, height: int, width: int, confidence: bool = False):
        """The ONNX Runtime session for this input size (built on first use)."""
        hw = (int(height), int(width), bool(confidence))
        sess = self._sessions.get(hw)
        if sess is None:
            model, path = self.build(*hw)
            sess = self._new_session(model)
            embedded = sess.get_modelmeta().custom_metadata_map.get(META_PREFIX + "cache_key")
            if embedded is None or json.loads(embedded) != self._keys[hw]:
                # A manifest copied next to someone else's file: never trust it.
                log.warning("ONNX model %s does not carry the key its manifest claims; "
                            "re-exporting", path)
                model, path = self.build(*hw, rebuild="embedded key differs from the manifest")
                sess = self._new_session(model)
            self._sessions[hw] = sess
            if path is not None:
                self._paths[hw] = str(path)
        return sess

    def artifacts(self) -> Dict[Tuple, str]:
        return dict(self._paths)

    def prepare(self, batch: int, height: int, width: int, confidence: bool = False) -> float:
        t0 = time.perf_counter()
        self.session(height, width, confidence)
        return time.perf_counter() - t0

    def run(self, pixels: np.ndarray, confidence: bool = False) -> Outputs:
        """``(B, H, W, 3)`` uint8 numpy -> labels ``(B, H, W)`` uint8, confidence or None."""
        sess = self.session(pixels.shape[1], pixels.shape[2], confidence)
        pixels = np.ascontiguousarray(pixels)
        if confidence:
            labels, conf = sess.run([LABELS, CONFIDENCE], {INPUT: pixels})
            return labels, conf
        (labels,) = sess.run([LABELS], {INPUT: pixels})
        return labels, None


# --------------------------------------------------------------------- int8 (calibrated)

#: Cache name of calibrated int8 models (QDQ ONNX, see :mod:`..quantize`).
INT8_ARTIFACT = "mfaranet-onnx-int8"


def int8_key(source: ModelSource, height: int, width: int, confidence: bool,
             calibration=None) -> Dict:
    """The int8 artifact's key: the fp32 export's, the recipe, this ONNX Runtime and, when
    known, the calibration frames (hash and count; where they came from is metadata)."""
    import onnxruntime

    from ..quantize import RECIPE

    key = onnx_cache_key(source, height, width, "int8", confidence)
    key.update(artifact="onnx-int8", recipe=RECIPE, onnxruntime=onnxruntime.__version__)
    if calibration is not None:
        key["calibration"] = {"sha256": calibration.sha256, "frames": len(calibration)}
    return key


def embed_props(proto, props: Dict[str, str]) -> None:
    """Sets ``mfaranet_ros.<name>`` entries of an ``onnx.ModelProto``'s metadata_props."""
    wanted = {META_PREFIX + k: v for k, v in props.items()}
    kept = [(p.key, p.value) for p in proto.metadata_props if p.key not in wanted]
    del proto.metadata_props[:]
    for k, v in [*kept, *wanted.items()]:
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v


def _has_int8_for(source: ModelSource, directory: Optional[Path]) -> bool:
    if directory is None or not directory.is_dir():
        return False
    for manifest in directory.glob(f"{INT8_ARTIFACT}-*.json"):
        try:
            key = json.loads(manifest.read_text()).get("key", {})
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(key, dict) and key.get("checkpoint_sha256") == source.sha256:
            return True
    return False


def require_any_int8(source: ModelSource, directory: Optional[Path]) -> None:
    """Refuses at construction, before any input size is known, when no int8 artifact of
    this checkpoint exists at all (the node then fails at start-up with the fix)."""
    if not _has_int8_for(source, directory):
        from ..quantize import missing_artifact_message

        raise BackendUnavailable(missing_artifact_message(
            "onnxruntime", "int8", source.path, None, directory, "none was built"))


def _log_loaded(path: Path) -> None:
    import onnx

    props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    accuracy = props.get(META_PREFIX + "accuracy")
    from ..quantize import describe_accuracy

    log.info("int8 model %s, calibrated on %s: %s", path.name,
             props.get(META_PREFIX + "calibration", "?"),
             describe_accuracy(json.loads(accuracy)) if accuracy else "accuracy not recorded")


def build_int8(backend: "OnnxRuntimeBackend", height: int, width: int, confidence: bool,
               rebuild: str = "") -> Tuple[object, Optional[Path], Dict]:
    """The int8 model for this size: calibrated now when the backend has a calibration
    source, else the newest cached one for this checkpoint, size and ONNX Runtime."""
    from ..quantize import find_calibrated, missing_artifact_message

    directory = backend._cache_dir()
    if backend.calibration is None:
        base = int8_key(backend.source, height, width, confidence)
        path, key, why = find_calibrated(directory, INT8_ARTIFACT, base, "onnx")
        if rebuild and path is not None:  # never trust it, and without frames: no rebuild
            path, why = None, f"{path.name}: {rebuild}"
        if path is None:
            raise BackendUnavailable(missing_artifact_message(
                "onnxruntime", "int8", backend.source.path, (height, width), directory, why))
        _log_loaded(path)
        return str(path), path, key
    return _calibrate_int8(backend, height, width, confidence, rebuild)


def _calibrate_int8(backend: "OnnxRuntimeBackend", height: int, width: int, confidence: bool,
                    rebuild: str) -> Tuple[object, Optional[Path], Dict]:
    import tempfile

    from ..calibration import load_calibration
    from ..processing import letterbox_fill
    from ..quantize import accuracy_report, describe_accuracy, quantize_onnx, store_int8_artifact

    meta = backend.source.metadata
    calib, held = load_calibration(backend.calibration, (height, width), letterbox_fill(meta.mean))
    key = int8_key(backend.source, height, width, confidence, calib)
    path, why = (None, rebuild) if rebuild else lookup(backend._cache_dir(), INT8_ARTIFACT, key,
                                                       "onnx")
    if path is not None:
        _log_loaded(path)
        return str(path), path, key
    fp32 = OnnxRuntimeBackend(backend.source, "cpu", "fp32", cache=backend.cache,
                              threads=backend.threads)
    fp32_model, _ = fp32.build(height, width, confidence)
    log.info("calibrating int8 for %dx%d on %s (%s)", height, width, calib.source, why)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mfaranet-fp32-") as tmp:
        if isinstance(fp32_model, bytes):
            Path(tmp, "fp32.onnx").write_bytes(fp32_model)
            fp32_model = str(Path(tmp, "fp32.onnx"))
        proto = quantize_onnx(fp32_model, calib, meta.num_classes, input_name=INPUT)
    reference = fp32.session(height, width, confidence)
    candidate = backend._ort.InferenceSession(proto.SerializeToString(),
                                              backend._session_options(),
                                              providers=backend.providers)
    accuracy = accuracy_report(lambda x: reference.run([LABELS], {INPUT: x})[0],
                               lambda x: candidate.run([LABELS], {INPUT: x})[0],
                               held, meta.num_classes, backend.calibration.miou)
    log.info("int8 calibrated in %.1f s: %s", time.perf_counter() - t0,
             describe_accuracy(accuracy))
    model, path = store_int8_artifact(proto, key, accuracy, calib.source, backend.cache.path,
                                      INT8_ARTIFACT)
    return model, path, key
